import math
import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s if self.rate_per_s > 0 else math.inf


class RateLimiter:
    """Per-key token buckets, in this process (each gateway replica limits on its own)."""

    def __init__(self, default_rate_per_s: float, default_burst: int):
        self.default_rate_per_s, self.default_burst = default_rate_per_s, default_burst
        self._buckets: dict[int, TokenBucket] = {}

    def check(self, key_id: int, rate_per_s: float | None, burst: int | None) -> float:
        rate = self.default_rate_per_s if rate_per_s is None else rate_per_s
        size = self.default_burst if burst is None else burst
        bucket = self._buckets.get(key_id)
        if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate, size):
            bucket = self._buckets[key_id] = TokenBucket(rate, size)
        return bucket.take()
