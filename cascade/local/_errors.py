"""Errors of the offline ladder, each saying what to do about it."""

from __future__ import annotations

from .._errors import CascadeError


class LocalLadderUnavailable(CascadeError, RuntimeError):
    """The runtime (llama-cpp-python) or the weight wheels are not installed; the message says what
    to install (``make local``)."""


class ModelChecksumError(CascadeError, ValueError):
    """A model file does not have the pinned size or sha256; the message names the file and both hashes."""


class LocalServerError(CascadeError, RuntimeError):
    """A llama.cpp server did not come up; the message holds the tail of its log."""
