"""Naming a media device the way the media tools let users name one.

``/dev/mediaN`` numbers follow plug order, so a user names a device by what they know of it:
its node (``media0``, ``/dev/media0``, or a symlink to it, like udev's ``/dev/v4l/by-id``
links), its bus_info (``usb-0000:00:14.0-1``, as ``media-ctl -d`` and ``v4l2-compliance -z``
take it), its driver (``au0828``) or a piece of its model (``950Q``, any case).  The first of
those that matches anything decides; more than one device matching it is ambiguous.
"""

from __future__ import annotations

import os

from .model import MediaDeviceView, SystemSnapshot


class NoSuchDevice(LookupError):
    def __init__(self, spec: str) -> None:
        super().__init__(f"no media device matches {spec!r} (a node, bus_info, driver or model)")


class Ambiguous(LookupError):
    """``spec`` names several devices; ``candidates`` are they."""

    def __init__(self, spec: str, how: str, candidates: list[MediaDeviceView]) -> None:
        super().__init__(f"{spec!r} matches {len(candidates)} media devices by {how}")
        self.candidates = candidates


def describe(dev: MediaDeviceView) -> str:
    """A device as the candidates list shows it: node, bus_info, driver, model."""
    return f"{dev.devnode or dev.name}  {dev.info.bus_info or '-'}  {dev.info.driver or '-'}  {dev.info.model or '-'}"


def select(snap: SystemSnapshot, spec: str) -> MediaDeviceView:
    """The one media device ``spec`` names; NoSuchDevice or Ambiguous otherwise."""
    if not spec.strip():
        raise NoSuchDevice(spec)
    devices = snap.media_devices
    node = spec if spec.startswith("/") else f"/dev/{spec}"
    rules = (
        ("node", lambda d: d.devnode is not None and d.devnode in (node, _resolved(node))),
        ("bus_info", lambda d: d.unread is None and d.info.bus_info == spec),
        ("driver", lambda d: d.unread is None and d.info.driver == spec),
        ("model", lambda d: spec.casefold() in (d.info.model or "").casefold()),
    )
    for how, matches in rules:
        found = [d for d in devices if matches(d)]
        if len(found) == 1:
            return found[0]
        if found:
            raise Ambiguous(spec, how, found)
    raise NoSuchDevice(spec)


def _resolved(path: str) -> str:
    """Where a symlink to a node leads (udev's by-id and by-path links); the path otherwise."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path
