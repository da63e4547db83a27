"""CircuitBreaker state machine with an injected clock."""

from ingest_services.common.circuit import CircuitBreaker, State


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _breaker(failures=3, reset_s=10.0):
    clock = Clock()
    seen = []
    cb = CircuitBreaker(failures=failures, reset_s=reset_s, clock=clock, on_change=seen.append)
    return cb, clock, seen


def test_opens_after_n_consecutive_failures():
    cb, _, seen = _breaker()
    for _ in range(2):
        assert cb.allow()
        cb.record_failure()
    assert cb.state == State.CLOSED
    cb.record_failure()
    assert cb.state == State.OPEN
    assert not cb.allow()
    assert seen == [State.OPEN]


def test_success_resets_failure_count():
    cb, _, seen = _breaker()
    cb.record_failure()
    cb.record_failure()
    cb.record_success()
    assert cb.consecutive_failures == 0
    cb.record_failure()
    cb.record_failure()
    assert cb.state == State.CLOSED
    assert seen == []


def test_open_denies_until_reset_then_half_open_trial_success_closes():
    cb, clock, seen = _breaker()
    for _ in range(3):
        cb.record_failure()
    clock.t += 9.999
    assert not cb.allow()
    assert cb.state == State.OPEN
    clock.t += 0.001
    assert cb.allow()
    assert cb.state == State.HALF_OPEN
    cb.record_success()
    assert cb.state == State.CLOSED
    assert cb.allow()
    assert seen == [State.OPEN, State.HALF_OPEN, State.CLOSED]
    # a fresh run of failures is needed to open again
    cb.record_failure()
    cb.record_failure()
    assert cb.state == State.CLOSED


def test_half_open_failure_reopens_and_restarts_timer():
    cb, clock, seen = _breaker()
    for _ in range(3):
        cb.record_failure()
    clock.t += 10
    assert cb.allow()
    cb.record_failure()
    assert cb.state == State.OPEN
    assert not cb.allow()
    clock.t += 5
    assert not cb.allow()
    clock.t += 5
    assert cb.allow()
    assert seen == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN]


def test_half_open_single_failure_reopens_even_with_high_threshold():
    cb, clock, _ = _breaker(failures=5)
    for _ in range(5):
        cb.record_failure()
    cb.record_success()  # recovered out of band
    assert cb.state == State.CLOSED
    for _ in range(5):
        cb.record_failure()
    clock.t += 10
    cb.allow()
    cb.record_failure()
    assert cb.state == State.OPEN


def test_without_callback():
    cb = CircuitBreaker(failures=1, reset_s=1.0, clock=Clock())
    cb.record_failure()
    assert cb.state == State.OPEN


def test_half_open_grants_exactly_one_trial_until_it_resolves():
    now = [0.0]
    cb = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
    cb.record_failure()
    now[0] = 10
    assert cb.allow() is True  # the trial
    assert cb.allow() is False  # no second caller while the trial is out
    cb.record_success()
    assert cb.allow() is True and cb.allow() is True
