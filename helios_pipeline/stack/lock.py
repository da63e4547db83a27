"""One stack per ``HELIOS_HOME``: an exclusive lock that `helios up` holds while it runs.

The lock is an ``flock`` on ``$HELIOS_HOME/helios.lock``; the kernel drops it when the
process dies, however it dies, so a stale ``stack.json`` can never pass for a live stack.
Client commands (`status`, `down`, `audit`, `load`, …) ask :func:`running` before they trust
``stack.json``; a second `helios up` fails on the lock before it touches anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class HomeLocked(RuntimeError):
    """Another `helios up` holds this HELIOS_HOME."""


def lock_path(home: Path) -> Path:
    return home / "helios.lock"


class HomeLock:
    def __init__(self, home: Path) -> None:
        self.path = lock_path(home)
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise HomeLocked(holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            self.fd = None


def running(home: Path) -> int | None:
    """The pid of the `helios up` holding ``home``, or None when no stack runs there."""
    path = lock_path(home)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
