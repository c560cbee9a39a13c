"""tools/testing/selftests/media_tests/media_dev_allocator.sh, on a simulated HVR-950Q, and
the other lifecycles the allocator issue names."""

from __future__ import annotations

import errno

import pytest

from allocator import Kernel, KernelError

from ..conftest import make_kernel, media_nodes, state

MEDIA = "au0828"
AUDIO = "snd-usb-audio"


def test_media_dev_allocator_sh_sequence(hvr: Kernel) -> None:
    mdev_intf = "1-1:1.0"  # ls -d *-* in /sys/bus/usb/drivers/au0828
    adev_intf = "1-1:1.1"  # ls -d *-*.1 in /sys/bus/usb/drivers/snd-usb-audio
    assert state(hvr) == [("/dev/media0", "au0828", 2, ["au0828:bound", "snd-usb-audio:bound"])]

    hvr.unbind(MEDIA, mdev_intf)
    assert media_nodes(hvr) == ["/dev/media0"], "Media device should still be present!"
    assert state(hvr) == [("/dev/media0", "au0828", 1, ["snd-usb-audio:bound"])]

    hvr.unbind(AUDIO, adev_intf)
    assert media_nodes(hvr) == [], "Media device should have been deleted!"
    assert state(hvr) == []

    hvr.bind(MEDIA, mdev_intf)
    assert media_nodes(hvr) == ["/dev/media0"]
    hvr.bind(AUDIO, adev_intf)
    assert media_nodes(hvr) == ["/dev/media0"]
    assert state(hvr) == [("/dev/media0", "au0828", 2, ["au0828:bound", "snd-usb-audio:bound"])]

    for driver, intf in ((MEDIA, mdev_intf), (AUDIO, adev_intf)):
        hvr.unbind(driver, intf)
        assert media_nodes(hvr) == ["/dev/media0"]
        hvr.bind(driver, intf)
        assert media_nodes(hvr) == ["/dev/media0"]
    assert hvr.check() == []


@pytest.mark.parametrize("first", ["au0828", "snd_usb_audio"])
def test_both_probe_orders_give_the_same_graph(first: str) -> None:
    second = "snd_usb_audio" if first == "au0828" else "au0828"
    k = make_kernel(first, plug=("hvr950q",))
    k.modprobe(second)
    [inst] = k.allocator.instances()
    assert inst.owner == first
    assert inst.mdev.device_info().driver == first
    assert inst.refcount.refcount == 2
    topo = inst.mdev.topology()
    names = {e.id: e.name for e in topo.entities}
    pads = {p.id: (names[p.entity_id], p.index) for p in topo.pads}
    data = {(pads[ln.source_id], pads[ln.sink_id]): ln.flags for ln in topo.links if not ln.flags >> 28}
    assert data[(("au8522 0-0047", 2), ("USB Mixer", 0))] == 1  # decoder audio -> mixer, ENABLED
    assert len(topo.entities) == 522
    # the owner module is pinned once, by the sharer from the other module
    assert k.modules[first].refcnt == 1
    assert k.modules[second].refcnt == 0
    assert k.check() == []


def test_rmmod_refused_then_allowed(hvr: Kernel) -> None:
    with pytest.raises(KernelError) as err:
        hvr.rmmod("au0828")
    assert err.value.errno == errno.EBUSY
    assert err.value.strerror == "rmmod: ERROR: Module au0828 is in use"
    with pytest.raises(KernelError, match="in use by: au0828"):
        hvr.rmmod("dvb_core")
    hvr.rmmod("snd_usb_audio")  # the sharer goes: au0828 is no longer pinned
    assert hvr.modules["au0828"].refcnt == 0
    hvr.rmmod("au0828")
    assert "au0828" not in hvr.modules
    assert state(hvr) == [] and media_nodes(hvr) == []
    assert hvr.usb.find_interface("1-1:1.0").driver is None
    assert hvr.check() == []
    last = [e for e in hvr.events.history if e.kind == "error"]
    assert last[0].fields["ERRNO"] == "EBUSY"


