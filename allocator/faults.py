"""Fault injection points, like the kernel's failslab / fail_function: arm a named point for
the next N calls, and the code at that point fails as the real call would."""

from __future__ import annotations

import threading

#: The points the simulation consults.
POINTS = {
    "kzalloc": "allocation of a media_device_instance in __media_device_get() fails (ENOMEM)",
    "try_module_get": "try_module_get() of the owner module fails, as while it is GOING",
}


class FaultInjector:
    def __init__(self) -> None:
        self._armed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.fired: dict[str, int] = {}

    def arm(self, point: str, times: int = 1) -> None:
        if point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; known: {', '.join(sorted(POINTS))}")
        with self._lock:
            self._armed[point] = self._armed.get(point, 0) + times

    @property
    def armed(self) -> bool:
        return bool(self._armed)

    def should_fail(self, point: str) -> bool:
        if not self._armed:
            return False
        with self._lock:
            left = self._armed.get(point, 0)
            if left <= 0:
                return False
            if left == 1:
                del self._armed[point]
            else:
                self._armed[point] = left - 1
            self.fired[point] = self.fired.get(point, 0) + 1
            return True
