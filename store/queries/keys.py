import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.enums import Role
from store.models import ApiKey

KEY_PREFIX = "fw-"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(
    session: AsyncSession,
    name: str,
    role: Role | str = Role.USER,
    *,
    rate_limit_per_s: float | None = None,
    rate_limit_burst: int | None = None,
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; the plain secret is returned once and never stored."""
    secret = secret or new_secret()
    key = ApiKey(
        name=name,
        role=Role(role).value,
        key_hash=hash_key(secret),
        prefix=secret[:10],
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def key_by_secret(session: AsyncSession, secret: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))
    )
