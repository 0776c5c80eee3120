"""The gates a candidate must pass before it is registered as `candidate` (else `rejected`).

`measure` computes every number (on held-out prompts, with plain transformers); `judge` compares them with
the thresholds. Both are recorded: the registry shows why a policy passed or failed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learner.train.base import PolicySource

if TYPE_CHECKING:
    from learner.settings import LearnerSettings

log = logging.getLogger("learner.evaluate")


@dataclass(frozen=True)
class Gates:
    rm_accuracy_min: float = 0.55
    require_reward_model: bool = False
    kl_max: float = 5.0  # mean sequence KL(candidate || champion), nats
    length_ratio_max: float = 1.5  # candidate mean response tokens / champion's, and / the initial model's
    kl_total_max: float = 10.0  # KL accumulated over the lineage since the initial model, nats
    reward_margin: float = 0.0  # candidate mean reward must be > champion's + margin
    min_nonempty_fraction: float = 0.5
    max_new_tokens: int = 48

    @classmethod
    def from_settings(cls, s: LearnerSettings) -> Gates:
        return cls(s.gate_rm_accuracy_min, s.gate_require_reward_model, s.gate_kl_max, s.gate_length_ratio_max,
                   s.gate_kl_total_max, s.gate_reward_margin, s.gate_min_nonempty_fraction, s.gate_max_new_tokens)


@dataclass
class Samples:
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    texts: list[str]


def _prompt_ids(tokenizer, prompts: list[list[dict]]) -> list[list[int]]:
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for p in prompts]


def _strip_response(ids: list[int], eos_ids: set[int], pad_id: int | None) -> list[int]:
    """The generated tokens up to and including the first stop token (later ones are padding)."""
    out = []
    for tok in ids:
        out.append(tok)
        if tok in eos_ids:
            break
    while out and pad_id is not None and out[-1] == pad_id and pad_id not in eos_ids:
        out.pop()
    return out


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def sample(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, seed: int) -> Samples:
    """One unbiased sample per prompt (temperature 1, no top-k/top-p), honouring the model's own stop tokens."""
    import torch

    torch.manual_seed(seed)
    eos = _eos_ids(model, tokenizer)
    prompt_ids = _prompt_ids(tokenizer, prompts)
    responses, texts = [], []
    model.eval()
    with torch.no_grad():
        for ids in prompt_ids:
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            resp = _strip_response(out[0, len(ids):].tolist(), eos, tokenizer.pad_token_id)
            responses.append(resp)
            texts.append(tokenizer.decode(resp, skip_special_tokens=True))
    return Samples(prompt_ids, responses, texts)


def sequence_logprob(model, prompt_ids: list[int], response_ids: list[int]) -> float:
    import torch

    if not response_ids:
        return 0.0
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(response_ids).unsqueeze(-1))
    return float(logps.sum())


def kl_estimate(candidate, reference, samples: Samples) -> tuple[float, float]:
    """Monte-Carlo KL(candidate || reference) from the candidate's own samples: mean over samples of
    log p_cand(y|x) - log p_ref(y|x). Returns (per sequence, per token)."""
    diffs, tokens = [], 0
    for p, r in zip(samples.prompt_ids, samples.response_ids, strict=True):
        diffs.append(sequence_logprob(candidate, p, r) - sequence_logprob(reference, p, r))
        tokens += len(r)
    if not diffs:
        return 0.0, 0.0
    return sum(diffs) / len(diffs), sum(diffs) / max(tokens, 1)


def mean_reward(reward_model, tokenizer, prompts: list[list[dict]], samples: Samples) -> float:
    import torch

    scores = []
    with torch.no_grad():
        for prompt, text in zip(prompts, samples.texts, strict=True):
            conv = prompt + [{"role": "assistant", "content": text}]
            ids = tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
            scores.append(float(reward_model(torch.tensor([ids])).logits[0, 0]))
    return sum(scores) / len(scores)


def nonfinite_parameters(model) -> int:
    import torch

    return sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())


def measure(candidate: PolicySource, reference: PolicySource, prompts: list[list[dict]], *,
            reward_model_dir: Path | None, gates: Gates, seed: int = 0) -> dict[str, Any]:
    """Every gate number. Non-finite weights short-circuit: sampling from a NaN model means nothing."""
    from learner.train.loading import load_policy, load_reward_model, load_tokenizer

    tokenizer = load_tokenizer(reference)
    cand_model, ref_model = load_policy(candidate), load_policy(reference)
    metrics: dict[str, Any] = {"eval_prompts": len(prompts), "nonfinite_weights": nonfinite_parameters(cand_model)}
    if metrics["nonfinite_weights"] or not prompts:
        return metrics

    cand = sample(cand_model, tokenizer, prompts, max_new_tokens=gates.max_new_tokens, seed=seed)
    champ = sample(ref_model, tokenizer, prompts, max_new_tokens=gates.max_new_tokens, seed=seed)
    metrics["kl_seq"], metrics["kl_per_token"] = kl_estimate(cand_model, ref_model, cand)
    metrics["length_candidate"] = sum(map(len, cand.response_ids)) / len(prompts)
    metrics["length_champion"] = sum(map(len, champ.response_ids)) / len(prompts)
    metrics["length_ratio"] = metrics["length_candidate"] / max(metrics["length_champion"], 1.0)
    metrics["nonempty_fraction"] = sum(1 for t in cand.texts if t.strip()) / len(prompts)
    # Printable only: the sample goes into a JSON column (PostgreSQL rejects NUL in text).
    metrics["smoke_sample"] = "".join(ch for ch in cand.texts[0][:200] if ch.isprintable())
    if reward_model_dir is not None:
        rm = load_reward_model(reward_model_dir).eval()
        metrics["reward_candidate"] = mean_reward(rm, tokenizer, prompts, cand)
        metrics["reward_champion"] = mean_reward(rm, tokenizer, prompts, champ)
        metrics["reward_delta"] = metrics["reward_candidate"] - metrics["reward_champion"]
    return metrics


