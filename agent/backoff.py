"""Reconnect delays: exponential with full jitter, so a thousand agents cut off by the
same collector restart do not come back in the same second (AWS "full jitter")."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial, self.maximum = initial, maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt: uniform in [initial/2, min(max, initial*2^n)]."""
        ceiling = min(self.maximum, self.initial * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(min(self.initial / 2, ceiling), ceiling)

    def reset(self) -> None:
        self.attempt = 0
