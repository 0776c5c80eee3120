"""Shared by the rollout tests and the hot-swap benchmark: register versions, drive load, check attribution."""

import asyncio
import threading
import time

import httpx
from sqlalchemy import select

from store.engine import create_engine, create_sessionmaker
from store.models import Completion, PolicyVersion
from store.queries import policies
from tests.gateway_process import query

PROBE = {"model": "policy", "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 12, "temperature": 0}


async def _register(db_url, **fields) -> int:
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            champion = await policies.champion(session)
            version = await policies.register(session, parent_id=champion.id, base_model=champion.base_model, **fields)
            return version.id
    finally:
        await engine.dispose()


def register(db_url, **fields) -> int:
    return asyncio.run(_register(db_url, **fields))


def policy_list(gateway, admin) -> dict[int, dict]:
    items = httpx.get(f"{gateway.url}/v1/admin/policies", headers=admin, timeout=30).json()["data"]
    return {item["id"]: item for item in items}


def wait_status(gateway, admin, version_id, status, timeout_s=60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = policy_list(gateway, admin)[version_id]
        if item["status"] == status:
            return item
        time.sleep(0.2)
    raise AssertionError(f"version {version_id} never became {status}: {item}")


def probe(gateway, key, model="policy") -> tuple[str, str]:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**PROBE, "model": model},
        headers={"Authorization": f"Bearer {key}"}, timeout=60,
    )  # fmt: skip
    response.raise_for_status()
    return response.headers["x-policy-version"], response.json()["choices"][0]["message"]["content"]


class Load:
    """Concurrent clients chatting in a loop (streaming and not) while swaps happen; records everything."""

    def __init__(self, gateway, key, clients=4):
        self.gateway, self.key, self.clients = gateway, key, clients
        self.stop_event = threading.Event()
        self.results: list[dict] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(i % 2 == 0,), daemon=True) for i in range(clients)]

    def _loop(self, stream: bool):
        headers = {"Authorization": f"Bearer {self.key}"}
        body = {"model": "policy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "stream": stream}
        with httpx.Client(timeout=60) as http:
            while not self.stop_event.is_set():
                record = {"stream": stream, "at": time.monotonic()}
                try:
                    if stream:
                        with http.stream("POST", f"{self.gateway.url}/v1/chat/completions", json=body, headers=headers) as r:
                            record["status"] = r.status_code
                            record["header_version"] = r.headers.get("x-policy-version")
                            record["id"] = r.headers.get("x-completion-id")
                            lines = [line for line in r.iter_lines() if line.startswith("data:")]
                            record["done"] = lines[-1] == "data: [DONE]" if lines else False
                            record["errors"] = sum('"error"' in line for line in lines)
                    else:
                        r = http.post(f"{self.gateway.url}/v1/chat/completions", json=body, headers=headers)
                        record["status"] = r.status_code
                        record["header_version"] = r.headers.get("x-policy-version")
                        if r.status_code == 200:
                            record["id"] = r.json()["id"]
                            record["body_version"] = r.json()["policy_version"]
                        record["done"], record["errors"] = True, 0
                except httpx.HTTPError as exc:
                    record["status"], record["exception"] = None, repr(exc)
                with self.lock:
                    self.results.append(record)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def failures(self) -> list[dict]:
        return [r for r in self.results if r.get("status") != 200 or not r.get("done") or r.get("errors")]

    def report(self) -> str:
        """What went wrong, for an assertion message: the failed records and the gateway's warnings."""
        problems = [line for line in self.gateway.log().splitlines() if any(w in line for w in ("WARN", "ERROR", "Error", "Traceback"))]
        return f"{self.failures()[:3]}\n" + "\n".join(problems[-40:])


def check_attribution(gateway, results):
    """Every response's version (header and body) is the version its stored completion names."""
    names = {row[0].id: row[0].name for row in asyncio.run(query(gateway.db_url, select(PolicyVersion)))}
    ids = [r["id"] for r in results]
    deadline = time.monotonic() + 20
    while True:
        stored = dict(asyncio.run(query(
            gateway.db_url, select(Completion.id, Completion.policy_version_id).where(Completion.id.in_(ids))
        )))  # fmt: skip
        if len(stored) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(stored) == len(ids), "some served completions were not stored"
    for r in results:
        assert names[stored[r["id"]]] == r["header_version"]
        if "body_version" in r:
            assert r["body_version"] == r["header_version"]
