"""The legacy (ENUM_ENTITIES / ENUM_LINKS) view of a graph, as libmediactl builds it.

media-ctl enumerates entities in id order and, for each, its outbound links; every link is
appended to the source entity's list and to the sink entity's list as it is found.  Both
``-p`` and ``--print-dot`` walk those lists, so their order is reproduced here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allocator.mc.topology import EntityDesc, LinkDesc

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


def build(
    descs: tuple[EntityDesc, ...], links: tuple[LinkDesc, ...], devnames: dict[tuple[int, int], str]
) -> dict[int, LegacyEntity]:
    """Entities by id, each with its links in libmediactl's order."""
    ents = {
        d.id: LegacyEntity(d, devnames.get((d.major, d.minor), "") if d.major else "")
        for d in sorted(descs, key=lambda d: d.id)
    }
    by_source: dict[int, list[LinkDesc]] = {}
    for link in links:
        by_source.setdefault(link.source.entity, []).append(link)
    for eid in ents:
        for link in by_source.get(eid, ()):
            ents[eid].links.append(link)
            if link.sink.entity in ents:
                ents[link.sink.entity].links.append(link)
    return ents