def test_deferred_release_through_open_video0(hvr: Kernel) -> None:
    fd = hvr.open("/dev/video0")
    assert hvr.modules["au0828"].refcnt == 2  # sharer + the open file
    hvr.unbind(MEDIA, "1-1:1.0")
    assert "/dev/video0" not in hvr.devices.nodes
    assert state(hvr) == [("/dev/media0", "au0828", 2, ["au0828:deferred", "snd-usb-audio:bound"])]
    [held] = [h for _, h in hvr.view.holders() if h.driver == "au0828"]
    assert held.reason == "unbound, kept by open /dev/video0"
    # the video entity stays in the graph until the last close
    names = {e.name for e in hvr.allocator.instances()[0].mdev.topology().entities}
    assert "au0828a video" in names and "au0828a vbi" not in names
    hvr.unbind(AUDIO, "1-1:1.1")
    assert state(hvr) == [("/dev/media0", "au0828", 1, ["au0828:deferred"])]
    assert media_nodes(hvr) == ["/dev/media0"]
    with pytest.raises(KernelError, match="in use"):
        hvr.rmmod("au0828")
    assert hvr.check() == []
    hvr.close(fd)
    assert state(hvr) == [] and media_nodes(hvr) == []
    assert hvr.modules["au0828"].refcnt == 0
    assert hvr.check() == []
    hvr.rmmod("au0828")


def test_enomem_leaves_nothing_behind() -> None:
    k = make_kernel("au0828", "snd_usb_audio")
    k.faults.arm("kzalloc")
    k.plug("hvr950q")
    assert k.usb.find_interface("1-1:1.0").driver is None  # au0828 probe failed
    assert any("au0828_media_device_init failed" in e.text for e in k.events.history)
    # snd-usb-audio allocated after the fault was used up: only it holds the device
    assert state(k) == [("/dev/media0", "snd_usb_audio", 1, ["snd-usb-audio:bound"])]
    assert k.modules["snd_usb_audio"].refcnt == 0
    assert k.check() == []
    k.bind(MEDIA, "1-1:1.0")  # with memory back, au0828 shares the device
    assert state(k) == [("/dev/media0", "snd_usb_audio", 2, ["au0828:bound", "snd-usb-audio:bound"])]


def test_enomem_from_the_allocator_itself() -> None:
    k = make_kernel()
    udev = k.usb.plug("hvr950q")
    k.faults.arm("kzalloc")
    with pytest.raises(KernelError) as err:
        k.allocator.media_device_usb_allocate(udev, "au0828", None)
    assert err.value.errno == errno.ENOMEM
    assert k.allocator.instances() == []
    assert k.faults.fired == {"kzalloc": 1}


def test_failing_try_module_get_still_hands_out_the_device() -> None:
    k = make_kernel("au0828", plug=("hvr950q",))
    k.faults.arm("try_module_get")
    k.modprobe("snd_usb_audio")
    assert state(k) == [("/dev/media0", "au0828", 2, ["au0828:bound", "snd-usb-audio:bound"])]
    assert any(
        e.level == "err" and "module snd_usb_audio get owner reference error" in e.text for e in k.events.history
    )
    assert k.modules["au0828"].refcnt == 0  # the reference was never taken...
    assert [v.kind for v in k.check()] == ["module"]
    k.unbind(AUDIO, "1-1:1.1")  # ...but media_device_delete() puts it all the same
    assert any("module_put() underflow on au0828" in a.text for a in k.anomalies)


def test_builtin_owner_takes_no_module_references() -> None:
    k = make_kernel("au0828", builtin=("snd_usb_audio",))
    k.plug("hvr950q")  # au0828 (loadable) probes interface 0 first
    [inst] = k.allocator.instances()
    assert inst.owner == "au0828"
    assert k.modules["au0828"].refcnt == 1  # a built-in sharer still pins the owner module
    assert "snd_usb_audio" not in k.modules
    k2 = make_kernel(builtin=("snd_usb_audio",), plug=("hvr950q",))
    k2.modprobe("au0828")
    [inst2] = k2.allocator.instances()
    assert inst2.owner is None and inst2.mdev.device_info().driver == "snd_usb_audio"
    assert k2.modules["au0828"].refcnt == 0  # try_module_get(NULL) / module_put(NULL)
    with pytest.raises(KernelError, match="is builtin"):
        k2.rmmod("snd_usb_audio")
    k2.unbind("au0828", "1-1:1.0")
    assert k2.check() == [] and k.check() == []
