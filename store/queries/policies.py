from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import utcnow
from store.enums import PolicyKind, PolicyStatus
from store.models import PolicyEvent, PolicyVersion

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


async def record_event(
    session: AsyncSession,
    version: PolicyVersion,
    action: str,
    to_status: PolicyStatus | str,
    *,
    reason: str = "",
    actor: str = "auto",
    evidence: dict | None = None,
) -> PolicyEvent:
    """Change a version's status and record why, in the caller's transaction."""
    event = PolicyEvent(
        policy_version_id=version.id,
        action=action,
        from_status=version.status,
        to_status=PolicyStatus(to_status).value,
        reason=reason,
        actor=actor,
        evidence=evidence or {},
    )
    session.add(event)
    await set_status(session, version, to_status, reason or None)
    return event


async def events_for(session: AsyncSession, version_ids: list[int]) -> list[PolicyEvent]:
    if not version_ids:
        return []
    rows = await session.scalars(
        select(PolicyEvent).where(PolicyEvent.policy_version_id.in_(version_ids)).order_by(PolicyEvent.id)
    )
    return list(rows)


async def previous_champion(session: AsyncSession, current: PolicyVersion) -> PolicyVersion | None:
    """The retired version that was champion most recently before `current` (the rollback target)."""
    return await session.scalar(
        select(PolicyVersion)
        .where(
            PolicyVersion.status == PolicyStatus.RETIRED,
            PolicyVersion.promoted_at.is_not(None),
            PolicyVersion.id != current.id,
        )
        .order_by(PolicyVersion.promoted_at.desc(), PolicyVersion.id.desc())
        .limit(1)
    )
