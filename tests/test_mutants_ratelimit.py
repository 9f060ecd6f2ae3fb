"""Rate limit cases found by mutation testing (docs/testing.md): ``Retry-After`` rounds any wait
up to whole seconds, and a limiter past 10,000 keys (when it starts forgetting idle ones) still
answers and still holds the keys that must wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tally.errors import RateLimited
from tally.ratelimit import RateLimiter
from tests.conftest import FixedClock


def test_retry_after_rounds_a_wait_just_past_a_second_up(clock: FixedClock) -> None:
    # 0.5 per second: one request per 2 s, 0.2 s early allowed. After a request at t, the next
    # may come at t + 1.8 s; at t + 0.799999 s that is 1.000001 s away: Retry-After 2.
    limiter = RateLimiter(0.5, clock)
    limiter.hit("key")
    clock.now += timedelta(microseconds=799_999)
    with pytest.raises(RateLimited) as refused:
        limiter.hit("key")
    assert refused.value.retry_after == 2


def test_past_ten_thousand_keys_the_limiter_still_holds_the_keys_that_must_wait(
    clock: FixedClock,
) -> None:
    limiter = RateLimiter(1.0, clock)
    for n in range(10_001):  # the last one takes the limiter past 10,000 keys
        limiter.hit(f"key-{n}")
    with pytest.raises(RateLimited) as refused:
        limiter.hit("key-0")  # the same instant: 1 s to wait, less 0.1 s early allowed
    assert refused.value.retry_after == 1
