from gateway.services.ratelimit import RateLimiter, TokenBucket


def test_bucket_allows_burst_then_waits_for_refill():
    bucket = TokenBucket(rate_per_s=2.0, burst=3, updated=0.0)
    assert [bucket.take(now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now=0.0) == 0.5
    assert bucket.take(now=0.5) == 0.0


def test_limiter_uses_per_key_overrides_and_defaults():
    limiter = RateLimiter(default_rate_per_s=100, default_burst=1)
    assert limiter.check(1, None, None) == 0.0
    assert limiter.check(1, None, None) > 0
    assert limiter.check(2, 1.0, 5) == 0.0  # another key has its own bucket
