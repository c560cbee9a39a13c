"""A uevent monitor fed by hand (a pipe makes its fd readable), for tests and benchmarks of
the live path without udev."""

from __future__ import annotations

import contextlib
import os


class PipeMonitor:
    description = "events: test feed"

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._queue: list[dict[str, str]] = []

    def fileno(self) -> int:
        return self._r

    def send(self, env: dict[str, str]) -> None:
        self._queue.append(env)
        os.write(self._w, b"!")

    def receive(self) -> list[dict[str, str]]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        out, self._queue = self._queue, []
        return out

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)
