"""Providers: the backends a rung calls, like httpx's transports (one ``complete`` to implement)."""

from ._anthropic import Anthropic
from ._base import Provider
from ._function import FunctionProvider
from ._openai import OpenAICompatible

__all__ = ["Anthropic", "FunctionProvider", "OpenAICompatible", "Provider"]
