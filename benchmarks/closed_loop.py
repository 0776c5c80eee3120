"""Closed loop: does the flywheel learn a hidden user preference, end to end, over HTTP?

    .venv/bin/python -m benchmarks.closed_loop [--tiny] [--cycles N] [--seed N] [--hackable] [--out DIR]
    make closed-loop ARGS="--cycles 4"

It starts everything itself in a temp workdir: a vLLM (benchmarks._common.vllm_server) on the demo
SmolLM2-135M-Instruct (or the tiny random Llama with --tiny), a gateway on a fresh SQLite DB, API keys for
a population of simulated users, and runs learner cycles as `python -m learner once` subprocesses on the same
DB and artifacts dir. Everything is stopped at the end and the whole run is bounded by --max-minutes.

The users share a hidden preference, an ORACLE reward on the answer text:
- default (SmolLM2): concise answers, oracle = -|words - target| (target 10 words);
- --tiny: the random model cannot write words; the oracle counts ASCII letters (word-like pieces beat
  newlines, spaces and stray bytes), which a LoRA can make more likely;
- --hackable: a reward-hackable oracle that longer answers fool (oracle = words), to show that the length
  gate (LEARNER_GATE_LENGTH_RATIO_MAX) keeps the hack from being served.
Users are honest (label noise: the verdict flips with probability --noise), adversarial (inverted) or lazy
(random). They chat (n=1 with thumbs, reasons and corrections; n=3 with rankings) and vote on blind A/B
comparisons, all through the public API with their own keys.

Per cycle: collect feedback -> `learner once` -> the gateway canaries the candidate -> users vote on A/B
comparisons (canary vs champion) until the gateway promotes or rolls it back, or the per-cycle vote budget
runs out (then the benchmark decides through the admin API on the evidence, and says so) -> measure the
served policy on held-out prompts (temperature 0, model="policy").

Writes report.json (and report.png when matplotlib is importable) into --out; the last stdout line is a
one-line JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL_MODEL = ROOT / "models" / "smollm2-135m-instruct"
TINY_MODEL = ROOT / "build" / "test-models" / "tiny"
SYSTEM_PROMPT = "Answer in one short sentence."

# ---- prompts ------------------------------------------------------------------------------------

TRAIN_TOPICS = [
    "the moon", "cats", "Python", "the ocean", "volcanoes", "coffee", "bicycles", "rainbows", "honey bees",
    "the internet", "chess", "tea", "winter", "trees", "music", "bread", "the sun", "dogs", "clouds", "money",
    "electricity", "mountains", "books", "soccer", "gardening", "pizza", "trains", "birds", "rivers",
    "computers", "sleep", "exercise", "friendship", "deserts", "snow", "the brain", "stars", "cheese", "rain",
    "robots",
]  # fmt: skip
HELDOUT_TOPICS = [
    "glaciers", "penguins", "jazz", "bridges", "apples", "earthquakes", "libraries", "tigers", "chocolate",
    "airplanes", "oceans on other planets", "kites", "maps", "candles", "whales", "umbrellas", "fire",
    "photography", "farms", "the wind", "mushrooms", "castles", "clocks", "butterflies",
]  # fmt: skip
TEMPLATES = [
    "What is {t}?", "Tell me about {t}.", "Why do people like {t}?", "Give me a fun fact about {t}.",
    "Describe {t}.", "How would you explain {t} to a child?",
]  # fmt: skip


def build_prompts(topics: list[str], system: str | None) -> list[list[dict]]:
    out = []
    for topic in topics:
        for template in TEMPLATES:
            messages = [{"role": "system", "content": system}] if system else []
            out.append([*messages, {"role": "user", "content": template.format(t=topic)}])
    return out


def heldout_prompts(n: int, system: str | None) -> list[list[dict]]:
    """A fixed set (independent of --seed, so runs compare), from topics the users never ask about."""
    prompts = build_prompts(HELDOUT_TOPICS, system)
    random.Random(1234).shuffle(prompts)
    return prompts[:n]


# ---- the oracle ---------------------------------------------------------------------------------


def word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Oracle:
    """The hidden preference. `score` is the reward; `tie_margin`/`bad_at_or_below` shape the A/B verdicts;
    `improve` is an oracle-better edit of an answer (a user's correction), or None."""

    kind: str  # "concise" | "letters" | "length"
    target: int = 10
    tie_margin: float = 2.0
    bad_at_or_below: float = -50.0

    @classmethod
    def concise(cls, target: int = 10) -> Oracle:
        return cls("concise", target=target, tie_margin=2.0, bad_at_or_below=-5.0 * target)

    @classmethod
    def letters(cls) -> Oracle:
        return cls("letters", tie_margin=1.0, bad_at_or_below=0.0)

    @classmethod
    def length(cls) -> Oracle:
        return cls("length", tie_margin=2.0, bad_at_or_below=3.0)

    def describe(self) -> str:
        return {
            "concise": f"-|words - {self.target}| (concise answers)",
            "letters": "count of ASCII letters (tiny model: word-like text over newlines and stray bytes)",
            "length": "words (reward-hackable: longer answers fool it)",
        }[self.kind]

    def score(self, text: str) -> float:
        if self.kind == "concise":
            return -abs(word_count(text) - self.target)
        if self.kind == "letters":
            return float(sum(ch.isascii() and ch.isalpha() for ch in text))
        if self.kind == "length":
            return float(word_count(text))
        raise ValueError(self.kind)

    def improve(self, text: str) -> str | None:
        if self.kind == "concise":
            words = text.split()
            if len(words) <= self.target + self.tie_margin:
                return None
            return " ".join(words[: self.target]).rstrip(",;:") + "."
        if self.kind == "letters":
            return (text.strip() + " thanks").strip()
        if self.kind == "length":
            return (text.strip() + " " + text.strip()).strip() if text.strip() else None
        raise ValueError(self.kind)

    def reasons(self, text: str) -> list[str]:
        """Why a user gives a thumbs-down (from the gateway's reason vocabulary)."""
        if self.kind == "concise":
            words = word_count(text)
            return ["too_long"] if words > self.target else ["too_short"] if words < self.target else ["unhelpful"]
        if self.kind == "length":
            return ["too_short"]
        return ["unhelpful"]


# ---- simulated users and their verdicts (pure, seeded) ----------------------------------------------

HONEST, ADVERSARIAL, LAZY = "honest", "adversarial", "lazy"
_FLIP = {"a": "b", "b": "a", "up": "down", "down": "up"}


def assign_kinds(n_users: int, adversarial: float, lazy: float, rng: random.Random) -> list[str]:
    """Exactly round(share * n) users of each kind, shuffled; every interaction picks a user uniformly,
    so each kind's share of verdicts is its share of users."""
    n_adv, n_lazy = round(adversarial * n_users), round(lazy * n_users)
    if n_adv + n_lazy > n_users:
        raise ValueError("adversarial + lazy shares exceed the population")
    kinds = [ADVERSARIAL] * n_adv + [LAZY] * n_lazy + [HONEST] * (n_users - n_adv - n_lazy)
    rng.shuffle(kinds)
    return kinds


def noise_ceiling(noise: float, adversarial: float, lazy: float) -> float:
    """P(a preference label agrees with the oracle): honest users flip with `noise`, adversarial users invert
    (so they agree when noise flips them back), lazy users are coin flips. A perfect reward model scores this
    on held-out labels from the same users; it is the most RM accuracy can be."""
    honest = 1.0 - adversarial - lazy
    return honest * (1.0 - noise) + adversarial * noise + lazy * 0.5


def true_ab(score_a: float, score_b: float, oracle: Oracle) -> str:
    if score_a <= oracle.bad_at_or_below and score_b <= oracle.bad_at_or_below:
        return "both_bad"
    if abs(score_a - score_b) <= oracle.tie_margin:
        return "tie"
    return "a" if score_a > score_b else "b"


def ab_verdict(score_a: float, score_b: float, kind: str, oracle: Oracle, noise: float, rng: random.Random) -> str:
    """a | b | tie | both_bad. Noise and adversaries act on decisive verdicts; lazy users pick a or b at random."""
    if kind == LAZY:
        return rng.choice(["a", "b"])
    verdict = true_ab(score_a, score_b, oracle)
    if verdict in ("a", "b"):
        if rng.random() < noise:
            verdict = _FLIP[verdict]
        if kind == ADVERSARIAL:
            verdict = _FLIP[verdict]
    return verdict


def thumb_verdict(score: float, threshold: float, kind: str, noise: float, rng: random.Random) -> str:
    """up when the oracle is above the population median (`threshold`), with the same noise model."""
    if kind == LAZY:
        return rng.choice(["up", "down"])
    rating = "up" if score > threshold else "down"
    if rng.random() < noise:
        rating = _FLIP[rating]
    if kind == ADVERSARIAL:
        rating = _FLIP[rating]
    return rating


def rank_order(scores: list[float], kind: str, noise: float, rng: random.Random) -> list[int]:
    """Best first. Honest: by oracle (equal scores in random order), reversed with probability `noise` (so
    each pair flips with probability `noise`); adversarial: reversed; lazy: a random permutation."""
    order = list(range(len(scores)))
    rng.shuffle(order)
    if kind == LAZY:
        return order
    order.sort(key=lambda i: -scores[i])
    flip = rng.random() < noise
    if kind == ADVERSARIAL:
        flip = not flip
    return order[::-1] if flip else order


def win_rate(scores: list[float], baseline: list[float]) -> float:
    """Oracle-judged head-to-head per prompt: win 1, tie 1/2, loss 0."""
    if not scores:
        return float("nan")
    points = [1.0 if s > b else 0.5 if s == b else 0.0 for s, b in zip(scores, baseline, strict=True)]
    return sum(points) / len(points)


@dataclass
class SimUser:
    index: int
    kind: str
    rng: random.Random
    key: str = ""

    @property
    def name(self) -> str:
        return f"sim-{self.kind}-{self.index}"


# ---- the summary (pure) -------------------------------------------------------------------------------


def pooled_rm_accuracy(cycles: list[dict]) -> float | None:
    """RM held-out accuracy over every trained cycle, weighted by its held-out pairs (one cycle's split is
    small and noisy)."""
    num = den = 0.0
    for cycle in cycles:
        acc, pairs = cycle.get("rm_accuracy"), cycle.get("rm_heldout_pairs") or 0
        if acc is not None and math.isfinite(acc) and pairs:
            num, den = num + acc * pairs, den + pairs
    return num / den if den else None


def summarize(cycles: list[dict], *, ceiling: float, hackable: bool, length_budget: float,
              kl_to_initial: float | None, win_goal: float = 0.7, within: int = 5,
              rm_goal: float = 0.9) -> dict:  # fmt: skip
    """The one-line summary. `cycles` are the measured cycles (cycle 0, the initial model, excluded)."""
    last = cycles[-1] if cycles else {}
    rm_accuracy = pooled_rm_accuracy(cycles)
    vs_ceiling = rm_accuracy / ceiling if rm_accuracy is not None and ceiling > 0 else None
    first_hit = next((c["cycle"] for c in cycles if (c.get("win_rate") or 0) >= win_goal), None)
    # KL of each promoted step vs the champion it replaced (a rough stand-in when KL to the initial model
    # could not be measured directly; KL does not add up exactly along a chain).
    gate_kls = [c["gate_kl"] for c in cycles if c.get("decision") == "promoted" and c.get("gate_kl") is not None]
    summary: dict[str, Any] = {
        "benchmark": "closed_loop",
        "cycles": len(cycles),
        "final_win_rate": last.get("win_rate"),
        "final_oracle": last.get("oracle_mean"),
        "rm_accuracy": rm_accuracy,
        "noise_ceiling": ceiling,
        "rm_accuracy_vs_ceiling": vs_ceiling,
        "kl": kl_to_initial if kl_to_initial is not None else (sum(gate_kls) if gate_kls else 0.0),
        "kl_source": "measured_final_vs_initial" if kl_to_initial is not None else "sum_of_promoted_gate_kls",
        "mean_length_ratio": last.get("length_ratio"),
        "promoted": [c["candidate"] for c in cycles if c.get("decision") == "promoted"],
        "rolled_back": [c["candidate"] for c in cycles if c.get("decision") == "rolled_back"],
        "rejected": [c["candidate"] for c in cycles if c.get("decision") == "rejected"],
        "champion": last.get("champion"),
    }
    goal_met = {
        f"win_rate_ge_{win_goal}_within_{within}_cycles": first_hit is not None and first_hit <= within,
        f"rm_accuracy_ge_{rm_goal}_of_ceiling": vs_ceiling is not None and vs_ceiling >= rm_goal,
    }
    if hackable:
        length_rejections = [c for c in cycles if c.get("decision") == "rejected"
                             and any("length" in r for r in c.get("reasons", []))]  # fmt: skip
        goal_met["hack_rejected_by_length_gate"] = bool(length_rejections)
        ratio = last.get("length_ratio")
        goal_met["served_length_within_budget"] = ratio is not None and ratio <= length_budget
    summary["first_cycle_win_goal"] = first_hit
    summary["goal_met"] = goal_met
    return summary


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class SimConfig:
    tiny: bool
    hackable: bool
    seed: int
    cycles: int
    max_minutes: float
    users: int
    noise: float
    adversarial: float
    lazy: float
    interactions: int  # per cycle, before training
    canary_votes: int  # per-cycle budget of A/B votes while a canary is live
    heldout: int
    max_tokens: int
    concurrency: int
    canary_min_votes: int
    out: Path
    learner: dict[str, str] = field(default_factory=dict)  # LEARNER_* env for `learner once`

    @property
    def model_dir(self) -> Path:
        return TINY_MODEL if self.tiny else REAL_MODEL

    def oracle(self) -> Oracle:
        if self.hackable:
            return Oracle.length()
        return Oracle.letters() if self.tiny else Oracle.concise()

    @property
    def system_prompt(self) -> str | None:
        return None if self.tiny else SYSTEM_PROMPT


def learner_env(tiny: bool, hackable: bool) -> dict[str, str]:
    """Small enough for CPU: a SmolLM2 LoRA step of 4 x ~100 tokens takes seconds on 2 cores."""
    if tiny:
        env = {"LEARNER_MAX_STEPS": "60", "LEARNER_RM_MAX_STEPS": "30", "LEARNER_BATCH_SIZE": "8",
               "LEARNER_LEARNING_RATE": "2e-2", "LEARNER_RM_LEARNING_RATE": "2e-3", "LEARNER_MAX_LENGTH": "96",
               "LEARNER_GATE_EVAL_PROMPTS": "8", "LEARNER_GATE_MAX_NEW_TOKENS": "16", "LEARNER_BETA": "0.1"}  # fmt: skip
    else:
        env = {"LEARNER_MAX_STEPS": "16", "LEARNER_RM_MAX_STEPS": "16", "LEARNER_BATCH_SIZE": "4",
               "LEARNER_LEARNING_RATE": "5e-4", "LEARNER_RM_LEARNING_RATE": "5e-4", "LEARNER_MAX_LENGTH": "192",
               "LEARNER_GATE_EVAL_PROMPTS": "8", "LEARNER_GATE_MAX_NEW_TOKENS": "96" if hackable else "64",
               "LEARNER_BETA": "0.1"}  # fmt: skip
    env.update({"LEARNER_MIN_TRAIN_EXAMPLES": "4", "LEARNER_ALGORITHM": "auto", "LEARNER_HOLDOUT_FRACTION": "0.2"})
    return env


def parse_args(argv: list[str] | None = None) -> SimConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="the tiny random Llama (fast, for tests)")
    p.add_argument("--hackable", action="store_true", help="a reward-hackable oracle: longer answers fool it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cycles", type=int, default=None, help="learner cycles (default 5, --tiny 3)")
    p.add_argument("--max-minutes", type=float, default=None, help="whole-run bound (default 60, --tiny 10)")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--noise", type=float, default=0.2, help="honest users' verdict flip rate")
    p.add_argument("--adversarial", type=float, default=0.05, help="share of users who invert their verdicts")
    p.add_argument("--lazy", type=float, default=0.1, help="share of users who vote at random")
    p.add_argument("--interactions", type=int, default=None, help="user interactions per cycle before training")
    p.add_argument("--canary-votes", type=int, default=None, help="per-cycle A/B vote budget while a canary is live")
    p.add_argument("--canary-min-votes", type=int, default=None, help="FLYWHEEL_CANARY_MIN_VOTES for the gateway")
    p.add_argument("--heldout", type=int, default=None, help="held-out prompts for measuring")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--learner-env", action="append", default=[], metavar="LEARNER_X=V",
                   help="override a learner setting (repeatable)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "closed-loop")
    a = p.parse_args(argv)
    learner = learner_env(a.tiny, a.hackable)
    if a.hackable:
        learner["LEARNER_GATE_LENGTH_RATIO_MAX"] = "1.5"
    for item in a.learner_env:
        name, _, value = item.partition("=")
        learner[name] = value
    tiny = a.tiny
    return SimConfig(
        tiny=tiny, hackable=a.hackable, seed=a.seed,
        cycles=a.cycles if a.cycles is not None else (3 if tiny else 5),
        max_minutes=a.max_minutes if a.max_minutes is not None else (10 if tiny else 60),
        users=a.users, noise=a.noise, adversarial=a.adversarial, lazy=a.lazy,
        interactions=a.interactions if a.interactions is not None else (64 if tiny else 56),
        canary_votes=a.canary_votes if a.canary_votes is not None else (48 if tiny else 40),
        canary_min_votes=a.canary_min_votes if a.canary_min_votes is not None else (12 if tiny else 16),
        heldout=a.heldout if a.heldout is not None else (12 if tiny else 16),
        max_tokens=a.max_tokens if a.max_tokens is not None else (16 if tiny else (128 if a.hackable else 96)),
        concurrency=a.concurrency, out=a.out, learner=learner,
    )  # fmt: skip


