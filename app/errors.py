"""Error responses, every one JSON: a 422 names each bad field and why, and is always valid
JSON (the default handler echoes the input back, which fails on NaN and bloats on huge
bodies); a database that cannot be written (locked, full, unreachable) is a 503 with
Retry-After, since the same request will work once it is back; anything unforeseen is a
500 that names the exception (the traceback goes to the server's log)."""

import logging
import math

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("zoolab.server")
MAX_ECHO = 200
RETRY_AFTER_SECONDS = 5


def _echo(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)[:MAX_ECHO]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        # a lone surrogate (JSON "\ud800") cannot be encoded as UTF-8: it is echoed escaped
        return value[:MAX_ECHO].encode("utf-8", "backslashreplace").decode()
    return None


def _clean(error: dict) -> dict:
    out = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type", "")}
    echoed = _echo(error.get("input"))
    if echoed is not None:
        out["input"] = echoed
    return out


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": [_clean(e) for e in exc.errors()]},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's own words ("database is locked", "database or disk is full", "disk I/O
    # error", a refused connection), without the SQL statement.
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, reason)
    return JSONResponse({"detail": f"the database is unavailable ({reason}); nothing was changed, "
                                   f"try again in a few seconds"},
                        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server's log"},
                        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


def install(app) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(Exception, internal_error)
