from __future__ import annotations

import random
from datetime import timedelta

import pytest

from sqljobs import Backoff


def test_exponential_growth_and_cap_without_jitter() -> None:
    backoff = Backoff(base=1, factor=3, max=20, jitter=0)
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 3, 9, 20]


def test_jitter_stays_within_its_band_and_varies() -> None:
    backoff = Backoff(base=10, factor=2, max=1000, jitter=0.2)
    rng = random.Random(7)
    delays = {backoff.delay(2, rng=rng).total_seconds() for _ in range(50)}
    assert all(16 <= d <= 24 for d in delays)
    assert len(delays) > 10


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(base=1, max=60, jitter=0).delay(10_000) == timedelta(seconds=60)


def test_coerce_accepts_seconds_and_timedelta() -> None:
    assert Backoff.coerce(5).base == 5
    assert Backoff.coerce(timedelta(minutes=1)).base == 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": -1}, "backoff base and max must be >= 0 seconds"),
        ({"factor": 0.5}, "backoff factor must be >= 1"),
        ({"jitter": 2}, "backoff jitter is a fraction between 0 and 1"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        Backoff(**kwargs)
