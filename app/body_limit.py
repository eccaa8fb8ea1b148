"""The request body limit (`ZOOLAB_MAX_BODY_BYTES`), answered in JSON like every other error.

A pure ASGI middleware: a body announced larger than the limit (Content-Length) is refused
before any of it is read; a chunked one is cut off as soon as it passes the limit. Starlette's
own limiter (FastAPI's `max_body_size`) answers the first case in text/plain."""

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive`: FastAPI re-raises an HTTPException met while reading a body,
    so its JSON handler answers it."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over the limit of {limit} bytes (ZOOLAB_MAX_BODY_BYTES)")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            # The unread body stays on the connection: close it rather than parse it as a request.
            return await JSONResponse({"detail": error.detail}, 413, headers={"Connection": "close"})(
                scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)
