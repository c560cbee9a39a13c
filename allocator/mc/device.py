"""``struct media_device`` and the mc-core calls that drivers make on it.

Models drivers/media/mc/mc-device.c and mc-entity.c: ``media_device_init``,
``__media_device_usb_init``, ``__media_device_register`` (lowest free minor, topology_version
reset to 0), ``media_device_unregister`` (clears REGISTERED first, then removes every entity,
entity_notify and interface), ``media_device_cleanup``; entity registration with the
entity_notify callbacks run under ``graph_mutex``; pad links (forward + backlink), interface
links, ``__media_entity_setup_link`` and the SETUP_LINK ioctl's ``media_device_setup_link``,
``__media_pipeline_start``/``stop``, ``media_get_pad_index``; and the two ioctls userspace reads
it through, DEVICE_INFO and G_TOPOLOGY (no backlinks).

Every object creation and destruction bumps ``topology_version`` (``media_gobj_create`` /
``media_gobj_destroy``).  Deliberate difference: the kernel lets drivers build graphs during
probe without ``graph_mutex``; here every mutation takes it (re-entrant), so that a snapshot
taken from another thread never sees half an operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from typing import Any

from ..device import Device, dev_str
from ..errors import KernelError
from .devnode import MediaBus, MediaDevnode
from .entity import Entity, Interface, Link, Pad
from .legacy import legacy_type
from .topology import (
    DeviceInfo,
    EntityDesc,
    LinkDesc,
    PadDesc,
    TopoEntity,
    TopoInterface,
    TopoLink,
    Topology,
    TopoPad,
)
from .uapi import (
    MEDIA_ENT_F_UNKNOWN,
    MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN,
    MEDIA_ENT_ID_FLAG_NEXT,
    MEDIA_GRAPH_ENTITY,
    MEDIA_GRAPH_INTF_DEVNODE,
    MEDIA_GRAPH_LINK,
    MEDIA_GRAPH_PAD,
    MEDIA_LNK_FL_DYNAMIC,
    MEDIA_LNK_FL_ENABLED,
    MEDIA_LNK_FL_IMMUTABLE,
    MEDIA_LNK_FL_INTERFACE_LINK,
    MEDIA_PAD_FL_SINK,
    MEDIA_PAD_FL_SOURCE,
)

NotifyFn = Callable[[Entity | None, Any], None]

#: include/media/media-device.h: the notification link_notify is called with
MEDIA_DEV_NOTIFY_PRE_LINK_CH = 0
MEDIA_DEV_NOTIFY_POST_LINK_CH = 1


class EntityNotify:
    """``struct media_entity_notify``."""

    __slots__ = ("notify", "notify_data")

    def __init__(self, notify: NotifyFn, notify_data: Any) -> None:
        self.notify = notify
        self.notify_data = notify_data


class MediaDevice:
    """One media device.  Fields named as in the kernel struct."""

    def __init__(self, bus: MediaBus) -> None:
        self._bus = bus
        self.graph_mutex = threading.RLock()
        self.dev: Device | None = None
        self.driver_name = ""
        self.model = ""
        self.serial = ""
        self.bus_info = ""
        self.hw_revision = 0
        self.topology_version = 0
        # ours, not the kernel's: bumped by every change a reader could see (objects, link
        # flags, registration), so snapshots can be cached; topology_version misses flags
        self.generation = 0
        self.id = 0
        self.entities: dict[int, Entity] = {}
        self.interfaces: dict[int, Interface] = {}
        self.pads: dict[int, Pad] = {}
        self.links: dict[int, Link] = {}
        self.entity_notify: list[EntityNotify] = []
        self.devnode: MediaDevnode | None = None
        self.cleaned_up = False
        self.source_priv: Any = None
        self.enable_source: Callable[[Entity, object], None] | None = None
        self.disable_source: Callable[[Entity], None] | None = None
        #: mdev->ops->link_notify(link, flags, notification): PRE before a link changes (an
        #: error refuses it), POST after; none of the USB drivers modelled here sets one
        self.link_notify: Callable[[Link, int, int], None] | None = None

    def __repr__(self) -> str:
        return f"<MediaDevice {self.devnode_name or 'unregistered'} {self.model!r}>"

    # -- init / register ---------------------------------------------------------------

    def media_device_init(self) -> None:
        """Lists, mutexes, the entity index allocator; ``cleaned_up`` goes back to False."""
        self.cleaned_up = False

    def media_device_usb_init(self, udev: Any, board_name: str | None, driver_name: str | None) -> None:
        """``__media_device_usb_init()``: the fields DEVICE_INFO will report."""
        self.dev = udev
        if driver_name:
            self.driver_name = driver_name
        self.model = board_name or udev.product or "unknown model"
        self.serial = udev.desc.serial
        self.bus_info = udev.usb_make_path()
        self.hw_revision = udev.desc.bcd_device
        self.media_device_init()

    @property
    def registered(self) -> bool:
        """``media_devnode_is_registered(mdev->devnode)``."""
        return self.devnode is not None and self.devnode.registered

    @property
    def devnode_name(self) -> str | None:
        """``/dev/mediaN`` while registered, else None."""
        return self.devnode.device.node if self.registered and self.devnode else None

    def media_device_register(self, owner: Any) -> None:
        """``__media_device_register(mdev, owner)``; ``owner`` is the caller's THIS_MODULE,
        which becomes the cdev owner that an ``open()`` of /dev/mediaN pins."""
        bus = self._bus
        minor = bus.minors.get()
        if minor is None:
            bus.printk.pr_err("media: could not get a free minor")
            raise KernelError(errno.ENFILE, "media: could not get a free minor")
        self.topology_version = 0  # "indicate user-space that the graph is static"
        self.generation += 1
        dev = Device(
            f"media{minor}",
            self.dev,
            "media",
            devt=(MediaBus.MAJOR, minor),
            devname=f"media{minor}",
            attrs={"model": self.model},
        )
        self.devnode = MediaDevnode(self, minor, dev, owner, bus.minors)
        bus.files.register(dev, bus.fops(self.devnode, self._ioctl))
        bus.live[minor] = self
        bus.core.device_add(dev)
        bus.printk.dev_dbg(self._log_dev(dev), "Media device registered")  # dev_dbg(mdev->dev, ...)

    def _log_dev(self, devnode: Device) -> str:
        """Whom mc-device.c's lines name: ``mdev->dev``, the parent (the devnode without one)."""
        return dev_str(self.dev if self.dev is not None else devnode)

    def media_device_unregister(self) -> None:
        with self.graph_mutex:
            devnode = self.devnode
            if devnode is None or not devnode.registered:
                return  # "Check if mdev was ever registered at all"
            devnode.unregister()  # media_devnode_unregister_prepare(): before anything else
            self.generation += 1
            for entity in list(self.entities.values()):
                self._unregister_entity(entity)
            self.entity_notify.clear()
            for intf in list(self.interfaces.values()):
                self.media_devnode_remove(intf)
        self._bus.live.pop(devnode.minor, None)
        self._bus.core.device_del(devnode.device)
        self._bus.printk.dev_dbg(self._log_dev(devnode.device), "Media device unregistered")
        devnode.put()
        self.devnode = None

    def media_device_cleanup(self) -> None:
        self.cleaned_up = True

    # -- objects ---------------------------------------------------------------------------

    def _gobj_create(self, gtype: int, obj: Any, table: dict[int, Any]) -> None:
        self.id += 1
        obj.id = (gtype << 24) | (self.id & 0xFFFFFF)
        table[obj.id] = obj
        self.topology_version += 1
        self.generation += 1

    def _gobj_destroy(self, obj: Any, table: dict[int, Any]) -> None:
        if table.pop(obj.id, None) is not None:
            self.topology_version += 1
            self.generation += 1

    def media_device_register_entity(self, entity: Entity) -> None:
        if entity.function in (MEDIA_ENT_F_UNKNOWN, MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN):
            where = dev_str(self.dev) if self.dev is not None else "media"
            self._bus.printk.dev_warn(where, f"Entity type for entity {entity.name} was not initialized!")
        with self.graph_mutex:
            entity.mdev = self
            self._gobj_create(MEDIA_GRAPH_ENTITY, entity, self.entities)
            for pad in entity.pads:
                self._gobj_create(MEDIA_GRAPH_PAD, pad, self.pads)
            for notify in list(self.entity_notify):
                notify.notify(entity, notify.notify_data)

    def media_device_unregister_entity(self, entity: Entity) -> None:
        if entity.mdev is not self:
            return
        with self.graph_mutex:
            self._unregister_entity(entity)

    def _unregister_entity(self, entity: Entity) -> None:
        for link in list(entity.intf_links):
            self._remove_intf_link(link)
        for link in list(entity.links):
            self._remove_link(link)
        for pad in entity.pads:
            self._gobj_destroy(pad, self.pads)
        self._gobj_destroy(entity, self.entities)
        entity.mdev = None

    def media_devnode_create(self, intf_type: int, flags: int, major: int, minor: int) -> Interface:
        intf = Interface(intf_type, flags, major, minor)
        with self.graph_mutex:
            intf.mdev = self
            self._gobj_create(MEDIA_GRAPH_INTF_DEVNODE, intf, self.interfaces)
        return intf

    def media_devnode_remove(self, intf: Interface) -> None:
        with self.graph_mutex:
            for link in list(intf.links.values()):
                self._remove_intf_link(link)
            self._gobj_destroy(intf, self.interfaces)
            intf.mdev = None

    def media_create_intf_link(self, entity: Entity, intf: Interface, flags: int) -> Link:
        link = Link(intf, entity, flags | MEDIA_LNK_FL_INTERFACE_LINK, False)
        with self.graph_mutex:
            self._gobj_create(MEDIA_GRAPH_LINK, link, self.links)
            intf.links[link.id] = link
            entity.intf_links.append(link)
        return link

    def _remove_intf_link(self, link: Link) -> None:
        link.source.links.pop(link.id, None)  # type: ignore[union-attr]
        with contextlib.suppress(ValueError):  # already gone with its entity
            link.sink.intf_links.remove(link)  # type: ignore[union-attr]
        self._gobj_destroy(link, self.links)

    def media_create_pad_link(self, source: Entity, source_pad: int, sink: Entity, sink_pad: int, flags: int) -> Link:
        """Forward link on the source, backlink on the sink; EINVAL (the kernel WARNs) on a
        bad pad index or a pad of the wrong direction."""
        if (
            source_pad >= len(source.pads)
            or sink_pad >= len(sink.pads)
            or not source.pads[source_pad].flags & MEDIA_PAD_FL_SOURCE
            or not sink.pads[sink_pad].flags & MEDIA_PAD_FL_SINK
        ):
            raise KernelError(
                errno.EINVAL, f"media_create_pad_link: {source.name}:{source_pad} -> {sink.name}:{sink_pad}"
            )
        spad, kpad = source.pads[source_pad], sink.pads[sink_pad]
        link = Link(spad, kpad, flags, False)
        back = Link(spad, kpad, flags, True)
        link.reverse, back.reverse = back, link
        with self.graph_mutex:
            self._gobj_create(MEDIA_GRAPH_LINK, link, self.links)
            source.links.append(link)
            self._gobj_create(MEDIA_GRAPH_LINK, back, self.links)
            sink.links.append(back)
            source.num_links += 1
            sink.num_links += 1
            sink.num_backlinks += 1
        return link

    def _remove_link(self, link: Link) -> None:
        """``__media_entity_remove_link()``: both halves of a data link."""
        for half in (link, link.reverse):
            if half is None:
                continue
            owner = half.sink.entity if half.is_backlink else half.source.entity  # type: ignore[union-attr]
            try:
                owner.links.remove(half)  # one scan; the demux's list is 513 long
            except ValueError:
                pass
            else:
                owner.num_links -= 1
                if half.is_backlink:
                    owner.num_backlinks -= 1
            self._gobj_destroy(half, self.links)

    def media_entity_setup_link(self, link: Link | None, flags: int) -> None:
        """``__media_entity_setup_link()`` (callers hold graph_mutex): only ENABLED may change
        (EINVAL for any other bit), an IMMUTABLE link only to what it is, and a link into or
        out of a streaming entity only when it is DYNAMIC (EBUSY); ``link_notify`` before
        and after, then both halves take the flags.  No uevent, and topology_version stays:
        the kernel counts objects, not flags (``generation`` is ours, for caches)."""
        if link is None:
            raise KernelError(errno.EINVAL, "no such link")
        if (link.flags & ~MEDIA_LNK_FL_ENABLED) != (flags & ~MEDIA_LNK_FL_ENABLED):
            raise KernelError(errno.EINVAL, "only a link's ENABLED flag can change")
        if link.flags & MEDIA_LNK_FL_IMMUTABLE:
            if link.flags != flags:
                raise KernelError(errno.EINVAL, "link is immutable")
            return
        if link.flags == flags:
            return
        source, sink = link.source.entity, link.sink.entity  # type: ignore[union-attr]
        if not link.flags & MEDIA_LNK_FL_DYNAMIC and (
            self.media_entity_is_streaming(source) or self.media_entity_is_streaming(sink)
        ):
            raise KernelError(errno.EBUSY, "link of a streaming entity")
        if self.link_notify is not None:
            self.link_notify(link, flags, MEDIA_DEV_NOTIFY_PRE_LINK_CH)
        self.generation += 1
        for half in (link, link.reverse):
            if half is not None:
                half.flags = flags
                half.record = None  # made again at the next read
        if self.link_notify is not None:
            self.link_notify(link, flags, MEDIA_DEV_NOTIFY_POST_LINK_CH)

    def _find_entity(self, entity_id: int) -> Entity | None:
        """mc-device.c's static ``find_entity()`` (ENUM_LINKS, SETUP_LINK): the entity of that id, or
        with MEDIA_ENT_ID_FLAG_NEXT the first in the list (registration order) after it."""
        if entity_id & MEDIA_ENT_ID_FLAG_NEXT:
            after = entity_id & ~MEDIA_ENT_ID_FLAG_NEXT
            return next((e for e in self.entities.values() if e.id > after), None)
        return self.entities.get(entity_id)

    def media_device_setup_link(self, source: tuple[int, int], sink: tuple[int, int], flags: int) -> None:
        """MEDIA_IOC_SETUP_LINK's ``media_device_setup_link()``: ``source`` and ``sink`` are
        (entity id, pad index); EINVAL for an unknown entity, a pad index out of range, or no
        data link between those pads; then ``__media_entity_setup_link`` under graph_mutex."""
        with self.graph_mutex:
            src_ent, sink_ent = self._find_entity(source[0]), self._find_entity(sink[0])
            if src_ent is None or sink_ent is None:
                raise KernelError(errno.EINVAL, "no such entity")
            if source[1] >= len(src_ent.pads) or sink[1] >= len(sink_ent.pads):
                raise KernelError(errno.EINVAL, "no such pad")
            src_pad, sink_pad = src_ent.pads[source[1]], sink_ent.pads[sink[1]]
            link = next(  # media_entity_find_link(): the source entity's links
                (ln for ln in src_ent.links if ln.source is src_pad and ln.sink is sink_pad),
                None,
            )
            self.media_entity_setup_link(link, flags)

    # -- pipelines ---------------------------------------------------------------------------

    @staticmethod
    def media_entity_is_streaming(entity: Entity) -> bool:
        return any(pad.pipe is not None for pad in entity.pads)

    def media_pipeline_start(self, pad: Pad, pipe: object) -> None:
        """``__media_pipeline_start()`` (callers hold graph_mutex): every pad reached from
        ``pad`` through enabled data links joins ``pipe``; EBUSY when one streams in another
        pipeline.  Deliberately coarser than the kernel: an entity's pads all go together
        (no per-pad routing), and no link_validate (none of these drivers has one)."""
        pads = self._pipeline_pads(pad)
        if any(p.pipe is not None and p.pipe is not pipe for p in pads):
            raise KernelError(errno.EBUSY, "pad already in another pipeline")
        for p in pads:
            p.pipe = pipe

    def media_pipeline_stop(self, pad: Pad) -> None:
        """``__media_pipeline_stop()``: the pipeline ``pad`` streams in stops, all its pads."""
        pipe = pad.pipe
        if pipe is not None:
            for p in self.pads.values():
                if p.pipe is pipe:
                    p.pipe = None

    @staticmethod
    def _pipeline_pads(start: Pad) -> list[Pad]:
        pads: list[Pad] = []
        todo = [start.entity]
        entities: set[int] = set()
        while todo:
            entity = todo.pop()
            if id(entity) not in entities:
                entities.add(id(entity))
                pads += entity.pads
                todo += [
                    end.entity  # type: ignore[union-attr]
                    for link in entity.links
                    if link.flags & MEDIA_LNK_FL_ENABLED
                    for end in (link.source, link.sink)
                ]
        return pads

    @staticmethod
    def media_get_pad_index(entity: Entity, is_sink: bool, sig_type: int) -> int:
        want = MEDIA_PAD_FL_SINK if is_sink else MEDIA_PAD_FL_SOURCE
        for pad in entity.pads:
            if pad.flags & want and pad.sig_type == sig_type:
                return pad.index
        raise KernelError(errno.EINVAL, f"{entity.name}: no pad of signal type {sig_type}")

    def media_device_register_entity_notify(self, notify: EntityNotify) -> None:
        with self.graph_mutex:
            self.entity_notify.append(notify)

    def media_device_unregister_entity_notify(self, notify: EntityNotify) -> None:
        with self.graph_mutex:
            if notify in self.entity_notify:
                self.entity_notify.remove(notify)

    # -- what userspace reads --------------------------------------------------------------

    def device_info(self) -> DeviceInfo:
        """MEDIA_IOC_DEVICE_INFO: ``driver`` falls back to the parent device's bound driver."""
        version = self._bus.kernel_version
        driver = self.driver_name or (self.dev.driver if self.dev is not None else "") or ""
        return DeviceInfo(driver, self.model, self.serial, self.bus_info, version, self.hw_revision, version)

    def topology(self) -> Topology:
        """MEDIA_IOC_G_TOPOLOGY: entities, interfaces, pads, then links without backlinks."""
        with self.graph_mutex:
            return Topology(
                self.topology_version,
                tuple([e.record or _entity_record(e) for e in self.entities.values()]),
                tuple([i.record or _interface_record(i) for i in self.interfaces.values()]),
                tuple([p.record or _pad_record(p) for p in self.pads.values()]),
                tuple([ln.record or _link_record(ln) for ln in self.links.values() if not ln.is_backlink]),
            )

    def enum_entities(self) -> tuple[EntityDesc, ...]:
        """MEDIA_IOC_ENUM_ENTITIES over every entity (types remapped as ``_legacy_type`` says)."""
        with self.graph_mutex:
            return tuple(
                EntityDesc(e.id, e.name, etype, e.flags, len(e.pads), e.num_links - e.num_backlinks, major, minor)
                for e in self.entities.values()
                for etype, major, minor in (e.legacy or _legacy_type(e),)
            )

    def legacy_types(self) -> tuple[tuple[int, int, int], ...]:
        """(ENUM_ENTITIES type, info.dev major, minor) of every entity, in G_TOPOLOGY order:
        what the legacy view adds to G_TOPOLOGY."""
        with self.graph_mutex:
            return tuple([e.legacy or _legacy_type(e) for e in self.entities.values()])

    def enum_links(self, entity_id: int) -> tuple[tuple[PadDesc, ...], tuple[LinkDesc, ...]]:
        """MEDIA_IOC_ENUM_LINKS: the entity's pads and its outbound data links (EINVAL for an
        unknown entity)."""
        with self.graph_mutex:
            e = self._find_entity(entity_id)
            if e is None:
                raise KernelError(errno.EINVAL, f"MEDIA_IOC_ENUM_LINKS: no entity {entity_id}")
            pads = tuple(PadDesc(e.id, p.index, p.flags) for p in e.pads)
            links = tuple(
                LinkDesc(
                    PadDesc(ln.source.entity.id, ln.source.index, ln.source.flags),  # type: ignore[union-attr]
                    PadDesc(ln.sink.entity.id, ln.sink.index, ln.sink.flags),  # type: ignore[union-attr]
                    ln.flags,
                )
                for ln in e.links
                if not ln.is_backlink
            )
        return pads, links

    def _ioctl(self, request: str) -> DeviceInfo | Topology:
        if request == "MEDIA_IOC_DEVICE_INFO":
            return self.device_info()
        if request == "MEDIA_IOC_G_TOPOLOGY":
            return self.topology()
        raise KernelError(errno.ENOTTY, f"{request}: {os.strerror(errno.ENOTTY)}")

    def find_entity(self, function: int) -> Entity | None:
        """The last registered entity with ``function`` (how drivers scan the list)."""
        with self.graph_mutex:
            found = None
            for entity in self.entities.values():
                if entity.function == function:
                    found = entity
            return found


