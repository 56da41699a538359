"""Retrying transient provider failures on the same rung, with tenacity.

Exponential backoff with full jitter, ``Retry-After`` honoured up to a cap, bounded in attempts and in
total time. A ``Retry-After`` longer than the cap is not waited out: the error is re-raised so the
engine escalates to the next rung instead of stalling the request.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from ._errors import ProviderError

if TYPE_CHECKING:  # tenacity is imported on the first retry, not with cascade (import time)
    from tenacity import RetryCallState

    from ._config import RetryPolicy

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.kind == "transient"


class wait_retry_after:
    """Wait what the server asked for (``Retry-After``), else fall back to jittered backoff."""

    def __init__(self, fallback: Callable[[RetryCallState], float], cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.cap)
        return self.fallback(state)


class stop_on_long_retry_after:
    """Stop when the server asks to wait longer than we are willing to: escalate instead. A plain
    callable, as tenacity accepts on the right of ``|``."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, ProviderError) and exc.retry_after is not None and exc.retry_after > self.cap


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[ProviderError], None],
) -> T:
    """Run ``fn``; on a transient ProviderError retry per ``policy``. ``on_retry`` sees each failure
    that is followed by another try. The last error is re-raised when retries run out."""
    try:
        return await fn()  # fast path: no retry machinery unless something failed
    except ProviderError as exc:
        if (
            not is_transient(exc)
            or policy.attempts <= 1
            or (exc.retry_after is not None and exc.retry_after > policy.max_retry_after_s)
        ):
            raise
        first = exc

    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    on_retry(first)
    backoff = wait_random_exponential(multiplier=policy.initial_wait_s, max=policy.max_wait_s)
    waiter = wait_retry_after(backoff, policy.max_retry_after_s)
    # The first failure happened outside tenacity (fast path): wait for it as tenacity would.
    first_wait = first.retry_after if first.retry_after is not None else random.uniform(0, policy.initial_wait_s)
    await asyncio.sleep(min(max(first_wait, 0.0), policy.max_retry_after_s))
    limits = stop_after_attempt(policy.attempts - 1) | stop_after_delay(policy.max_delay_s)
    too_long = stop_on_long_retry_after(policy.max_retry_after_s)
    retrying = AsyncRetrying(
        stop=lambda state: limits(state) or too_long(state),
        wait=waiter,
        retry=retry_if_exception(is_transient),
        before_sleep=lambda s: on_retry(s.outcome.exception()) if s.outcome else None,  # type: ignore[arg-type]
        reraise=True,
    )
    return await retrying(fn)
