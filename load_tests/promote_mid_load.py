"""The locust mix against a local system while a new version goes canary and is promoted mid-load.

    .venv/bin/python -m load_tests.promote_mid_load

Starts a tiny-model vLLM and a gateway on loopback, runs load_tests/run_headless.sh (16 users, 60 s),
registers a LoRA candidate after 15 s (the gateway canaries it) and promotes it after 30 s. Expected: 0 errors.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks._common import gateway_for, vllm_server
from tests.policy_factory import make_lora
from tests.rollout_tools import register, wait_status

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-load-"))
    env = {"FLYWHEEL_POLICY_POLL_S": "0.5", "FLYWHEEL_AUTO_DECIDE": "false"}
    with vllm_server() as (vllm_url, model_dir), gateway_for(vllm_url, env=env) as gateway:
        admin = {"Authorization": f"Bearer {gateway.create_key('admin')}"}
        keys = {
            "FLYWHEEL_USER_KEY": gateway.create_key("user", rate_limit_per_s=1e6, rate_limit_burst=10**6),
            "FLYWHEEL_REVIEWER_KEY": gateway.create_key("reviewer", rate_limit_per_s=1e6, rate_limit_burst=10**6),
        }
        path, sha = make_lora(Path(model_dir), workdir / "lora-load", seed=11)
        events: list[str] = []

        def rollout() -> None:
            time.sleep(15)
            version_id = register(gateway.db_url, name="lora-load", kind="lora", artifact_path=str(path), sha256=sha)
            wait_status(gateway, admin, version_id, "canary")
            events.append(f"{time.strftime('%X')} lora-load is canary")
            time.sleep(15)
            httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin, timeout=60).raise_for_status()
            events.append(f"{time.strftime('%X')} lora-load promoted to champion")

        thread = threading.Thread(target=rollout, daemon=True)
        thread.start()
        run_env = {**os.environ, **keys, "FLYWHEEL_LOAD_HOST": gateway.url, "FLYWHEEL_LOAD_OUT": str(workdir / "csv")}
        code = subprocess.call(["bash", "load_tests/run_headless.sh", "--max-error-rate", "0"], cwd=ROOT, env=run_env)
        thread.join(timeout=60)
    print("\n".join(events))
    return code


if __name__ == "__main__":
    sys.exit(main())
