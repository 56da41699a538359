"""A real OpenAI- and Anthropic-compatible HTTP server for tests: scripted answers per model and
injected faults (resets, hangs, 429s, broken JSON...). Needs the ``[testing]`` extra (aiohttp).

    from cascade.testing import TestServer, Reply

    with TestServer() as srv:
        srv.script("small", Reply(status=429), Reply(content='{"label": "spam"}'))
        ...  # point an OpenAI-compatible client at srv.base_url
"""

from ._reply import FAULTS, HUGE_BYTES, Headers, RecordedRequest, Reply
from ._script import DEFAULT_FAULTS, Responder
from ._server import TestServer
from ._wire import estimate_tokens, split_tokens

__all__ = [
    "DEFAULT_FAULTS",
    "FAULTS",
    "HUGE_BYTES",
    "Headers",
    "RecordedRequest",
    "Reply",
    "Responder",
    "TestServer",
    "estimate_tokens",
    "split_tokens",
]
