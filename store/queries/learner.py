"""Learner bookkeeping: the training lease and training runs. Callers own the transaction."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import utcnow
from store.models import LearnerLease, TrainingRun, TrainingRunStatus
from store.queries.upsert import dialect_insert

DEFAULT_LEASE = "learner"
FINISHED = (TrainingRunStatus.SUCCEEDED, TrainingRunStatus.FAILED, TrainingRunStatus.REJECTED, TrainingRunStatus.SKIPPED)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; watermarks are always UTC, so say so (comparisons need it)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# --- lease -------------------------------------------------------------------------------------


async def acquire_lease(
    session: AsyncSession, holder: str, ttl_s: float, name: str = DEFAULT_LEASE, now: datetime | None = None
) -> bool:
    """Take (or renew) the lease in one atomic statement; True when `holder` now holds it.

    INSERT .. ON CONFLICT DO UPDATE .. WHERE (expired or already mine) RETURNING: the database decides,
    so two processes racing for an expired lease cannot both win, on SQLite and on PostgreSQL alike.
    """
    now = now or utcnow()
    insert = dialect_insert(session)
    stmt = insert(LearnerLease).values(name=name, holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl_s))
    stmt = stmt.on_conflict_do_update(
        index_elements=[LearnerLease.name],
        set_={"holder": stmt.excluded.holder, "acquired_at": stmt.excluded.acquired_at, "expires_at": stmt.excluded.expires_at},
        where=(LearnerLease.expires_at <= now) | (LearnerLease.holder == holder),
    ).returning(LearnerLease.holder)
    return (await session.execute(stmt)).scalar_one_or_none() == holder


async def renew_lease(session: AsyncSession, holder: str, ttl_s: float, name: str = DEFAULT_LEASE) -> bool:
    """Push the expiry forward; False when the lease was lost (expired and taken by someone else)."""
    result = await session.execute(
        update(LearnerLease)
        .where(LearnerLease.name == name, LearnerLease.holder == holder)
        .values(expires_at=utcnow() + timedelta(seconds=ttl_s))
    )
    return result.rowcount == 1


async def release_lease(session: AsyncSession, holder: str, name: str = DEFAULT_LEASE) -> None:
    await session.execute(
        update(LearnerLease).where(LearnerLease.name == name, LearnerLease.holder == holder).values(expires_at=utcnow())
    )


async def lease(session: AsyncSession, name: str = DEFAULT_LEASE) -> LearnerLease | None:
    return await session.get(LearnerLease, name, populate_existing=True)


# --- training runs -----------------------------------------------------------------------------


async def start_run(session: AsyncSession, *, holder: str | None = None, seed: int | None = None, **fields) -> TrainingRun:
    run = TrainingRun(status=TrainingRunStatus.RUNNING.value, holder=holder, seed=seed, started_at=utcnow(), **fields)
    session.add(run)
    await session.flush()
    return run


async def finish_run(session: AsyncSession, run: TrainingRun, status: TrainingRunStatus | str, **fields) -> TrainingRun:
    run.status = TrainingRunStatus(status).value
    run.finished_at = utcnow()
    for key, value in fields.items():
        setattr(run, key, value)
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id, populate_existing=True)


async def recent_runs(session: AsyncSession, limit: int = 20) -> list[TrainingRun]:
    return list(await session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


async def last_trained_watermark(session: AsyncSession) -> datetime | None:
    """Where the next cycle's data starts: data is consumed only by a run whose candidate passed the gates."""
    return _aware(await session.scalar(
        select(TrainingRun.watermark_to)
        .where(TrainingRun.status == TrainingRunStatus.SUCCEEDED, TrainingRun.watermark_to.is_not(None))
        .order_by(TrainingRun.watermark_to.desc())
        .limit(1)
    ))


async def last_seen_watermark(session: AsyncSession) -> datetime | None:
    """The newest data any finished run looked at: the scheduler's early trigger counts from here, so a
    rejected or failed cycle is not retried every poll until genuinely new feedback arrives."""
    return _aware(await session.scalar(
        select(TrainingRun.watermark_to)
        .where(TrainingRun.status.in_([s.value for s in FINISHED]), TrainingRun.watermark_to.is_not(None))
        .order_by(TrainingRun.watermark_to.desc())
        .limit(1)
    ))


async def fail_abandoned_runs(session: AsyncSession, reason: str = "abandoned: the learner stopped mid-run") -> int:
    """Runs still `running` when a new lease holder starts were killed; mark them failed. Call with the lease held."""
    result = await session.execute(
        update(TrainingRun)
        .where(TrainingRun.status == TrainingRunStatus.RUNNING)
        .values(status=TrainingRunStatus.FAILED.value, finished_at=utcnow(), error=reason)
    )
    return result.rowcount