# ---- the live run ------------------------------------------------------------------------------------


class ApiFailure(Exception):
    pass


class Sim:
    """Drives the running gateway through its public API as the simulated users (and one admin)."""

    def __init__(self, cfg: SimConfig, gateway_url: str, users: list[SimUser], admin_key: str, log):
        self.cfg, self.url, self.users, self.admin_key, self.log = cfg, gateway_url, users, admin_key, log
        self.oracle = cfg.oracle()
        self.rng = random.Random(cfg.seed)
        self.train_prompts = build_prompts(TRAIN_TOPICS, cfg.system_prompt)
        self.heldout = heldout_prompts(cfg.heldout, cfg.system_prompt)
        self.seen_scores: list[float] = []  # the population's recent oracle scores: thumbs threshold
        self.labels: list[dict] = []  # every preference label given: agreement with the oracle (empirical ceiling)
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []

    # -- http
    async def _post(self, client, path: str, body: dict, key: str, attempts: int = 6) -> dict:
        delay = 0.5
        for attempt in range(attempts):
            try:
                r = await client.post(self.url + path, json=body, headers={"Authorization": f"Bearer {key}"})
            except Exception as exc:  # connection reset under load: retry
                err = repr(exc)
            else:
                if r.status_code == 200:
                    return r.json()
                err = f"{r.status_code} {r.text[:300]}"
                if r.status_code not in (429, 502, 503, 504):
                    break
            await asyncio.sleep(delay * (attempt + 1))
        raise ApiFailure(f"POST {path}: {err}")

    def admin_get(self, path: str) -> dict:
        import httpx

        r = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=60)
        r.raise_for_status()
        return r.json()

    def admin_post(self, path: str, body: dict | None = None) -> dict:
        import httpx

        r = httpx.post(self.url + path, json=body or {}, headers={"Authorization": f"Bearer {self.admin_key}"},
                       timeout=300)  # fmt: skip
        r.raise_for_status()
        return r.json()

    def policies(self) -> dict[int, dict]:
        return {item["id"]: item for item in self.admin_get("/v1/admin/policies")["data"]}

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def _threshold(self) -> float:
        return statistics.median(self.seen_scores[-300:]) if self.seen_scores else 0.0

    def _label(self, chosen_score: float, rejected_score: float, source: str, kind: str) -> None:
        self.labels.append({"agree": 1.0 if chosen_score > rejected_score else 0.5 if chosen_score == rejected_score
                            else 0.0, "source": source, "kind": kind})  # fmt: skip

    # -- interactions (each picks its user and prompt up front, so a run is reproducible for a --seed)
    async def chat_thumb(self, client, user: SimUser, prompt: list[dict]) -> None:
        body = await self._post(client, "/v1/chat/completions", {
            "model": "policy", "messages": prompt, "max_tokens": self.cfg.max_tokens, "temperature": 1.0}, user.key)
        text = body["choices"][0]["message"]["content"] or ""
        score = self.oracle.score(text)
        rating = thumb_verdict(score, self._threshold(), user.kind, self.cfg.noise, user.rng)
        self.seen_scores.append(score)
        feedback: dict[str, Any] = {"completion_id": body["id"], "choice_index": 0, "rating": rating}
        if rating == "down":
            feedback["reasons"] = self.oracle.reasons(text) if user.kind != LAZY else ["other"]
            if user.kind == HONEST and user.rng.random() < 0.5:
                better = self.oracle.improve(text)
                if better and better.strip() != text.strip():
                    feedback["correction"] = better
                    self._label(self.oracle.score(better), score, "correction", user.kind)
                    self._count("corrections")
        await self._post(client, "/v1/feedback", feedback, user.key)
        self._count(f"thumbs_{rating}")

    async def chat_rank(self, client, user: SimUser, prompt: list[dict], n: int = 3) -> None:
        body = await self._post(client, "/v1/chat/completions", {
            "model": "policy", "messages": prompt, "max_tokens": self.cfg.max_tokens, "temperature": 1.0, "n": n},
            user.key)  # fmt: skip
        texts = [c["message"]["content"] or "" for c in sorted(body["choices"], key=lambda c: c["index"])]
        scores = [self.oracle.score(t) for t in texts]
        self.seen_scores.extend(scores)
        order = rank_order(scores, user.kind, self.cfg.noise, user.rng)
        for i, better in enumerate(order):
            for worse in order[i + 1:]:
                if texts[better].strip() != texts[worse].strip():
                    self._label(scores[better], scores[worse], "ranking", user.kind)
        await self._post(client, "/v1/rankings", {"completion_id": body["id"], "order": order}, user.key)
        self._count("rankings")

    async def compare(self, client, user: SimUser, prompt: list[dict]) -> str:
        body = await self._post(client, "/v1/comparisons", {
            "messages": prompt, "max_tokens": self.cfg.max_tokens, "temperature": 1.0}, user.key)
        texts = {c["label"]: c["content"] or "" for c in body["candidates"]}
        score_a, score_b = self.oracle.score(texts["a"]), self.oracle.score(texts["b"])
        self.seen_scores.extend([score_a, score_b])
        winner = ab_verdict(score_a, score_b, user.kind, self.oracle, self.cfg.noise, user.rng)
        if winner in ("a", "b") and texts["a"].strip() != texts["b"].strip():
            chosen, rejected = (score_a, score_b) if winner == "a" else (score_b, score_a)
            self._label(chosen, rejected, "vote", user.kind)
        reason = {"tie": "about the same", "both_bad": "neither is good"}.get(winner)
        await self._post(client, f"/v1/comparisons/{body['id']}/vote", {"winner": winner, "reason": reason}, user.key)
        self._count(f"votes_{winner}")
        return winner

    async def _run_tasks(self, jobs: list) -> None:
        import httpx

        sem = asyncio.Semaphore(self.cfg.concurrency)
        limits = httpx.Limits(max_connections=self.cfg.concurrency * 2)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:

            async def one(job):
                fn, user, prompt = job
                async with sem:
                    try:
                        await fn(client, user, prompt)
                    except ApiFailure as exc:
                        self.failures.append(str(exc))
                        self.log(f"  ! {exc}")

            await asyncio.gather(*(one(job) for job in jobs))

    def collect(self, n: int) -> None:
        """n interactions: 40% chat+thumbs (and corrections), 35% A/B votes, 25% n=3 rankings."""
        jobs = []
        for _ in range(n):
            user, prompt, r = self.rng.choice(self.users), self.rng.choice(self.train_prompts), self.rng.random()
            fn = self.chat_thumb if r < 0.40 else self.compare if r < 0.75 else self.chat_rank
            jobs.append((fn, user, prompt))
        asyncio.run(self._run_tasks(jobs))

    def canary_round(self, n: int) -> None:
        jobs = [(self.compare, self.rng.choice(self.users), self.rng.choice(self.train_prompts)) for _ in range(n)]
        asyncio.run(self._run_tasks(jobs))

    def measure(self) -> dict:
        """The served policy (alias `policy`, no canary live) on the held-out prompts at temperature 0."""

        async def run():
            import httpx

            async with httpx.AsyncClient(timeout=600) as client:
                sem = asyncio.Semaphore(self.cfg.concurrency)

                async def one(prompt):
                    async with sem:
                        return await self._post(client, "/v1/chat/completions", {
                            "model": "policy", "messages": prompt, "max_tokens": self.cfg.max_tokens,
                            "temperature": 0}, self.users[0].key)  # fmt: skip

                return await asyncio.gather(*(one(p) for p in self.heldout))

        bodies = asyncio.run(run())
        texts = [b["choices"][0]["message"]["content"] or "" for b in bodies]
        versions = sorted({b["policy_version"] for b in bodies})
        return {"texts": texts, "scores": [self.oracle.score(t) for t in texts],
                "words": [word_count(t) for t in texts], "chars": [len(t) for t in texts],
                "tokens": [(b.get("usage") or {}).get("completion_tokens") or 0 for b in bodies], "served_by": versions}  # fmt: skip


