"""`python -m learner run`: a cycle every LEARNER_INTERVAL seconds, and earlier when enough new feedback
arrived (checked cheaply every LEARNER_POLL_INTERVAL seconds). One cycle at a time per process; the DB lease
keeps it to one across processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from learner.pipeline import configure_logging, run_cycle, settings_from_args
from learner.settings import LearnerSettings
from store.queries import learner as learner_q

log = logging.getLogger("learner.scheduler")


async def count_new_feedback(session: AsyncSession, since: datetime | None) -> int:
    """New feedback items after `since`: the one place the scheduler asks learner/data for a count."""
    from learner.data import snapshot as data_snapshot

    if hasattr(data_snapshot, "count_new_feedback"):
        return await data_snapshot.count_new_feedback(session, since)
    from store.base import utcnow

    return (await data_snapshot.build_snapshot(session, since, utcnow())).new_items


class LearnerScheduler:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: LearnerSettings, *,
                 count_fn=count_new_feedback, cycle_fn=run_cycle):
        self.sessionmaker, self.settings = sessionmaker, settings
        self.count_fn, self.cycle_fn = count_fn, cycle_fn
        self._lock = asyncio.Lock()  # the scheduled job and the early trigger never overlap
        self.cycles = 0

    async def cycle(self, reason: str) -> None:
        if self._lock.locked():
            log.info("stage=schedule trigger=%s skipped=cycle_in_progress", reason)
            return
        async with self._lock:
            log.info("stage=schedule trigger=%s", reason)
            try:
                outcome = await self.cycle_fn(self.sessionmaker, self.settings)
                log.info("stage=schedule done status=%s run_id=%s", outcome.status, outcome.run_id)
            except Exception:  # run_cycle records its own failures; this guards the loop against anything else
                log.exception("stage=schedule error")
            self.cycles += 1

    async def poll(self) -> None:
        if self._lock.locked():
            return
        try:
            async with self.sessionmaker() as session:
                since = await learner_q.last_seen_watermark(session)
                new = await self.count_fn(session, since)
        except Exception:
            log.exception("stage=poll error")
            return
        if new >= self.settings.min_new_feedback:
            log.info("stage=poll new_items=%d threshold=%d", new, self.settings.min_new_feedback)
            await self.cycle("new_feedback")

    def build(self):
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(timezone="UTC")
        common = dict(max_instances=1, coalesce=True, misfire_grace_time=None)
        scheduler.add_job(self.cycle, "interval", args=["interval"], seconds=self.settings.interval,
                          id="learner-cycle", **common)
        scheduler.add_job(self.poll, "interval", seconds=self.settings.poll_interval, id="learner-poll", **common)
        return scheduler


async def serve(settings: LearnerSettings, stop: asyncio.Event | None = None) -> None:
    from store.config import database_url
    from store.engine import create_engine, create_sessionmaker
    from store.migrate import ensure_migrated

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform without signals
            pass
    engine = create_engine(database_url())
    await ensure_migrated(engine)
    learner = LearnerScheduler(create_sessionmaker(engine), settings)
    scheduler = learner.build()
    scheduler.start()
    log.info("stage=scheduler started interval=%ds poll=%ds min_new_feedback=%d", settings.interval,
             settings.poll_interval, settings.min_new_feedback)
    try:
        await stop.wait()
    finally:
        log.info("stage=scheduler stopping")
        scheduler.shutdown(wait=False)
        # Training runs in a worker thread that cannot be interrupted: let the cycle finish so its run row and
        # lease are settled. A second signal exits at once; the next start marks that run failed and cleans up.
        if learner._lock.locked():
            log.info("stage=scheduler waiting_for=cycle (signal again to exit now)")
        async with learner._lock:
            pass
        await engine.dispose()
        log.info("stage=scheduler stopped")


def run_command(args) -> int:
    configure_logging()
    asyncio.run(serve(settings_from_args(args)))
    return 0
