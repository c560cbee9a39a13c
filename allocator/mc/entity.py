"""Graph objects of a media device: entities, pads, links and interfaces.

Models include/media/media-entity.h.  Every object gets an id ``type << 24 | ++mdev->id``
when it is added to a media device (one counter for all four types).  A data link is two
objects: the forward link on the source entity's list and a backlink on the sink's; an
interface link is one object on the interface's list.

Deliberate difference: each entity also lists the interface links that point at it, so that
unregistering an entity does not scan every interface of the device (the kernel does); the
result, and the order of topology_version bumps, are the same.  An entity's link lists are
plain lists, like the kernel's list_heads (small: a dict per entity cost ~8 MB with 64 sticks).

Also ours: each object keeps ``record``, its G_TOPOLOGY record, made at the first read (a
link's again after setup_link changes its flags), so that a topology read costs a copy of the
records rather than a walk that rebuilds ~3,400 of them (the TUI reads many per second).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .uapi import MEDIA_PAD_FL_SINK, MEDIA_PAD_FL_SOURCE, PAD_SIGNAL_DEFAULT

if TYPE_CHECKING:
    from .device import MediaDevice
    from .topology import TopoEntity, TopoInterface, TopoLink, TopoPad

MEDIA_ENTITY_MAX_PADS = 512


class Pad:
    __slots__ = ("entity", "flags", "id", "index", "pipe", "record", "sig_type")

    def __init__(self, entity: Entity, index: int, flags: int, sig_type: int) -> None:
        self.entity = entity
        self.index = index
        self.flags = flags
        self.sig_type = sig_type
        self.id = 0
        self.pipe: object | None = None  # pad->pipe: the media pipeline streaming through it
        self.record: TopoPad | None = None


class Entity:
    """``struct media_entity``.  ``owner`` is ours, not the kernel's: which driver instance
    created it (for the "entity left behind" invariant)."""

    __slots__ = (
        "flags",
        "function",
        "id",
        "info_dev",
        "intf_links",
        "legacy",
        "links",
        "mdev",
        "name",
        "num_backlinks",
        "num_links",
        "obj_type_subdev",
        "owner",
        "pads",
        "record",
    )

    def __init__(
        self,
        name: str,
        function: int,
        pads: Sequence[tuple[int, int]] = (),
        *,
        flags: int = 0,
        owner: object = None,
    ) -> None:
        if len(pads) >= MEDIA_ENTITY_MAX_PADS:  # media_entity_pads_init(): -E2BIG
            raise ValueError(f"{name}: {len(pads)} pads (max {MEDIA_ENTITY_MAX_PADS - 1})")
        self.name = name
        self.function = function
        self.flags = flags
        self.owner = owner
        self.pads = [Pad(self, i, f, s) for i, (f, s) in enumerate(pads)]
        self.links: list[Link] = []  # forward links and backlinks, in creation order
        self.intf_links: list[Link] = []
        self.num_links = 0
        self.num_backlinks = 0
        self.mdev: MediaDevice | None = None
        self.id = 0
        self.obj_type_subdev = False  # obj_type == MEDIA_ENTITY_TYPE_V4L2_SUBDEV
        self.info_dev: tuple[int, int] | None = None  # entity->info.dev: major, minor
        self.record: TopoEntity | None = None
        self.legacy: tuple[int, int, int] | None = None  # ENUM_ENTITIES type, major, minor

    def __repr__(self) -> str:
        return f"<Entity {self.id:#x} {self.name!r}>"


def sink(sig: int = PAD_SIGNAL_DEFAULT) -> tuple[int, int]:
    return (MEDIA_PAD_FL_SINK, sig)


def source(sig: int = PAD_SIGNAL_DEFAULT) -> tuple[int, int]:
    return (MEDIA_PAD_FL_SOURCE, sig)


class Interface:
    """``struct media_intf_devnode``: a device node's type and ``major:minor``."""

    __slots__ = ("flags", "id", "intf_type", "links", "major", "mdev", "minor", "record")

    def __init__(self, intf_type: int, flags: int, major: int, minor: int) -> None:
        self.intf_type = intf_type
        self.flags = flags
        self.major = major
        self.minor = minor
        self.links: dict[int, Link] = {}
        self.mdev: MediaDevice | None = None
        self.id = 0
        self.record: TopoInterface | None = None


class Link:
    """``struct media_link``.  Data link: ``source``/``sink`` are pads.  Interface link:
    ``source`` is the interface (gobj0), ``sink`` the entity (gobj1)."""

    __slots__ = ("flags", "id", "is_backlink", "record", "reverse", "sink", "source")

    def __init__(self, source: Pad | Interface, sink: Pad | Entity, flags: int, is_backlink: bool) -> None:
        self.source = source
        self.sink = sink
        self.flags = flags
        self.is_backlink = is_backlink
        self.reverse: Link | None = None
        self.id = 0
        self.record: TopoLink | None = None  # never made for a backlink: G_TOPOLOGY leaves those out
