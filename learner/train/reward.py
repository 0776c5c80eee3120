"""Reward model: Bradley-Terry on preference pairs (TRL RewardTrainer), initialised from the champion
with a fresh scalar head, scored on a held-out split."""

from __future__ import annotations

import logging
import random

from learner.train.base import TrainData, TrainJob, TrainResult, common_args, last_metrics, logged_losses
from learner.train.loading import load_reward_model, load_tokenizer, lora_config

log = logging.getLogger("learner.train.reward")


def split_holdout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held_out); at least one row on each side when there are two or more rows."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_held = max(1, round(len(rows) * fraction)) if len(rows) >= 2 else 0
    return rows[n_held:], rows[:n_held]


class RewardModelTrainer:
    name = "reward"

    def usable_examples(self, data: TrainData) -> int:
        return len(data.preference)

    def train(self, job: TrainJob) -> TrainResult:
        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer

        settings = job.settings
        train_rows, held_out = split_holdout(job.data.preference, settings.holdout_fraction, settings.seed)
        if not train_rows:
            raise ValueError("the reward model needs at least 2 preference pairs (one to train, one held out)")
        tokenizer = load_tokenizer(job.policy)
        model = load_reward_model(job.policy)
        args = RewardConfig(
            **common_args(settings, job.output_dir / "trainer", max_steps=settings.rm_max_steps,
                          learning_rate=settings.rm_learning_rate),
            max_length=settings.max_length,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(held_out) if held_out else None,
            processing_class=tokenizer,
            peft_config=None if settings.full_weights else lora_config(settings, task_type="SEQ_CLS"),
        )
        trainer.train()
        metrics = {f"rm_{k}": v for k, v in last_metrics(trainer.state.log_history).items()}
        if held_out:
            evaluation = trainer.evaluate()
            metrics["rm_heldout_accuracy"] = float(evaluation.get("eval_accuracy", float("nan")))
            metrics["rm_heldout_loss"] = float(evaluation.get("eval_loss", float("nan")))
        metrics["rm_train_pairs"], metrics["rm_heldout_pairs"] = len(train_rows), len(held_out)

        # PPO and the gates need a plain classifier: fold the adapter back into the weights.
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(trained, "merge_and_unload"):
            trained = trained.merge_and_unload()
        out = job.output_dir / "model"
        trained.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        log.info("stage=reward_model pairs=%d heldout=%d accuracy=%s", len(train_rows), len(held_out),
                 metrics.get("rm_heldout_accuracy"))
        return TrainResult(output_dir=out, kind="reward", metrics=metrics,
                           losses=logged_losses(trainer.state.log_history))
