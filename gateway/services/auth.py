import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.enums import Role
from store.queries.keys import key_by_secret

_RANK = {Role.USER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Caller:
    """The authenticated API key, detached from any DB session."""

    key_id: int
    name: str
    role: Role
    rate_limit_per_s: float | None
    rate_limit_burst: int | None

    def has_role(self, needed: Role) -> bool:
        return _RANK[self.role] >= _RANK[needed]


class KeyCache:
    """Key lookups cached briefly: auth costs no DB round trip per request; revocation lands within ttl."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl_s: float):
        self._sessionmaker, self._ttl = sessionmaker, ttl_s
        self._cache: dict[str, tuple[float, Caller | None]] = {}

    async def lookup(self, secret: str) -> Caller | None:
        now = time.monotonic()
        hit = self._cache.get(secret)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        async with self._sessionmaker() as session:
            key = await key_by_secret(session, secret)
        caller = (
            Caller(key.id, key.name, Role(key.role), key.rate_limit_per_s, key.rate_limit_burst) if key else None
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[secret] = (now, caller)
        return caller
