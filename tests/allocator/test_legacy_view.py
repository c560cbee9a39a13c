"""ENUM_ENTITIES's legacy type and info.dev, derived from G_TOPOLOGY (``allocator.mc.legacy``),
against what the simulated kernel's ENUM_ENTITIES answers, for every catalog device and
after lifecycle steps; and the kernel's facts the derivation rests on."""

from __future__ import annotations

import pytest

from allocator import Kernel
from allocator.catalog import CATALOG
from allocator.mc import legacy, uapi
from allocator.mc.device import MediaDevice

from ..conftest import make_kernel

DRIVERS = ("au0828", "snd_usb_audio", "uvcvideo")


def _enum(mdev: MediaDevice) -> dict[int, tuple[int, int, int]]:
    return {d.id: (d.type, d.major, d.minor) for d in mdev.enum_entities()}


def _check(mdev: MediaDevice) -> list[int]:
    """Derived answers equal ENUM_ENTITIES's; the unsettled ones are asked of it. Returns
    the unsettled ids."""
    answers, unsettled = legacy.derive(mdev.topology())
    enum = _enum(mdev)
    assert set(answers) | set(unsettled) == set(enum) and not set(answers) & set(unsettled)
    assert answers == {i: enum[i] for i in answers}
    return unsettled


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_derived_equals_enum_entities_for_every_catalog_device(name: str) -> None:
    k = make_kernel(*DRIVERS, plug=(name,))
    [mdev] = k.view.media_nodes().values()
    unsettled = _check(mdev)
    names = {e.id: e.name for e in mdev.topology().entities}
    if name == "c270":  # uvcvideo's units: sub-devices with a PROC_VIDEO_* function, no node
        assert sorted(names[i] for i in unsettled) == ["Extension 3", "Processing 2"]
    else:  # au0828 + snd-usb-audio: everything settled by G_TOPOLOGY alone
        assert unsettled == []


@pytest.mark.parametrize(
    "steps",
    [
        ("unbind snd-usb-audio 1-1:1.1",),
        ("unbind au0828 1-1:1.0",),
        ("unbind au0828 1-1:1.0", "bind au0828 1-1:1.0"),
        ("rmmod snd_usb_audio",),
    ],
)
def test_derived_equals_enum_entities_after_lifecycle_steps(steps: tuple[str, ...]) -> None:
    k = make_kernel(*DRIVERS, plug=("hvr950q", "c270"))
    for step in steps:
        verb, *args = step.split()
        getattr(k, verb)(*args)
    mdevs = k.view.media_nodes().values()
    assert mdevs
    for mdev in mdevs:
        _check(mdev)


def _by_name(k: Kernel, devnode: str) -> dict[str, tuple[int, int, int]]:
    mdev = k.view.media_nodes()[devnode]
    return {d.name: (d.type, d.major, d.minor) for d in mdev.enum_entities()}


def test_what_the_kernel_answers() -> None:
    """mc-device.c's remapping, and info.dev as only the V4L2 core fills it (dvbdev.c leaves
    it 0:0 in mainline, sound/usb/media.c never fills it)."""
    k = make_kernel(*DRIVERS, plug=("hvr950q", "c270"))
    unknown, subdev_unknown = uapi.MEDIA_ENT_T_DEVNODE_UNKNOWN, uapi.MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN
    hvr = _by_name(k, "/dev/media0")
    assert hvr["au0828a video"] == (uapi.MEDIA_ENT_F_IO_V4L, 81, 0)
    assert hvr["au0828a vbi"] == (unknown, 81, 1)  # IO_VBI is remapped, its node kept
    assert hvr["tuner 0-0061"] == (uapi.MEDIA_ENT_F_TUNER, 0, 0)
    assert hvr["au8522 0-0047"] == (uapi.MEDIA_ENT_F_ATV_DECODER, 0, 0)
    for name in ("Auvitek AU8522 QAM/8VSB Frontend", "dvb-demux", "demux-tsout #0", "Television", "USB Mixer"):
        assert hvr[name] == (unknown, 0, 0), name
    cam = _by_name(k, "/dev/media1")
    assert cam["Processing 2"] == cam["Extension 3"] == (subdev_unknown, 0, 0)
    assert cam["Camera 1"] == (uapi.MEDIA_ENT_F_CAM_SENSOR, 0, 0)


def test_the_rules() -> None:
    assert legacy.legacy_type(uapi.MEDIA_ENT_F_PROC_VIDEO_SCALER, True) == uapi.MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN
    assert legacy.legacy_type(uapi.MEDIA_ENT_F_PROC_VIDEO_SCALER, False) == uapi.MEDIA_ENT_T_DEVNODE_UNKNOWN
    assert legacy.legacy_type(uapi.MEDIA_ENT_F_IO_V4L, False) == uapi.MEDIA_ENT_F_IO_V4L
    assert legacy.legacy_type(uapi.MEDIA_ENT_F_LENS, True) == uapi.MEDIA_ENT_F_LENS
    subdev_node = (uapi.MEDIA_INTF_T_V4L_SUBDEV, 81, 7)
    assert legacy.info_dev(uapi.MEDIA_ENT_F_PROC_VIDEO_SCALER, [subdev_node]) == (81, 7)
    assert legacy.subdev_from_topology(uapi.MEDIA_ENT_F_PROC_VIDEO_SCALER, 0, [subdev_node[0]]) is True
    # a video node's entity gets its node; a tuner linked to the frontend's interface does not
    assert legacy.info_dev(uapi.MEDIA_ENT_F_IO_V4L, [(uapi.MEDIA_INTF_T_V4L_VIDEO, 81, 3)]) == (81, 3)
    assert legacy.info_dev(uapi.MEDIA_ENT_F_TUNER, [(uapi.MEDIA_INTF_T_DVB_FE, 212, 0)]) == (0, 0)
    assert legacy.info_dev(uapi.MEDIA_ENT_F_IO_VBI, [(uapi.MEDIA_INTF_T_V4L_VIDEO, 81, 0)]) == (0, 0)
    # obj_type that G_TOPOLOGY cannot show: a PROC_* entity without a node
    assert legacy.subdev_from_topology(uapi.MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER, 0, []) is None
    assert legacy.subdev_from_topology(uapi.MEDIA_ENT_F_CONN_RF, uapi.MEDIA_ENT_FL_CONNECTOR, []) is False
    assert legacy.subdev_from_topology(uapi.MEDIA_ENT_F_CONN_RF, 0, []) is None  # uvcvideo's connectors
