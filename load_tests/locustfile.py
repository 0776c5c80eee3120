"""Load test for a running Flywheel gateway: a realistic mix of chat, feedback, A/B votes and reviewer reads.

    FLYWHEEL_USER_KEY=... FLYWHEEL_REVIEWER_KEY=... load_tests/run_headless.sh

Every simulated user shares FLYWHEEL_USER_KEY, so create that key with a rate limit above the load
(`python -m gateway keys create --name load --role user --rate-limit-per-s 1000 --burst 1000`), or the
429s it earns count as failures. FLYWHEEL_REVIEWER_KEY is optional: without it the reviewer task is skipped.

Traffic goes to loopback only (127.0.0.0/8 or localhost): any other --host is refused.
"""

import csv
import ipaddress
import json
import logging
import os
import random
import sys
import time
from collections import deque
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task
from locust.exception import StopUser

log = logging.getLogger("flywheel.load")

MAX_TOKENS = 16
MODEL = "policy"
PROMPTS = [
    "What is the capital of France?",
    "Give me one tip for writing clearer emails.",
    "Explain what a hash map is in one sentence.",
    "Suggest a name for a grey cat.",
    "How do I reverse a list in Python?",
    "What should I pack for a rainy weekend trip?",
    "Summarise the water cycle in a few words.",
    "Is it better to run in the morning or the evening?",
    "Write a haiku about autumn.",
    "What does HTTP 429 mean?",
]
SYSTEM = "You are a helpful, concise assistant."
# The gateway checks reasons against its vocabulary (FLYWHEEL_FEEDBACK_REASONS; these are its defaults,
# all about what was wrong): a thumbs-up carries none, a thumbs-down one or two.
DOWN_REASONS = ["incorrect", "unhelpful", "unsafe", "too_long", "too_short", "formatting", "other"]
# Time to the first streamed chunk, ms. Kept out of locust's request stats so that every entry
# there is one real HTTP request; written to PREFIX_ttft.csv at the end when --csv is given.
TTFT_MS: list[float] = []


