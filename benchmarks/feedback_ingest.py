"""Feedback ingest: committed POST /v1/feedback per second vs a bare FastAPI endpoint, in one run.

    .venv/bin/python -m benchmarks.feedback_ingest [--requests 6000] [--concurrency 32]

Both servers are real uvicorn processes on loopback ports started here: the gateway
(`python -m gateway serve`, on a migrated SQLite DB in a temp dir; no vLLM needed, the completions
being judged are inserted directly) and a bare FastAPI app that parses the same request model and
answers without touching a database. Bounded: a fixed number of requests per round.
Goals: gateway >= 0.6x the bare rate and >= 1,500 committed feedback/s.
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from gateway.schemas.feedback import FeedbackRequest
from store.engine import create_engine, create_sessionmaker
from store.enums import PolicyKind, PolicyStatus
from store.migrate import upgrade
from store.queries.completions import ChoiceRecord, CompletionRecord, insert_completions
from store.queries.keys import create_key
from store.queries.policies import register
from tests.conftest import free_port
from tests.gateway_process import GatewayProcess

REASONS = ["incorrect", "unhelpful", "too_long", "formatting"]

bare_app = FastAPI()


@bare_app.post("/v1/feedback")
async def bare_feedback(req: FeedbackRequest) -> dict:
    # The floor: same JSON parsing and validation, no auth, no database.
    return {"object": "feedback", "completion_id": req.completion_id, "rating": req.rating}


async def _seed(db_url: str, n_completions: int, n_choices: int) -> tuple[str, list[str]]:
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            key, secret = await create_key(session, "bench", "user", rate_limit_per_s=1e9, rate_limit_burst=10**9)
            policy = await register(
                session, name="bench-base", kind=PolicyKind.BASE, artifact_path="/nowhere", sha256=None,
                status=PolicyStatus.CHAMPION,
            )  # fmt: skip
            ids = [f"chatcmpl-bench-{i:06d}" for i in range(n_completions)]
            await insert_completions(session, [
                CompletionRecord(
                    id=cid, api_key_id=key.id, policy_version_id=policy.id,
                    messages=[{"role": "user", "content": "hello"}], params={},
                    choices=[ChoiceRecord(i, f"answer {i}") for i in range(n_choices)],
                )
                for cid in ids
            ])  # fmt: skip
        return secret, ids
    finally:
        await engine.dispose()


async def _count_rows(db_url: str) -> dict:
    from sqlalchemy import func, select

    from store.models import Feedback, FeedbackEvent

    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return {
                "feedback": await session.scalar(select(func.count()).select_from(Feedback)),
                "events": await session.scalar(select(func.count()).select_from(FeedbackEvent)),
            }
    finally:
        await engine.dispose()


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), to report each server's CPU cost per request."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _wait_http(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout_s}s")


async def _load(url: str, bodies: list[bytes], headers: dict, concurrency: int, per_client: int = 4) -> dict:
    """POST every body with `concurrency` in flight; a request counts only when it got a 200.

    The in-flight requests are spread over several httpx clients of `per_client` connections each:
    httpx's pool does O(connections) work per request, and one client with 32 connections measured
    itself, not the server (about 500 req/s of client CPU here, against about 2,000 with 4).
    """
    ok = failures = 0
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    headers = {**headers, "Content-Type": "application/json"}
    it = iter(bodies)
    clients = [httpx.AsyncClient(timeout=60, limits=limits, headers=headers) for _ in range(-(-concurrency // per_client))]

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok, failures
        for body in it:
            try:
                response = await client.post(url, content=body)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                ok += response.status_code == 200
                failures += response.status_code != 200
            except httpx.HTTPError:
                failures += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return {"ok": ok, "failures": failures, "seconds": elapsed, "rps": ok / elapsed, "statuses": statuses}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000, help="per round and server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--completions", type=int, default=2000, help="distinct completions judged (updates once exhausted)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate bare/gateway rounds to cancel drift")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="flywheel-bench-feedback-"))
    db_url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
    upgrade(db_url)
    secret, ids = asyncio.run(_seed(db_url, args.completions, n_choices=2))
    rng = random.Random(0)

    def bodies(n: int) -> list[bytes]:
        # Encoded up front: the client's CPU is the scarce resource on a 2-core machine.
        return [
            json.dumps({
                "completion_id": rng.choice(ids), "choice_index": rng.randrange(2), "rating": rng.choice(["up", "down"]),
                "reasons": rng.sample(REASONS, rng.randrange(3)), "comment": "benchmark" if rng.random() < 0.3 else None,
            }).encode()  # fmt: skip
            for _ in range(n)
        ]

    # No vLLM: an unused port stands in, so the gateway serves feedback while reporting the model as down.
    gateway = GatewayProcess.start(
        db_url, ["--vllm-url", f"http://127.0.0.1:{free_port()}", "--log-level", "warning"], workdir, wait_ready=False
    )
    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.feedback_ingest:bare_app", "--port", str(bare_port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results: dict[str, list[dict]] = {"bare": [], "gateway": []}
    try:
        _wait_http(f"{gateway.url}/healthz", gateway.process)
        _wait_http(f"http://127.0.0.1:{bare_port}/docs", bare)
        auth = {"Authorization": f"Bearer {secret}"}
        targets = {"bare": (f"http://127.0.0.1:{bare_port}/v1/feedback", {}), "gateway": (f"{gateway.url}/v1/feedback", auth)}
        for name, (url, headers) in targets.items():  # warm-up
            asyncio.run(_load(url, bodies(200), headers, args.concurrency))
        pids = {"bare": bare.pid, "gateway": gateway.process.pid}
        for _ in range(args.rounds):
            for name, (url, headers) in targets.items():
                payload = bodies(args.requests)
                cpu_before = _cpu_seconds(pids[name])
                result = asyncio.run(_load(url, payload, headers, args.concurrency))
                cpu_after = _cpu_seconds(pids[name])
                if cpu_before is not None and cpu_after is not None:
                    result["server_cpu_ms_per_request"] = (cpu_after - cpu_before) / len(payload) * 1000
                results[name].append(result)
    finally:
        gateway.stop()
        bare.terminate()
        bare.wait(timeout=30)
    rows = asyncio.run(_count_rows(db_url))
    mean = lambda name: sum(r["rps"] for r in results[name]) / len(results[name])  # noqa: E731
    committed = sum(r["ok"] for r in results["gateway"]) + 200  # + warm-up, all of which must be in history
    summary = {
        "benchmark": "feedback_ingest",
        "bare_rps": round(mean("bare"), 1),
        "gateway_committed_rps": round(mean("gateway"), 1),
        "ratio": round(mean("gateway") / mean("bare"), 3),
        "server_cpu_ms_per_request": {
            name: round(sum(r.get("server_cpu_ms_per_request", 0) for r in runs) / len(runs), 3)
            for name, runs in results.items()
        },
        "failures": sum(r["failures"] for runs in results.values() for r in runs),
        "statuses": [r["statuses"] for r in results["gateway"]],
        "feedback_rows": rows["feedback"],
        "history_rows": rows["events"],
        "history_matches_acknowledged": rows["events"] == committed,
        "concurrency": args.concurrency,
        "goal": "ratio >= 0.6 and gateway_committed_rps >= 1500",
    }
    print(f"bare FastAPI:          {summary['bare_rps']:8.1f} req/s")
    print(f"gateway (committed):   {summary['gateway_committed_rps']:8.1f} feedback/s")
    print(f"ratio:                 {summary['ratio']:8.3f}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
