"""Who may change things. With `ZOOLAB_TOKEN` set, requests that change state or spend
compute need `Authorization: Bearer <token>`; reads stay open (README, Security). Whatever
the token, a browser's state-changing request that comes from another site is refused: a
page elsewhere could otherwise cancel or delete runs through a visitor's browser (a form
post needs no CORS permission), since without a token nothing else tells it apart."""

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import get_settings

_bearer = HTTPBearer(auto_error=False, description="Needed for POST and DELETE when the server has a token")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    token = get_settings().token
    if not token:
        return
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required "
                            "(Authorization: Bearer <ZOOLAB_TOKEN>)", headers={"WWW-Authenticate": "Bearer"})


Authorized = Depends(require_token)


def cross_site(headers: Headers, allowed_origins: frozenset[str]) -> str | None:
    """Why a state-changing request is refused as cross-site, or None. Browsers send `Origin`
    with every POST and DELETE; clients that are not browsers (curl, scripts) send neither
    header and pass."""
    origin = headers.get("origin")
    if origin is not None:
        # Compared by host and port only: behind a TLS proxy the page is https while this
        # server sees http.
        if origin in allowed_origins or urlsplit(origin).netloc == headers.get("host"):
            return None
        return (f"cross-site request refused: Origin {origin} is neither this server nor one of "
                "ZOOLAB_CORS_ORIGINS")
    site = headers.get("sec-fetch-site", "none")
    if site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    return None


class SameSiteWrites:
    """Pure ASGI: refuses cross-site POST, PUT, PATCH and DELETE with a 403 before any route runs."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]):
        self.app, self.allowed = app, frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            why = cross_site(Headers(scope=scope), self.allowed)
            if why:
                return await JSONResponse({"detail": why}, status.HTTP_403_FORBIDDEN)(scope, receive, send)
        await self.app(scope, receive, send)
