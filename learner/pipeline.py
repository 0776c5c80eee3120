"""One learning cycle, top to bottom:

lease → training run → data snapshot (watermarked) → reward model → algorithm → train on the champion →
gates → artifact → registry (candidate or rejected).

Every outcome is recorded in `training_runs`; an exception fails the run, never the caller (the scheduler).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from learner import artifacts
from learner.settings import LearnerSettings
from learner.train.base import PolicySource, TrainData, TrainJob
from store.base import utcnow
from store.enums import PolicyKind, PolicyStatus
from store.models import TrainingRunStatus
from store.queries import learner as learner_q
from store.queries import policies as policies_q

log = logging.getLogger("learner.pipeline")

SnapshotFn = Callable[[AsyncSession, datetime | None, datetime], Awaitable[Any]]
LEASE_BUSY = "lease_busy"


@dataclass
class CycleOutcome:
    status: str  # LEASE_BUSY or a TrainingRunStatus value
    run_id: int | None = None
    policy_version_id: int | None = None
    algorithm: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def default_snapshot(session: AsyncSession, since: datetime | None, until: datetime):
    from learner.data.snapshot import build_snapshot  # learner/data owns feedback cleaning and export

    return await build_snapshot(session, since, until)


def json_safe(value: Any) -> Any:
    """JSON columns reject NaN/inf (PostgreSQL) and datetimes: make metrics storable."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


# --- the steps ---------------------------------------------------------------------------------


def champion_source(champion, settings: LearnerSettings) -> PolicySource:
    if champion is not None:
        base = Path(champion.base_model) if champion.base_model else None
        return PolicySource(champion.kind, Path(champion.artifact_path), base)
    if settings.base_model is not None:
        return PolicySource(PolicyKind.BASE.value, Path(settings.base_model))
    raise RuntimeError("no champion policy is registered and LEARNER_BASE_MODEL is not set")


def choose_algorithm(requested: str, data: TrainData, min_examples: int) -> str | None:
    """Config wins; `auto` goes by the data: pairs → DPO, thumbs only → KTO. PPO only when asked for
    (it needs prompts and a reward model, hence pairs). None: not enough data to train anything."""
    from learner.train import ALGORITHMS

    if requested != "auto":
        enough = ALGORITHMS[requested]().usable_examples(data) >= min_examples
        if requested == "ppo":
            enough = enough and len(data.preference) >= 2
        return requested if enough else None
    if len(data.preference) >= min_examples:
        return "dpo"
    if len(data.unpaired) >= min_examples:
        return "kto"
    return None


def eval_prompts(snapshot, settings: LearnerSettings) -> tuple[list[dict], list[list[dict]], str]:
    """(training prompt rows, held-out prompts for the gates, where the held-out prompts came from)."""
    rows = list(snapshot.prompts)
    random.Random(settings.seed).shuffle(rows)
    n_held = min(settings.gate_eval_prompts, max(1, round(len(rows) * settings.holdout_fraction))) if rows else 0
    held, train = rows[:n_held], rows[n_held:] or rows  # one logged prompt: PPO still gets it
    if held:
        return train, [r["prompt"] for r in held], "held_out_prompts"
    # No logged prompts: fall back to prompts of the feedback itself (they overlap the training data).
    seen, prompts = set(), []
    for row in [*snapshot.preference, *snapshot.unpaired]:
        key = repr(row["prompt"])
        if key not in seen:
            seen.add(key)
            prompts.append(row["prompt"])
    return train, prompts[: settings.gate_eval_prompts], "feedback_prompts"


async def _keep_lease(sessionmaker, holder: str, ttl: int) -> None:
    while True:
        await asyncio.sleep(max(ttl / 3, 1))
        async with sessionmaker() as session:
            ok = await learner_q.renew_lease(session, holder, ttl)
            await session.commit()
        if not ok:
            log.warning("stage=lease lost=true holder=%s", holder)


# --- the cycle ---------------------------------------------------------------------------------


