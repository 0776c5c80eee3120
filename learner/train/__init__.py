"""Training algorithms behind one interface (learner.train.base.Trainer). Adding GRPO = one file + one line."""

from learner.train.base import PolicySource, TrainData, Trainer, TrainJob, TrainResult
from learner.train.dpo import DPOAlgorithm
from learner.train.kto import KTOAlgorithm
from learner.train.ppo import PPOAlgorithm
from learner.train.reward import RewardModelTrainer

ALGORITHMS: dict[str, type[Trainer]] = {"kto": KTOAlgorithm, "dpo": DPOAlgorithm, "ppo": PPOAlgorithm}

__all__ = ["ALGORITHMS", "PolicySource", "RewardModelTrainer", "TrainData", "TrainJob", "TrainResult", "Trainer"]
