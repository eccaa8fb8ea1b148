"""Settings shared by the server and the worker: one object, read from `ZOOLAB_*`
environment variables or a `.env` file, with defaults that need no configuration."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZOOLAB_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///runs.db"
    # Unset: the data rule (choose_data_dir) picks the folder.
    data_dir: Path = Field(None, validate_default=True)
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
    # A worker trains up to this many fresh seeds of one group together as one stacked network
    # (app/seed_group.py), its share of the group among the alive workers; 1 trains each alone.
    stack_seeds: int = Field(8, ge=1)
    max_body_bytes: int = 64 * 1024

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_rule(cls, value: str | Path | None) -> Path:
        return choose_data_dir(value)


def data_dir_places(base: Path = Path(".")) -> list[Path]:
    """Where datasets are looked for when ZOOLAB_DATA_DIR is not set, in order: ./data, then a
    workspace copy ../shared/data beside the checkout."""
    base = base.resolve()
    return [base / "data", base.parent / "shared" / "data"]


def choose_data_dir(explicit: str | Path | None = None, base: Path = Path(".")) -> Path:
    """The one data rule of `make run` and `make test` (README, Settings): ZOOLAB_DATA_DIR if
    set; else ./data when it exists; else ../shared/data when it exists; else ./data, where
    missing datasets are downloaded."""
    if explicit:
        return Path(explicit).resolve()
    local, workspace = data_dir_places(base)
    return workspace if workspace.is_dir() and not local.exists() else local


@lru_cache
def get_settings() -> Settings:
    return Settings()
