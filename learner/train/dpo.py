"""DPO on preference pairs (prompt / chosen / rejected), on top of the champion."""

from __future__ import annotations

from learner.train.base import TrainData, TrainJob, TrainResult, Trainer, common_args
from learner.train.policy_run import run_policy_trainer


class DPOAlgorithm(Trainer):
    name = "dpo"

    def usable_examples(self, data: TrainData) -> int:
        return len(data.preference)

    def train(self, job: TrainJob) -> TrainResult:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        s = job.settings
        args = DPOConfig(
            **common_args(s, job.output_dir / "trainer", max_steps=s.max_steps, learning_rate=s.learning_rate),
            beta=s.beta,
            max_length=s.max_length,
        )

        def build(model, ref_model, tokenizer):
            return DPOTrainer(model=model, ref_model=ref_model, args=args, processing_class=tokenizer,
                              train_dataset=Dataset.from_list(job.data.preference))

        return run_policy_trainer(job, build, algorithm="dpo")
