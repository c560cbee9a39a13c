"""Media controller core: ids, topology_version, G_TOPOLOGY, DEVICE_INFO, devnode lifetime."""

from __future__ import annotations

import errno
from collections import Counter

import pytest

from allocator import Kernel, KernelError
from allocator.mc import uapi

from ..conftest import make_kernel, media_nodes


def _mdev(k: Kernel):
    return k.allocator.instances()[0].mdev


def test_device_info_fields(hvr: Kernel) -> None:
    info = _mdev(hvr).device_info()
    assert info.driver == "au0828"
    assert info.model == "WinTV HVR-950Q"  # udev->product
    assert info.serial == "4034209007"
    assert info.bus_info == "usb-0000:00:14.0-1"  # usb_make_path()
    assert info.hw_revision == 0x0005  # bcdDevice
    assert info.media_version == info.driver_version == uapi.version_code(6, 12, 0)


def test_ids_types_and_uniqueness(hvr: Kernel) -> None:
    topo = _mdev(hvr).topology()
    ids = [o.id for group in (topo.entities, topo.interfaces, topo.pads, topo.links) for o in group]
    assert len(ids) == len(set(ids)) and 0 not in ids
    assert {e.id >> 24 for e in topo.entities} == {uapi.MEDIA_GRAPH_ENTITY}
    assert {p.id >> 24 for p in topo.pads} == {uapi.MEDIA_GRAPH_PAD}
    assert {ln.id >> 24 for ln in topo.links} == {uapi.MEDIA_GRAPH_LINK}
    assert {i.id >> 24 for i in topo.interfaces} == {uapi.MEDIA_GRAPH_INTF_DEVNODE}
    assert topo.entities[0].id == 1 and topo.pads[0].id == (1 << 24) | 2  # one shared counter


def test_hvr950q_graph(hvr: Kernel) -> None:
    topo = _mdev(hvr).topology()
    funcs = Counter(uapi.function_name(e.function) for e in topo.entities)
    assert funcs == {
        "MEDIA_ENT_F_IO_DTV": 512,
        "MEDIA_ENT_F_ATV_DECODER": 1,
        "MEDIA_ENT_F_TUNER": 1,
        "MEDIA_ENT_F_CONN_RF": 1,
        "MEDIA_ENT_F_CONN_COMPOSITE": 1,
        "MEDIA_ENT_F_CONN_SVIDEO": 1,
        "MEDIA_ENT_F_IO_V4L": 1,
        "MEDIA_ENT_F_IO_VBI": 1,
        "MEDIA_ENT_F_DTV_DEMOD": 1,
        "MEDIA_ENT_F_TS_DEMUX": 1,
        "MEDIA_ENT_F_AUDIO_MIXER": 1,
    }
    names = [e.name for e in topo.entities]
    assert names[:7] == [
        "au8522 0-0047",
        "tuner 0-0061",
        "Television",
        "Composite",
        "S-Video",
        "au0828a video",
        "au0828a vbi",
    ]
    assert names.index("demux-tsout #255") < names.index("dvb-demux") < names.index("dvr-tsout #0")
    byid = {e.id: e.name for e in topo.entities}
    pad = {p.id: (byid[p.entity_id], p.index) for p in topo.pads}
    data = {
        (pad[ln.source_id], pad[ln.sink_id]): ln.flags
        for ln in topo.links
        if not ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK
    }
    assert data[(("Television", 0), ("tuner 0-0061", 0))] == uapi.MEDIA_LNK_FL_ENABLED
    assert data[(("Composite", 0), ("au8522 0-0047", 0))] == 0
    assert data[(("S-Video", 0), ("au8522 0-0047", 0))] == 0
    # disabled by au0828_media_device_register() until somebody asks for the tuner
    assert data[(("tuner 0-0061", 1), ("au8522 0-0047", 0))] == 0
    assert data[(("tuner 0-0061", 1), ("Auvitek AU8522 QAM/8VSB Frontend", 0))] == 0
    assert data[(("au8522 0-0047", 1), ("au0828a video", 0))] == uapi.MEDIA_LNK_FL_ENABLED
    assert data[(("dvb-demux", 1), ("demux-tsout #0", 0))] == 0
    assert data[(("dvb-demux", 256), ("dvr-tsout #255", 0))] == 0
    assert len(data) == 521
    intf_links = [ln for ln in topo.links if ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK]
    assert len(intf_links) == 518
    intf_ids = {i.id for i in topo.interfaces}
    assert all(ln.source_id in intf_ids and ln.sink_id in byid for ln in intf_links)
    types = sorted(uapi.interface_type_name(i.intf_type) for i in topo.interfaces)
    assert types == sorted(
        [
            "MEDIA_INTF_T_V4L_VIDEO",
            "MEDIA_INTF_T_V4L_VBI",
            "MEDIA_INTF_T_DVB_FE",
            "MEDIA_INTF_T_DVB_DEMUX",
            "MEDIA_INTF_T_DVB_DVR",
            "MEDIA_INTF_T_DVB_NET",
            "MEDIA_INTF_T_ALSA_CONTROL",
        ]
    )


def test_g_topology_has_no_backlinks_but_the_device_does(hvr: Kernel) -> None:
    mdev = _mdev(hvr)
    assert len(mdev.links) == 521 * 2 + 518
    assert len(mdev.topology().links) == 521 + 518


