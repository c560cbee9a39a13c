"""Real drivers' media-device behaviour: au0828, snd-usb-audio and (as a contrast) uvcvideo."""

from __future__ import annotations

from typing import NamedTuple


class Holder(NamedTuple):
    """Who holds a reference on a media device, and why (ours: the kernel keeps no list)."""

    driver: str
    module: str | None
    interface: str
    state: str  # "bound" or "deferred"
    reason: str
    #: a deferred reference: when its driver was unbound, and the fds of the open files that
    #: keep it (the driver's own structures say which: au0828's video and vbi files)
    unbound_at: float | None = None
    kept_by: tuple[int, ...] = ()