# ---- loopback only ------------------------------------------------------------------------------
def host_is_loopback(url: str | None) -> bool:
    """True for http(s) URLs whose host is localhost or an address in 127.0.0.0/8."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _refusal(url: str | None) -> str:
    return f"refusing to send load to {url!r}: only http(s)://127.x.x.x or localhost targets are allowed"


@events.init.add_listener
def _check_host_at_start(environment, **_kwargs):
    if environment.host is not None and not host_is_loopback(environment.host):
        log.error(_refusal(environment.host))
        sys.exit(2)
    if not os.environ.get("FLYWHEEL_USER_KEY"):
        log.error("set FLYWHEEL_USER_KEY to a gateway key with the user role")
        sys.exit(2)
    if not os.environ.get("FLYWHEEL_REVIEWER_KEY"):
        log.warning("FLYWHEEL_REVIEWER_KEY is not set: the reviewer task is skipped")


@events.test_start.add_listener
def _check_host_on_test_start(environment, **_kwargs):
    # The web UI can change the host after init; None means each user's own `host` (checked in on_start).
    if environment.host is not None and not host_is_loopback(environment.host):
        log.error(_refusal(environment.host))
        if environment.runner is not None:
            environment.runner.quit()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@events.test_stop.add_listener
def _write_ttft(environment, **_kwargs):
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or not TTFT_MS:
        return
    with open(f"{prefix}_ttft.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Name", "Count", "50%", "95%", "99%"])
        p = [round(_percentile(TTFT_MS, q), 1) for q in (0.50, 0.95, 0.99)]
        writer.writerow(["chat stream (first chunk)", len(TTFT_MS), *p])


# ---- helpers ------------------------------------------------------------------------------------
def _messages() -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": random.choice(PROMPTS)}]


def _error_text(response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{response.status_code} {error.get('code') or error.get('type')}: {error.get('message')}"
    except Exception:  # noqa: BLE001 - any non-JSON body
        return f"{response.status_code} {str(response.text)[:200]!r}"


class FlywheelUser(HttpUser):
    host = "http://127.0.0.1:8000"
    wait_time = between(0.5, 2.0)

    def on_start(self):
        if not host_is_loopback(self.host):
            log.error(_refusal(self.host))
            raise StopUser()
        # Nothing may leave loopback: no HTTP(S)_PROXY from the environment, no following redirects.
        self.client.trust_env = False
        self.client.max_redirects = 0
        self.user_headers = {"Authorization": f"Bearer {os.environ['FLYWHEEL_USER_KEY']}"}
        reviewer = os.environ.get("FLYWHEEL_REVIEWER_KEY")
        self.reviewer_headers = {"Authorization": f"Bearer {reviewer}"} if reviewer else None
        # Completions this user received and has not rated yet (feedback targets its own completions).
        self.unrated: deque[str] = deque(maxlen=32)

    # ---- chat ---------------------------------------------------------------------------------
    @task(4)
    def chat(self) -> None:
        self._chat()

    def _chat(self) -> str | None:
        body = {"model": MODEL, "messages": _messages(), "max_tokens": MAX_TOKENS}
        with self.client.post(
            "/v1/chat/completions", json=body, headers=self.user_headers, name="chat", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(_error_text(response))
                return None
            try:
                data = response.json()
                completion_id = data["id"]
                data["choices"][0]["message"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                response.failure(f"malformed chat response: {exc!r}")
                return None
            response.success()
        self.unrated.append(completion_id)
        return completion_id

    @task(2)
    def chat_stream(self) -> None:
        """Reads the whole SSE body; its stats entry is the full-body time (time to first chunk: _ttft.csv)."""
        body = {"model": MODEL, "messages": _messages(), "max_tokens": MAX_TOKENS, "stream": True}
        started = time.perf_counter()
        completion_id, chunks, size, done = None, 0, 0, False
        with self.client.post(
            "/v1/chat/completions", json=body, headers=self.user_headers, name="chat stream",
            stream=True, catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                response.failure(_error_text(response))
                return
            try:
                for line in response.iter_lines():
                    size += len(line) + 1
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    event = json.loads(payload)
                    if "error" in event:
                        raise RuntimeError(f"error event in stream: {event['error']}")
                    chunks += 1
                    if chunks == 1:
                        completion_id = event.get("id")
                        TTFT_MS.append((time.perf_counter() - started) * 1000)
                if not done or completion_id is None:
                    raise RuntimeError(f"stream ended early ({chunks} chunks, [DONE] seen: {done})")
            except Exception as exc:  # noqa: BLE001 - report every kind of broken stream as a failure
                response.failure(repr(exc))
                return
            finally:
                # Locust timed the headers only (stream=True): report the whole body instead.
                response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
                response.request_meta["response_length"] = size
            response.success()
        self.unrated.append(completion_id)

    # ---- feedback -----------------------------------------------------------------------------
    @task(3)
    def feedback(self) -> None:
        completion_id = self.unrated.pop() if self.unrated else self._chat()
        if completion_id is None:
            return
        up = random.random() < 0.7
        body = {
            "completion_id": completion_id,
            "choice_index": 0,
            "rating": "up" if up else "down",
            "reasons": [] if up else random.sample(DOWN_REASONS, k=random.randint(1, 2)),
        }
        with self.client.post(
            "/v1/feedback", json=body, headers=self.user_headers, name="feedback", catch_response=True
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(_error_text(response))

    # ---- A/B ----------------------------------------------------------------------------------
    @task(1)
    def compare_and_vote(self) -> None:
        body = {"model": MODEL, "messages": _messages(), "max_tokens": MAX_TOKENS}
        with self.client.post(
            "/v1/comparisons", json=body, headers=self.user_headers, name="comparison", catch_response=True
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(_error_text(response))
                return
            try:
                data = response.json()
                comparison_id = data["id"]
                labels = sorted(c["label"] for c in data["candidates"])
            except (ValueError, KeyError, TypeError) as exc:
                response.failure(f"malformed comparison: {exc!r}")
                return
            if labels != ["a", "b"]:
                response.failure(f"expected candidates a and b, got {labels}")
                return
        vote = {"winner": random.choices(["a", "b", "tie", "both_bad"], weights=[4, 4, 1, 1])[0]}
        with self.client.post(
            f"/v1/comparisons/{comparison_id}/vote", json=vote, headers=self.user_headers,
            name="comparison vote", catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code not in (200, 201):
                response.failure(_error_text(response))

    # ---- reviewer -----------------------------------------------------------------------------
    @task(1)
    def review_stats(self) -> None:
        if self.reviewer_headers is None:
            return
        with self.client.get(
            "/v1/review/stats", headers=self.reviewer_headers, name="review stats", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(_error_text(response))
