"""The only code that speaks to vLLM: OpenAI chat, health, LoRA and weight-reload endpoints, over httpx.

Several replicas may be configured; requests go to the healthy one with the fewest requests in flight,
and a replica that refuses a connection is marked down and the request is retried on another.
"""

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)

# Placeholder model name: "whatever base model the chosen replica serves" (ids differ between replicas).
BASE_MODEL = "__base__"


class UpstreamUnavailable(Exception):
    """No vLLM replica can take the request right now (down, starting, or restarting)."""


class UpstreamError(Exception):
    """vLLM answered with an error status; `body` is its JSON (or text) so the caller can relay it."""

    def __init__(self, status: int, body: dict | str):
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        if message is None and isinstance(body, dict):
            message = body.get("message") or json.dumps(body)[:500]
        super().__init__(message or str(body)[:500])
        self.status, self.body = status, body


@dataclass(eq=False)
class Replica:
    url: str
    healthy: bool = False
    base_model_id: str | None = None
    served_models: set[str] = field(default_factory=set)
    inflight: int = 0
    generation: int = 0  # bumps each time the replica comes (back) up: what was loaded before is gone

    def __str__(self) -> str:
        return self.url


_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class VLLMClient:
    def __init__(self, urls: list[str], timeout_s: float = 600.0):
        self.replicas = [Replica(url.rstrip("/")) for url in urls]
        # Requests in flight per served model name: an adapter is only unloaded once nothing uses it.
        self.inflight_by_model: Counter[str] = Counter()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=2000, max_keepalive_connections=512),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- health and discovery -------------------------------------------------------------
    async def refresh(self, replica: Replica) -> bool:
        """Probe one replica; returns True when it just came (back) up."""
        try:
            health = await self._http.get(f"{replica.url}/health", timeout=3.0)
            models = await self._http.get(f"{replica.url}/v1/models", timeout=3.0) if health.is_success else None
        except httpx.HTTPError:
            health = models = None
        was_healthy = replica.healthy
        if health is None or not health.is_success or models is None or not models.is_success:
            if was_healthy:
                log.warning("vLLM replica %s is down", replica)
            replica.healthy = False
            return False
        data = models.json().get("data", [])
        replica.served_models = {m["id"] for m in data}
        replica.base_model_id = next((m["id"] for m in data if not m.get("parent")), replica.base_model_id)
        replica.healthy = True
        if not was_healthy:
            replica.generation += 1
            log.info("vLLM replica %s is up, serving %s", replica, sorted(replica.served_models))
        return not was_healthy

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if r.healthy]

    def _pick(self, model: str, exclude: set[Replica]) -> Replica:
        candidates = [
            r for r in self.replicas
            if r.healthy and r not in exclude and (model == BASE_MODEL or model in r.served_models)
        ]  # fmt: skip
        if not candidates:
            raise UpstreamUnavailable(f"no healthy vLLM replica serves {model}")
        return min(candidates, key=lambda r: r.inflight)

    @staticmethod
    def _for_replica(payload: dict, replica: Replica) -> dict:
        if payload.get("model") == BASE_MODEL:
            return {**payload, "model": replica.base_model_id}
        return payload

    def _mark_down(self, replica: Replica, exc: Exception) -> None:
        log.warning("vLLM replica %s unreachable (%s); marking down", replica, type(exc).__name__)
        replica.healthy = False

    # ---- chat -------------------------------------------------------------------------------
    async def chat(self, payload: dict) -> dict:
        tried: set[Replica] = set()
        while True:
            replica = self._pick(payload["model"], tried)
            replica.inflight += 1
            self.inflight_by_model[payload["model"]] += 1
            try:
                response = await self._http.post(
                    f"{replica.url}/v1/chat/completions", json=self._for_replica(payload, replica)
                )
            except _CONNECT_ERRORS as exc:
                self._mark_down(replica, exc)
                tried.add(replica)
                continue
            finally:
                replica.inflight -= 1
                self.inflight_by_model[payload["model"]] -= 1
            if response.is_success:
                return response.json()
            raise UpstreamError(response.status_code, _body(response.content))

    @asynccontextmanager
    async def stream_chat(self, payload: dict) -> AsyncIterator[AsyncIterator[str]]:
        """Open an SSE stream; errors before the first byte raise here, so callers can still answer 4xx/5xx."""
        tried: set[Replica] = set()
        while True:
            replica = self._pick(payload["model"], tried)
            request = self._http.build_request(
                "POST", f"{replica.url}/v1/chat/completions", json=self._for_replica(payload, replica)
            )
            try:
                response = await self._http.send(request, stream=True)
            except _CONNECT_ERRORS as exc:
                self._mark_down(replica, exc)
                tried.add(replica)
                continue
            break
        replica.inflight += 1
        self.inflight_by_model[payload["model"]] += 1
        try:
            if not response.is_success:
                raise UpstreamError(response.status_code, _body(await response.aread()))
            yield _sse_lines(response.aiter_bytes())
        finally:
            replica.inflight -= 1
            self.inflight_by_model[payload["model"]] -= 1
            await response.aclose()

    # ---- policy management (LoRA adapters, weights) -------------------------------------------
    async def load_lora(self, replica: Replica, name: str, path: str) -> None:
        await self._post(replica, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        replica.served_models.add(name)

    async def unload_lora(self, replica: Replica, name: str) -> None:
        await self._post(replica, "/v1/unload_lora_adapter", {"lora_name": name})
        replica.served_models.discard(name)

    async def reload_weights(self, replica: Replica, weights_path: str) -> None:
        await self._post(
            replica, "/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": weights_path}}
        )

    async def reset_prefix_cache(self, replica: Replica) -> None:
        await self._post(replica, "/reset_prefix_cache", None)

    async def pause(self, replica: Replica, mode: str = "wait") -> None:
        await self._post(replica, f"/pause?mode={mode}", None)

    async def resume(self, replica: Replica) -> None:
        await self._post(replica, "/resume", None)

    async def _post(self, replica: Replica, path: str, body: dict | None) -> None:
        try:
            response = await self._http.post(f"{replica.url}{path}", json=body)
        except _CONNECT_ERRORS as exc:
            self._mark_down(replica, exc)
            raise UpstreamUnavailable(f"{replica} unreachable") from exc
        if not response.is_success:
            raise UpstreamError(response.status_code, _body(response.content))


async def _sse_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Lines of an SSE stream, split on "\n" only. (httpx's aiter_lines splits like str.splitlines, also
    on U+0085 and U+2028, which JSON strings may hold raw: a model emitting one would cut an event in two.)"""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode()
    if buffer:
        yield buffer.rstrip(b"\r").decode()


def _body(content: bytes) -> dict | str:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode(errors="replace")


async def wait_healthy(client: VLLMClient, timeout_s: float, interval_s: float = 1.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        for replica in client.replicas:
            await client.refresh(replica)
        if client.healthy():
            return True
        await asyncio.sleep(interval_s)
    return False
