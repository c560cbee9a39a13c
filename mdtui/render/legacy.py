"""The legacy (ENUM_ENTITIES / ENUM_LINKS) view of a graph, as libmediactl builds it.

media-ctl enumerates entities in id order and, for each, its outbound links; every link is
appended to the source entity's list and to the sink entity's list as it is found.  Both
``-p`` and ``--print-dot`` walk those lists, so their order is reproduced here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allocator.mc.topology import EntityDesc, LinkDesc, PadDesc

from ..model import DATA, MediaDeviceView, links_of_kind

MEDIA_ENT_TYPE_MASK = 0x00FF0000
MEDIA_ENT_SUBTYPE_MASK = 0x0000FFFF
MEDIA_ENT_T_DEVNODE = 0x00010000
MEDIA_ENT_T_V4L2_SUBDEV = 0x00020000
NODE_TYPES = ("Unknown", "V4L", "FB", "ALSA", "DVB")
SUBDEV_TYPES = ("Unknown", "Sensor", "Flash", "Lens", "Decoder", "Tuner")


@dataclass
class LegacyEntity:
    desc: EntityDesc
    devname: str
    links: list[LinkDesc] = field(default_factory=list)

    @property
    def kind(self) -> int:
        return self.desc.type & MEDIA_ENT_TYPE_MASK

    @property
    def is_subdev(self) -> bool:
        return self.kind == MEDIA_ENT_T_V4L2_SUBDEV


def type_names(etype: int) -> tuple[str, str]:
    sub = etype & MEDIA_ENT_SUBTYPE_MASK
    if etype & MEDIA_ENT_TYPE_MASK == MEDIA_ENT_T_DEVNODE:
        return "Node", NODE_TYPES[sub] if sub < len(NODE_TYPES) else "Unknown"
    if etype & MEDIA_ENT_TYPE_MASK == MEDIA_ENT_T_V4L2_SUBDEV:
        return "V4L2 subdev", SUBDEV_TYPES[sub] if sub < len(SUBDEV_TYPES) else "Unknown"
    return "Unknown", "Unknown"


def legacy_name(name: str) -> str:
    """The name ENUM_ENTITIES reports: strscpy into 32 bytes, so 31 bytes at most (media-ctl
    shows "Auvitek AU8522 QAM/8VSB Fronten")."""
    return name.encode()[:31].decode("utf-8", "ignore")


def build(dev: MediaDeviceView) -> dict[int, LegacyEntity]:
    """Entities by id, each with its links in libmediactl's order, derived from G_TOPOLOGY
    (outbound data links per source entity keep their creation order, as ENUM_LINKS does)."""
    t = dev.topology
    pads = {p.id: p for p in t.pads}
    npads: dict[int, int] = {}
    for p in t.pads:
        npads[p.entity_id] = npads.get(p.entity_id, 0) + 1
    by_source: dict[int, list[LinkDesc]] = {}
    for ln in links_of_kind(t.links, DATA):  # ENUM_LINKS returns pad-to-pad links only
        src, dst = pads.get(ln.source_id), pads.get(ln.sink_id)
        if src is None or dst is None:
            continue  # a data link to a pad the graph lacks
        source, sink = PadDesc(src.entity_id, src.index, src.flags), PadDesc(dst.entity_id, dst.index, dst.flags)
        link = LinkDesc(source, sink, ln.flags)
        by_source.setdefault(src.entity_id, []).append(link)
    ents: dict[int, LegacyEntity] = {}
    for e, (etype, major, minor) in sorted(zip(t.entities, dev.entity_legacy, strict=True), key=lambda x: x[0].id):
        desc = EntityDesc(
            e.id, legacy_name(e.name), etype, e.flags, npads.get(e.id, 0), len(by_source.get(e.id, ())), major, minor
        )
        ents[e.id] = LegacyEntity(desc, dev.devnames.get((major, minor), "") if major else "")
    for eid in ents:
        for link in by_source.get(eid, ()):
            ents[eid].links.append(link)
            if link.sink.entity in ents:
                ents[link.sink.entity].links.append(link)
    return ents
