"""USB naming and attributes, hotplug uevents, and the driver core's bind/unbind errors."""

from __future__ import annotations

import errno

import pytest

from allocator import Kernel, KernelError

from ..conftest import make_kernel


def _errno(fn, *args) -> int:
    with pytest.raises(KernelError) as err:
        fn(*args)
    return err.value.errno  # type: ignore[return-value]


def test_usb_naming_and_sysfs_attributes(hvr: Kernel) -> None:
    udev = hvr.usb.find_device("1-1")
    assert udev.devpath == "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
    a = udev.attrs
    assert (a["idVendor"], a["idProduct"], a["bcdDevice"]) == ("2040", "7200", "0005")
    assert (a["busnum"], a["devpath"], a["product"], a["manufacturer"]) == ("1", "1", "WinTV HVR-950Q", "Hauppauge")
    assert [i.name for i in udev.interfaces] == ["1-1:1.0", "1-1:1.1", "1-1:1.2", "1-1:1.3"]
    assert [i.driver for i in udev.interfaces] == ["au0828", "snd-usb-audio", "snd-usb-audio", None]
    assert udev.interfaces[1].attrs["bInterfaceClass"] == "01"
    assert udev.interfaces[0].attrs["modalias"] == "usb:v2040p7200d0005dc00dsc00dp00icFFiscFFipFFin00"
    c270 = make_kernel(plug=("c270",)).usb.find_device("1-1")
    assert "manufacturer" not in c270.attrs  # no string, no attribute
    video = hvr.devices.nodes["/dev/video0"]
    assert video.devpath.endswith("/1-1/1-1:1.0/video4linux/video0") and video.attrs["name"] == "au0828a video"
    assert hvr.devices.nodes["/dev/dvb/adapter0/frontend0"].devpath.endswith("/1-1/dvb/dvb0.frontend0")
    assert hvr.devices.nodes["/dev/media0"].devpath.endswith("/1-1/media0")
    assert hvr.devices.nodes["/dev/media0"].attrs["model"] == "WinTV HVR-950Q"


def test_plug_uevents_in_kernel_order() -> None:
    k = make_kernel("au0828", "snd_usb_audio")
    start = k.events.last_seq
    k.plug("hvr950q")
    ue = [e for e in k.events.history if e.seq > start and e.kind == "uevent"]
    actions = [(e.fields["ACTION"], e.fields["DEVPATH"].rsplit("/", 1)[-1]) for e in ue]
    assert actions[:3] == [("add", "1-1"), ("bind", "1-1"), ("add", "1-1:1.0")]
    assert actions.index(("add", "video0")) < actions.index(("bind", "1-1:1.0")) < actions.index(("add", "1-1:1.1"))
    assert actions.index(("add", "media0")) < actions.index(("bind", "1-1:1.0"))
    # 1-1:1.2 was claimed during 1-1:1.1's probe, before it was added: bound right after add
    assert actions.index(("add", "1-1:1.2")) + 1 == actions.index(("bind", "1-1:1.2"))
    seqnums = [int(e.fields["SEQNUM"]) for e in ue]
    assert seqnums == sorted(seqnums) and len(set(seqnums)) == len(seqnums)
    bind = next(e for e in ue if e.fields["ACTION"] == "bind" and e.device == "1-1:1.0")
    assert bind.fields["DRIVER"] == "au0828" and bind.fields["INTERFACE"] == "255/255/255"
    media = next(e for e in ue if e.device == "media0")
    assert (media.fields["SUBSYSTEM"], media.fields["DEVNAME"], media.fields["MAJOR"]) == ("media", "media0", "237")


def test_bind_unbind_errors(hvr: Kernel) -> None:
    assert _errno(hvr.unbind, "au0828", "1-1:1.1") == errno.ENODEV  # bound to another driver
    assert _errno(hvr.unbind, "au0828", "9-9:1.0") == errno.ENODEV  # no such interface
    assert _errno(hvr.bind, "au0828", "1-1:1.0") == errno.EBUSY  # already bound
    assert _errno(hvr.bind, "snd-usb-audio", "1-1:1.0") == errno.ENODEV  # no id match
    assert _errno(hvr.bind, "nosuchdriver", "1-1:1.0") == errno.ENOENT  # no sysfs dir
    assert _errno(hvr.bind, "au0828", "1-1:1.3") == errno.ENODEV  # probe: interface != 0
    hvr.unbind("au0828", "1-1:1.0")
    assert _errno(hvr.unbind, "au0828", "1-1:1.0") == errno.ENODEV  # not bound
    err = [e for e in hvr.events.history if e.kind == "error"]
    assert err[-1].fields == {"ERRNO": "ENODEV", "OP": "unbind au0828 1-1:1.0"}
    assert "write /sys/bus/usb/drivers/au0828/unbind: No such device" in err[-1].text


