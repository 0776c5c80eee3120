"""The closed-loop simulation's pure parts (oracle, simulated users' verdicts, summary), and one slow
end-to-end smoke run of the whole loop on the tiny model."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.closed_loop import (
    ADVERSARIAL,
    HONEST,
    LAZY,
    Oracle,
    ab_verdict,
    assign_kinds,
    build_prompts,
    heldout_prompts,
    noise_ceiling,
    parse_args,
    pooled_rm_accuracy,
    rank_order,
    summarize,
    thumb_verdict,
    win_rate,
    TRAIN_TOPICS,
)

ROOT = Path(__file__).resolve().parents[2]


# ---- oracle -----------------------------------------------------------------------------------------


def test_concise_oracle_prefers_the_target_length():
    oracle = Oracle.concise(target=10)
    assert oracle.score(" ".join(["w"] * 10)) == 0
    assert oracle.score(" ".join(["w"] * 14)) == -4
    assert oracle.score("one two") == -8
    assert oracle.score(" ".join(["w"] * 11)) > oracle.score(" ".join(["w"] * 40))


def test_concise_correction_is_oracle_better():
    oracle = Oracle.concise(target=10)
    long = " ".join(f"word{i}" for i in range(40))
    better = oracle.improve(long)
    assert better is not None and oracle.score(better) > oracle.score(long)
    assert oracle.improve("short answer.") is None  # nothing to cut


@pytest.mark.parametrize("oracle", [Oracle.letters(), Oracle.length()])
def test_other_oracles_corrections_are_better(oracle):
    text = "a quick fox"
    assert oracle.score(oracle.improve(text)) > oracle.score(text)


def test_letter_and_length_oracles():
    assert Oracle.letters().score("Eee bee\n\n 12 \x05") == 6
    assert Oracle.length().score("one two three") == 3
    assert Oracle.length().score("one two three four five six") > Oracle.length().score("one")


def test_reasons_are_in_the_gateway_vocabulary():
    from gateway.settings import Settings

    vocabulary = Settings(_env_file=None).feedback_reasons
    for oracle in (Oracle.concise(), Oracle.letters(), Oracle.length()):
        for text in ("", "short", " ".join(["w"] * 50)):
            assert set(oracle.reasons(text)) <= set(vocabulary)


# ---- users and verdicts ------------------------------------------------------------------------------


def test_assign_kinds_exact_shares_and_seeded():
    kinds = assign_kinds(20, 0.05, 0.1, random.Random(1))
    assert kinds.count(ADVERSARIAL) == 1 and kinds.count(LAZY) == 2 and kinds.count(HONEST) == 17
    assert kinds == assign_kinds(20, 0.05, 0.1, random.Random(1))
    assert kinds != assign_kinds(20, 0.05, 0.1, random.Random(2)) or True  # order may coincide; shares never
    with pytest.raises(ValueError):
        assign_kinds(10, 0.6, 0.6, random.Random(0))


def test_noise_ceiling():
    assert noise_ceiling(0.2, 0.0, 0.0) == pytest.approx(0.8)
    assert noise_ceiling(0.0, 0.0, 1.0) == pytest.approx(0.5)
    assert noise_ceiling(0.2, 0.05, 0.1) == pytest.approx(0.85 * 0.8 + 0.05 * 0.2 + 0.1 * 0.5)


@pytest.mark.parametrize("noise", [0.0, 0.2, 0.35])
def test_honest_ab_noise_rate_is_what_was_asked(noise):
    oracle, rng = Oracle.concise(), random.Random(7)
    n = 20000
    flipped = sum(ab_verdict(0.0, -10.0, HONEST, oracle, noise, rng) == "b" for _ in range(n))
    assert flipped / n == pytest.approx(noise, abs=0.015)


def test_adversarial_inverts_and_lazy_is_random():
    oracle, rng = Oracle.concise(), random.Random(3)
    n = 20000
    adv = sum(ab_verdict(0.0, -10.0, ADVERSARIAL, oracle, 0.2, rng) == "a" for _ in range(n)) / n
    assert adv == pytest.approx(0.2, abs=0.015)  # inverted, then flipped back by noise
    lazy = sum(ab_verdict(0.0, -10.0, LAZY, oracle, 0.2, rng) == "a" for _ in range(n)) / n
    assert lazy == pytest.approx(0.5, abs=0.015)


def test_population_label_agreement_matches_the_ceiling():
    oracle, rng = Oracle.concise(), random.Random(11)
    kinds = assign_kinds(20, 0.05, 0.1, random.Random(0))
    n, agree = 40000, 0
    for _ in range(n):
        agree += ab_verdict(-1.0, -20.0, rng.choice(kinds), oracle, 0.2, rng) == "a"
    assert agree / n == pytest.approx(noise_ceiling(0.2, 0.05, 0.1), abs=0.01)


def test_tie_and_both_bad():
    oracle, rng = Oracle.concise(target=10), random.Random(0)
    assert ab_verdict(-1.0, -2.0, HONEST, oracle, 0.5, rng) == "tie"  # within the tie margin: noise-free
    assert ab_verdict(-60.0, -80.0, HONEST, oracle, 0.5, rng) == "both_bad"
    assert ab_verdict(-60.0, -80.0, ADVERSARIAL, oracle, 0.0, rng) == "both_bad"


def test_thumbs():
    rng = random.Random(5)
    n = 20000
    ups = sum(thumb_verdict(1.0, 0.0, HONEST, 0.2, rng) == "up" for _ in range(n)) / n
    assert ups == pytest.approx(0.8, abs=0.015)
    assert thumb_verdict(-1.0, 0.0, HONEST, 0.0, rng) == "down"
    assert thumb_verdict(-1.0, 0.0, ADVERSARIAL, 0.0, rng) == "up"


def test_rankings():
    rng = random.Random(2)
    scores = [-5.0, 0.0, -20.0]
    assert rank_order(scores, HONEST, 0.0, rng) == [1, 0, 2]
    assert rank_order(scores, ADVERSARIAL, 0.0, rng) == [2, 0, 1]
    n = 10000
    reversed_share = sum(rank_order(scores, HONEST, 0.2, rng) == [2, 0, 1] for _ in range(n)) / n
    assert reversed_share == pytest.approx(0.2, abs=0.015)
    for _ in range(50):
        assert sorted(rank_order(scores, LAZY, 0.2, rng)) == [0, 1, 2]


def test_same_seed_same_verdicts():
    oracle = Oracle.concise()
    draw = lambda seed: [ab_verdict(0.0, -9.0, HONEST, oracle, 0.3, r) for r in [random.Random(seed)] for _ in range(50)]  # noqa: E731
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_win_rate():
    assert win_rate([1.0, 0.0, -1.0, 2.0], [0.0, 0.0, 0.0, 3.0]) == pytest.approx((1 + 0.5 + 0 + 0) / 4)


def test_prompts_heldout_disjoint():
    train = {p[-1]["content"] for p in build_prompts(TRAIN_TOPICS, None)}
    held = {p[-1]["content"] for p in heldout_prompts(16, None)}
    assert len(held) == 16 and not train & held
    assert heldout_prompts(8, "sys")[0][0] == {"role": "system", "content": "sys"}


# ---- summary -------------------------------------------------------------------------------------------


def _cycle(i, **kw):
    base = {"cycle": i, "win_rate": 0.5, "oracle_mean": -10.0, "length_ratio": 1.0, "candidate": f"dpo-{i}",
            "decision": "promoted", "rm_accuracy": 0.7, "rm_heldout_pairs": 10, "gate_kl": 1.0, "champion": f"dpo-{i}"}
    return base | kw


def test_summary_fields_and_goals():
    cycles = [_cycle(1, win_rate=0.6, rm_accuracy=0.6, rm_heldout_pairs=10),
              _cycle(2, win_rate=0.75, rm_accuracy=0.8, rm_heldout_pairs=30, decision="rolled_back"),
              _cycle(3, win_rate=0.72, decision="rejected", reasons=["mean response length x1.9 > budget x1.5"])]
    s = summarize(cycles, ceiling=0.74, hackable=False, length_budget=1.5, kl_to_initial=2.5)
    for key in ("cycles", "final_win_rate", "rm_accuracy", "noise_ceiling", "rm_accuracy_vs_ceiling", "kl",
                "mean_length_ratio", "goal_met"):
        assert key in s
    assert s["cycles"] == 3 and s["final_win_rate"] == 0.72
    assert s["rm_accuracy"] == pytest.approx((0.6 * 10 + 0.8 * 30 + 0.7 * 10) / 50)
    assert s["rm_accuracy_vs_ceiling"] == pytest.approx(s["rm_accuracy"] / 0.74)
    assert s["kl"] == 2.5 and s["kl_source"] == "measured_final_vs_initial"
    assert s["goal_met"] == {"win_rate_ge_0.7_within_5_cycles": True, "rm_accuracy_ge_0.9_of_ceiling": True}
    assert s["first_cycle_win_goal"] == 2
    assert s["promoted"] == ["dpo-1"] and s["rolled_back"] == ["dpo-2"] and s["rejected"] == ["dpo-3"]
    json.dumps(s)


def test_summary_goal_not_met_and_hackable():
    cycles = [_cycle(1, win_rate=0.55, rm_accuracy=None, rm_heldout_pairs=None, length_ratio=1.2),
              _cycle(2, decision="rejected", reasons=["mean response length x1.80 (20.0 -> 36.0 tokens) > budget x1.5"],
                     length_ratio=1.2)]
    s = summarize(cycles, ceiling=0.74, hackable=True, length_budget=1.5, kl_to_initial=None)
    assert s["rm_accuracy"] == pytest.approx(0.7) and s["kl"] == 1.0 and s["kl_source"] == "sum_of_promoted_gate_kls"
    assert s["goal_met"]["win_rate_ge_0.7_within_5_cycles"] is False
    assert s["goal_met"]["hack_rejected_by_length_gate"] is True
    assert s["goal_met"]["served_length_within_budget"] is True
    empty = summarize([], ceiling=0.74, hackable=False, length_budget=1.5, kl_to_initial=None)
    assert empty["cycles"] == 0 and empty["rm_accuracy"] is None and not any(empty["goal_met"].values())


def test_pooled_rm_accuracy_skips_missing():
    assert pooled_rm_accuracy([{"rm_accuracy": float("nan"), "rm_heldout_pairs": 5}, {}]) is None


def test_args_defaults():
    cfg = parse_args(["--tiny"])
    assert cfg.tiny and cfg.max_minutes == 10 and cfg.cycles == 3
    real = parse_args(["--seed", "3", "--learner-env", "LEARNER_MAX_STEPS=2"])
    assert real.max_minutes == 60 and real.seed == 3 and real.learner["LEARNER_MAX_STEPS"] == "2"
    assert parse_args(["--hackable"]).oracle().kind == "length"


# ---- the whole loop, for real, on the tiny model --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.vllm
def test_closed_loop_tiny_one_cycle(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.closed_loop", "--tiny", "--cycles", "1", "--users", "6",
           "--interactions", "32", "--canary-votes", "16", "--canary-min-votes", "8", "--heldout", "6",
           "--max-minutes", "4", "--learner-env", "LEARNER_MAX_STEPS=10", "--learner-env", "LEARNER_RM_MAX_STEPS=8",
           "--learner-env", "LEARNER_GATE_EVAL_PROMPTS=4", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=330)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("cycles", "final_win_rate", "rm_accuracy", "noise_ceiling", "rm_accuracy_vs_ceiling", "kl",
                "mean_length_ratio", "goal_met"):
        assert key in summary, key
    assert summary["cycles"] == 1
    report = json.loads((out / "report.json").read_text())
    assert report["cycles"][0]["learner"]["status"] in ("succeeded", "rejected", "skipped")
    assert report["interaction_counts"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "report.png").is_file()


# ---- regression: found by the closed loop (cycle 2 failed on every run once a LoRA was champion) ---------


def test_reward_model_starts_from_a_lora_champion_saved_for_causal_lm(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from learner.train.base import PolicySource
    from learner.train.loading import load_policy, load_reward_model

    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "lora")  # what the learner publishes for a LoRA policy
    champion = PolicySource("lora", tmp_path / "lora", tiny_model_dir)
    rm = load_reward_model(champion)
    policy = load_policy(champion)
    assert rm.config.num_labels == 1
    assert torch.allclose(rm.model.layers[0].self_attn.q_proj.weight, policy.model.layers[0].self_attn.q_proj.weight)