# Each object's G_TOPOLOGY record is made at its first read and kept (see entity.py): a
# registration makes none, so plugging a device costs no more when nobody reads it.


def _entity_record(e: Entity) -> TopoEntity:
    e.record = TopoEntity(e.id, e.name, e.function, e.flags)
    return e.record


def _interface_record(i: Interface) -> TopoInterface:
    i.record = TopoInterface(i.id, i.intf_type, i.flags, i.major, i.minor)
    return i.record


def _pad_record(p: Pad) -> TopoPad:
    p.record = TopoPad(p.id, p.entity.id, p.flags, p.index)
    return p.record


def _link_record(ln: Link) -> TopoLink:
    ln.record = TopoLink(ln.id, ln.source.id, ln.sink.id, ln.flags)
    return ln.record


def _legacy_type(e: Entity) -> tuple[int, int, int]:
    """What ENUM_ENTITIES says of an entity besides its name and counts, kept in
    ``e.legacy``: its type, with the kernel's remapping of functions outside the legacy ranges
    (so old media-ctl does not drop them), and ``info.dev`` where the V4L2 core fills it
    (``allocator.mc.legacy``, which the live reader derives the same answer with)."""
    major, minor = e.info_dev or (0, 0)  # only the V4L2 core fills it in (allocator.mc.legacy)
    e.legacy = (legacy_type(e.function, e.obj_type_subdev), major, minor)
    return e.legacy
