"""The TUI's terminal going away: a hangup (window closed, ssh dropped, tmux killed).

The kernel signals a hangup with SIGHUP to the session leader only; a TUI started through
``make run`` or a shell wrapper may never get it, and a read of the hung-up terminal then
returns end-of-file at once, forever (Textual's input thread spins on it).  So the terminal
itself is watched too: a thread blocked in ``poll()`` on it with no events requested, which
the kernel wakes only for ``POLLHUP``/``POLLERR``/``POLLNVAL``: zero wake-ups while the
terminal is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

#: exit statuses, as a shell reports a process ended by these signals
EXIT_HANGUP = 128 + signal.SIGHUP
EXIT_TERMINATED = 128 + signal.SIGTERM


def _terminal_fd() -> int | None:
    for stream in (sys.__stdin__, sys.__stdout__):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if stream is not None and stream.isatty():
                return stream.fileno()
    return None


def _wait_for_hangup(fd: int, on_hangup: Callable[[], None]) -> None:
    poller = select.poll()
    poller.register(fd, 0)  # POLLHUP, POLLERR and POLLNVAL are reported whatever is asked
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        if any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in events):
            on_hangup()
            return


#: seconds an orderly exit may take once the terminal is gone or a signal asked for it
EXIT_GRACE = 3.0


def _exit_anyway(status: int) -> None:
    """The backstop of an exit that was asked for: the kernel follows a hangup's SIGHUP with
    SIGCONT, on which Textual restarts its output to the dead terminal, and its shutdown can
    then block for good on the writer's full queue.  After ``EXIT_GRACE`` the process ends
    with ``status`` whatever is still running."""
    timer = threading.Timer(EXIT_GRACE, os._exit, args=(status,))
    timer.daemon = True
    timer.start()


def watch(loop: asyncio.AbstractEventLoop, quit_with: Callable[[int], None]) -> Callable[[], None]:
    """Call ``quit_with(status)`` on the loop when the terminal hangs up or SIGHUP/SIGTERM
    arrives (status 129 / 143, as a shell would report), and end the process with that status
    if the orderly exit has not within ``EXIT_GRACE``.  Returns the undo for the signal
    handlers; the watching thread is a daemon and ends with the process."""

    def end(status: int) -> None:
        _exit_anyway(status)
        quit_with(status)

    handled = (signal.SIGHUP, EXIT_HANGUP), (signal.SIGTERM, EXIT_TERMINATED)
    for signum, status in handled:
        loop.add_signal_handler(signum, end, status)
    fd = _terminal_fd()
    if fd is not None:
        watcher = threading.Thread(
            target=_wait_for_hangup,
            args=(fd, lambda: (_exit_anyway(EXIT_HANGUP), loop.call_soon_threadsafe(quit_with, EXIT_HANGUP))),
            name="mdtui-hangup",
            daemon=True,
        )
        watcher.start()

    def undo() -> None:
        for signum, _ in handled:
            loop.remove_signal_handler(signum)

    return undo

