"""Immutable snapshots of what MEDIA_IOC_DEVICE_INFO and MEDIA_IOC_G_TOPOLOGY return."""

from __future__ import annotations

from typing import NamedTuple


class DeviceInfo(NamedTuple):
    driver: str
    model: str
    serial: str
    bus_info: str
    media_version: int
    hw_revision: int
    driver_version: int


class TopoEntity(NamedTuple):
    id: int
    name: str
    function: int
    flags: int


class TopoInterface(NamedTuple):
    id: int
    intf_type: int
    flags: int
    major: int
    minor: int


class TopoPad(NamedTuple):
    id: int
    entity_id: int
    flags: int
    index: int


class TopoLink(NamedTuple):
    """A forward data link (source/sink are pad ids) or an interface link (source is the
    interface id, sink the entity id, MEDIA_LNK_FL_INTERFACE_LINK set)."""

    id: int
    source_id: int
    sink_id: int
    flags: int


class Topology(NamedTuple):
    topology_version: int
    entities: tuple[TopoEntity, ...]
    interfaces: tuple[TopoInterface, ...]
    pads: tuple[TopoPad, ...]
    links: tuple[TopoLink, ...]


class EntityDesc(NamedTuple):
    """``struct media_entity_desc`` (MEDIA_IOC_ENUM_ENTITIES): the legacy view media-ctl uses."""

    id: int
    name: str
    type: int
    flags: int
    pads: int
    links: int
    major: int
    minor: int


class PadDesc(NamedTuple):
    entity: int
    index: int
    flags: int


class LinkDesc(NamedTuple):
    """``struct media_link_desc`` (MEDIA_IOC_ENUM_LINKS): an outbound data link."""

    source: PadDesc
    sink: PadDesc
    flags: int
