"""Feedback rows in a real migrated database → `python -m learner export` → TRL trains on the files."""

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from learner.__main__ import main as learner_main
from learner.data.snapshot import build_snapshot, count_new_feedback
from store.engine import create_engine, create_sessionmaker
from store.migrate import upgrade
from store.models import Comparison, ComparisonVote, Completion, CompletionChoice, Feedback, Ranking
from store.queries.keys import create_key
from store.queries.policies import register

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEATHER = [{"role": "user", "content": "What is the weather like today?"}]
GREETING = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello! How can I help?"}]

# What the seed below must come out as (see the comments there).
EXPECTED = {"preference": 5, "unpaired": 9, "prompt": 2}


def _completion(key_id, policy_id, cid, messages, texts, at) -> list:
    completion = Completion(id=cid, api_key_id=key_id, policy_version_id=policy_id, messages=messages, created_at=at)
    choices = [CompletionChoice(completion_id=cid, index=i, text=text) for i, text in enumerate(texts)]
    return [completion, *choices]


async def seed(url: str) -> None:
    """Two users, one policy, and one of every kind of judgement, all at known times."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            alice, _ = await create_key(session, "alice")
            bob, _ = await create_key(session, "bob")
            policy = await register(session, name="base", kind="base", artifact_path="/m", sha256=None)
            rows = []
            # A ranking of three choices → 3 pairs; unpaired: best True, worst False.
            rows += _completion(alice.id, policy.id, "cmpl-rank", WEATHER, ["It is sunny.", "Rain.", "No idea."], T0)
            # Thumbs down with a correction → 1 pair (correction ≻ original); unpaired: original False,
            # correction True.
            rows += _completion(alice.id, policy.id, "cmpl-fix", GREETING, ["Hi."], T0)
            # Thumbs up → unpaired True.
            rows += _completion(bob.id, policy.id, "cmpl-up", WEATHER, ["Warm and windy."], T0)
            # Comparisons: both users vote "a" (merged into 1 pair, winner True, loser False), a tie
            # (nothing), and both_bad (no pair, 2 negatives).
            for name, a_text, b_text in [("c1", "Cold.", "Sunny and warm."), ("c2", "Cloudy.", "Windy."),
                                         ("c3", "Bad.", "Worse.")]:
                rows += _completion(alice.id, policy.id, f"cmpl-{name}a", WEATHER, [a_text], T0)
                rows += _completion(alice.id, policy.id, f"cmpl-{name}b", WEATHER, [b_text], T0)
            session.add_all(rows)
            await session.flush()
            session.add_all(
                [
                    Comparison(id=name, api_key_id=alice.id, messages=WEATHER, completion_a_id=f"cmpl-{name}a",
                               completion_b_id=f"cmpl-{name}b", created_at=T0)
                    for name in ("c1", "c2", "c3")
                ]
            )
            await session.flush()
            at = T0 + timedelta(minutes=5)
            stamps = {"created_at": at, "updated_at": at}
            session.add_all(
                [
                    Ranking(api_key_id=alice.id, completion_id="cmpl-rank", order=[0, 1, 2], **stamps),
                    Feedback(api_key_id=alice.id, completion_id="cmpl-fix", choice_index=0, rating="down",
                             reasons=["too short"], correction="Hello! Nice to meet you.", **stamps),
                    Feedback(api_key_id=bob.id, completion_id="cmpl-up", choice_index=0, rating="up",
                             **stamps),
                    ComparisonVote(comparison_id="c1", api_key_id=alice.id, winner="a", **stamps),
                    ComparisonVote(comparison_id="c1", api_key_id=bob.id, winner="a", **stamps),
                    ComparisonVote(comparison_id="c2", api_key_id=alice.id, winner="tie", **stamps),
                    ComparisonVote(comparison_id="c3", api_key_id=alice.id, winner="both_bad", **stamps),
                    # Judged long before the window used below: only a `since=None` snapshot sees it.
                    Feedback(api_key_id=bob.id, completion_id="cmpl-c1a", choice_index=0, rating="down",
                             created_at=T0 - timedelta(days=30), updated_at=T0 - timedelta(days=30)),
                ]
            )
    finally:
        await engine.dispose()


def export(monkeypatch, capsys, url: str, kind: str, out: Path, *extra: str) -> tuple[int, list[dict], dict]:
    monkeypatch.setenv("DATABASE_URL", url)
    # Explicit cleaning settings, whatever the developer's environment says.
    monkeypatch.setenv("FEEDBACK_CLEAN_EXCLUDED_USERS", "")
    monkeypatch.setenv("FEEDBACK_CLEAN_CONFLICTS", "majority")
    capsys.readouterr()
    rc = learner_main(["export", "--kind", kind, "--out", str(out), *extra])
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert captured.out.strip().splitlines()[-1] == str(len(rows))
    start = captured.err.index("{\n")  # the report: the first JSON object on stderr
    report, _ = json.JSONDecoder().raw_decode(captured.err[start:])
    return rc, rows, report


WINDOW = ["--since", (T0 - timedelta(days=1)).isoformat(), "--until", (T0 + timedelta(hours=1)).isoformat()]


async def test_export_every_kind(db_url, tmp_path, monkeypatch, capsys):
    await seed(db_url)
    results = {}
    for kind in ("preference", "unpaired", "prompt"):
        out = tmp_path / f"{kind}.jsonl"
        rc, rows, report = await asyncio.to_thread(export, monkeypatch, capsys, db_url, kind, out, *WINDOW)
        assert rc == 0
        results[kind] = rows
    assert {kind: len(rows) for kind, rows in results.items()} == EXPECTED

    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in results["preference"]}
    assert pairs == {
        ("It is sunny.", "Rain."), ("It is sunny.", "No idea."), ("Rain.", "No idea."),
        ("Hello! Nice to meet you.", "Hi."),
        ("Cold.", "Sunny and warm."),
    }
    assert all(r["prompt"] in (WEATHER, GREETING) for r in results["preference"])
    labels = sorted((r["completion"][0]["content"], r["label"]) for r in results["unpaired"])
    assert labels == sorted([
        ("It is sunny.", True), ("No idea.", False), ("Hi.", False), ("Hello! Nice to meet you.", True),
        ("Warm and windy.", True), ("Cold.", True), ("Sunny and warm.", False), ("Bad.", False), ("Worse.", False),
    ])
    assert {json.dumps(r["prompt"]) for r in results["prompt"]} == {json.dumps(WEATHER), json.dumps(GREETING)}

    # The report: two agreeing voters on c1, one tie and one both_bad without a pair.
    assert report["agreement"]["rate"] == 1.0
    assert report["no_pair_why"] == {"thumb": 2, "tie": 1, "both_bad": 1}
    assert report["input"] == report["kept"] + report["dropped"]


async def test_watermark_and_count(db_url):
    await seed(db_url)
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session:
            everything = await build_snapshot(session, None, T0 + timedelta(hours=1))
            window = await build_snapshot(session, T0 - timedelta(days=1), T0 + timedelta(hours=1))
            later = await build_snapshot(session, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
            assert everything.new_items == window.new_items + 1 == 8
            assert len(everything.unpaired) == len(window.unpaired) + 1
            assert later.new_items == 0 and later.preference == later.unpaired == later.prompts == []
            assert window.watermark_until == T0 + timedelta(hours=1)
            # The edge: `until` is inclusive, `since` exclusive.
            at = T0 + timedelta(minutes=5)
            assert (await build_snapshot(session, None, at)).new_items == 8
            assert (await build_snapshot(session, at, T0 + timedelta(hours=1))).new_items == 0
            assert await count_new_feedback(session, None) == 8
            assert await count_new_feedback(session, T0 - timedelta(days=1)) == 7
            assert await count_new_feedback(session, at) == 0
    finally:
        await engine.dispose()


def test_learner_data_never_imports_the_gateway():
    code = (
        "import sys, learner.data.export, learner.data.snapshot, learner.data.cleaning; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'gateway')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_export_refuses_an_unmigrated_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    assert learner_main(["export", "--kind", "prompt", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "migrate" in capsys.readouterr().err


@pytest.mark.slow
async def test_trl_trains_one_step_on_each_export(tmp_path, monkeypatch, capsys, tiny_model_dir):
    """The files are what TRL expects: one real step of DPO, KTO and reward modelling (SQLite only:
    the file format does not depend on the backend)."""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

    url = f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
    upgrade(url)
    await seed(url)
    files = {}
    for kind in ("preference", "unpaired"):
        files[kind] = tmp_path / f"{kind}.jsonl"
        rc, _, _ = await asyncio.to_thread(export, monkeypatch, capsys, url, kind, files[kind], *WINDOW)
        assert rc == 0

    def dataset(kind):
        return load_dataset("json", data_files=str(files[kind]), split="train", cache_dir=str(tmp_path / "hf"))

    common = dict(use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=2, max_length=64,
                  report_to=[], save_strategy="no")
    model = str(tiny_model_dir)
    runs = [
        (DPOTrainer, DPOConfig, "preference"),
        (KTOTrainer, KTOConfig, "unpaired"),
        (RewardTrainer, RewardConfig, "preference"),
    ]

    def train_all():
        for trainer_cls, config_cls, kind in runs:
            trainer = trainer_cls(
                model=model,
                args=config_cls(output_dir=str(tmp_path / trainer_cls.__name__), **common),
                train_dataset=dataset(kind),
                processing_class=AutoTokenizer.from_pretrained(model),
            )
            result = trainer.train()
            assert trainer.state.global_step == 1, trainer_cls.__name__
            assert result.training_loss == result.training_loss  # not NaN

    await asyncio.to_thread(train_all)
