"""When to retry a failed job: exponential backoff with jitter. Pure functions, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from ._utils import Duration, to_seconds


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base * factor ** (attempt - 1)``, capped at ``max``, ± ``jitter``.

    Example:
        >>> policy = Backoff(base=2, factor=2, max=60, jitter=0)
        >>> [policy.delay(n).total_seconds() for n in (1, 2, 3, 10)]
        [2.0, 4.0, 8.0, 60.0]
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base < 0 or self.max < 0:
            raise ValueError("backoff base and max must be >= 0 seconds")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction between 0 and 1")

    @classmethod
    def coerce(cls, value: Backoff | Duration | None) -> Backoff:
        """Accept a :class:`Backoff`, or a number of seconds / timedelta used as ``base``."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        return cls(base=to_seconds(value, name="backoff"))

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> timedelta:
        """The wait before the attempt that follows failed attempt number ``attempt`` (1-based)."""
        exponent = max(attempt - 1, 0)
        try:
            raw = self.base * self.factor**exponent
        except OverflowError:
            raw = self.max
        capped = min(raw, self.max)
        spread = capped * self.jitter
        jittered = capped + (rng or random).uniform(-spread, spread)
        return timedelta(seconds=max(jittered, 0.0))