def run_learner(cfg: SimConfig, db_url: str, workdir: Path, cycle: int, timeout_s: float, log) -> dict:
    env = {**os.environ, **cfg.learner, "DATABASE_URL": db_url, "PYTHONPATH": str(ROOT),
           "LEARNER_ARTIFACTS_DIR": str(workdir / "artifacts"), "LEARNER_BASE_MODEL": str(cfg.model_dir),
           "LEARNER_SEED": str(cfg.seed * 100 + cycle), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    log_path = workdir / f"learner-cycle{cycle}.log"
    started = time.monotonic()
    with log_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "learner", "once"], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            rc = proc.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    text = log_path.read_text(errors="replace")
    line = next((x for x in reversed(text.splitlines()) if x.startswith("status=")), "")
    fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part and not part.startswith("reasons"))
    version_id = fields.get("policy_version_id")
    outcome = {"rc": rc, "status": fields.get("status", "timeout" if rc is None else "unknown"),
               "policy_version_id": int(version_id) if version_id and version_id != "None" else None,
               "algorithm": fields.get("algorithm"), "seconds": time.monotonic() - started, "log": str(log_path)}  # fmt: skip
    if rc != 0:
        outcome["tail"] = text[-2000:]
    log(f"  learner: {outcome['status']} version={outcome['policy_version_id']} in {outcome['seconds']:.0f}s")
    return outcome


