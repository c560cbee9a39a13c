"""A ``struct mutex`` that can tell a test whether somebody is waiting on it."""

from __future__ import annotations

import threading
from types import TracebackType


class Mutex:
    """Non-recursive, like the kernel's.  ``waiters`` counts threads blocked in ``lock()``,
    so a test can wait until a racing thread really is parked on the lock."""

    __slots__ = ("_count", "_lock", "name", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self.waiters = 0

    def __enter__(self) -> Mutex:
        if not self._lock.acquire(blocking=False):
            with self._count:
                self.waiters += 1
            self._lock.acquire()
            with self._count:
                self.waiters -= 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()
