"""The FastAPI application: REST API, live events and the dashboard's static files.

    zoolab serve            # server + a supervised local worker (see app/cli.py)
    uvicorn app.main:app    # the server alone"""

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app import errors, queue
from app.api import architectures, runs, workers, zoo
from app.db import get_engine
from app.events import Broadcaster
from app.settings import get_settings

log = logging.getLogger("zoolab.server")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


async def _reap_forever(every: float) -> None:
    """Runs whose worker stopped heartbeating are requeued or failed, even with no worker up."""
    settings = get_settings()
    while True:
        try:
            moved = await asyncio.to_thread(queue.reap_stale, get_engine(), settings.stale_seconds,
                                            settings.max_attempts)
            if moved:
                log.warning("released runs %s whose worker was lost", moved)
        except Exception:
            log.exception("reaper failed; retrying")
        await asyncio.sleep(every)


@asynccontextmanager
async def lifespan(app: FastAPI):
    get_engine()  # creates the schema on first start
    app.state.broadcaster = Broadcaster()
    await app.state.broadcaster.start()
    reaper = asyncio.create_task(_reap_forever(max(1.0, get_settings().stale_seconds / 3)))
    yield
    reaper.cancel()
    await app.state.broadcaster.stop()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="zoolab", version="0.1.0", lifespan=lifespan, max_body_size=settings.max_body_bytes,
                  description="Launch, watch and compare training runs of a model zoo.")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.cors_origins.split(",")],
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    errors.install(app)
    for module in (runs, zoo, workers, architectures):
        app.include_router(module.router)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.api_route("/static/vendor/plotly.min.js", methods=["GET", "HEAD"], include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


app = create_app()
