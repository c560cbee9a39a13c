"""What MEDIA_IOC_ENUM_ENTITIES says of an entity that G_TOPOLOGY does not: its legacy
``type`` and ``info.dev`` (major:minor), worked out once, for the simulated kernel's answer
(``MediaDevice.enum_entities``) and for the live reader, which derives it from G_TOPOLOGY.

The kernel's facts (mc-device.c ``media_device_enum_entities()``, and the cores that create
entities):

* ``type`` is the entity's function, except that a function outside
  MEDIA_ENT_F_OLD_BASE..MEDIA_ENT_F_TUNER is reported as MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN for a
  V4L2 sub-device (the entity's ``obj_type``) and as MEDIA_ENT_T_DEVNODE_UNKNOWN for anything
  else but MEDIA_ENT_F_IO_V4L (a workaround kept for media-ctl <= 1.10).
* ``info.dev`` is copied from ``entity->info``, which only the V4L2 core fills in, with the
  VIDEO_MAJOR:minor of the node it creates the entity for, and links that entity to the
  node's interface: ``video_register_media_controller()`` (video and touch nodes: IO_V4L,
  vbi: IO_VBI, sdr: IO_SWRADIO; a radio node has no entity) and
  ``v4l2_device_register_subdev_nodes()`` (a sub-device and its V4L_SUBDEV interface).
  dvbdev.c's ``dvb_create_media_entity()`` leaves it 0:0 (it filled it in before the ts-out
  entities came), and so does sound/usb/media.c.

G_TOPOLOGY shows functions, entity flags (from 4.19) and interface links, not ``obj_type``.
So ``info.dev`` is the major:minor of such an interface linked to an entity of the matching
function (0:0 otherwise), and ``type`` is settled wherever ``obj_type`` does not matter (a
function in the legacy ranges, or IO_V4L) or can be told:

* linked to a V4L_SUBDEV interface: a sub-device (nothing else is linked to one);
* a function that only the cores give, to plain entities: IO_DTV/IO_VBI/IO_SWRADIO
  (v4l2-dev.c, the DVB ts-outs), DTV_* and TS_DEMUX (dvbdev.c), AUDIO_* (sound/usb/media.c);
* MEDIA_ENT_FL_CONNECTOR: the connectors that bridge drivers (au0828, em28xx, cx231xx), the
  DVB core and tvp5150 register are plain entities with that flag; uvcvideo's connectors are
  sub-devices without it.

Anything else outside the legacy ranges (a uvcvideo processing unit is a sub-device with a
PROC_VIDEO_* function, a mem2mem "proc" entity a plain one with one) is ``unsettled``: only
ENUM_ENTITIES can tell, for that id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Tuple

from .topology import Topology
from .uapi import (
    MEDIA_ENT_F_AUDIO_CAPTURE,
    MEDIA_ENT_F_AUDIO_MIXER,
    MEDIA_ENT_F_AUDIO_PLAYBACK,
    MEDIA_ENT_F_DTV_CA,
    MEDIA_ENT_F_DTV_DEMOD,
    MEDIA_ENT_F_DTV_NET_DECAP,
    MEDIA_ENT_F_IO_DTV,
    MEDIA_ENT_F_IO_SWRADIO,
    MEDIA_ENT_F_IO_V4L,
    MEDIA_ENT_F_IO_VBI,
    MEDIA_ENT_F_OLD_BASE,
    MEDIA_ENT_F_TS_DEMUX,
    MEDIA_ENT_F_TUNER,
    MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN,
    MEDIA_ENT_FL_CONNECTOR,
    MEDIA_ENT_T_DEVNODE_UNKNOWN,
    MEDIA_INTF_T_V4L_SUBDEV,
    MEDIA_INTF_T_V4L_VBI,
    MEDIA_INTF_T_V4L_VIDEO,
    MEDIA_LNK_FL_INTERFACE_LINK,
    MEDIA_LNK_FL_LINK_TYPE,
)

MEDIA_INTF_T_V4L_SWRADIO = 0x204  # include/uapi/linux/media.h
MEDIA_INTF_T_V4L_TOUCH = 0x205

#: interface type -> the function of the entity the V4L2 core creates for that node
NODE_FUNCTION = {
    MEDIA_INTF_T_V4L_VIDEO: MEDIA_ENT_F_IO_V4L,
    MEDIA_INTF_T_V4L_VBI: MEDIA_ENT_F_IO_VBI,
    MEDIA_INTF_T_V4L_SWRADIO: MEDIA_ENT_F_IO_SWRADIO,
    MEDIA_INTF_T_V4L_TOUCH: MEDIA_ENT_F_IO_V4L,
}
#: functions only the V4L2, DVB and ALSA cores give, always to entities that are no sub-device
PLAIN_FUNCTIONS = frozenset(
    {
        MEDIA_ENT_F_IO_DTV,
        MEDIA_ENT_F_IO_VBI,
        MEDIA_ENT_F_IO_SWRADIO,
        MEDIA_ENT_F_DTV_DEMOD,
        MEDIA_ENT_F_TS_DEMUX,
        MEDIA_ENT_F_DTV_CA,
        MEDIA_ENT_F_DTV_NET_DECAP,
        MEDIA_ENT_F_AUDIO_CAPTURE,
        MEDIA_ENT_F_AUDIO_PLAYBACK,
        MEDIA_ENT_F_AUDIO_MIXER,
    }
)

Answer = Tuple[int, int, int]  # ENUM_ENTITIES type, info.dev major, minor


def remapped(function: int) -> bool:
    """Whether ENUM_ENTITIES's type for this function depends on the entity's ``obj_type``."""
    return (function < MEDIA_ENT_F_OLD_BASE or function > MEDIA_ENT_F_TUNER) and function != MEDIA_ENT_F_IO_V4L


def legacy_type(function: int, subdev: bool) -> int:
    """``media_device_enum_entities()``'s ``type``."""
    if not remapped(function):
        return function
    return MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN if subdev else MEDIA_ENT_T_DEVNODE_UNKNOWN


