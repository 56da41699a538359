"""A Python callable as a model (as pydantic-ai's ``FunctionModel``): for tests and custom backends.

The function gets the :class:`~cascade.CompletionRequest` and returns a :class:`~cascade.Completion`,
or just the answer's text (usage is then unknown, and the engine charges its upper bound). It may be
sync or async, and may raise :class:`~cascade.ProviderError` to simulate a failure the engine retries
(``transient``), escalates past (``rung_fatal``) or raises (``caller``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._errors import ConfigError
from .._types import Completion, CompletionRequest

ModelFunction = Callable[[CompletionRequest], "Completion | str | Awaitable[Completion | str]"]


class FunctionProvider:
    """``FunctionProvider(fn)``: each call runs ``fn(request)``. ``name`` labels it in logs."""

    def __init__(self, fn: ModelFunction, *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"FunctionProvider: expected a callable of the request, got {fn!r}")
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "function"))

    async def complete(self, request: CompletionRequest) -> Completion:
        out = self.fn(request)
        answer = await out if inspect.isawaitable(out) else out
        if isinstance(answer, str):
            return Completion(text=answer, tokens_in=-1, tokens_out=-1, model=request.model)
        if not isinstance(answer, Completion):
            raise TypeError(
                f"FunctionProvider {self.name!r}: expected a Completion or str, got {type(answer).__name__}"
            )
        return answer

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"FunctionProvider({self.name!r})"
