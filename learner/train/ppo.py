"""PPO (trl.experimental.ppo, TRL 1.12) on logged prompts: reward model + value model, KL penalty to the
champion."""

from __future__ import annotations

import os
from contextlib import contextmanager

from learner.train.base import TrainData, TrainJob, TrainResult, Trainer, common_args
from learner.train.loading import load_reward_model
from learner.train.policy_run import run_policy_trainer


@contextmanager
def accelerate_mixed_precision(value: str):
    """TRL 1.12's PPOTrainer makes its own `Accelerator()` without `mixed_precision`, so `args.bf16` is ignored and PPO
    runs in fp32 on a GPU. accelerate falls back to this variable (what `accelerate launch --mixed_precision` sets)."""
    old = os.environ.get("ACCELERATE_MIXED_PRECISION")
    os.environ["ACCELERATE_MIXED_PRECISION"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = old


class PPOAlgorithm(Trainer):
    name = "ppo"

    def usable_examples(self, data: TrainData) -> int:
        return len(data.prompts)

    def train(self, job: TrainJob) -> TrainResult:
        from datasets import Dataset
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        if job.reward_model_dir is None:
            raise ValueError("PPO needs a trained reward model")
        s = job.settings
        episodes = max(s.ppo_episodes, s.batch_size)
        args = PPOConfig(
            **common_args(s, job.output_dir / "trainer", max_steps=-1, learning_rate=s.learning_rate),
            total_episodes=episodes,
            num_mini_batches=1,
            num_ppo_epochs=s.ppo_epochs,
            local_rollout_forward_batch_size=s.batch_size,
            response_length=s.max_new_tokens,
            stop_token="eos",
            kl_coef=s.ppo_kl_coef,
            num_sample_generations=0,  # no extra eval generations: the gates sample on held-out prompts
        )

        def build(model, ref_model, tokenizer):
            # PPO wants pre-tokenized, left-padded prompts.
            def tokenize(row):
                ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)["input_ids"]
                return {"input_ids": ids[-s.max_length:]}

            dataset = Dataset.from_list(job.data.prompts).map(tokenize, remove_columns=["prompt"])
            with accelerate_mixed_precision("bf16" if args.bf16 else "no"):
                return PPOTrainer(
                    args=args,
                    processing_class=tokenizer,
                    model=model,
                    ref_model=ref_model,
                    reward_model=load_reward_model(job.reward_model_dir),
                    value_model=load_reward_model(job.reward_model_dir),  # the critic starts from the RM
                    train_dataset=dataset,
                    eval_dataset=dataset.select(range(min(len(dataset), s.batch_size))),
                )

        return run_policy_trainer(job, build, algorithm="ppo", loss_key="loss/policy_avg", needs_ref=True,
                                  padding_side="left")
