"""Child processes that never outlive us: own process group, parent-death signal, terminate-then-kill.

Every server is started in a new session (its own process group) so a Ctrl-C in the terminal reaches
only us and we stop the children in order; on Linux the kernel also kills a child if we die without
cleaning up (``PR_SET_PDEATHSIG``). A module-level registry stops whatever is still running at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """One child process in its own process group, with its output in a log file."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if _LIBC is not None else None,
            )
        except BaseException:
            self._log.close()
            raise
        _live.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        """The last lines the process wrote (stdout and stderr together)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the whole group, SIGKILL after ``timeout`` seconds; idempotent."""
        if self.popen.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait()
        self._signal_group(signal.SIGKILL)  # any grandchild left in the group
        self._log.close()
        _live.discard(self)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a running process has used (all its threads), from ``/proc``; None
    where that cannot be read (not Linux, process gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


_live: set[ManagedProcess] = set()
"""Strong references: a ladder dropped without close() is still stopped at exit."""


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 5.0) -> None:
    """Stop several processes: signal them all first so they shut down in parallel."""
    for p in processes:
        if p.alive():
            p._signal_group(signal.SIGTERM)
    for p in processes:
        p.stop(timeout)


@atexit.register
def _stop_leftovers() -> None:
    stop_all(list(_live), timeout=3.0)


class TerminateAsInterrupt:
    """While active, SIGTERM raises ``SystemExit(143)`` in the main thread, so ``with`` blocks unwind
    and stop their servers as they do on Ctrl-C. Does nothing outside the main thread or when someone
    else already handles SIGTERM."""

    def __init__(self) -> None:
        self._previous: Callable[[int, Any], Any] | int | None = None
        self._installed = False

    def __enter__(self) -> TerminateAsInterrupt:
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                self._previous = current
                signal.signal(signal.SIGTERM, _raise_exit)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
