"""Learner settings: env vars `LEARNER_*` or a `.env` file. The database URL is `DATABASE_URL` (store.config)."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Algorithm = Literal["auto", "ppo", "kto", "dpo"]


class LearnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEARNER_", env_file=".env", extra="ignore")

    # Scheduling
    interval: int = Field(3600, description="seconds between scheduled cycles")
    poll_interval: int = Field(30, description="seconds between cheap checks for new feedback")
    watermark_lag_s: float = Field(5.0, ge=0, description="snapshot up to now minus this, so rows still committing are not skipped")
    min_new_feedback: int = Field(50, description="new feedback items that trigger a cycle before the interval")
    min_train_examples: int = Field(4, description="fewer usable examples than this: the cycle is skipped")
    lease_ttl: int = Field(900, description="seconds a learner lease lasts without renewal")

    # What to train
    algorithm: Algorithm = "auto"
    base_model: Path | None = Field(None, description="policy base model dir, used when no champion is registered")
    artifacts_dir: Path = Path("./artifacts")
    full_weights: bool = Field(False, description="train all weights instead of a LoRA adapter")
    lora_rank: int = Field(8, le=8, description="vLLM serves with --max-lora-rank 8")
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]

    # Optimisation
    seed: int = 0
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 50
    learning_rate: float = 5e-5
    rm_max_steps: int = 50
    rm_learning_rate: float = 1e-4
    beta: float = Field(0.1, description="DPO/KTO strength of the pull towards the reference")
    max_length: int = 512
    max_new_tokens: int = 64
    ppo_episodes: int = 64
    ppo_epochs: int = 1
    ppo_kl_coef: float = 0.05
    holdout_fraction: float = 0.2

    # Devices: None = decide from the hardware (CPU → use_cpu, no bf16; a GPU with bf16 → bf16)
    use_cpu: bool | None = None
    bf16: bool | None = None

    # Gates
    gate_rm_accuracy_min: float = 0.55
    gate_require_reward_model: bool = False
    gate_kl_max: float = Field(5.0, description="mean sequence KL(candidate || champion) in nats")
    gate_length_ratio_max: float = Field(1.5, description="vs the champion, and accumulated since the initial model")
    gate_kl_total_max: float = Field(10.0, description="KL accumulated along the lineage since the initial model")
    gate_reward_margin: float = Field(0.0, description="candidate mean reward must exceed the champion's by this")
    gate_min_nonempty_fraction: float = 0.5
    gate_eval_prompts: int = 16
    gate_max_new_tokens: int = 48

    def resolved_use_cpu(self) -> bool:
        if self.use_cpu is not None:
            return self.use_cpu
        import torch

        return not torch.cuda.is_available()

    def resolved_bf16(self) -> bool:
        # TRL configs default to bf16; on CPU it is slow or unsupported, so it is only on with a capable GPU.
        if self.bf16 is not None:
            return self.bf16 and not self.resolved_use_cpu()
        import torch

        return not self.resolved_use_cpu() and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
