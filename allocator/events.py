"""One ordered stream of everything the simulated kernel does.

Three kinds of records share one sequence: ``uevent`` (what the kernel broadcasts on the
NETLINK_KOBJECT_UEVENT socket: ACTION, DEVPATH, SUBSYSTEM, ... and SEQNUM), ``module``
(load/unload, what ``/proc/modules`` and ``/sys/module`` would show changing) and ``trace``
(the kernel log: the allocator's ``dev_dbg``/``dev_err`` lines, ``pr_info``/``pr_err`` of the
drivers, ``WARN`` from refcount_t).  ``error`` records a failed user action (a refused rmmod,
a bind that the driver core rejected) with its errno name.

Every record is immutable.  The bus hands records to subscribers in sequence order, while it
holds its lock, so a subscriber sees exactly the order in which things happened, even with
several threads driving the simulation.  Subscribers must be quick and must not call back
into the kernel (queue the event and return).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Callable, NamedTuple

EMPTY: Mapping[str, str] = MappingProxyType({})

UEVENT = "uevent"
MODULE = "module"
TRACE = "trace"
ERROR = "error"


class Event(NamedTuple):
    """One record of the stream.  ``device`` names what it is about, the way the kernel log
    prefixes lines (``usb 1-1``, ``media0``, a module name)."""

    seq: int
    time: float
    kind: str
    level: str
    device: str
    text: str
    fields: Mapping[str, str] = EMPTY

    def line(self) -> str:
        """The record as the kernel log (or ``udevadm monitor``) would print it."""
        if self.kind == UEVENT:
            f = self.fields
            return f"{f.get('ACTION', '?')} {f.get('DEVPATH', '')} ({f.get('SUBSYSTEM', '')})"
        return f"{self.device}: {self.text}" if self.device else self.text


Subscriber = Callable[[Event], None]
_new = tuple.__new__


class EventBus:
    """Sequence numbers, a bounded history and synchronous, ordered delivery."""

    def __init__(self, clock: Callable[[], float], history: int = 8192) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._subscribers: tuple[Subscriber, ...] = ()
        self.history: deque[Event] = deque(maxlen=history)
        self.subscriber_errors: list[BaseException] = []

    def now(self) -> float:
        """The clock every event is stamped with (the kernel's monotonic clock, as
        printk and uevent times use)."""
        return self._clock()

    @property
    def last_seq(self) -> int:
        return self._seq

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Deliver every later event to ``callback``; returns the function that stops it."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def emit(
        self,
        kind: str,
        device: str,
        text: str,
        fields: Mapping[str, str] = EMPTY,
        level: str = "",
    ) -> Event:
        return self.publish(kind, level, device, text, fields)

    def publish(self, kind: str, level: str, device: str, text: str, fields: Mapping[str, str] = EMPTY) -> Event:
        """Number, keep and deliver one event (positional: ``Printk`` binds it with partial)."""
        with self._lock:
            self._seq = seq = self._seq + 1
            event: Event = _new(Event, (seq, self._clock(), kind, level, device, text, fields))
            self.history.append(event)
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception as exc:  # a broken subscriber must not wreck the kernel state
                    self.subscriber_errors.append(exc)
        return event


class Printk:
    """The kernel log, as the allocator and drivers write it: ``dev_dbg(dev, text)``,
    ``dev_info``, ``dev_err``, ``dev_warn``, and ``pr_info(text)`` / ``pr_err(text)``."""

    def __init__(self, bus: EventBus) -> None:
        self.dev_dbg: Callable[[str, str], Event] = partial(bus.publish, TRACE, "debug")
        self.dev_info: Callable[[str, str], Event] = partial(bus.publish, TRACE, "info")
        self.dev_err: Callable[[str, str], Event] = partial(bus.publish, TRACE, "err")
        self.dev_warn: Callable[[str, str], Event] = partial(bus.publish, TRACE, "warn")
        self.pr_info: Callable[[str], Event] = partial(bus.publish, TRACE, "info", "")
        self.pr_err: Callable[[str], Event] = partial(bus.publish, TRACE, "err", "")
