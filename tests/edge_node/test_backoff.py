"""The edge's retry wait: exponential with jitter and a cap, but never sooner than the hub's
Retry-After (HTTP 503 from a busy hub, 429 from a rate limit)."""

from __future__ import annotations

from tenacity import RetryCallState

from edge_node.sync import backoff
from protocol.errors import NetworkError, ServerBusy


def state_after(exc: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_a_retry_after_is_a_floor_under_the_backoff() -> None:
    wait = backoff(300)
    assert wait(state_after(ServerBusy("busy", 17.0))) >= 17.0
    assert wait(state_after(ServerBusy("busy"))) < 3  # first retry: about a second


def test_the_cap_bounds_the_retry_after_too() -> None:
    wait = backoff(60)
    assert wait(state_after(ServerBusy("busy", 3600.0))) <= 60
    assert 30 <= wait(state_after(NetworkError("down"), attempt=12)) <= 60
