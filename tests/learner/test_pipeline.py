"""Whole learner cycles on the tiny model against a real (SQLite) database, with synthetic feedback."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from learner import artifacts
from learner.pipeline import run_cycle
from learner.settings import LearnerSettings
from store.artifact_hash import MANIFEST, directory_sha256
from store.base import utcnow
from store.engine import create_engine, create_sessionmaker
from store.enums import PolicyStatus
from store.migrate import upgrade
from store.models import PolicyVersion, TrainingRunStatus
from store.queries import learner as learner_q
from store.queries import policies as policies_q

pytestmark = pytest.mark.slow


@dataclass
class Snapshot:
    preference: list
    unpaired: list
    prompts: list
    watermark_until: datetime
    new_items: int
    report: dict = field(default_factory=dict)


class FeedbackLog:
    """Stands in for learner.data: timestamped rows, and a snapshot of the window (since, until]."""

    def __init__(self):
        self.rows: list[tuple[datetime, str, dict]] = []
        self.calls: list[tuple[datetime | None, datetime]] = []

    def add(self, kind: str, rows: list[dict]) -> None:
        now = utcnow()
        self.rows += [(now, kind, row) for row in rows]

    async def snapshot(self, session, since, until) -> Snapshot:
        self.calls.append((since, until))
        window = [(kind, row) for ts, kind, row in self.rows if (since is None or ts > since) and ts <= until]
        pick = lambda k: [row for kind, row in window if kind == k]  # noqa: E731
        return Snapshot(pick("preference"), pick("unpaired"), pick("prompt"), until, len(window))


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


def pairs(tag, n=6):
    return [{"prompt": user(f"{tag} question {i}"), "chosen": assistant("A short answer."),
             "rejected": assistant("The weather is rainy and windy.")} for i in range(n)]


def thumbs(tag, n=6):
    return [{"prompt": user(f"{tag} thumbs {i}"), "completion": assistant("Thanks for asking."), "label": bool(i % 2)}
            for i in range(n)]


def prompts(tag, n=4):
    return [{"prompt": user(f"{tag} hello {i}")} for i in range(n)]


@pytest.fixture
async def db(tmp_path, tiny_model_dir):
    """A migrated SQLite database whose champion is the tiny base model."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
    upgrade(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        await policies_q.register(session, name="base", kind="base", artifact_path=str(tiny_model_dir),
                                  sha256=directory_sha256(tiny_model_dir), status=PolicyStatus.CHAMPION)
        await session.commit()
    yield sessionmaker
    await engine.dispose()


def settings(tmp_path, **overrides) -> LearnerSettings:
    values = dict(batch_size=2, max_steps=2, rm_max_steps=2, max_length=64, max_new_tokens=8, ppo_episodes=4,
                  min_train_examples=4, gate_eval_prompts=2, gate_max_new_tokens=8, artifacts_dir=tmp_path / "artifacts",
                  use_cpu=True, bf16=False, watermark_lag_s=0,
                  # Random tiny models: the tests choose the verdict; the gates themselves are tested elsewhere.
                  gate_rm_accuracy_min=0.0, gate_kl_max=1e9, gate_length_ratio_max=1e9, gate_reward_margin=-1e9)
    return LearnerSettings(_env_file=None, **{**values, **overrides})


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) if directory.exists() else []


async def test_two_cycles_register_candidates_and_read_only_new_data(db, tmp_path, tiny_model_dir):
    log = FeedbackLog()
    log.add("preference", pairs("first"))
    log.add("prompt", prompts("first"))
    cfg = settings(tmp_path)

    first = await run_cycle(db, cfg, snapshot_fn=log.snapshot)
    assert first.status == "succeeded", first.reasons
    assert first.algorithm == "dpo"  # pairs available → DPO
    async with db() as session:
        version = await session.get(PolicyVersion, first.policy_version_id)
        run = await learner_q.get_run(session, first.run_id)
        champion = await policies_q.by_name(session, "base")
    assert version.status == "candidate" and version.kind == "lora" and version.parent_id == champion.id
    assert version.training_run_id == run.id and version.algorithm == "dpo"
    assert version.sha256 == directory_sha256(version.artifact_path)  # what the gateway re-checks
    assert Path(version.base_model) == Path(tiny_model_dir).resolve()
    assert "rm_heldout_accuracy" in version.metrics["reward_model"] and "kl_seq" in version.metrics
    assert version.metrics["watermark"]["to"] is not None
    manifest = json.loads((Path(version.artifact_path) / MANIFEST).read_text())
    assert manifest["algorithm"] == "dpo" and manifest["sha256"] == version.sha256 and manifest["seed"] == cfg.seed
    assert run.status == "succeeded" and run.policy_version_id == version.id and run.counts["preference"] == 6
    assert visible(cfg.artifacts_dir) == [version.name] and not list(cfg.artifacts_dir.glob(".*"))

    # The candidate is promoted; new thumbs arrive. The next cycle sees only them, continues the LoRA champion.
    async with db() as session:
        await policies_q.set_status(session, await session.get(PolicyVersion, champion.id), PolicyStatus.RETIRED)
        await policies_q.set_status(session, await session.get(PolicyVersion, version.id), PolicyStatus.CHAMPION)
        await session.commit()
    log.add("unpaired", thumbs("second"))
    second = await run_cycle(db, cfg, snapshot_fn=log.snapshot)
    assert second.status == "succeeded", second.reasons
    assert second.algorithm == "kto"  # thumbs only → KTO
    assert log.calls[1][0] == run.watermark_to.replace(tzinfo=log.calls[1][0].tzinfo)
    async with db() as session:
        run2 = await learner_q.get_run(session, second.run_id)
        version2 = await session.get(PolicyVersion, second.policy_version_id)
    assert run2.counts == {**run2.counts, "preference": 0, "unpaired": 6, "prompts": 0}
    assert version2.parent_id == version.id and version2.kind == "lora"
    assert Path(version2.base_model) == Path(tiny_model_dir).resolve()


