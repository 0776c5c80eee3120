"""The offline models: the tiny random Llama (deterministic) and the real SmolLM2 conversion."""

import json
from pathlib import Path

import pytest

from learner.demo_model import build_tiny, ensure_demo_model
from store.artifact_hash import directory_sha256

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_model_is_deterministic_for_a_seed(tmp_path):
    a = build_tiny(tmp_path / "a", seed=7)
    b = build_tiny(tmp_path / "b", seed=7)
    c = build_tiny(tmp_path / "c", seed=8)
    assert directory_sha256(a) == directory_sha256(b) != directory_sha256(c)
    config = json.loads((a / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] == 64  # vLLM's CPU attention needs head_dim 64
    assert not list(tmp_path.glob(".*"))  # no temp dirs left behind


@pytest.mark.slow
def test_smollm2_demo_model_converts_and_answers():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = ROOT / "models" / "smollm2-135m-instruct"
    model_dir = cached if (cached / "config.json").is_file() else ROOT / "build" / "test-models" / "smollm2"
    ensure_demo_model(model_dir)
    assert list(model_dir.glob("*.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
