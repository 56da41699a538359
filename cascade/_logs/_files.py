"""Many logs as one: the files a directory or a glob names, for ``cascade stats`` and batch resume.

Each worker of a batch job writes its own JSONL file (``cascade.ray``); readers take the directory
(its ``*.jsonl`` and ``*.jsonl.gz`` files) or a glob (``'logs/worker-*.jsonl*'``, quoted so the shell
leaves it to us) and read every file as part of one log.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from ._read import LogFileError

LOG_PATTERNS = ("*.jsonl", "*.jsonl.gz")


def log_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The JSONL logs (plain or gzip) directly in ``directory``, sorted; none when it does not exist."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted({p for pattern in LOG_PATTERNS for p in root.glob(pattern) if p.is_file()})


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files, directories and globs as the list of files they name, in order, each once;
    :class:`LogFileError` for a glob or a directory that names none."""
    out: list[str] = []
    for p in paths:
        path = os.fspath(p)
        if glob.has_magic(path) and not os.path.exists(path):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
            if not found:
                raise LogFileError(f"no log file matches {path}")
        elif os.path.isdir(path):
            found = [str(f) for f in log_files(path)]
            if not found:
                raise LogFileError(f"log directory has no *.jsonl or *.jsonl.gz file: {path}")
        else:
            found = [path]
        out += [f for f in found if f not in out]
    return out
