"""The one path from a source's events to what is shown: batch, snapshot, diff, attribute.

    source event (any thread) ─► pending ─► drain, on the consumer's thread
      ─► one snapshot build at a time (on that thread when the source says a snapshot is
         cheap, else in one reader thread) ─► the events it includes, the changes they made
      ─► Update ─► ready ─► notify() ─► the consumer's take()

Events that arrive while a snapshot is being built wait for the next one, so each update is
explained by exactly the events it includes (however the threads interleaved).  Updates the
consumer has not taken yet merge into one when it takes them: bursts coalesce, no event is
lost.  Textual-free: the app (mdtui/app.py), ``watch`` (mdtui/watch.py) and the benches use
it; the consumer says how to run a call on its thread (``call_soon``, thread-safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from allocator import Event

from .changes import Change, cause_of, diff
from .model import SystemSnapshot
from .sources import Source

LOG = logging.getLogger(__name__)

CallSoon = Callable[[Callable[[], None]], object]


@dataclass(frozen=True, slots=True)
class Update:
    """A new snapshot, the events it includes and the changes they made."""

    snapshot: SystemSnapshot
    events: tuple[Event, ...]
    changes: tuple[Change, ...]
    when: float  # the time of the last event, or of the read when a change came without one (the source's clock)
    errors: tuple[str, ...] = ()  # snapshots that could not be built (the previous one stays)

    def then(self, later: Update) -> Update:
        events, changes, errors = self.events + later.events, self.changes + later.changes, self.errors + later.errors
        return Update(later.snapshot, events, changes, later.when, errors)


class Pipeline:
    def __init__(
        self, source: Source, call_soon: CallSoon, notify: Callable[[], None], last: SystemSnapshot | None = None
    ) -> None:
        self.source = source
        self.last = last if last is not None else source.snapshot()
        self.last_when = 0.0
        self._call_soon = call_soon
        self._notify = notify
        self._lock = threading.Lock()
        self._pending: list[Event] = []  # delivered by the source, not yet drained
        self._scheduled = False  # a drain is on its way to the consumer's thread
        self._forced = False  # read again though no event came (an open pins a module silently)
        self._cause = ""  # what the consumer says it did, when the events do not say
        self._closed = False
        # the rest is touched on the consumer's thread only
        self._batch: list[Event] = []
        self._building = False
        self._dirty = False
        self._ready: list[Update] = []
        self._reader: ThreadPoolExecutor | None = None
        self._unsubscribe = source.subscribe(self._on_event)
        self._unwatch = source.on_change(self.refresh)

    # -- in: any thread ----------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.append(event)
        self._schedule()

    def refresh(self, cause: str = "") -> None:
        """Read the state again though no event may come; ``cause`` explains the changes
        when the events do not (the step that was taken)."""
        with self._lock:
            if self._closed:
                return
            self._forced = True
            self._cause = cause or self._cause
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._call_soon(self._drain)

    # -- on the consumer's thread ------------------------------------------------------

    def _take_pending(self) -> bool:
        """Move the delivered events into the batch; whether a read was asked for."""
        with self._lock:
            events, self._pending = self._pending, []
            forced, self._forced = self._forced, False
            self._scheduled = False
        self._batch.extend(events)
        return forced

    def _drain(self) -> None:
        forced = self._take_pending()
        if (forced or self._batch) and not self._closed:
            self._request()

    def _request(self) -> None:
        if self._building:
            self._dirty = True
            return
        self._building = True
        if self.source.snapshot_on_loop:
            self._built(self.source.snapshot())
            return
        if self._reader is None:  # one long-lived thread: a thread per build costs ~6 ms to start
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdtui-snapshot")
        future = self._reader.submit(self.source.snapshot)
        future.add_done_callback(lambda done: self._call_soon(lambda: self._finished(done)))

    def _finished(self, future: Future[SystemSnapshot]) -> None:
        error = future.exception()
        if error is None:
            self._built(future.result())
            return
        self._building = False
        LOG.warning("could not read the system: %s", error)
        self._ready.append(Update(self.last, (), (), self.last_when, (str(error),)))
        self._notify()

    def _built(self, snap: SystemSnapshot) -> None:
        if self._take_pending():  # asked to read again while this was being read
            self._dirty = True
        if self._closed:
            return
        events = tuple(e for e in self._batch if e.seq <= snap.seq)
        self._batch = [e for e in self._batch if e.seq > snap.seq]
        with self._lock:
            cause, self._cause = self._cause, ""
        changes = tuple(diff(self.last, snap, cause_of(events, self.last) or cause))
        # a change no event explains (an open pins a module silently) is stamped now; the
        # clock is read only then (a simulated clock ticks per reading: screens stay the same)
        when = events[-1].time if events else self.source.now() if changes else self.last_when
        self.last_when = when
        self._ready.append(Update(snap, events, changes, when))
        LOG.debug(
            "update to seq %d: %d events, %d changes%s",
            snap.seq,
            len(events),
            len(changes),
            "".join(f"; {c.text}" for c in changes),
        )
        self.last = snap
        self._building = False
        self._notify()
        if self._dirty or self._batch:
            self._dirty = False
            self._request()

    def take(self) -> Update | None:
        """What is ready, merged into one update; None when nothing is."""
        ready, self._ready = self._ready, []
        if not ready:
            return None
        merged = ready[0]
        for later in ready[1:]:
            merged = merged.then(later)
        return merged

    @property
    def idle(self) -> bool:
        """Nothing pending, scheduled, being built or waiting to be taken."""
        with self._lock:
            queued = self._pending or self._scheduled or self._forced
        return not (queued or self._building or self._batch or self._ready)

    def close(self) -> None:
        """Stop listening; late events and snapshots are dropped."""
        self._unsubscribe()
        self._unwatch()
        with self._lock:
            self._closed = True
        if self._reader is not None:
            self._reader.shutdown(wait=False)
