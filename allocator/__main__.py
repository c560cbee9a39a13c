"""``python -m allocator``: walk the media_dev_allocator.sh lifecycle on a simulated
HVR-950Q and print, after each step, the kernel log it produced and the allocator's state."""

from __future__ import annotations

import sys

from . import Kernel, KernelError
from .events import Event

STEPS = [
    ("modprobe", "au0828"),
    ("modprobe", "snd_usb_audio"),
    ("plug", "hvr950q"),
    ("unbind", "au0828", "1-1:1.0"),
    ("rmmod", "au0828"),
    ("unbind", "snd-usb-audio", "1-1:1.1"),
    ("bind", "au0828", "1-1:1.0"),
    ("bind", "snd-usb-audio", "1-1:1.1"),
    ("unplug", "1-1"),
]


def describe(k: Kernel) -> str:
    rows = []
    holders = k.view.holders()
    for dev in k.view.media_devices():
        if not dev.shared:
            continue
        held = ", ".join(f"{h.driver} {h.interface} ({h.reason})" for m, h in holders if m is dev.mdev)
        refcnt = "-" if dev.owner_refcnt is None else dev.owner_refcnt
        node = dev.mdev.devnode_name or "not registered"
        owner = dev.owner or "built-in"
        rows.append(f"  {node}: refcount {dev.refcount}, owner {owner} (refcnt {refcnt}), holders: {held}")
    return "\n".join(rows) or "  no shared media device"


def main() -> int:
    k = Kernel(variant=sys.argv[1] if len(sys.argv) > 1 else "mainline")
    log: list[Event] = []
    k.subscribe(log.append)
    for step in STEPS:
        print(f"$ {' '.join(step)}")
        try:
            getattr(k, step[0])(*step[1:])
        except KernelError as exc:
            print(f"  {exc}")
        for event in log:
            if event.kind in ("trace", "module") and (event.level != "debug" or "media" in event.text):
                print(f"  [{event.kind}] {event.line()}")
        log.clear()
        print(describe(k))
    violations = k.check()
    print(f"check(): {len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
