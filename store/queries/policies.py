from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import utcnow
from store.enums import PolicyKind, PolicyStatus
from store.models import PolicyVersion

LIVE_STATUSES = (PolicyStatus.CHAMPION, PolicyStatus.CANARY)


async def champion(session: AsyncSession) -> PolicyVersion | None:
    return await session.scalar(
        select(PolicyVersion)
        .where(PolicyVersion.status == PolicyStatus.CHAMPION)
        .order_by(PolicyVersion.promoted_at.desc().nulls_last(), PolicyVersion.id.desc())
        .limit(1)
    )


async def by_status(session: AsyncSession, *statuses: str) -> list[PolicyVersion]:
    rows = await session.scalars(
        select(PolicyVersion).where(PolicyVersion.status.in_(statuses)).order_by(PolicyVersion.id)
    )
    return list(rows)


async def by_name(session: AsyncSession, name: str) -> PolicyVersion | None:
    return await session.scalar(select(PolicyVersion).where(PolicyVersion.name == name))


async def all_versions(session: AsyncSession) -> list[PolicyVersion]:
    return list(await session.scalars(select(PolicyVersion).order_by(PolicyVersion.id)))


async def register(
    session: AsyncSession,
    *,
    name: str,
    kind: PolicyKind | str,
    artifact_path: str,
    sha256: str | None,
    status: PolicyStatus | str = PolicyStatus.CANDIDATE,
    **fields,
) -> PolicyVersion:
    version = PolicyVersion(
        name=name,
        kind=PolicyKind(kind).value,
        artifact_path=artifact_path,
        sha256=sha256,
        status=PolicyStatus(status).value,
        **fields,
    )
    if version.status == PolicyStatus.CHAMPION:
        version.promoted_at = utcnow()
    session.add(version)
    await session.flush()
    return version


async def set_status(
    session: AsyncSession, version: PolicyVersion, status: PolicyStatus | str, reason: str | None = None
) -> PolicyVersion:
    status = PolicyStatus(status)
    version.status = status.value
    if reason is not None:
        version.status_reason = reason
    if status == PolicyStatus.CHAMPION:
        version.promoted_at = utcnow()
    elif status in (PolicyStatus.RETIRED, PolicyStatus.REJECTED):
        version.retired_at = utcnow()
    await session.flush()
    return version
