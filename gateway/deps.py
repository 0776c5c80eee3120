"""Typed dependencies for routers: `SessionDep`, `CallerDep`, `ReviewerDep`, `AdminDep`."""

import math
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ApiError
from gateway.services.auth import Caller
from store.enums import Role


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key")
    caller = await request.app.state.key_cache.lookup(secret.strip())
    if caller is None:
        raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
    wait = request.app.state.rate_limiter.check(caller.key_id, caller.rate_limit_per_s, caller.rate_limit_burst)
    if wait > 0:
        retry = str(max(1, math.ceil(wait))) if math.isfinite(wait) else "60"
        raise ApiError(429, "rate limit exceeded for this key", code="rate_limit_exceeded", headers={"Retry-After": retry})
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_role(role: Role):
    async def dependency(caller: CallerDep) -> Caller:
        if not caller.has_role(role):
            raise ApiError(403, f"this endpoint needs the {role.value} role", code="insufficient_role")
        return caller

    return dependency


ReviewerDep = Annotated[Caller, Depends(require_role(Role.REVIEWER))]
AdminDep = Annotated[Caller, Depends(require_role(Role.ADMIN))]
