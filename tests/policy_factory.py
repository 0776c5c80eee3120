"""Policy artifacts for swap tests: a LoRA adapter on the tiny model, or a full-weight sibling model."""

from pathlib import Path

from store.artifact_hash import directory_sha256


def make_lora(base_dir: Path, out_dir: Path, seed: int, rank: int = 8) -> tuple[Path, str]:
    """A real PEFT LoRA adapter with non-zero random weights, so greedy output visibly changes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank, lora_alpha=4 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(out_dir)
    return out_dir, directory_sha256(out_dir)


def make_full(out_dir: Path, seed: int) -> tuple[Path, str]:
    """Same architecture and tokenizer as the tiny model, other weights: a full-weight version."""
    from learner.demo_model import build_tiny

    build_tiny(out_dir, seed=seed)
    return out_dir, directory_sha256(out_dir)