async def test_gate_failure_registers_rejected_and_does_not_consume_data(db, tmp_path):
    log = FeedbackLog()
    log.add("unpaired", thumbs("x"))
    outcome = await run_cycle(db, settings(tmp_path, gate_kl_max=-1.0), snapshot_fn=log.snapshot)
    assert outcome.status == "rejected"
    async with db() as session:
        version = await session.get(PolicyVersion, outcome.policy_version_id)
        assert version.status == "rejected" and "KL" in version.status_reason
        assert (await learner_q.get_run(session, outcome.run_id)).status == "rejected"
        assert await learner_q.last_trained_watermark(session) is None  # retried with the next data


async def test_killed_run_leaves_nothing_visible_and_the_next_run_starts_clean(db, tmp_path, monkeypatch):
    log = FeedbackLog()
    log.add("unpaired", thumbs("x"))
    cfg = settings(tmp_path)

    def killed(tmp, dest):
        raise RuntimeError("killed between temp write and rename")

    monkeypatch.setattr(artifacts, "_rename", killed)
    outcome = await run_cycle(db, cfg, snapshot_fn=log.snapshot)
    assert outcome.status == "failed"
    async with db() as session:
        run = await learner_q.get_run(session, outcome.run_id)
        assert "killed between" in run.error
        assert [v.name for v in await policies_q.all_versions(session)] == ["base"]
    assert visible(cfg.artifacts_dir) == [] and not list(cfg.artifacts_dir.glob(".*"))

    # A SIGKILL leaves a `running` row and hidden dirs; the next holder fails the row and removes the dirs.
    monkeypatch.undo()
    (cfg.artifacts_dir / ".tmp-kto-run9.xyz").mkdir(parents=True)
    (cfg.artifacts_dir / ".work-run9").mkdir()
    async with db() as session:
        ghost = await learner_q.start_run(session, holder="dead-learner")
        await session.commit()
    outcome = await run_cycle(db, cfg, snapshot_fn=log.snapshot)
    assert outcome.status == "succeeded", outcome.reasons
    async with db() as session:
        assert (await learner_q.get_run(session, ghost.id)).status == TrainingRunStatus.FAILED
    assert not list(cfg.artifacts_dir.glob(".*")) and len(visible(cfg.artifacts_dir)) == 1


async def test_not_enough_data_skips_without_consuming_it(db, tmp_path):
    log = FeedbackLog()
    log.add("unpaired", thumbs("x", n=2))
    outcome = await run_cycle(db, settings(tmp_path), snapshot_fn=log.snapshot)
    assert outcome.status == "skipped"
    async with db() as session:
        assert await learner_q.last_trained_watermark(session) is None


async def test_ppo_cycle_when_configured(db, tmp_path):
    log = FeedbackLog()
    log.add("preference", pairs("p", n=4))
    log.add("prompt", prompts("p", n=6))
    outcome = await run_cycle(db, settings(tmp_path, algorithm="ppo"), snapshot_fn=log.snapshot)
    assert outcome.status == "succeeded", outcome.reasons
    assert outcome.algorithm == "ppo"
    assert outcome.metrics["train"]  # PPO's logged objective/* metrics


async def test_failure_is_recorded_not_raised(db, tmp_path):
    async def broken(session, since, until):
        raise ValueError("feedback export exploded")

    outcome = await run_cycle(db, settings(tmp_path), snapshot_fn=broken)
    assert outcome.status == "failed" and "exploded" in outcome.reasons[0]


async def test_scheduler_poll_triggers_a_cycle_only_past_the_threshold(db, tmp_path):
    from learner.pipeline import CycleOutcome
    from learner.scheduler import LearnerScheduler

    counts, cycles = iter([3, 10]), []

    async def count(session, since):
        return next(counts)

    async def cycle(sessionmaker, cfg):
        cycles.append(cfg)
        return CycleOutcome("skipped")

    sched = LearnerScheduler(db, settings(tmp_path, min_new_feedback=5), count_fn=count, cycle_fn=cycle)
    await sched.poll()
    assert cycles == []
    await sched.poll()
    assert len(cycles) == 1
    jobs = {job.id: job for job in sched.build().get_jobs()}
    assert jobs["learner-cycle"].max_instances == 1 and jobs["learner-cycle"].coalesce
