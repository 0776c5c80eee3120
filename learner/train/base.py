"""The one interface every training algorithm implements, and what they all share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from learner.settings import LearnerSettings


@dataclass(frozen=True)
class PolicySource:
    """Where a policy's weights are: a full HF model dir (kind base/full) or a LoRA adapter on `base_model`."""

    kind: str
    path: Path
    base_model: Path | None = None

    @property
    def is_adapter(self) -> bool:
        return self.kind == "lora"

    @property
    def model_dir(self) -> Path:
        """The full model directory underneath (the base for an adapter); tokenizer and config live here."""
        if self.is_adapter:
            if self.base_model is None:
                raise ValueError(f"LoRA policy {self.path} has no base_model")
            return Path(self.base_model)
        return Path(self.path)


@dataclass
class TrainData:
    """Rows in TRL's conversational formats (see learner/data/snapshot.py)."""

    preference: list[dict] = field(default_factory=list)  # prompt / chosen / rejected
    unpaired: list[dict] = field(default_factory=list)  # prompt / completion / label
    prompts: list[dict] = field(default_factory=list)  # prompt


@dataclass
class TrainJob:
    policy: PolicySource  # the current champion: the starting point and the reference
    data: TrainData
    output_dir: Path  # empty dir the trainer saves into (never the published artifact dir)
    settings: LearnerSettings
    reward_model_dir: Path | None = None  # PPO needs it; others ignore it


@dataclass
class TrainResult:
    output_dir: Path
    kind: str  # what output_dir holds: "lora" (adapter on the champion's base), "full" (a model), "reward"
    metrics: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    @property
    def losses_finite(self) -> bool:
        return all(math.isfinite(x) for x in self.losses)


class Trainer(ABC):
    """One policy-optimisation algorithm. Register it in learner.train.ALGORITHMS."""

    name: ClassVar[str]

    @abstractmethod
    def usable_examples(self, data: TrainData) -> int:
        """How many rows of `data` this algorithm can learn from (0 = cannot run)."""

    @abstractmethod
    def train(self, job: TrainJob) -> TrainResult: ...


def common_args(settings: LearnerSettings, output_dir: Path, *, max_steps: int, learning_rate: float) -> dict:
    """TrainingArguments every TRL config shares. bf16 is off on CPU: TRL defaults it on, and CPU bf16 crawls."""
    return dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=learning_rate,
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=settings.resolved_use_cpu(),
        bf16=settings.resolved_bf16(),
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def logged_losses(log_history: list[dict], key: str = "loss") -> list[float]:
    return [float(entry[key]) for entry in log_history if key in entry]


def last_metrics(log_history: list[dict]) -> dict[str, float]:
    """The final training summary TRL logs (train_runtime, train_loss, ...), plus the last logged step."""
    out: dict[str, float] = {}
    for entry in log_history:
        out.update({k: float(v) for k, v in entry.items() if isinstance(v, int | float)})
    return out
