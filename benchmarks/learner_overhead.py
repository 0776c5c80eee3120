"""Learner overhead: one learner cycle's training stage vs the bare TRL trainer on the same data, same run.

    .venv/bin/python -m benchmarks.learner_overhead [--model DIR] [--pairs 64] [--steps 8] [--repeats 2]

Both sides train DPO with the same LoRA, batch size, steps and max_length on the same exported JSONL
(synthetic preference pairs), starting from the same model. "Learner" is the `train_s` timing a real
`run_cycle` records (load the champion, build the trainer, train, save the servable adapter) on a temp SQLite
DB; "bare" is AutoModelForCausalLM + DPOTrainer(peft_config=...) + train + save_model, timed the same way.
The reward model and the gates are extra stages of the cycle, reported but not part of the ratio.
Goal: ratio <= 1.1. Defaults to the tiny test model; pass --model for the demo SmolLM2.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from learner.demo_model import ensure_demo_model
from learner.pipeline import run_cycle
from learner.settings import LearnerSettings
from store.artifact_hash import directory_sha256
from store.engine import create_engine, create_sessionmaker
from store.enums import PolicyStatus
from store.migrate import upgrade
from store.queries import policies

TINY = Path(__file__).resolve().parents[1] / "build" / "test-models" / "tiny"


@dataclass
class JsonlSnapshot:
    preference: list
    watermark_until: datetime
    unpaired: list = field(default_factory=list)
    prompts: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    new_items: int = 0


def export_pairs(path: Path, n: int) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"Question {i}: how is the weather?"}],
             "chosen": [{"role": "assistant", "content": "Sunny and warm."}],
             "rejected": [{"role": "assistant", "content": "The weather is rainy, cold and windy depending on the day."}]}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def bare_trl(model_dir: Path, data: Path, out: Path, s: LearnerSettings) -> float:
    started = time.perf_counter()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = DPOConfig(output_dir=str(out), max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
                     learning_rate=s.learning_rate, seed=s.seed, use_cpu=s.resolved_use_cpu(), bf16=s.resolved_bf16(),
                     report_to="none", logging_steps=1, save_strategy="no", beta=s.beta, max_length=s.max_length)
    peft = LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules=list(s.lora_target_modules), task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, peft_config=peft,
                         train_dataset=Dataset.from_list(load_jsonl(data)))
    trainer.train()
    trainer.save_model(str(out / "final"))
    return time.perf_counter() - started


async def learner_cycle(model_dir: Path, data: Path, workdir: Path, s: LearnerSettings) -> dict:
    url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
    upgrade(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        await policies.register(session, name="base", kind="base", artifact_path=str(model_dir),
                                sha256=directory_sha256(model_dir), status=PolicyStatus.CHAMPION)
        await session.commit()

    async def snapshot(session, since, until):
        return JsonlSnapshot(load_jsonl(data), until)

    try:
        outcome = await run_cycle(sessionmaker, s, snapshot_fn=snapshot)
    finally:
        await engine.dispose()
    if "timings" not in outcome.metrics:
        raise RuntimeError(f"cycle did not train: {outcome}")
    return outcome.metrics["timings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model_dir = args.model or ensure_demo_model(TINY, tiny=True)
    root = Path(tempfile.mkdtemp(prefix="flywheel-learner-bench-"))
    data = root / "preference.jsonl"
    export_pairs(data, args.pairs)
    base = dict(_env_file=None, algorithm="dpo", max_steps=args.steps, rm_max_steps=1, batch_size=args.batch_size,
                max_length=128, gate_eval_prompts=2, gate_max_new_tokens=8, min_train_examples=1)

    bare_times, learner_times, others = [], [], []
    bare_trl(model_dir, data, root / "warmup", LearnerSettings(**base))  # imports and first-run costs, untimed
    for i in range(args.repeats):
        s = LearnerSettings(**base, artifacts_dir=root / f"artifacts-{i}")
        bare_times.append(bare_trl(model_dir, data, root / f"bare-{i}", s))
        (root / f"cycle-{i}").mkdir()
        timings = asyncio.run(learner_cycle(model_dir, data, root / f"cycle-{i}", s))
        learner_times.append(timings["train_s"])
        others.append(timings)
    bare, learner = statistics.median(bare_times), statistics.median(learner_times)
    print(f"model={model_dir} pairs={args.pairs} steps={args.steps} batch={args.batch_size} repeats={args.repeats}")
    print(f"bare TRL DPO:         {bare:.2f}s  (runs {[round(t, 2) for t in bare_times]})")
    print(f"learner train stage:  {learner:.2f}s  (runs {[round(t, 2) for t in learner_times]})")
    print(f"other cycle stages:   {[{k: round(v, 2) for k, v in t.items() if k != 'train_s'} for t in others]}")
    print(f"ratio learner/bare:   {learner / bare:.3f}  (goal <= 1.1)")
    print(json.dumps({"benchmark": "learner_overhead", "bare_s": bare, "learner_s": learner, "ratio": learner / bare}))


if __name__ == "__main__":
    main()
