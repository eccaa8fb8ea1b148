"""The token check: with `ZOOLAB_TOKEN` set, requests that change state or spend compute
need `Authorization: Bearer <token>`. Reads stay open (README, Security)."""

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.settings import get_settings

_bearer = HTTPBearer(auto_error=False, description="Needed for POST and DELETE when the server has a token")


def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    token = get_settings().token
    if not token:
        return
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required "
                            "(Authorization: Bearer <ZOOLAB_TOKEN>)", headers={"WWW-Authenticate": "Bearer"})


Authorized = Depends(require_token)