def test_topology_version_reset_at_register_and_bumped_per_object() -> None:
    k = make_kernel("au0828", plug=("hvr950q",))
    mdev = _mdev(k)
    assert mdev.topology_version == 0  # au0828 built everything before registering
    k.modprobe("snd_usb_audio")
    # mixer entity, its 3 pads, the ALSA control interface, its link, decoder->mixer (2 halves)
    assert mdev.topology_version == 8
    fd = k.open("/dev/snd/pcmC0D0c")
    # PCM entity + pad + interface + interface link + mixer->pcm (2 halves)
    assert mdev.topology_version == 14
    k.close(fd)
    assert mdev.topology_version == 14  # PCM entities live until the card goes
    k.unbind("snd-usb-audio", "1-1:1.1")
    assert mdev.topology_version == 28  # every one of those objects destroyed
    assert k.check() == []


def test_media_minors_and_open_devnode_lifetime(hvr: Kernel) -> None:
    fd = hvr.open("/dev/media0")
    assert hvr.modules["mc"].refcnt == 5 and hvr.modules["au0828"].refcnt == 2
    assert hvr.ioctl(fd, "MEDIA_IOC_DEVICE_INFO").driver == "au0828"
    with pytest.raises(KernelError) as err:
        hvr.ioctl(fd, "MEDIA_IOC_SETUP_LINK")
    assert err.value.errno == errno.ENOTTY
    hvr.unbind("au0828", "1-1:1.0")
    hvr.unbind("snd-usb-audio", "1-1:1.1")
    assert media_nodes(hvr) == []
    with pytest.raises(KernelError) as err:
        hvr.ioctl(fd, "MEDIA_IOC_DEVICE_INFO")  # media_device_test: EIO, not a crash
    assert err.value.errno == errno.EIO
    with pytest.raises(KernelError) as err:
        hvr.open("/dev/media0")
    assert err.value.errno == errno.ENOENT
    hvr.bind("au0828", "1-1:1.0")
    assert media_nodes(hvr) == ["/dev/media1"]  # minor 0 is still held by the open file
    hvr.close(fd)
    hvr.unbind("au0828", "1-1:1.0")
    hvr.bind("au0828", "1-1:1.0")
    assert media_nodes(hvr) == ["/dev/media0"]
    assert hvr.check() == []


def test_uvc_has_its_own_unshared_media_device() -> None:
    k = make_kernel("uvcvideo", "snd_usb_audio", plug=("c270",))
    assert k.allocator.instances() == []
    [mdev] = [d.mdev for d in k.view.media_devices()]
    info = mdev.device_info()
    assert (info.driver, info.model, info.bus_info) == ("uvcvideo", "UVC Camera (046d:0825)", "usb-0000:00:14.0-1")
    assert mdev.dev.name == "1-1:1.0"  # parent is the interface
    assert mdev.devnode.device.devpath.endswith("/1-1/1-1:1.0/media0")
    # uvc_mc_init_entity: processing and extension units are pixel formatters, the camera a
    # sensor; nothing has an unknown function, so registering warns about none of them
    functions = {e.name: e.function for e in mdev.topology().entities}
    assert functions["Processing 2"] == functions["Extension 3"] == uapi.MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER
    assert functions["Camera 1"] == uapi.MEDIA_ENT_F_CAM_SENSOR
    assert not any("was not initialized" in e.text for e in k.events.history)
    assert k.usb.find_interface("1-1:1.2").driver == "snd-usb-audio"
    assert k.usb.find_interface("1-1:1.1").driver == "uvcvideo"
    k.unplug("1-1")
    assert k.view.media_devices() == [] and k.check() == []


def test_pad_link_direction_is_checked(hvr: Kernel) -> None:
    mdev = _mdev(hvr)
    tuner = mdev.find_entity(uapi.MEDIA_ENT_F_TUNER)
    decoder = mdev.find_entity(uapi.MEDIA_ENT_F_ATV_DECODER)
    with pytest.raises(KernelError) as err:
        mdev.media_create_pad_link(tuner, 0, decoder, 0, 0)  # pad 0 of the tuner is a sink
    assert err.value.errno == errno.EINVAL


def test_release_unregisters_then_cleans_up(hvr: Kernel) -> None:
    [inst] = hvr.allocator.instances()
    assert not inst.mdev.cleaned_up
    hvr.unbind("au0828", "1-1:1.0")
    hvr.unbind("snd-usb-audio", "1-1:1.1")
    assert inst.released and inst.mdev.cleaned_up and inst.mdev.devnode is None


def test_enum_links_zeroes_reserved_and_keeps_the_pointers(hvr: Kernel) -> None:
    """media_device_enum_links() clears ``reserved`` whatever the caller left there (a reader
    such as v4l2-compliance checks it); the pad and link pointers come back as given."""
    import ctypes

    from allocator.mc import uapi_layout
    from allocator.mc.ioctl import media_ioctl

    mdev = _mdev(hvr)
    req = uapi_layout.MediaLinksEnum()
    req.entity = mdev.topology().entities[0].id
    ctypes.memset(ctypes.addressof(req.reserved), 0xFF, ctypes.sizeof(req.reserved))
    reply = media_ioctl(mdev, uapi_layout.MEDIA_IOC_ENUM_LINKS, bytes(req))
    assert reply.errno == 0 and reply.arg is not None
    out = uapi_layout.MediaLinksEnum.from_buffer_copy(reply.arg)
    assert out.entity == req.entity and list(out.reserved) == [0, 0, 0, 0]
