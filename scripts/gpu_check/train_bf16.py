"""GPU check of the learner's training path: our learner.train entry points (reward model, DPO, KTO, PPO) on CUDA
with bf16 resolved from the hardware (LearnerSettings(use_cpu=False, bf16=None)).

Runs on the tiny test model (learner.demo_model.build_tiny) and on a bigger random Llama (hidden 512, 4 layers,
head_dim 64). For each run it prints the device, the dtypes seen (parameters, and the activations of the first
q_proj inside the training forward pass), trainer.args.bf16 / the accelerator's mixed precision, steps/s, whether
the losses are finite, and whether the saved artifact loads back (LoRA adapter on its base / scalar reward model).

It imports only learner.settings, learner.demo_model and learner.train (no sqlalchemy, no gateway).

    python3 scripts/gpu_check/train_bf16.py            # on a GPU machine (exit 1 if any check fails)
    python3 scripts/gpu_check/train_bf16.py --cpu      # smoke test of the script itself on CPU (fp32)

On the lent device machine (see /work/.library/device/README.md), with the missing wheels carried in .whl/:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 scripts/gpu_check/train_bf16.py
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


def synthetic_data(n: int):
    from learner.train import TrainData

    good = ["A short answer.", "Thanks for asking.", "Here is what I think, in a few words."]
    bad = ["The weather is rainy and windy and cold today.", "one two three four five six seven eight nine ten"]
    return TrainData(
        preference=[{"prompt": user(f"question {i}: how can I help you today?"), "chosen": assistant(good[i % 3]),
                     "rejected": assistant(bad[i % 2])} for i in range(n)],
        unpaired=[{"prompt": user(f"question {i}"), "completion": assistant(good[i % 3] if i % 2 else bad[i % 2]),
                   "label": bool(i % 2)} for i in range(n)],
        prompts=[{"prompt": user(f"hello {i}, please tell me more about your question")} for i in range(n)],
    )


def build_bigger_llama(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A random Llama, hidden 512, 4 layers, 8 heads of head_dim 64 (GQA 8:4), the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=4, head_dim=64, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------- instrumentation of the TRL trainers' train()

RECORDS: list[dict] = []


def _dtype_counts(module) -> dict[str, int]:
    return dict(Counter(str(p.dtype).replace("torch.", "") for p in module.parameters()))


def instrument(cls) -> None:
    """Wrap cls.train: record args.bf16, the accelerator's mixed precision, parameter dtypes/devices before and after,
    activation dtypes of the first q_proj during training, per-step timestamps, wall time and peak memory."""
    import torch
    from transformers import TrainerCallback

    original = cls.train
    if getattr(original, "_gpu_check", False):
        return

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    def train(self, *args, **kwargs):
        model = self.model
        rec: dict = {
            "trainer": type(self).__name__,
            "args_bf16": bool(getattr(self.args, "bf16", None)),
            "args_fp16": bool(getattr(self.args, "fp16", None)),
            "args_use_cpu": bool(getattr(self.args, "use_cpu", None)),
            "args_device": str(self.args.device),
            "mixed_precision": str(getattr(self.accelerator, "mixed_precision", None)),
            "param_dtypes_before": _dtype_counts(model),
            "trainable_param_dtypes": dict(Counter(str(p.dtype).replace("torch.", "")
                                                   for p in model.parameters() if p.requires_grad)),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in model.parameters()),
        }
        seen: dict[str, Counter] = {"q_proj_out": Counter(), "q_proj_weight": Counter(), "autocast": Counter()}
        handles = []
        for name, module in model.named_modules():
            if name.endswith("q_proj"):
                def hook(mod, inputs, output, _seen=seen):
                    out = output[0] if isinstance(output, tuple) else output
                    _seen["q_proj_out"][f"{str(out.dtype).replace('torch.', '')}@{out.device}"] += 1
                    weight = getattr(getattr(mod, "base_layer", mod), "weight", None)
                    if weight is not None:
                        _seen["q_proj_weight"][f"{str(weight.dtype).replace('torch.', '')}@{weight.device}"] += 1
                    if out.device.type == "cuda":
                        _seen["autocast"][str(torch.is_autocast_enabled("cuda"))] += 1
                handles.append(module.register_forward_hook(hook))
                break
        timer = StepTimes()
        self.add_callback(timer)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            for h in handles:
                h.remove()
            steps = int(self.state.global_step)
            rec.update(
                steps=steps,
                train_wall_s=round(wall, 3),
                steps_per_s_incl_first=round(steps / wall, 3) if wall > 0 else None,
                # steady state: from the end of step 1 to the end of the last step (no CUDA/graph warm-up)
                steps_per_s_steady=(round((len(timer.times) - 1) / (timer.times[-1] - timer.times[0]), 3)
                                    if len(timer.times) >= 2 and timer.times[-1] > timer.times[0] else None),
                param_dtypes_after=_dtype_counts(self.model),
                param_devices_after=dict(Counter(str(p.device) for p in self.model.parameters())),
                q_proj_forward=dict(seen["q_proj_out"]),
                q_proj_weight=dict(seen["q_proj_weight"]),
                autocast_on_in_forward=dict(seen["autocast"]),
                peak_mem_mib=(round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available()
                              else None),
            )
            RECORDS.append(rec)

    train._gpu_check = True
    cls.train = train


def instrument_all() -> None:
    from trl import DPOTrainer, KTOTrainer, RewardTrainer
    from trl.experimental.ppo import PPOTrainer

    for cls in (RewardTrainer, DPOTrainer, KTOTrainer, PPOTrainer):
        instrument(cls)


# ---------------------------------------------------------------- checks of the saved artifacts


def safetensor_dtypes(path: Path) -> dict[str, int]:
    from safetensors import safe_open

    counts: Counter = Counter()
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            counts[str(f.get_slice(key).get_dtype())] += 1
    return dict(counts)


def check_adapter(result, model_dir: Path, device: str) -> dict:
    """The saved LoRA adapter loads on its base (our load_policy) and the merged model runs a forward on `device`."""
    import torch

    from learner.train import PolicySource
    from learner.train.loading import load_policy, load_tokenizer

    files = sorted(p.name for p in result.output_dir.iterdir())
    info: dict = {"files": files}
    if result.kind == "lora":
        info["adapter_tensor_dtypes"] = safetensor_dtypes(result.output_dir / "adapter_model.safetensors")
        config = json.loads((result.output_dir / "adapter_config.json").read_text())
        info["r"], info["target_modules"] = config["r"], sorted(config["target_modules"])
        source = PolicySource("lora", result.output_dir, model_dir)
    else:
        source = PolicySource("full", result.output_dir)
    model = load_policy(source).to(device).eval()
    tokenizer = load_tokenizer(model_dir)
    batch = tokenizer.apply_chat_template(user("hello"), add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"].to(device)).logits
    info["reload_forward_finite"] = bool(torch.isfinite(logits).all())
    info["reload_ok"] = info["reload_forward_finite"]
    return info


def check_reward_model(result, device: str) -> dict:
    import torch
    from transformers import AutoConfig

    from learner.train.loading import load_reward_model, load_tokenizer

    info: dict = {"num_labels": AutoConfig.from_pretrained(result.output_dir).num_labels,
                  "saved_tensor_dtypes": safetensor_dtypes(result.output_dir / "model.safetensors")}
    model = load_reward_model(result.output_dir).to(device).eval()
    tokenizer = load_tokenizer(result.output_dir)
    batch = tokenizer.apply_chat_template(user("hello") + assistant("A short answer."), return_tensors="pt",
                                          return_dict=True)
    with torch.no_grad():
        score = model(input_ids=batch["input_ids"].to(device)).logits
    info["score_shape"] = list(score.shape)
    info["reload_ok"] = info["num_labels"] == 1 and bool(torch.isfinite(score).all())
    return info


# ---------------------------------------------------------------- driver


def run_one(label: str, fn, summary: list[dict]) -> object | None:
    print(f"\n=== {label} ===", flush=True)
    n_before = len(RECORDS)
    start = time.perf_counter()
    entry: dict = {"run": label}
    result = None
    try:
        result, extra = fn()
        entry.update(extra)
        entry["kind"] = result.kind
        entry["losses"] = [round(x, 5) for x in result.losses]
        entry["loss_finite"] = bool(result.losses) and result.losses_finite
        entry["trainer_steps_per_s"] = next((v for k, v in result.metrics.items() if k.endswith("train_steps_per_second")),
                                            None)
        entry["ok"] = entry["loss_finite"] and entry.get("reload_ok", False)
        if label.endswith("/ppo"):  # rollout vs training-forward agreement (rollout logprobs vs new ones)
            entry["ppo_last"] = {k: v for k, v in result.metrics.items()
                                 if any(t in k for t in ("approxkl", "clipfrac", "val_ratio", "loss_value",
                                                         "objective_scores", "objective_kl"))}
    except Exception as exc:  # report and go on with the next run
        traceback.print_exc()
        entry["ok"] = False
        entry["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    entry["total_s"] = round(time.perf_counter() - start, 2)
    if len(RECORDS) > n_before:
        entry["train"] = RECORDS[-1]
    print(json.dumps(entry, indent=1, default=str), flush=True)
    summary.append(entry)
    return result if entry.get("loss_finite") else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", action="store_true", help="smoke-test the script on CPU (fp32)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--only", default="tiny,big", help="comma list of models: tiny,big")
    parser.add_argument("--json-out", default=os.environ.get("OUT") and str(Path(os.environ["OUT"]) / "gpu_check.json"))
    ns = parser.parse_args()

    import torch
    import transformers

    from learner.demo_model import build_tiny
    from learner.settings import LearnerSettings
    from learner.train import ALGORITHMS, PolicySource, RewardModelTrainer, TrainJob

    instrument_all()

    versions = {}
    for pkg in ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "huggingface-hub", "tokenizers",
                "safetensors", "pydantic", "pydantic-settings", "pyarrow", "fsspec", "typing-extensions", "numpy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    print("python", sys.version.split()[0], "| transformers from", Path(transformers.__file__).parent)
    print("versions", json.dumps(versions))
    cuda = torch.cuda.is_available()
    print("cuda", cuda, torch.version.cuda, torch.cuda.get_device_name(0) if cuda else "-",
          "bf16_supported", cuda and torch.cuda.is_bf16_supported())
    forbidden = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "gateway", "store"))
    print("forbidden modules imported:", forbidden or "none")

    base_settings = dict(_env_file=None, batch_size=8, max_steps=ns.steps, rm_max_steps=ns.steps, max_length=128,
                         max_new_tokens=16, ppo_episodes=8 * ns.steps, seed=0)
    if ns.cpu:
        base_settings.update(use_cpu=True, bf16=None)
    else:
        base_settings.update(use_cpu=False, bf16=None)  # bf16 resolved from the hardware
    device = "cpu" if ns.cpu else "cuda"

    summary: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp_name:
        tmp = Path(tmp_name)
        models = {}
        tiny_dir = build_tiny(tmp / "tiny")
        if "tiny" in ns.only:
            models["tiny"] = tiny_dir
        if "big" in ns.only:
            models["big"] = build_bigger_llama(tmp / "big", tiny_dir)
        data = synthetic_data(64)

        for name, model_dir in models.items():
            settings = LearnerSettings(artifacts_dir=tmp / "artifacts", **base_settings)
            print(f"\n##### model {name}: {model_dir} | resolved use_cpu={settings.resolved_use_cpu()} "
                  f"bf16={settings.resolved_bf16()}", flush=True)
            champion = PolicySource("base", model_dir)

            def reward(name=name, settings=settings, champion=champion):
                result = RewardModelTrainer().train(TrainJob(champion, data, tmp / name / "rm", settings))
                extra = check_reward_model(result, device)
                extra["rm_heldout_accuracy"] = result.metrics.get("rm_heldout_accuracy")
                return result, extra

            rm = run_one(f"{name}/reward", reward, summary)

            for algorithm in ("dpo", "kto", "ppo"):
                def policy(algorithm=algorithm, name=name, settings=settings, champion=champion, model_dir=model_dir):
                    if algorithm == "ppo" and rm is None:
                        raise RuntimeError("PPO skipped: the reward model did not train")
                    job = TrainJob(champion, data, tmp / name / algorithm, settings,
                                   reward_model_dir=rm.output_dir if rm is not None else None)
                    result = ALGORITHMS[algorithm]().train(job)
                    return result, check_adapter(result, model_dir, device)

                run_one(f"{name}/{algorithm}", policy, summary)

            if name == "big":
                # full-weight path (explicit reference copy) on the bigger model
                def full_kto(name=name, settings=settings, champion=champion, model_dir=model_dir):
                    s = settings.model_copy(update={"full_weights": True})
                    result = ALGORITHMS["kto"]().train(TrainJob(champion, data, tmp / name / "kto_full", s))
                    return result, check_adapter(result, model_dir, device)

                run_one(f"{name}/kto_full_weights", full_kto, summary)

    print("\n##### SUMMARY")
    print(f"{'run':24} {'ok':5} {'args.bf16':9} {'mixed':6} {'params':18} {'q_proj act':24} {'steps':5} "
          f"{'it/s all':9} {'it/s steady':11} {'peak MiB':9}")
    for e in summary:
        t = e.get("train", {})
        print(f"{e['run']:24} {str(e['ok']):5} {str(t.get('args_bf16')):9} {str(t.get('mixed_precision')):6} "
              f"{','.join(t.get('param_dtypes_after', {})):18} {','.join(t.get('q_proj_forward', {})):24} "
              f"{str(t.get('steps')):5} {str(t.get('steps_per_s_incl_first')):9} {str(t.get('steps_per_s_steady')):11} "
              f"{str(t.get('peak_mem_mib')):9}" + (f"  ERROR {e['error'][:200]}" if "error" in e else ""))
    forbidden = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "gateway", "store"))
    print("forbidden modules imported at the end:", forbidden or "none")
    if ns.json_out:
        Path(ns.json_out).write_text(json.dumps({"versions": versions, "cuda": cuda, "summary": summary}, indent=1,
                                                default=str))
    all_ok = all(e["ok"] for e in summary) and not forbidden
    if not ns.cpu:
        # on the GPU, bf16 must actually be in use: args.bf16 on and the q_proj forward computed in bf16 on cuda
        for e in summary:
            t = e.get("train", {})
            if not (t.get("args_bf16") and any(k.startswith("bfloat16@cuda") for k in t.get("q_proj_forward", {}))):
                print(f"bf16-on-GPU check FAILED for {e['run']}")
                all_ok = False
    print("ALL OK" if all_ok else "SOME CHECKS FAILED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
