"""Start and drive a real gateway process in tests (like vLLM's RemoteOpenAIServer)."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from store.engine import create_engine, create_sessionmaker
from store.queries.keys import create_key

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class GatewayProcess:
    url: str
    db_url: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(
        cls, db_url: str, serve_args: list[str], workdir: Path, env: dict[str, str] | None = None,
        wait_ready: bool = True, timeout_s: float = 600,
    ) -> "GatewayProcess":  # fmt: skip
        port = _free_port()
        log_path = workdir / f"gateway-{port}.log"
        full_env = {**os.environ, "DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(port), *serve_args],
                cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        proc = cls(f"http://127.0.0.1:{port}", db_url, process, log_path)
        if wait_ready:
            proc.wait_ready(timeout_s)
        return proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"gateway not ready after {timeout_s}s:\n{self.log()[-4000:]}")

    def create_key(self, role: str = "user", name: str | None = None, **limits) -> str:
        return asyncio.run(_create_key(self.db_url, role, name or f"test-{role}", limits))

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def running_vllm(model_dir: Path, log_path: Path):
    """A real vLLM server on `model_dir` for the duration of the block; yields its URL."""
    from gateway.vllm_process import LocalVLLM, vllm_command, wait_for_http

    server = LocalVLLM(vllm_command(str(model_dir), _free_port()), log_path)
    server.start()
    try:
        wait_for_http(server.url, 600, server)
        yield server.url
    finally:
        server.stop()


async def _create_key(db_url: str, role: str, name: str, limits: dict) -> str:
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            _, secret = await create_key(session, name, role, **limits)
        return secret
    finally:
        await engine.dispose()


async def query(db_url: str, statement, *params):
    """Run one SQLAlchemy statement against the gateway's DB and return all rows."""
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return (await session.execute(statement, *params)).all()
    finally:
        await engine.dispose()
