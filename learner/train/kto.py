"""KTO on unpaired thumbs (prompt / completion / label), on top of the champion."""

from __future__ import annotations

from learner.train.base import TrainData, TrainJob, TrainResult, Trainer, common_args
from learner.train.policy_run import run_policy_trainer


class KTOAlgorithm(Trainer):
    name = "kto"

    def usable_examples(self, data: TrainData) -> int:
        return len(data.unpaired)

    def train(self, job: TrainJob) -> TrainResult:
        from datasets import Dataset
        from trl import KTOConfig, KTOTrainer

        s = job.settings
        rows = job.data.unpaired
        desirable = sum(1 for r in rows if r["label"])
        undesirable = len(rows) - desirable
        # KTO's paper: weight the rarer side up so both sides pull about equally.
        weights = {}
        if desirable and undesirable:
            weights = {"desirable_weight": 1.0, "undesirable_weight": desirable / undesirable}
        args = KTOConfig(
            **common_args(s, job.output_dir / "trainer", max_steps=s.max_steps, learning_rate=s.learning_rate),
            beta=s.beta,
            max_length=s.max_length,
            **weights,
        )

        def build(model, ref_model, tokenizer):
            return KTOTrainer(model=model, ref_model=ref_model, args=args, processing_class=tokenizer,
                              train_dataset=Dataset.from_list(rows))

        result = run_policy_trainer(job, build, algorithm="kto")
        result.metrics.update(kto_desirable=desirable, kto_undesirable=undesirable)
        return result
