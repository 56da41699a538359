"""The provider interface: like an httpx transport, the one thing to implement for a new backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._types import Completion, CompletionRequest


@runtime_checkable
class Provider(Protocol):
    """Turns a :class:`CompletionRequest` into a :class:`Completion`, or raises ``ProviderError``.

    Implementations raise ``ProviderError(kind=...)`` with a reason code for failures, so the engine
    can retry (``transient``), escalate (``rung_fatal``) or raise (``caller``). ``name`` identifies the
    backend in logs. ``aclose`` releases connections; it may be called more than once.
    """

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...
