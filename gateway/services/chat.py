"""Chat completions through vLLM, each one stored with the exact policy version that produced it."""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clients.vllm import UpstreamError, UpstreamUnavailable, VLLMClient
from gateway.errors import ApiError
from gateway.metrics import Metrics
from gateway.policy import LivePolicy, PolicyManager, Slot
from gateway.protocol import ChatCompletionRequest
from gateway.services.auth import Caller
from gateway.services.background import BackgroundWrites
from gateway.services.completion_writer import CompletionWriter
from store.enums import CompletionStatus
from store.queries.completions import ChoiceRecord, CompletionRecord

log = logging.getLogger(__name__)


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass
class ChatResult:
    body: dict
    policy: LivePolicy
    overhead_ms: float


@dataclass
class ChatStream:
    policy: LivePolicy
    completion_id: str
    chunks: AsyncIterator[bytes]
    overhead_ms: float
    slot: Slot  # released when the stream ends; the router also releases it if the body never starts


class ChatService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: VLLMClient,
        policies: PolicyManager,
        metrics: Metrics,
        background: BackgroundWrites,
        retry_after_s: int = 2,
    ):
        self._client, self._policies = client, policies
        self._metrics, self._background, self._retry_after = metrics, background, retry_after_s
        self._writer = CompletionWriter(sessionmaker)

    def _upstream_payload(self, req: ChatCompletionRequest, policy: LivePolicy) -> dict:
        payload = req.model_dump(exclude_none=True, exclude={"user"})
        payload["model"] = policy.served_name
        if req.stream:
            # Always ask for the usage chunk so token counts are stored; it is dropped if the client did not ask.
            payload["stream_options"] = {**(req.stream_options or {}), "include_usage": True}
        return payload

    def _record(self, caller: Caller, req: ChatCompletionRequest, policy: LivePolicy, cid: str) -> CompletionRecord:
        return CompletionRecord(
            id=cid,
            api_key_id=caller.key_id,
            policy_version_id=policy.version_id,
            messages=[m.model_dump(exclude_none=True) for m in req.messages],
            params=req.sampling_params(),
            stream=req.stream,
            end_user=req.user,
        )

    async def _save(self, record: CompletionRecord, policy: LivePolicy) -> None:
        await self._writer.submit(record)
        self._metrics.completions.labels(str(record.status), policy.name).inc()
        if record.prompt_tokens:
            self._metrics.tokens.labels("prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            self._metrics.tokens.labels("completion").inc(record.completion_tokens)

    def _translate(self, exc: Exception) -> ApiError:
        retry = {"Retry-After": str(self._retry_after)}
        if isinstance(exc, UpstreamUnavailable):
            self._metrics.upstream_errors.labels("unavailable").inc()
            return ApiError(503, "the model server is unavailable; retry shortly", code="upstream_unavailable", headers=retry)
        if isinstance(exc, UpstreamError):
            self._metrics.upstream_errors.labels(f"status_{exc.status}").inc()
            if 400 <= exc.status < 500:
                return ApiError(exc.status if exc.status in (400, 404, 413, 422) else 400, str(exc), code="upstream_rejected")
            return ApiError(502, f"the model server failed: {exc}", code="upstream_error", headers=retry)
        if isinstance(exc, httpx.TimeoutException):
            self._metrics.upstream_errors.labels("timeout").inc()
            return ApiError(504, "the model server timed out", code="upstream_timeout", headers=retry)
        self._metrics.upstream_errors.labels("transport").inc()
        return ApiError(503, f"the model server connection failed ({type(exc).__name__})", code="upstream_unavailable", headers=retry)

    # ---- non-streaming ----------------------------------------------------------------------
    async def complete(
        self, caller: Caller, req: ChatCompletionRequest, started: float, policy: LivePolicy | None = None
    ) -> ChatResult:
        slot = await self._policies.acquire(policy.name if policy else req.model)
        policy = slot.live
        cid = new_completion_id()
        upstream_started = time.perf_counter()
        try:
            body = await self._client.chat(self._upstream_payload(req, policy))
        except (UpstreamUnavailable, UpstreamError, httpx.HTTPError) as exc:
            raise self._translate(exc) from exc
        finally:
            slot.release()
        upstream_s = time.perf_counter() - upstream_started
        usage = body.get("usage") or {}
        record = self._record(caller, req, policy, cid)
        record.prompt_tokens, record.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        record.choices = [
            ChoiceRecord(
                index=choice["index"],
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason=choice.get("finish_reason"),
                completion_tokens=usage.get("completion_tokens") if req.n == 1 else None,
            )
            for choice in body.get("choices", [])
        ]
        record.latency_ms = (time.perf_counter() - started) * 1000
        await self._save(record, policy)
        body.update(id=cid, model=req.model, policy_version=policy.name)
        overhead_ms = (time.perf_counter() - started - upstream_s) * 1000
        self._metrics.overhead.observe(overhead_ms / 1000)
        return ChatResult(body, policy, overhead_ms)

    # ---- streaming --------------------------------------------------------------------------
    async def open_stream(self, caller: Caller, req: ChatCompletionRequest, started: float) -> ChatStream:
        """Open the upstream stream first, so that errors before the first token are proper HTTP errors."""
        slot = await self._policies.acquire(req.model)
        policy = slot.live
        cid = new_completion_id()
        upstream = self._client.stream_chat(self._upstream_payload(req, policy))
        try:
            lines = await upstream.__aenter__()
        except (UpstreamUnavailable, UpstreamError, httpx.HTTPError) as exc:
            slot.release()
            raise self._translate(exc) from exc
        except BaseException:
            slot.release()
            raise
        overhead_ms = (time.perf_counter() - started) * 1000
        record = self._record(caller, req, policy, cid)
        chunks = self._relay(req, slot, record, upstream, lines, started)
        return ChatStream(policy, cid, chunks, overhead_ms, slot)

    async def _relay(self, req, slot: Slot, record: CompletionRecord, upstream, lines, started: float):
        policy = slot.live
        texts: dict[int, list[str]] = {}
        finish: dict[int, str | None] = {}
        status = CompletionStatus.CLIENT_DISCONNECTED
        first = True
        try:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    status = CompletionStatus.COMPLETE
                    yield b"data: [DONE]\n\n"
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    log.warning("unparseable event from upstream for %s: %.200s", record.id, data)
                    chunk = {"error": {"message": "the model server sent an unreadable event", "type": "upstream_error"}}
                    data = json.dumps(chunk)
                if "error" in chunk:
                    status = CompletionStatus.UPSTREAM_ERROR
                    yield f"data: {data}\n\n".encode()
                    continue
                chunk["id"], chunk["model"] = record.id, req.model
                if first:
                    chunk["policy_version"], first = policy.name, False
                for choice in chunk.get("choices") or ():
                    index = choice.get("index", 0)
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        texts.setdefault(index, []).append(content)
                    if choice.get("finish_reason"):
                        finish[index] = choice["finish_reason"]
                if usage := chunk.get("usage"):
                    record.prompt_tokens, record.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
                    if not chunk.get("choices") and not req.wants_usage_chunk():
                        continue
                yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()
            else:
                status = CompletionStatus.UPSTREAM_ERROR  # upstream ended without [DONE]
        except httpx.HTTPError as exc:
            status = CompletionStatus.UPSTREAM_ERROR
            self._metrics.upstream_errors.labels("stream_broken").inc()
            log.warning("upstream stream broke for %s: %s", record.id, exc)
            error = {"error": {"message": "the model server stream broke", "type": "upstream_error", "code": "upstream_error"}}
            yield f"data: {json.dumps(error)}\n\n".encode()
        finally:
            # Runs on success, error and client disconnect alike. Under cancellation nothing may be awaited
            # here, so closing upstream and storing happen in a task that outlives this request.
            indices = sorted(set(texts) | set(finish)) or list(range(req.n))
            record.choices = [ChoiceRecord(i, "".join(texts.get(i, [])), finish.get(i)) for i in indices]
            if req.n == 1 and record.choices:
                record.choices[0].completion_tokens = record.completion_tokens
            record.status = status
            record.latency_ms = (time.perf_counter() - started) * 1000
            slot.release()
            self._background.spawn(self._finish_stream(upstream, record, policy))

    async def _finish_stream(self, upstream, record: CompletionRecord, policy: LivePolicy) -> None:
        try:
            await upstream.__aexit__(None, None, None)
        except Exception:  # closing a half-read upstream response must not stop the write below
            log.debug("closing upstream stream failed", exc_info=True)
        await self._save(record, policy)
