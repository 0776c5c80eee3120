"""The gates: pure threshold checks, and real measurements on tiny models built to fail one gate each."""

import json
import shutil

import pytest

from learner.evaluate import Gates, evaluate, judge, with_lineage
from learner.train import PolicySource

PROMPTS = [[{"role": "user", "content": f"hello {i}"}] for i in range(3)]
LOOSE = Gates(rm_accuracy_min=0.0, kl_max=1e9, length_ratio_max=1e9, reward_margin=-1e9, max_new_tokens=8)


def good_metrics(**overrides):
    metrics = dict(eval_prompts=3, nonfinite_weights=0, kl_seq=0.1, length_candidate=10.0, length_champion=10.0,
                   length_ratio=1.0, nonempty_fraction=1.0, reward_candidate=0.5, reward_champion=0.1,
                   reward_delta=0.4)
    return {**metrics, **overrides}


def test_judge_passes_good_numbers_and_names_every_failed_gate():
    assert judge(good_metrics(), Gates(), rm_accuracy=0.7, losses=[0.5, 0.4]) == (True, [])

    bad = good_metrics(kl_seq=9.0, length_candidate=30.0, length_ratio=3.0, reward_delta=-0.1, nonempty_fraction=0.0)
    passed, reasons = judge(bad, Gates(), rm_accuracy=0.4, losses=[0.5, float("nan")])
    assert not passed
    text = " | ".join(reasons)
    for word in ("accuracy", "KL", "length", "reward", "smoke", "NaN"):
        assert word in text


def test_drift_accumulates_along_the_lineage():
    """A hack that lengthens answers x1.35 per cycle passes each step's budget, not the lineage's."""
    first = with_lineage(good_metrics(length_ratio=1.35, kl_seq=2.0), None)
    assert judge(first, Gates(), rm_accuracy=0.7, losses=[0.1]) == (True, [])
    second = with_lineage(good_metrics(length_ratio=1.35, kl_seq=2.0), first)
    assert second["length_ratio_vs_initial"] == pytest.approx(1.35 * 1.35)
    passed, reasons = judge(second, Gates(), rm_accuracy=0.7, losses=[0.1])
    assert not passed and "since the initial model" in reasons[0]
    many = {"length_ratio_vs_initial": 1.0, "kl_accumulated": 9.5}
    passed, reasons = judge(with_lineage(good_metrics(kl_seq=1.0), many), Gates(), rm_accuracy=0.7, losses=[0.1])
    assert not passed and "KL accumulated" in reasons[0]


def test_judge_without_reward_model_is_configurable():
    metrics = good_metrics()
    for key in ("reward_candidate", "reward_champion", "reward_delta"):
        metrics.pop(key)
    assert judge(dict(metrics), Gates(), rm_accuracy=None, losses=[])[0]
    assert not judge(dict(metrics), Gates(require_reward_model=True), rm_accuracy=None, losses=[])[0]


@pytest.mark.slow
def test_identical_candidate_measures_zero_kl_and_passes_loose_gates(tiny_model_dir):
    same = PolicySource("base", tiny_model_dir)
    passed, reasons, metrics = evaluate(same, same, PROMPTS, reward_model_dir=None, rm_accuracy=None,
                                        losses=[0.3], gates=LOOSE)
    assert passed, reasons
    assert metrics["kl_seq"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["length_ratio"] == pytest.approx(1.0)
    assert metrics["nonempty_fraction"] > 0 and metrics["gates"]["kl_max"] == 1e9


@pytest.mark.slow
def test_length_inflated_candidate_is_rejected(tiny_model_dir, tmp_path):
    # The champion stops after one token (every token is a stop token for it); the candidate rambles on.
    short_champion = tmp_path / "short"
    shutil.copytree(tiny_model_dir, short_champion)
    gen_path = short_champion / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    gen["eos_token_id"] = list(range(json.loads((short_champion / "config.json").read_text())["vocab_size"]))
    gen_path.write_text(json.dumps(gen))

    gates = Gates(rm_accuracy_min=0.0, kl_max=1e9, length_ratio_max=1.5, reward_margin=-1e9, max_new_tokens=8)
    passed, reasons, metrics = evaluate(PolicySource("base", tiny_model_dir), PolicySource("base", short_champion),
                                        PROMPTS, reward_model_dir=None, rm_accuracy=None, losses=[0.3], gates=gates)
    assert not passed
    assert metrics["length_champion"] == 1.0 and metrics["length_ratio"] > 1.5
    assert any("length" in r for r in reasons)


@pytest.mark.slow
def test_nan_candidate_is_rejected(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")

    passed, reasons, metrics = evaluate(PolicySource("full", tmp_path / "nan"), PolicySource("base", tiny_model_dir),
                                        PROMPTS, reward_model_dir=None, rm_accuracy=None, losses=[float("inf")],
                                        gates=LOOSE)
    assert not passed
    assert metrics["nonfinite_weights"] >= 1 and metrics["nonfinite_losses"] == 1
    assert any("weight" in r for r in reasons) and any("loss" in r for r in reasons)
