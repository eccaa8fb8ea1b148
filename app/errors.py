"""Error responses: a 422 names each bad field and why, and is always valid JSON (the
default handler echoes the input back, which fails on NaN and bloats on huge bodies)."""

import math

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO = 200


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


def install(app) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
