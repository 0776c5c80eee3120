"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streams): body size limit and metrics."""

import json
import time

from fastapi import HTTPException

from gateway.errors import error_body


class BodyLimitAndMetrics:
    def __init__(self, app, max_body_bytes: int, metrics):
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["started"] = started
        status_holder = {"status": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                self._observe(scope, message["status"], started)
            await send(message)

        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(send_wrapper)
            return
        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException passes FastAPI's body parsing untouched and becomes an OpenAI-style 413.
                    raise HTTPException(413, f"request body exceeds {self.max_body_bytes} bytes")
            return message

        await self.app(scope, receive_wrapper, send_wrapper)

    async def _reject(self, send) -> None:
        body = json.dumps(
            error_body(413, f"request body exceeds {self.max_body_bytes} bytes", "request_too_large")
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(path, scope["method"], str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)
