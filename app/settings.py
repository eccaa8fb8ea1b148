"""Settings shared by the server and the worker: one object, read from `ZOOLAB_*`
environment variables or a `.env` file, with defaults that need no configuration."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZOOLAB_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///runs.db"
    data_dir: Path = Path("data")
    artifact_dir: Path = Path("artifacts")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # When set, every request that changes state or spends compute needs
    # `Authorization: Bearer <token>`; reads stay open (see README, Security).
    token: str | None = None
    # Users without the files get torchvision's download; tests and CI turn it off.
    download: bool = True
    # Comma-separated origins allowed by CORS; empty means no CORS headers at all.
    cors_origins: str = ""
    heartbeat_seconds: float = Field(2.0, gt=0)
    # A running run whose heartbeat is older than this lost its worker.
    stale_seconds: float = Field(30.0, gt=0)
    # A run lost this many times is failed instead of requeued.
    max_attempts: int = Field(3, ge=1)
    # Seconds between within-epoch progress reports.
    progress_seconds: float = Field(2.0, gt=0)
    # CPU threads for training; 0 = leave one core to the server when there are several.
    threads: int = Field(0, ge=0)
    device: str = "auto"
    max_body_bytes: int = 64 * 1024


@lru_cache
def get_settings() -> Settings:
    return Settings()
