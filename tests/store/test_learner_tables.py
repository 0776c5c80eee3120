"""training_runs and learner_leases: migration 0003 and the queries, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from store.base import utcnow
from store.models import TrainingRunStatus
from store.queries import learner as learner_q


async def test_migration_creates_the_learner_tables(engine):
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        indexes = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes("training_runs")})
    assert {"training_runs", "learner_leases"} <= tables
    assert {"ix_training_runs_status", "ix_training_runs_started_at", "ix_training_runs_policy_version_id"} <= indexes


async def test_run_lifecycle_and_watermarks(sessionmaker):
    t0 = utcnow().replace(microsecond=0)
    async with sessionmaker() as session:
        assert await learner_q.last_trained_watermark(session) is None
        ok = await learner_q.start_run(session, holder="h", seed=7)
        await learner_q.finish_run(session, ok, TrainingRunStatus.SUCCEEDED, watermark_to=t0, algorithm="dpo",
                                   metrics={"kl": 0.1, "nested": {"a": [1, 2]}}, counts={"preference": 3})
        rejected = await learner_q.start_run(session, holder="h")
        await learner_q.finish_run(session, rejected, TrainingRunStatus.REJECTED, watermark_to=t0 + timedelta(hours=1))
        await session.commit()

    async with sessionmaker() as session:
        # Data is consumed only by a passing run; the early trigger counts from the newest data seen.
        assert (await learner_q.last_trained_watermark(session)) == t0
        assert (await learner_q.last_seen_watermark(session)) == t0 + timedelta(hours=1)
        row = await learner_q.get_run(session, ok.id)
        assert row.status == "succeeded" and row.seed == 7 and row.finished_at is not None
        assert row.metrics == {"kl": 0.1, "nested": {"a": [1, 2]}} and row.counts == {"preference": 3}
        assert [r.id for r in await learner_q.recent_runs(session)] == [rejected.id, ok.id]


async def test_abandoned_running_runs_are_failed(sessionmaker):
    async with sessionmaker() as session:
        run = await learner_q.start_run(session, holder="killed")
        await session.commit()
    async with sessionmaker() as session:
        assert await learner_q.fail_abandoned_runs(session) == 1
        await session.commit()
        row = await learner_q.get_run(session, run.id)
        assert row.status == "failed" and "abandoned" in row.error


async def test_status_is_checked_by_the_database(sessionmaker):
    async with sessionmaker() as session:
        with pytest.raises(IntegrityError):
            await session.execute(text("INSERT INTO training_runs (status, started_at, counts, metrics) "
                                       "VALUES ('bogus', CURRENT_TIMESTAMP, '{}', '{}')"))
