"""Loading policies and reward models from disk (local paths only) in the shapes trainers need."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from learner.train.base import PolicySource

if TYPE_CHECKING:
    from learner.settings import LearnerSettings


def load_tokenizer(source: PolicySource | Path, *, padding_side: str = "right"):
    from transformers import AutoTokenizer

    model_dir = source.model_dir if isinstance(source, PolicySource) else Path(source)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_policy(source: PolicySource, *, merged: bool = True):
    """The champion as a plain causal LM (a LoRA champion is merged into its base)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source.model_dir, dtype=torch.float32, local_files_only=True)
    if source.is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.path)
        if merged:
            model = model.merge_and_unload()
    return model


def lora_config(settings: LearnerSettings, task_type: str = "CAUSAL_LM"):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules),
        task_type=task_type,
    )


def load_trainable_policy(source: PolicySource, settings: LearnerSettings):
    """(model, kind) to train on top of the champion.

    LoRA mode keeps the result servable as one adapter on the original base (vLLM cannot stack adapters):
    a LoRA champion's adapter is trained further; a base/full champion gets a fresh adapter.
    Full mode trains every weight of the (merged) champion.
    """
    if settings.full_weights:
        return load_policy(source, merged=True), "full"
    from peft import PeftModel, get_peft_model

    if source.is_adapter:
        base = load_policy(PolicySource("base", source.model_dir))
        return PeftModel.from_pretrained(base, source.path, is_trainable=True), "lora"
    return get_peft_model(load_policy(source), lora_config(settings)), "lora"


def load_reward_model(source: PolicySource | Path):
    """A sequence classifier with one output. From a policy: its weights plus a fresh scalar head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if isinstance(source, Path | str):
        source = PolicySource("full", Path(source))
    model = AutoModelForSequenceClassification.from_pretrained(
        source.model_dir, num_labels=1, dtype=torch.float32, local_files_only=True
    )
    if source.is_adapter:
        # Adapter keys name the decoder layers the same way under a causal-LM and a classifier head.
        from peft import PeftConfig, PeftModel

        # The adapter was saved for CAUSAL_LM; that task's wrapper needs generation methods a classifier lacks,
        # so load its LoRA weights with no task wrapper, then merge.
        config = PeftConfig.from_pretrained(source.path)
        config.task_type = None
        model = PeftModel.from_pretrained(model, source.path, config=config).merge_and_unload()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


def save_policy(model, kind: str, output_dir: Path, tokenizer=None) -> None:
    """Exactly the files the gateway serves: adapter_config.json + adapter_model.safetensors for LoRA
    (only the trained "default" adapter, never TRL's frozen "ref" copy), or a full model + tokenizer."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if kind == "lora":
        model.save_pretrained(output_dir, selected_adapters=["default"], safe_serialization=True)
    else:
        model.save_pretrained(output_dir, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(output_dir)
