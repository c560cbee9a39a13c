"""Interpreter-wide settings for the long-running TUI, made once by the CLI before the app
starts (tests and benches that build apps themselves choose whether to).

* A simulated kernel's graphs are ~3,400 objects per HVR-950Q, all in reference cycles, that
  live as long as the app; full collections walking them paused the UI in the middle of
  event bursts.  The heap as built is parked out of the collector's way (``gc.freeze``);
  full collections run when the app has gone quiet (``collect_when_idle``), the automatic
  ones stay as a backstop.
* A thread that wants the GIL waits a switch interval (5 ms by default); the live source's
  reader thread paid it several times per event, so it is shortened to 1 ms.

The figures behind both are in bench/RESULTS.md.
"""

from __future__ import annotations

import gc
import sys

from .sources import Source

_tuned = False


def tune(source: Source) -> None:
    global _tuned
    gc.freeze()
    gc.set_threshold(700, 10, 1000)
    if not source.snapshot_on_loop:
        sys.setswitchinterval(0.001)
    _tuned = True


def collect_when_idle() -> None:
    """A full collection while nothing happens (it reclaims, e.g., an unplugged stick's
    graph), then the survivors parked again; nothing unless ``tune()`` ran."""
    if not _tuned:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