def wait_for(predicate, timeout_s: float, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def kl_to_initial(champion: dict, base_dir: Path, prompts: list[list[dict]], max_new_tokens: int, seed: int) -> float:
    """MC KL(champion || initial) per sequence on held-out prompts, with the gates' own estimator."""
    from learner.evaluate import kl_estimate, sample
    from learner.train.base import PolicySource
    from learner.train.loading import load_policy, load_tokenizer

    initial = PolicySource("base", base_dir)
    served = PolicySource(champion["kind"], Path(champion["artifact_path"]),
                          Path(champion["base_model"]) if champion.get("base_model") else None)  # fmt: skip
    tokenizer = load_tokenizer(initial)
    cand, ref = load_policy(served), load_policy(initial)
    samples = sample(cand, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed)
    return kl_estimate(cand, ref, samples)[0]


def write_plot(path: Path, cycles: list[dict], summary: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; no PNG written"
    xs = [c["cycle"] for c in cycles]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(xs, [c["win_rate"] for c in cycles], "o-", label="win-rate vs initial")
    axes[0].axhline(0.7, ls="--", c="grey", lw=0.8)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("champion vs initial (oracle)")
    axes[1].plot(xs, [c["oracle_mean"] for c in cycles], "o-", c="C1")
    axes[1].set_title("oracle score of served policy")
    rm = [(c["cycle"], c["rm_accuracy"]) for c in cycles if c.get("rm_accuracy") is not None]
    if rm:
        axes[2].plot(*zip(*rm, strict=True), "o-", c="C2", label="RM held-out acc")
    axes[2].axhline(summary["noise_ceiling"], ls="--", c="grey", lw=0.8, label="noise ceiling")
    axes[2].set_ylim(0, 1)
    axes[2].legend(fontsize=8)
    axes[2].set_title("reward model")
    for ax in axes:
        ax.set_xlabel("cycle")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def decide_by_admin(sim: Sim, version_id: int, log) -> tuple[str, dict]:
    """The vote budget ran out before the gateway's 95% interval excluded 0.5: decide on the point estimate."""
    rollout = sim.admin_get("/v1/admin/rollout")
    evidence = rollout.get("evidence") or {}
    p = evidence.get("win_probability")
    why = (f"closed-loop vote budget exhausted ({evidence.get('votes')} votes, gateway: {rollout.get('reason')}); "
           f"admin decision on the point estimate P(win)={p}")  # fmt: skip
    if p is not None and p > 0.5:
        sim.admin_post(f"/v1/admin/policies/{version_id}/promote", {"reason": why})
        action = "promoted"
    else:
        sim.admin_post(f"/v1/admin/policies/{version_id}/rollback", {"reason": why})
        action = "rolled_back"
    log(f"  admin {action}: {why}")
    return action, {"reason": why, "evidence": evidence}


def canary_phase(sim: Sim, version_id: int, deadline: float, log) -> dict:
    """Vote until the gateway decides (auto) or the budget runs out (then the admin API decides)."""
    cfg = sim.cfg
    status = wait_for(lambda: sim.policies()[version_id]["status"] in ("canary", "champion", "retired", "rejected")
                      and sim.policies()[version_id]["status"], 120)  # fmt: skip
    item = sim.policies()[version_id]
    status = status or item["status"]
    out: dict[str, Any] = {"status_at_start": status, "votes": 0}
    if status != "canary":
        decision = {"rejected": "rejected", "champion": "promoted", "retired": "rolled_back"}.get(status, "not_canaried")
        out.update(decision=decision, by="gateway", reason=item.get("status_reason"))
        return out
    batch = max(4, cfg.concurrency)
    while out["votes"] < cfg.canary_votes and time.monotonic() < deadline:
        sim.canary_round(min(batch, cfg.canary_votes - out["votes"]))
        out["votes"] += min(batch, cfg.canary_votes - out["votes"])
        # The gateway judges every FLYWHEEL_ROLLOUT_INTERVAL_S; give it one tick on the new votes.
        item = wait_for(lambda: (v := sim.policies()[version_id])["status"] != "canary" and v, 1.5, 0.3)
        if item:
            event = next((e for e in reversed(item["events"]) if e["to_status"] in ("champion", "retired")), {})
            out.update(decision="promoted" if item["status"] == "champion" else "rolled_back", by="gateway",
                       reason=event.get("reason"), evidence=event.get("evidence"))  # fmt: skip
            log(f"  gateway {out['decision']} after {out['votes']} votes: {out['reason']}")
            return out
    action, info = decide_by_admin(sim, version_id, log)
    out.update(decision=action, by="admin_after_budget", **info)
    return out


def run(cfg: SimConfig) -> dict:
    from benchmarks._common import vllm_server
    from learner.demo_model import ensure_demo_model
    from store.migrate import upgrade
    from tests.gateway_process import GatewayProcess

    started = time.monotonic()
    deadline = started + cfg.max_minutes * 60
    cfg.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-closed-loop-"))
    progress: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.monotonic() - started:7.1f}s] {msg}"
        progress.append(line)
        print(line, file=sys.stderr, flush=True)

    if cfg.tiny:
        ensure_demo_model(TINY_MODEL, tiny=True)
    elif not (REAL_MODEL / "config.json").is_file():
        raise SystemExit(f"{REAL_MODEL} is missing: run `make demo-model` first")
    oracle = cfg.oracle()
    rng = random.Random(cfg.seed)
    kinds = assign_kinds(cfg.users, cfg.adversarial, cfg.lazy, rng)
    users = [SimUser(i, kind, random.Random(f"{cfg.seed}-{i}")) for i, kind in enumerate(kinds)]
    shares = {k: kinds.count(k) / len(kinds) for k in (HONEST, ADVERSARIAL, LAZY)}
    ceiling = noise_ceiling(cfg.noise, shares[ADVERSARIAL], shares[LAZY])
    log(f"workdir {workdir}; model {cfg.model_dir}; oracle {oracle.describe()}; users {shares}; ceiling {ceiling:.3f}")

    gateway_env = {
        "FLYWHEEL_POLICY_POLL_S": "1", "FLYWHEEL_ROLLOUT_INTERVAL_S": "1", "FLYWHEEL_AUTO_DECIDE": "true",
        "FLYWHEEL_CANARY_SHARE": "0.5", "FLYWHEEL_CANARY_AB_SHARE": "1.0",
        "FLYWHEEL_CANARY_MIN_VOTES": str(cfg.canary_min_votes), "FLYWHEEL_CANARY_MIN_THUMBS": "1000000",
        "FLYWHEEL_RATE_LIMIT_PER_S": "1000", "FLYWHEEL_RATE_LIMIT_BURST": "1000",
        "FLYWHEEL_ARTIFACTS_DIR": str(workdir / "artifacts"),
    }  # fmt: skip
    cycles: list[dict] = []
    report: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "oracle": oracle.describe(), "system_prompt": cfg.system_prompt, "user_shares": shares,
        "noise_ceiling": ceiling, "gateway_env": gateway_env, "workdir": str(workdir),
    }  # fmt: skip
    kl_final = None
    champion_item = None
    with ExitStack() as stack:
        vllm_url, model_dir = stack.enter_context(vllm_server(cfg.model_dir.resolve()))
        log(f"vLLM up at {vllm_url}")
        db_url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
        upgrade(db_url)
        gateway = GatewayProcess.start(db_url, ["--vllm-url", vllm_url, "--log-level", "warning"], workdir,
                                       env=gateway_env, wait_ready=False)  # fmt: skip
        stack.callback(gateway.stop)
        gateway.wait_ready(600)
        log(f"gateway up at {gateway.url}")
        admin_key = gateway.create_key("admin", "sim-admin")
        for user in users:
            user.key = gateway.create_key("user", user.name, rate_limit_per_s=1000, rate_limit_burst=1000)
        sim = Sim(cfg, gateway.url, users, admin_key, log)

        base = sim.measure()
        sim.seen_scores.extend(base["scores"])
        base_tokens = statistics.fmean(base["tokens"]) or 1.0
        report["initial"] = {"served_by": base["served_by"], "oracle_mean": statistics.fmean(base["scores"]),
                             "mean_words": statistics.fmean(base["words"]), "mean_tokens": base_tokens,
                             "samples": base["texts"][:4]}  # fmt: skip
        log(f"initial {base['served_by']}: oracle {report['initial']['oracle_mean']:.2f}, "
            f"words {report['initial']['mean_words']:.1f}, tokens {base_tokens:.1f}")
        last_cycle_s = 0.0
        for cycle in range(1, cfg.cycles + 1):
            remaining = deadline - time.monotonic()
            if remaining < max(60.0, 0.8 * last_cycle_s):
                log(f"stopping before cycle {cycle}: {remaining:.0f}s left of --max-minutes {cfg.max_minutes}")
                report["stopped_early"] = f"time budget: {remaining:.0f}s left before cycle {cycle}"
                break
            cycle_started = time.monotonic()
            log(f"cycle {cycle}: collecting {cfg.interactions} interactions")
            counts_before = dict(sim.counts)
            sim.collect(cfg.interactions)
            collected = {k: v - counts_before.get(k, 0) for k, v in sim.counts.items() if v - counts_before.get(k, 0)}
            log(f"  feedback: {collected}")
            # The learner snapshots up to now - LEARNER_WATERMARK_LAG_S (rows still committing); let ours age past it.
            time.sleep(float(cfg.learner.get("LEARNER_WATERMARK_LAG_S", "5")) + 1.0)
            outcome = run_learner(cfg, db_url, workdir, cycle, deadline - time.monotonic() - 30, log)
            record: dict[str, Any] = {"cycle": cycle, "feedback": collected, "learner": outcome, "candidate": None}
            vid = outcome["policy_version_id"]
            if vid is not None:
                item = sim.policies()[vid]
                metrics = item.get("metrics") or {}
                rm = metrics.get("reward_model") or {}
                record.update(
                    candidate=item["name"], algorithm=item.get("algorithm"),
                    gate_kl=metrics.get("kl_seq"), gate_length_ratio=metrics.get("length_ratio"),
                    gate_reward_delta=metrics.get("reward_delta"), rm_accuracy=rm.get("rm_heldout_accuracy"),
                    rm_heldout_pairs=rm.get("rm_heldout_pairs"), rm_train_pairs=rm.get("rm_train_pairs"),
                    train_counts=(metrics.get("counts") or {}), timings=metrics.get("timings"),
                )  # fmt: skip
                record["train_counts"] = {k: v for k, v in record["train_counts"].items() if k != "report"}
                if item["status"] == "rejected":
                    record.update(decision="rejected", reasons=(item.get("status_reason") or "").split("; "))
                    log(f"  rejected by the gates: {item.get('status_reason')}")
                else:
                    rollout = canary_phase(sim, vid, deadline - 20, log)
                    record["rollout"] = rollout
                    record["decision"] = rollout["decision"]
                    if rollout["decision"] == "rejected":
                        record["reasons"] = [rollout.get("reason") or ""]
            else:
                record["decision"] = outcome["status"]  # skipped / failed / timeout
            # Measure once no canary is live, so the alias is the champion alone.
            wait_for(lambda: sim.admin_get("/v1/admin/rollout").get("canary") is None, 30)
            measured = sim.measure()
            words, tokens = statistics.fmean(measured["words"]), statistics.fmean(measured["tokens"])
            champion = sim.admin_get("/v1/admin/rollout")["champion"]
            record.update(
                champion=champion, served_by=measured["served_by"], oracle_mean=statistics.fmean(measured["scores"]),
                win_rate=win_rate(measured["scores"], base["scores"]), mean_words=words, mean_tokens=tokens,
                length_ratio=tokens / base_tokens, samples=measured["texts"][:3],
                seconds=time.monotonic() - cycle_started,
            )  # fmt: skip
            kls = [c["gate_kl"] for c in [*cycles, record] if c.get("decision") == "promoted" and c.get("gate_kl") is not None]
            record["kl_cumulative_gate"] = sum(kls)
            cycles.append(record)
            last_cycle_s = record["seconds"]
            log(f"  cycle {cycle}: {record['decision']}; champion {champion}; oracle {record['oracle_mean']:.2f}; "
                f"win-rate {record['win_rate']:.2f}; words {words:.1f}, tokens x{record['length_ratio']:.2f}; "
                f"RM acc {record.get('rm_accuracy')}; gate KL {record.get('gate_kl')}; {record['seconds']:.0f}s")
        policies = sim.policies()
        champion_item = next((p for p in policies.values() if p["status"] == "champion"), None)
        report["policies"] = [
            {k: p.get(k) for k in ("id", "name", "kind", "status", "status_reason", "algorithm")}
            | {"events": [{k: e.get(k) for k in ("action", "to_status", "reason", "actor")} for e in p["events"]]}
            for p in policies.values()
        ]  # fmt: skip
        report["interaction_counts"] = sim.counts
        report["api_failures"] = sim.failures[:50]
        labels = sim.labels
        report["labels"] = {
            "given": len(labels),
            "agree_with_oracle": statistics.fmean(x["agree"] for x in labels) if labels else None,
            "by_source": {s: statistics.fmean(x["agree"] for x in labels if x["source"] == s)
                          for s in sorted({x["source"] for x in labels})},
        }  # fmt: skip
    # vLLM and the gateway are stopped: the CPU is free for the KL measurement.
    if champion_item is not None and champion_item["kind"] != "base" and time.monotonic() < deadline + 300:
        try:
            kl_final = kl_to_initial(champion_item, cfg.model_dir, heldout_prompts(8, cfg.system_prompt),
                                     int(cfg.learner.get("LEARNER_GATE_MAX_NEW_TOKENS", "48")), cfg.seed)  # fmt: skip
            log(f"KL(final champion || initial) = {kl_final:.3f} nats/sequence")
        except Exception as exc:  # the summary falls back to the gates' numbers
            log(f"KL measurement failed: {exc!r}")
    elif champion_item is not None and champion_item["kind"] == "base":
        kl_final = 0.0
    length_budget = float(cfg.learner.get("LEARNER_GATE_LENGTH_RATIO_MAX", "1.5"))
    summary = summarize(cycles, ceiling=ceiling, hackable=cfg.hackable, length_budget=length_budget,
                        kl_to_initial=kl_final)  # fmt: skip
    summary["noise_ceiling_empirical"] = report["labels"]["agree_with_oracle"]
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["tiny"], summary["hackable"], summary["seed"] = cfg.tiny, cfg.hackable, cfg.seed
    report["cycles"] = cycles
    report["rejected_candidates"] = [{"candidate": c["candidate"], "cycle": c["cycle"], "reasons": c.get("reasons")}
                                     for c in cycles if c.get("decision") == "rejected"]  # fmt: skip
    report["summary"] = summary
    report["progress"] = progress
    plot_note = write_plot(cfg.out / "report.png", cycles, summary) if cycles else "no cycles"
    report["plot"] = str(cfg.out / "report.png") if plot_note is None else plot_note
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    log(f"report: {cfg.out / 'report.json'}; plot: {report['plot']}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_args(argv)
    summary = run(cfg)
    print(json.dumps(summary, default=str), flush=True)
    return summary


if __name__ == "__main__":
    main()