async def run_cycle(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: LearnerSettings,
    *,
    holder: str | None = None,
    snapshot_fn: SnapshotFn | None = None,
) -> CycleOutcome:
    holder = holder or default_holder()
    async with sessionmaker() as session:
        acquired = await learner_q.acquire_lease(session, holder, settings.lease_ttl)
        current = await learner_q.lease(session)
        await session.commit()
    if not acquired:
        log.info("stage=lease acquired=false holder=%s held_by=%s until=%s: another learner is training, skipping",
                 holder, current and current.holder, current and current.expires_at)
        return CycleOutcome(LEASE_BUSY)
    log.info("stage=lease acquired=true holder=%s", holder)
    heartbeat = asyncio.create_task(_keep_lease(sessionmaker, holder, settings.lease_ttl))
    try:
        return await _cycle(sessionmaker, settings, holder, snapshot_fn or default_snapshot)
    finally:
        heartbeat.cancel()
        async with sessionmaker() as session:
            await learner_q.release_lease(session, holder)
            await session.commit()


async def _cycle(sessionmaker, settings: LearnerSettings, holder: str, snapshot_fn: SnapshotFn) -> CycleOutcome:
    # A previous holder killed mid-run left a `running` row and hidden dirs: both are ours to clean now.
    async with sessionmaker() as session:
        abandoned = await learner_q.fail_abandoned_runs(session)
        run = await learner_q.start_run(session, holder=holder, seed=settings.seed)
        await session.commit()
    artifacts.clean_stale(settings.artifacts_dir)
    log.info("stage=run_started run_id=%d abandoned_runs_failed=%d", run.id, abandoned)
    work: Path | None = None
    try:
        work = artifacts.work_dir(settings.artifacts_dir, run.id)
        return await _train_and_register(sessionmaker, settings, run.id, work, snapshot_fn)
    except Exception as exc:
        log.exception("stage=failed run_id=%d error=%r", run.id, exc)
        async with sessionmaker() as session:
            row = await learner_q.get_run(session, run.id)
            error = "".join(traceback.format_exception_only(exc)).strip()
            await learner_q.finish_run(session, row, TrainingRunStatus.FAILED,
                                       error=f"{error}\n\n{traceback.format_exc()[-4000:]}")
            await session.commit()
        return CycleOutcome(TrainingRunStatus.FAILED.value, run_id=run.id, reasons=[error])
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


