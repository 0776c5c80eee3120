"""Shared helpers for benchmarks: real processes on loopback, bounded workloads, percentile maths."""

import asyncio
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from learner.demo_model import ensure_demo_model
from store.migrate import upgrade
from tests.conftest import TINY_MODEL_DIR
from tests.gateway_process import GatewayProcess, running_vllm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@contextmanager
def vllm_server(model_dir: Path | None = None):
    model_dir = model_dir or ensure_demo_model(TINY_MODEL_DIR, tiny=True)
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    with running_vllm(model_dir, workdir / "vllm.log") as url:
        yield url, str(model_dir)


@contextmanager
def gateway_for(vllm_url: str, env: dict[str, str] | None = None):
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-bench-gw-"))
    db_url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
    upgrade(db_url)
    gateway = GatewayProcess.start(db_url, ["--vllm-url", vllm_url, "--log-level", "warning"], workdir, env=env)
    try:
        yield gateway
    finally:
        gateway.stop()


async def run_load(url: str, body: dict, headers: dict, total: int, concurrency: int) -> dict:
    """Send `total` requests with `concurrency` in flight; returns throughput, latencies and failures."""
    latencies: list[float] = []
    overheads: list[float] = []  # the gateway's own X-Gateway-Overhead-Ms, when present
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker():
            nonlocal failures
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                    ok = response.status_code == 200
                    if "x-gateway-overhead-ms" in response.headers:
                        overheads.append(float(response.headers["x-gateway-overhead-ms"]))
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": total,
        "failures": failures,
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "overhead_header_p50_ms": percentile(overheads, 50) if overheads else None,
        "overhead_header_p99_ms": percentile(overheads, 99) if overheads else None,
    }
