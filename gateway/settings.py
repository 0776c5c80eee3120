from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.config import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    """Everything configurable, from env vars (prefix FLYWHEEL_) or `.env`; DATABASE_URL and MODEL_PATH too."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "FLYWHEEL_DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000

    # Serving: either a local HF checkpoint that the gateway serves through its own vLLM child,
    # or one or more running vLLM servers (replicas) to spread load over.
    model_path: str | None = Field(None, validation_alias=AliasChoices("MODEL_PATH", "FLYWHEEL_MODEL_PATH"))
    vllm_urls: list[str] = []
    vllm_port: int = 8100
    vllm_dtype: str = "float32"
    vllm_max_model_len: int = 1024
    vllm_max_lora_rank: int = 8
    vllm_max_loras: int = 4
    vllm_gpu_memory_utilization: float = 0.2  # CPU default (KV cache comes from VLLM_CPU_KVCACHE_SPACE); ~0.9 on a GPU
    vllm_extra_args: str = ""
    vllm_startup_timeout_s: float = 600.0
    vllm_health_interval_s: float = 2.0
    upstream_timeout_s: float = 600.0

    # Limits.
    max_body_bytes: int = 1_000_000
    max_n: int = 8
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    retry_after_s: int = 2
    key_cache_ttl_s: float = 5.0
    feedback_reasons: list[str] = ["incorrect", "unhelpful", "unsafe", "too_long", "too_short", "formatting", "other"]

    # Policy registry reconciliation and rollout.
    policy_poll_s: float = 2.0
    canary_share: float = Field(0.2, ge=0, le=1)  # of chat traffic on the `policy` alias
    canary_ab_share: float = Field(1.0, ge=0, le=1)  # of A/B comparisons that pit the canary against the champion
    auto_canary: bool = True  # new LoRA candidates go live as canary by themselves
    auto_decide: bool = True  # promote / roll back canaries on evidence
    canary_min_votes: int = 20
    canary_min_thumbs: int = 20
    rollout_interval_s: float = 5.0
    drain_timeout_s: float = 120.0
    artifacts_dir: str = "./artifacts"