async def _train_and_register(sessionmaker, settings: LearnerSettings, run_id: int, work: Path,
                              snapshot_fn: SnapshotFn) -> CycleOutcome:
    from learner.evaluate import Gates, evaluate
    from learner.train import ALGORITHMS, RewardModelTrainer

    # 1. Data: everything since the last run whose candidate passed, up to now (the watermark).
    async with sessionmaker() as session:
        champion = await policies_q.champion(session)
        policy = champion_source(champion, settings)
        since = await learner_q.last_trained_watermark(session)
        # A little behind now: a gateway stamps rows just before it commits them, so a row stamped a
        # moment ago may still be in flight; it must land in this window or the next, never fall between.
        until = utcnow() - timedelta(seconds=settings.watermark_lag_s)
        snapshot = await snapshot_fn(session, since, until)
        until = snapshot.watermark_until or until
        counts = {"preference": len(snapshot.preference), "unpaired": len(snapshot.unpaired),
                  "prompts": len(snapshot.prompts), "new_items": snapshot.new_items, "report": snapshot.report}
        row = await learner_q.get_run(session, run_id)
        row.watermark_from, row.watermark_to, row.counts = since, until, json_safe(counts)
        await session.commit()
    log.info("stage=snapshot run_id=%d since=%s until=%s preference=%d unpaired=%d prompts=%d", run_id, since,
             until, counts["preference"], counts["unpaired"], counts["prompts"])

    train_prompts, held_out, held_out_source = eval_prompts(snapshot, settings)
    data = TrainData(list(snapshot.preference), list(snapshot.unpaired), train_prompts)
    algorithm = choose_algorithm(settings.algorithm, data, settings.min_train_examples)
    if algorithm is None:
        log.info("stage=skip run_id=%d reason=not_enough_data min_train_examples=%d", run_id,
                 settings.min_train_examples)
        async with sessionmaker() as session:
            await learner_q.finish_run(session, await learner_q.get_run(session, run_id), TrainingRunStatus.SKIPPED,
                                       metrics={"skipped": "not enough data"})
            await session.commit()
        return CycleOutcome(TrainingRunStatus.SKIPPED.value, run_id=run_id)

    # 2. Reward model (from preference pairs), then the policy, both starting from the champion.
    timings: dict[str, float] = {}
    rm_dir, rm_metrics = None, {}
    if len(data.preference) >= 2:
        started = time.perf_counter()
        rm = await asyncio.to_thread(RewardModelTrainer().train, TrainJob(policy, data, work / "reward", settings))
        rm_dir, rm_metrics, timings["reward_model_s"] = rm.output_dir, rm.metrics, time.perf_counter() - started
    log.info("stage=train run_id=%d algorithm=%s champion=%s", run_id, algorithm, policy.path)
    job = TrainJob(policy, data, work / algorithm, settings, reward_model_dir=rm_dir)
    started = time.perf_counter()
    result = await asyncio.to_thread(ALGORITHMS[algorithm]().train, job)
    timings["train_s"] = time.perf_counter() - started

    # 3. Gates on held-out prompts.
    base_model = policy.model_dir if result.kind == "lora" else (policy.base_model or policy.path)
    candidate = PolicySource(result.kind, result.output_dir, policy.model_dir if result.kind == "lora" else None)
    started = time.perf_counter()
    passed, reasons, gate_metrics = await asyncio.to_thread(
        evaluate, candidate, policy, held_out, reward_model_dir=rm_dir,
        rm_accuracy=rm_metrics.get("rm_heldout_accuracy"), losses=result.losses, gates=Gates.from_settings(settings),
        seed=settings.seed, champion_metrics=champion.metrics if champion else None)
    timings["gates_s"] = time.perf_counter() - started
    gate_metrics["eval_prompts_source"] = held_out_source
    metrics = json_safe({**gate_metrics, "reward_model": rm_metrics, "train": result.metrics, "timings": timings,
                         "watermark": {"from": since, "to": until}, "counts": counts, "algorithm": algorithm})

    # 4. Artifact (atomic), then the registry and the run in one transaction.
    name = f"{algorithm}-run{run_id}-{until:%Y%m%d%H%M%S}"
    published = artifacts.publish(
        result.output_dir, Path(settings.artifacts_dir) / name,
        name=name, kind=result.kind, base_model=str(base_model), parent=str(policy.path), algorithm=algorithm,
        config=json_safe(settings.model_dump(mode="json")), watermark={"from": since, "to": until},
        metrics=metrics, seed=settings.seed, training_run_id=run_id, passed=passed)
    status = PolicyStatus.CANDIDATE if passed else PolicyStatus.REJECTED
    async with sessionmaker() as session:
        version = await policies_q.register(
            session, name=name, kind=result.kind, artifact_path=str(published.path.resolve()),
            sha256=published.sha256, status=status, status_reason=None if passed else "; ".join(reasons),
            base_model=str(Path(base_model).resolve()), parent_id=champion.id if champion else None,
            algorithm=algorithm, training_run_id=run_id, metrics=metrics)
        run_status = TrainingRunStatus.SUCCEEDED if passed else TrainingRunStatus.REJECTED
        await learner_q.finish_run(session, await learner_q.get_run(session, run_id), run_status,
                                   algorithm=algorithm, policy_version_id=version.id,
                                   artifact_path=str(published.path.resolve()), metrics=metrics)
        await session.commit()
    log.info("stage=registered run_id=%d policy=%s id=%d status=%s reasons=%r", run_id, name, version.id,
             status.value, reasons)
    return CycleOutcome(run_status.value, run_id=run_id, policy_version_id=version.id, algorithm=algorithm,
                        reasons=reasons, metrics=metrics)


# --- CLI ---------------------------------------------------------------------------------------


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every poll at INFO


def settings_from_args(args) -> LearnerSettings:
    settings = LearnerSettings()
    if getattr(args, "algorithm", None):
        settings = settings.model_copy(update={"algorithm": args.algorithm})
    return settings


async def run_once(settings: LearnerSettings) -> CycleOutcome:
    from store.config import database_url
    from store.engine import create_engine, create_sessionmaker
    from store.migrate import ensure_migrated

    engine = create_engine(database_url())
    try:
        await ensure_migrated(engine)
        return await run_cycle(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()


def once_command(args) -> int:
    """`python -m learner once`: 0 when the cycle ran to a verdict (or skipped), 1 when it failed."""
    configure_logging()
    outcome = asyncio.run(run_once(settings_from_args(args)))
    print(f"status={outcome.status} run_id={outcome.run_id} policy_version_id={outcome.policy_version_id} "
          f"algorithm={outcome.algorithm} reasons={outcome.reasons}")
    return 1 if outcome.status == TrainingRunStatus.FAILED else 0
