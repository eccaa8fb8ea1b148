"""The FastAPI application: REST API, live events, the dashboard's static files and the API
docs (/docs Swagger UI, /redoc ReDoc), every file served from this machine.

    zoolab serve            # server + a supervised local worker (see app/cli.py)
    uvicorn app.main:app    # the server alone"""

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
import plotly
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import errors, queue, sweeper
from app.api import architectures, bulk, groups, lineage, presets, runs, sweeps, workers, zoo
from app.auth import SameSiteWrites
from app.body_limit import BodyLimit
from app.db import get_engine
from app.events import Broadcaster
from app.settings import get_settings

log = logging.getLogger("zoolab.server")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Swagger UI and ReDoc as the fastapi-offline package ships them, instead of FastAPI's CDN links.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The docs pages may load nothing from another host: ReDoc would fetch its logo from a CDN.
LOCAL_ONLY = {"Content-Security-Policy": "default-src 'self' 'unsafe-inline' data: blob:"}
SWEEP_SECONDS = 1.0  # how often ended trials are told to their study and tpe sweeps ask for more


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
    sweeps_loop = asyncio.create_task(sweeper.run_forever(SWEEP_SECONDS))
    yield
    sweeps_loop.cancel()
    reaper.cancel()
    await app.state.broadcaster.stop()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="zoolab", version="0.1.0", lifespan=lifespan,
                  description="Launch, watch and compare training runs of a model zoo.",
                  docs_url=None, redoc_url=None)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SameSiteWrites, allowed_origins=origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    errors.install(app)
    # bulk first: its GET /runs/ids would otherwise be taken for GET /runs/{run_id}
    for module in (bulk, runs, groups, lineage, sweeps, zoo, presets, workers, architectures):
        app.include_router(module.router)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.api_route("/static/vendor/plotly.min.js", methods=["GET", "HEAD"], include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=app.openapi_url, title="zoolab API",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url="/static/docs/favicon.png")
        page.headers.update(LOCAL_ONLY)
        return page

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=app.openapi_url, title="zoolab API",
                              redoc_js_url="/static/docs/redoc.standalone.js",
                              redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)
        page.headers.update(LOCAL_ONLY)
        return page

    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs")
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


app = create_app()