def test_probe_errors_propagate_to_bind() -> None:
    k = make_kernel("au0828", plug=("hvr950q",))
    k.unbind("au0828", "1-1:1.0")
    k.faults.arm("kzalloc")
    assert _errno(k.bind, "au0828", "1-1:1.0") == errno.ENOMEM
    assert any("probe with driver au0828 failed with error -12" in e.text for e in k.events.history)


def test_unplug_disconnects_everything_and_plug_ports() -> None:
    k = make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270"))
    assert k.plug("hvr950q", "2-3") == "2-3"
    assert _errno(k.plug, "hvr950q", "2-3") == errno.EBUSY
    assert _errno(k.plug, "nosuch") == errno.ENOENT
    assert _errno(k.plug, "hvr950q", "x") == errno.EINVAL
    assert _errno(k.unplug, "7-7") == errno.ENODEV
    assert len(k.view.media_devices()) == 3
    for name in ("1-1", "1-2", "2-3"):
        k.unplug(name)
    assert k.view.media_devices() == [] and k.devices.nodes == {} and k.check() == []
    assert {m: k.modules[m].refcnt for m in ("au0828", "snd_usb_audio", "uvcvideo")} == dict.fromkeys(
        ("au0828", "snd_usb_audio", "uvcvideo"), 0
    )


def test_rebind_audio_skips_the_still_claimed_stream(hvr: Kernel) -> None:
    hvr.unbind("snd-usb-audio", "1-1:1.1")
    assert hvr.usb.find_interface("1-1:1.2").driver == "snd-usb-audio"  # claimed stays claimed
    hvr.bind("snd-usb-audio", "1-1:1.1")
    assert any(e.text == "1:2: skipping, already claimed" for e in hvr.events.history)
    assert "/dev/snd/pcmC0D0c" not in hvr.devices.nodes
    assert "/dev/snd/controlC0" in hvr.devices.nodes


def test_dvb_registration_failure_is_not_fatal_and_leaks_nothing() -> None:
    from allocator.device import MinorAllocator

    k = make_kernel("au0828", "snd_usb_audio")
    k.dvb_adapters = MinorAllocator(1)  # CONFIG_DVB_MAX_ADAPTERS=1
    k.plug("hvr950q")
    k.plug("hvr950q")
    second = k.allocator.instances()[1]
    names = {e.name for e in second.mdev.entities.values()}
    assert "au0828a video" in names and "dvb-demux" not in names
    assert any("au0828_dvb_register failed" in e.text for e in k.events.history)
    assert k.check() == []
    k.unplug("1-1")
    k.unplug("1-2")
    assert k.allocator.instances() == [] and k.check() == []


def test_probe_failing_midway_unwinds_through_disconnect() -> None:
    from allocator.device import MinorAllocator

    k = make_kernel("au0828", "snd_usb_audio")
    k.video_minors = MinorAllocator(1)  # the VBI node finds no minor
    k.plug("hvr950q")
    assert k.usb.find_interface("1-1:1.0").driver is None
    assert any("probe with driver au0828 failed with error -23" in e.text for e in k.events.history)
    [inst] = k.allocator.instances()
    assert {e.name for e in inst.mdev.entities.values()} == {"USB Mixer"}  # au0828's graph is gone
    assert k.video_minors.in_use() == frozenset()
    # ...but not its reference: au0828_unregister_media_device() skips media_device_delete()
    # when the device was never registered (au0828 registers it last in probe), so mainline
    # leaks the reference, and the device can never be released.
    assert inst.refcount.refcount == 2
    assert [v.message for v in k.check()] == ["refcount 2 != 1 holders (snd-usb-audio 1-1:1.1)"]
    k.unbind("snd-usb-audio", "1-1:1.1")
    assert inst.refcount.refcount == 1 and not inst.released
