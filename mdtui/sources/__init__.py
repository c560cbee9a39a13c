"""Where snapshots come from: the simulated kernel (``sim``) or the live system (``live``).

Every source has the whole surface of ``Source``; what a source does not need keeps the
no-op default (the simulated kernel has no file descriptors to watch, the live system no
history), so callers never probe for a method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Tuple

from allocator.events import Event

from ..model import SystemSnapshot

if TYPE_CHECKING:
    from ..step import Step

# typing's aliases, not collections.abc's: this module is part of the remote agent, which
# runs on Python 3.8 (mdtui/remote/pack.py)
Subscriber = Callable[[Event], None]
#: a step the source refused, and why
Refusal = Tuple["Step", OSError]


class Source:
    """A machine to show: its state as snapshots, its changes as events, and its actions."""

    #: the simulated kernel (plug, modprobe... are possible; nothing asks before acting)
    simulated = False
    #: refuses every action (``--read-only``)
    read_only = False
    #: a snapshot is cheap and does no I/O: build it on the event loop (else: in a thread)
    snapshot_on_loop = False
    #: the simulated allocator's design (``allocator.mc_dev_allocator.VARIANTS``); None: a real kernel
    variant: str | None = None

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._watchers: tuple[Callable[[], None], ...] = ()

    # -- watching ----------------------------------------------------------------------

    def start(self) -> None:
        """Begin watching for changes (open monitors); ``filenos()`` is valid after it."""

    def stop(self) -> None:
        """Stop watching and undo what ``start()`` changed on the machine."""

    def ready(self, timeout: float) -> list[str]:
        """Start, and wait (at most ``timeout`` s) until there is a state to show: a remote
        machine's first answer.  Why a machine has none, one line each ([] when all have)."""
        return []

    def filenos(self) -> list[int]:
        """File descriptors to wait on; when one is readable, call ``handle_readable()``."""
        return []

    def handle_readable(self) -> None:
        """Read what the monitors have (emitting events); never blocks."""

    # -- events ------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` (on whatever thread changed the machine) with every event from
        now on; returns the unsubscribe function."""
        self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on any thread) when the state changed with no event to say so
        (a remote machine's answer to a re-read); returns the unsubscribe function."""
        self._watchers = (*self._watchers, callback)

        def unsubscribe() -> None:
            self._watchers = tuple(w for w in self._watchers if w is not callback)

        return unsubscribe

    def changed(self) -> None:
        for callback in self._watchers:
            callback()

    def history(self) -> list[Event]:
        """What happened before anybody subscribed (the simulated world's setup)."""
        return []

    def now(self) -> float:
        """The clock this source's events carry: one clock for every event and change."""
        raise NotImplementedError

    # -- state and actions -------------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        raise NotImplementedError

    def reread_media(self, key: str) -> None:
        """Have the next snapshot read the graph of the media device ``key`` again though no
        event said it changed (a link's flags: SETUP_LINK sends no uevent).  Nothing to do
        for a source whose snapshots always read the graphs."""

    def perform(self, step: Step) -> None:
        """Take a lifecycle step; raises an ``OSError`` (``KernelError``) with the kernel's
        or the tool's wording when it is refused."""
        raise NotImplementedError


def perform_all(source: Source, steps: Iterable[Step]) -> list[Refusal]:
    """Take each step; a refused one is recorded (it is an error event too) and the rest go on."""
    refused = []
    for step in steps:
        try:
            source.perform(step)
        except OSError as exc:
            refused.append((step, exc))
    return refused