def judge(metrics: dict[str, Any], gates: Gates, *, rm_accuracy: float | None,
          losses: list[float]) -> tuple[bool, list[str]]:
    """Compare the numbers with the thresholds; every failed gate gives one human-readable reason."""
    reasons: list[str] = []
    nonfinite_losses = sum(1 for x in losses if not math.isfinite(x))
    metrics["nonfinite_losses"] = nonfinite_losses
    metrics["rm_accuracy"] = rm_accuracy
    if nonfinite_losses:
        reasons.append(f"{nonfinite_losses} training loss value(s) are NaN/inf")
    if metrics.get("nonfinite_weights"):
        reasons.append(f"{metrics['nonfinite_weights']} weight value(s) are NaN/inf")
        return False, reasons
    if not metrics.get("eval_prompts"):
        reasons.append("no held-out prompts to evaluate on")
        return False, reasons

    if rm_accuracy is None:
        if gates.require_reward_model:
            reasons.append("no reward model (no preference pairs) and gates require one")
    elif not rm_accuracy >= gates.rm_accuracy_min:
        reasons.append(f"reward model held-out accuracy {rm_accuracy:.3f} < floor {gates.rm_accuracy_min}")
    if not metrics["kl_seq"] <= gates.kl_max:
        reasons.append(f"KL(candidate||champion) {metrics['kl_seq']:.3f} nats > budget {gates.kl_max}")
    if not metrics["length_ratio"] <= gates.length_ratio_max:
        reasons.append(f"mean response length x{metrics['length_ratio']:.2f} "
                       f"({metrics['length_champion']:.1f} -> {metrics['length_candidate']:.1f} tokens) "
                       f"> budget x{gates.length_ratio_max}")
    # Drift since the initial model: each step may pass its own budget while the lineage creeps (a reward hack
    # that lengthens answers x1.35 per cycle). Ratios multiply and KLs add along the lineage (an estimate).
    if metrics.get("length_ratio_vs_initial", 0) > gates.length_ratio_max:
        reasons.append(f"mean response length x{metrics['length_ratio_vs_initial']:.2f} since the initial model "
                       f"> budget x{gates.length_ratio_max}")
    if metrics.get("kl_accumulated", 0) > gates.kl_total_max:
        reasons.append(f"KL accumulated since the initial model {metrics['kl_accumulated']:.3f} nats "
                       f"> budget {gates.kl_total_max}")
    if "reward_delta" in metrics and not metrics["reward_delta"] > gates.reward_margin:
        reasons.append(f"mean reward {metrics['reward_candidate']:.4f} does not beat the champion's "
                       f"{metrics['reward_champion']:.4f} by > {gates.reward_margin}")
    if not metrics["nonempty_fraction"] >= gates.min_nonempty_fraction:
        reasons.append(f"generation smoke test: only {metrics['nonempty_fraction']:.0%} of samples are non-empty")
    return not reasons, reasons


def with_lineage(metrics: dict[str, Any], champion_metrics: dict[str, Any] | None) -> dict[str, Any]:
    """Carry drift along the lineage: the champion's own drift since the initial model times/plus this step."""
    champion_metrics = champion_metrics or {}
    if "length_ratio" in metrics:
        metrics["length_ratio_vs_initial"] = metrics["length_ratio"] * champion_metrics.get("length_ratio_vs_initial", 1.0)
    if "kl_seq" in metrics:
        metrics["kl_accumulated"] = metrics["kl_seq"] + champion_metrics.get("kl_accumulated", 0.0)
    return metrics


def evaluate(candidate: PolicySource, reference: PolicySource, prompts: list[list[dict]], *,
             reward_model_dir: Path | None, rm_accuracy: float | None, losses: list[float], gates: Gates,
             seed: int = 0, champion_metrics: dict[str, Any] | None = None) -> tuple[bool, list[str], dict[str, Any]]:
    """All gates: (passed, reasons, metrics). Metrics include the thresholds used."""
    metrics = measure(candidate, reference, prompts, reward_model_dir=reward_model_dir, gates=gates, seed=seed)
    with_lineage(metrics, champion_metrics)
    passed, reasons = judge(metrics, gates, rm_accuracy=rm_accuracy, losses=losses)
    metrics["gates"] = asdict(gates)
    metrics["passed"] = passed
    log.info("stage=gates passed=%s kl=%s length_ratio=%s reward_delta=%s reasons=%r", passed,
             metrics.get("kl_seq"), metrics.get("length_ratio"), metrics.get("reward_delta"), reasons)
    return passed, reasons, metrics
