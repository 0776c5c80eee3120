"""The gateway's own vLLM child: started, restarted when it dies (503 meanwhile), stopped with the gateway."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from store.migrate import upgrade
from tests.conftest import free_port
from tests.gateway_process import GatewayProcess

MESSAGES = [{"role": "user", "content": "hi"}]


def _vllm_pids(port: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in cmdline and str(port).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _chat(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "policy", "messages": MESSAGES, "max_tokens": 4},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


@pytest.mark.vllm
@pytest.mark.slow
def test_gateway_runs_restarts_and_stops_its_own_vllm(tiny_model_dir, tmp_path):
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
    upgrade(db_url)
    port = free_port()
    gateway = GatewayProcess.start(
        db_url, ["--model", str(tiny_model_dir)], tmp_path, env={"FLYWHEEL_VLLM_PORT": str(port)}
    )
    try:
        key = gateway.create_key("user")
        assert _chat(gateway, key).status_code == 200
        pids = _vllm_pids(port)
        assert pids, "no vLLM child found"

        os.killpg(os.getpgid(pids[0]), signal.SIGKILL)  # vLLM dies
        deadline = time.monotonic() + 30
        while (response := _chat(gateway, key)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert response.status_code == 503
        assert response.headers["retry-after"] and response.json()["error"]["code"] == "upstream_unavailable"
        assert httpx.get(f"{gateway.url}/readyz").status_code == 503

        gateway.wait_ready(600)  # restarted by the gateway, base policy serving again
        assert _chat(gateway, key).status_code == 200
    finally:
        assert gateway.stop() == 0
    deadline = time.monotonic() + 30
    while _vllm_pids(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _vllm_pids(port), "vLLM outlived the gateway"


def test_gateway_refuses_an_unmigrated_database(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--vllm-url", "http://127.0.0.1:9", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "make migrate" in result.stderr + result.stdout
