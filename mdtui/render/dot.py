"""``dump --format dot``: ``media-ctl --print-dot`` conventions, and with ``--interfaces`` the
interface nodes and links drawn the way ``mc_nextgen_test -D`` draws them.

media-ctl: devnode entities are yellow boxes ``NAME\\nDEVNAME``; subdevs green Mrecords with
sink ports left and source ports right; edges from the source entity right after its node,
``:portN`` only on subdev ends; IMMUTABLE bold, disabled dashed.  Names are ENUM_ENTITIES'
(31 bytes at most), and a label's second line is the device node, empty when there is none:
the output of v4l-utils 1.22's media-ctl, checked against it running on the rig.

Ancillary links (a sensor's lens or flash, entity to entity) are not in media-ctl's graph:
MEDIA_IOC_ENUM_LINKS does not return them.  With ``--interfaces`` (the G_TOPOLOGY view)
they are drawn as undirected magenta edges between the two entities.
"""

from __future__ import annotations

from allocator.mc import uapi

from ..model import ANCILLARY, INTERFACE, MediaDeviceView, SystemSnapshot, links_of_kind
from . import legacy

INTF_TYPES = {
    uapi.MEDIA_INTF_T_DVB_FE: "frontend",
    uapi.MEDIA_INTF_T_DVB_DEMUX: "demux",
    uapi.MEDIA_INTF_T_DVB_DVR: "DVR",
    uapi.MEDIA_INTF_T_DVB_CA: "CA",
    uapi.MEDIA_INTF_T_DVB_NET: "dvbnet",
    uapi.MEDIA_INTF_T_V4L_VIDEO: "video",
    uapi.MEDIA_INTF_T_V4L_VBI: "vbi",
    uapi.MEDIA_INTF_T_V4L_RADIO: "radio",
    uapi.MEDIA_INTF_T_V4L_SUBDEV: "v4l2-subdev",
}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def print_dot(dev: MediaDeviceView, interfaces: bool = False) -> str:
    ents = legacy.build(dev)
    flags = {(p.entity_id, p.index): p.flags for p in dev.topology.pads}
    out = ["digraph board {", "\trankdir=TB"]
    if interfaces:
        i = dev.info
        out.append(f'\tlabel="{_quote(i.model)}\\n driver:{_quote(i.driver)}, bus: {_quote(i.bus_info)}\\n"')
        out.append('\tlabelloc="t"')
    for ent in ents.values():
        d = ent.desc
        name = _quote(d.name)
        if ent.kind == legacy.MEDIA_ENT_T_DEVNODE:
            out.append(
                f'\tn{d.id:08x} [label="{name}\\n{_quote(ent.devname)}", shape=box, style=filled, fillcolor=yellow]'
            )
        elif ent.is_subdev:
            sinks = " | ".join(f"<port{j}> {j}" for j in range(d.pads) if flags.get((d.id, j), 0) & 1)
            sources = " | ".join(f"<port{j}> {j}" for j in range(d.pads) if flags.get((d.id, j), 0) & 2)
            devname = f"\\n{_quote(ent.devname)}"  # media-ctl 1.22 prints "\n" even with no node
            out.append(
                f'\tn{d.id:08x} [label="{{{{{sinks}}} | {name}{devname} | {{{sources}}}}}", '
                "shape=Mrecord, style=filled, fillcolor=green]"
            )
        else:
            continue
        for ln in ent.links:
            if ln.source.entity != d.id:
                continue
            src = f"n{d.id:08x}" + (f":port{ln.source.index}" if ent.is_subdev else "")
            sink = ents.get(ln.sink.entity)
            dst = f"n{ln.sink.entity:08x}" + (f":port{ln.sink.index}" if sink and sink.is_subdev else "")
            style = " [style=bold]" if ln.flags & 2 else (" [style=dashed]" if not ln.flags & 1 else "")
            out.append(f"\t{src} -> {dst}{style}")
    if interfaces:
        out += _interfaces(dev)
    out.append("}")
    return "\n".join(out) + "\n"


def _interfaces(dev: MediaDeviceView) -> list[str]:
    out = []
    t = dev.topology
    for i in t.interfaces:
        kind = INTF_TYPES.get(i.intf_type, "unknown_intf")
        path = dev.devnames.get((i.major, i.minor), "")
        node = f"intf_devnode_{i.id & 0xFFFFFF}"
        out.append(f'\t{node} [label="{node}\\n{kind}\\n{_quote(path)}", shape=box, style=filled, fillcolor=yellow]')
    for ln in links_of_kind(t.links, INTERFACE):
        style = "" if ln.flags & uapi.MEDIA_LNK_FL_ENABLED else ' style="dashed"'
        out.append(f'\tintf_devnode_{ln.source_id & 0xFFFFFF} -> n{ln.sink_id:08x} [dir="none" color="orange"{style}]')
    for ln in links_of_kind(t.links, ANCILLARY):
        style = "" if ln.flags & uapi.MEDIA_LNK_FL_ENABLED else ' style="dashed"'
        out.append(f'\tn{ln.source_id:08x} -> n{ln.sink_id:08x} [dir="none" color="magenta"{style}]')
    return out


def render(snap: SystemSnapshot, interfaces: bool = False) -> str:
    """One digraph per registered media device (media-ctl draws one device at a time)."""
    return "".join(print_dot(d, interfaces) for d in snap.media_devices if d.registered)
