"""The shared part of training a policy with a TRL trainer: load the champion, train, save the servable result."""

from __future__ import annotations

import logging
from collections.abc import Callable

from learner.train.base import TrainJob, TrainResult, last_metrics, logged_losses
from learner.train.loading import load_policy, load_tokenizer, load_trainable_policy, save_policy

log = logging.getLogger("learner.train")


def run_policy_trainer(job: TrainJob, build: Callable, *, algorithm: str, loss_key: str = "loss", needs_ref: bool = False,
                       padding_side: str = "right") -> TrainResult:
    """`build(model, ref_model, tokenizer)` returns a TRL trainer; the reference is always the champion.

    With LoRA, DPO/KTO get ref_model=None and keep a frozen copy of the starting adapter as "ref" (or disable a
    fresh one): that is the champion without a second model in memory. Full-weight training and PPO get an
    explicit copy of the champion.
    """
    tokenizer = load_tokenizer(job.policy, padding_side=padding_side)
    model, kind = load_trainable_policy(job.policy, job.settings)
    ref_model = load_policy(job.policy) if (needs_ref or kind == "full") else None
    trainer = build(model, ref_model, tokenizer)
    trainer.train()
    # PPO's save path otherwise assumes transformers' distributed loading; harmless elsewhere.
    trainer.is_distributed_loading_by_transformers = False
    out = job.output_dir / "policy"
    # PPO wraps policy+value; the policy alone is what gets served.
    trained = trainer.accelerator.unwrap_model(trainer.model)
    trained = getattr(trained, "policy", trained)
    save_policy(trained, kind, out, tokenizer=tokenizer)
    history = trainer.state.log_history
    losses = logged_losses(history, loss_key)
    log.info("stage=train algorithm=%s kind=%s steps=%s final_loss=%s", algorithm, kind,
             trainer.state.global_step, losses[-1] if losses else None)
    return TrainResult(output_dir=out, kind=kind, metrics={"train_" + k.replace("/", "_"): v
                                                            for k, v in last_metrics(history).items()},
                       losses=losses)