def info_dev(function: int, interfaces: Iterable[tuple[int, int, int]]) -> tuple[int, int]:
    """``info.dev`` from the interfaces (type, major, minor) linked to an entity: its own node's."""
    for intf_type, major, minor in interfaces:
        if intf_type == MEDIA_INTF_T_V4L_SUBDEV or NODE_FUNCTION.get(intf_type) == function:
            return major, minor
    return 0, 0


def subdev_from_topology(function: int, flags: int, intf_types: Iterable[int]) -> bool | None:
    """Whether an entity is a V4L2 sub-device, as far as G_TOPOLOGY tells (None: it does not)."""
    if MEDIA_INTF_T_V4L_SUBDEV in intf_types:
        return True
    if function in PLAIN_FUNCTIONS or flags & MEDIA_ENT_FL_CONNECTOR:
        return False
    return None


def derive(topology: Topology) -> tuple[dict[int, Answer], list[int]]:
    """ENUM_ENTITIES's answer for each entity of a G_TOPOLOGY read (4.19 or later: entity flags
    needed), and the ids whose type it leaves unsettled, in G_TOPOLOGY's order."""
    interfaces = {i.id: (i.intf_type, i.major, i.minor) for i in topology.interfaces}
    linked: dict[int, list[tuple[int, int, int]]] = {}
    for ln in topology.links:
        if ln.flags & MEDIA_LNK_FL_LINK_TYPE == MEDIA_LNK_FL_INTERFACE_LINK and ln.source_id in interfaces:
            linked.setdefault(ln.sink_id, []).append(interfaces[ln.source_id])
    answers: dict[int, Answer] = {}
    unsettled: list[int] = []
    seen: set[int] = set()
    for e in topology.entities:
        if e.id in seen:
            continue  # a lying kernel's duplicate id: the first one stands, as ENUM_ENTITIES finds it
        seen.add(e.id)
        intfs = linked.get(e.id, ())
        major, minor = info_dev(e.function, intfs)
        if not remapped(e.function):
            answers[e.id] = (e.function, major, minor)
            continue
        subdev = subdev_from_topology(e.function, e.flags, (t for t, _, _ in intfs))
        if subdev is None:
            unsettled.append(e.id)
        else:
            answers[e.id] = (legacy_type(e.function, subdev), major, minor)
    return answers, unsettled
