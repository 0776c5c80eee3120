"""Only one learner trains at a time: the lease, on SQLite and PostgreSQL."""

import asyncio
from datetime import timedelta

from learner.pipeline import LEASE_BUSY, run_cycle
from learner.settings import LearnerSettings
from store.base import utcnow
from store.queries import learner as learner_q


async def acquire(sessionmaker, holder, ttl=60, now=None):
    async with sessionmaker() as session:
        ok = await learner_q.acquire_lease(session, holder, ttl, now=now)
        await session.commit()
        return ok


async def test_lease_is_exclusive_until_released_or_expired(sessionmaker):
    assert await acquire(sessionmaker, "a")
    assert not await acquire(sessionmaker, "b")
    assert await acquire(sessionmaker, "a")  # re-entrant renewal by the holder
    async with sessionmaker() as session:
        assert await learner_q.renew_lease(session, "a", 60)
        assert not await learner_q.renew_lease(session, "b", 60)
        await session.commit()
    # After expiry anyone may take it; the old holder then cannot renew.
    assert await acquire(sessionmaker, "b", now=utcnow() + timedelta(seconds=120))
    async with sessionmaker() as session:
        assert not await learner_q.renew_lease(session, "a", 60)
        await learner_q.release_lease(session, "b")
        await session.commit()
    assert await acquire(sessionmaker, "c")
    async with sessionmaker() as session:
        assert (await learner_q.lease(session)).holder == "c"


async def test_concurrent_acquires_have_exactly_one_winner(sessionmaker):
    results = await asyncio.gather(*(acquire(sessionmaker, f"learner-{i}") for i in range(6)))
    assert sum(results) == 1


class EmptySnapshot:
    preference, unpaired, prompts, report, new_items = [], [], [], {}, 0

    def __init__(self, until):
        self.watermark_until = until


async def test_two_learners_contend_one_trains_the_other_skips(sessionmaker, tiny_model_dir, tmp_path, caplog):
    started = asyncio.Event()

    async def slow_snapshot(session, since, until):
        started.set()
        await asyncio.sleep(0.5)  # hold the lease while the second learner tries
        return EmptySnapshot(until)

    settings = LearnerSettings(_env_file=None, base_model=tiny_model_dir, artifacts_dir=tmp_path / "artifacts")
    first = asyncio.create_task(run_cycle(sessionmaker, settings, holder="learner-1", snapshot_fn=slow_snapshot))
    await started.wait()
    with caplog.at_level("INFO", logger="learner.pipeline"):
        second = await run_cycle(sessionmaker, settings, holder="learner-2", snapshot_fn=slow_snapshot)
    assert second.status == LEASE_BUSY
    assert "acquired=false holder=learner-2 held_by=learner-1" in caplog.text
    assert (await first).status == "skipped"
    # The lease was released: the next cycle can start at once.
    assert (await run_cycle(sessionmaker, settings, holder="learner-2", snapshot_fn=slow_snapshot)).status == "skipped"
