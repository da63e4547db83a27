"""A consecutive-failure circuit breaker (seed system: 5 failures, 30 s reset).

While open, callers skip the protected path entirely (the bidder bids unenriched) instead
of paying a timeout per batch; after ``reset_s`` one trial call is let through (half-open).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failures: int = 5,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self.on_change = on_change  # public: the client hooks its metrics in
        self.state = State.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_granted = False

    def _set(self, state: State) -> None:
        if state != self.state:
            self.state = state
            if self.on_change:
                self.on_change(state)

    def allow(self) -> bool:
        """May the protected call be attempted now? Half-open grants exactly one trial."""
        if self.state == State.OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._set(State.HALF_OPEN)
            self._trial_granted = False
        if self.state == State.CLOSED:
            return True
        if self.state == State.HALF_OPEN and not self._trial_granted:
            self._trial_granted = True
            return True
        return False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._trial_granted = False
        self._set(State.CLOSED)

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._trial_granted = False
        if self.state == State.HALF_OPEN or self.consecutive_failures >= self.threshold:
            self._opened_at = self._clock()
            self._set(State.OPEN)
