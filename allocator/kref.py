"""``struct kref`` on top of ``refcount_t``, with the kernel's saturation semantics.

Models include/linux/kref.h and lib/refcount.c: ``kref_init`` sets 1; ``kref_get`` on a count
of 0 does not resurrect the object, it WARNs "refcount_t: addition on 0; use-after-free." and
saturates the counter (the object is being, or has been, freed); ``kref_put`` that takes the
count to 0 calls the release function; a put below zero WARNs "underflow; use-after-free".
The WARN goes to ``warn`` so the simulation can report it as an anomaly instead of crashing.

Deliberate difference: the kernel's refcount_t is lock-free atomics; here each kref has a tiny
lock so that read-modify-write is atomic under Python threads.  Release runs after that lock
is dropped, exactly where the kernel runs it, so the ordering windows are the kernel's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

REFCOUNT_SATURATED = -(2**30)  # INT_MIN / 2, printed by the kernel as 0xc0000000

ADD_UAF = "refcount_t: addition on 0; use-after-free."
UNDERFLOW_UAF = "refcount_t: underflow; use-after-free."
SATURATED = "refcount_t: saturated; leaking memory."


class Kref:
    """One ``struct kref``; ``refcount`` is what ``kref_read()`` returns."""

    __slots__ = ("_lock", "_warn", "refcount")

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._lock = threading.Lock()
        self._warn = warn
        self.refcount = 1  # kref_init()

    @property
    def saturated(self) -> bool:
        return self.refcount < 0

    def kref_get(self) -> None:
        """``kref_get()`` -> ``refcount_inc()``: WARN and saturate on 0 or on a saturated count."""
        with self._lock:
            old = self.refcount
            if old > 0:
                self.refcount = old + 1
                return
            self.refcount = REFCOUNT_SATURATED
        self._warn(ADD_UAF if old == 0 else SATURATED)

    def _dec(self) -> int:
        """Decrement (saturating on underflow, with the WARN); returns the old count."""
        with self._lock:
            old = self.refcount
            self.refcount = old - 1 if old > 0 else REFCOUNT_SATURATED
        if old <= 0:
            self._warn(UNDERFLOW_UAF if old == 0 else SATURATED)
        return old

    def kref_put(self, release: Callable[[Kref], None]) -> bool:
        """``kref_put()``: drop one reference; the caller that takes it to 0 runs ``release``."""
        if self._dec() == 1:
            release(self)
            return True
        return False

    def kref_put_mutex(self, release: Callable[[Kref], None], mutex: AbstractContextManager[object]) -> bool:
        """``kref_put_mutex()``: the 1 -> 0 transition happens with ``mutex`` held, and so does
        ``release`` (the kernel's release unlocks; here the mutex is dropped after it)."""
        with self._lock:
            if self.refcount > 1:  # refcount_dec_not_one(): fast path, no mutex needed
                self.refcount -= 1
                return False
        with mutex:
            if self._dec() == 1:
                release(self)
                return True
        return False
