"""Prometheus metrics, on a registry of the app's own (several apps can live in one test process)."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flywheel_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "flywheel_request_latency_seconds", "HTTP request latency (to response start)", ["route"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.overhead = Histogram(
            "flywheel_gateway_overhead_seconds", "time a chat request spent outside vLLM",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter("flywheel_tokens_total", "tokens served", ["kind"], registry=self.registry)
        self.upstream_errors = Counter(
            "flywheel_upstream_errors_total", "errors talking to vLLM", ["reason"], registry=self.registry
        )
        self.completions = Counter(
            "flywheel_completions_stored_total", "completions stored", ["status", "policy_version"],
            registry=self.registry,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
