"""The live source on sysfs trees laid out as the kernel lays them out, with an ioctl seam
answering in kernel-layout bytes from the simulated media devices."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import select
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import Event, Kernel, KernelError
from allocator.mc import uapi_layout
from allocator.mc.topology import DeviceInfo
from mdtui.changes import cause_of
from mdtui.live import decode, media
from mdtui.live.sysfs import Sysfs
from mdtui.model import MediaDeviceView
from mdtui.render.text import render as render_text
from mdtui.rig.tree import write_tree
from mdtui.scenarios import settle
from mdtui.script import parse
from mdtui.sources.live import LiveSource
from mdtui.sources.sim import SimSource

from ..conftest import make_kernel
from ..doubles import FakeIoctl, FakeProc, PipeMonitor


class Rig:
    """A simulated kernel written out as sysfs + /dev, and a live source reading it."""

    def __init__(self, k: Kernel, root: Path, **kwargs: object) -> None:
        self.k, self.root = k, root
        self.ioctl = FakeIoctl()
        self.proc = FakeProc(root)
        self.proc_args = {"proc": self.proc.proc, "proc_calls": self.proc.calls}  # /proc, as the simulation holds it
        kwargs = self.proc_args | kwargs
        self.live = LiveSource(Sysfs(root / "sys", root / "dev"), self.ioctl, **kwargs)  # type: ignore[arg-type]
        self.sync()

    def sync(self) -> None:
        write_tree(self.k, self.root)
        self.proc.sync(self.k)
        self.ioctl.follow(self.k, self.root)
        self.live.invalidate()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270")), tmp_path)


def comparable(view: object, root: Path) -> dict[str, object]:
    """A device view with /dev paths made root-relative."""
    d = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}  # type: ignore[arg-type]
    d["devnode"] = d["devnode"] and str(d["devnode"]).replace(str(root), "")
    d["devnames"] = {k: v.replace(str(root), "") for k, v in d["devnames"].items()}
    d["holders"] = [(h.driver, h.module, h.interface, h.state, [k.pid for k in h.kept_by]) for h in d["holders"]]
    d["open_files"] = [(f.pid, f.comm, f.fd, f.node.replace(str(root), ""), f.mode) for f in d["open_files"]]
    d["parent"] = view.parent_device  # type: ignore[attr-defined]
    for only_live in ("inferred", "bound", "media"):  # what the simulation's source leaves out
        d.pop(only_live)
    return d


def assert_same_as_sim(rig: Rig, skip: tuple[str, ...] = ()) -> None:
    sim = SimSource(rig.k).snapshot()
    live = rig.live.snapshot()
    assert [d.key for d in live.media_devices] == [d.key for d in sim.media_devices]
    for s, lv in zip(sim.media_devices, live.media_devices, strict=True):
        a, b = comparable(s, rig.root), comparable(lv, rig.root)
        for name in skip:
            a.pop(name), b.pop(name)
        assert a == b
        assert lv.inferred == frozenset({"refcount", "owner", "holders", "shared"})
    loaded = {(m.name, m.refcnt, m.used_by) for m in sim.modules if m.refcnt is not None}
    assert {(m.name, m.refcnt, tuple(sorted(m.used_by))) for m in live.modules} == {
        (n, r, tuple(sorted(u))) for n, r, u in loaded
    }


def test_the_live_reader_sees_what_the_simulation_holds(rig: Rig) -> None:
    assert_same_as_sim(rig)
    snap = rig.live.snapshot()
    hvr = snap.media_devices[0]
    assert (hvr.refcount, hvr.owner, snap.owner_refcnt(hvr), hvr.owner_refs_from_sharers) == (2, "au0828", 1, 1)
    assert len(hvr.topology.entities) == 522


def test_same_through_a_lifecycle(rig: Rig) -> None:
    for line in ("unbind au0828 1-1:1.0", "bind au0828 1-1:1.0", "unbind snd-usb-audio 1-1:1.1", "unplug 1-2"):
        [step] = parse(line)
        getattr(rig.k, step.command)(*step.args)
        rig.sync()
        assert_same_as_sim(rig)


def kept(dev: MediaDeviceView, root: Path) -> list[tuple[str, str, list[tuple[int, str, str]]]]:
    return [
        (h.driver, h.interface, [(k.pid, k.comm, k.node.replace(str(root), "")) for k in h.kept_by])
        for h in dev.holders
        if h.state == "deferred"
    ]


def test_a_reference_kept_by_an_open_file_is_counted_with_who_keeps_it(rig: Rig) -> None:
    rig.live.snapshot()  # seen bound: the source knows who registered /dev/video0
    rig.k.open("/dev/video0", "tvheadend")
    rig.k.unbind("au0828", "1-1:1.0")
    rig.sync()
    live = rig.live.snapshot().media_devices[0]
    assert live.refcount == 2  # au0828's deferred reference, as the kernel holds it
    assert kept(live, rig.root) == [("au0828", "1-1:1.0", [(1000, "tvheadend", "/dev/video0 (deleted)")])]
    assert [(f.pid, f.comm, f.node.replace(str(rig.root), "")) for f in live.open_files or ()] == [
        (1000, "tvheadend", "/dev/video0 (deleted)")
    ]
    assert_same_as_sim(rig)
    rig.k.close("/dev/video0")
    rig.sync()
    assert rig.live.snapshot().media_devices[0].refcount == 1
    assert_same_as_sim(rig)


def test_a_kept_reference_seen_only_after_the_unbind_is_the_owners(rig: Rig) -> None:
    rig.k.open("/dev/video0", "tvheadend")
    rig.k.unbind("au0828", "1-1:1.0")
    rig.sync()
    live = rig.live.snapshot().media_devices[0]
    assert live.refcount == 2
    assert kept(live, rig.root) == [("au0828", "?", [(1000, "tvheadend", "/dev/video0 (deleted)")])]
    assert_same_as_sim(rig, skip=("holders",))


def test_only_what_an_event_touches_is_read_again(rig: Rig) -> None:
    rig.live.snapshot()
    before = dict(rig.ioctl.calls)
    rig.live.snapshot()
    assert rig.ioctl.calls == before  # nothing happened: nothing re-read

    events = PipeMonitor()
    rig.live._monitor_factory = lambda: events
    rig.live.start()
    seen = []
    rig.live.subscribe(seen.append)
    events.send(
        {"ACTION": "change", "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-1/media0", "SUBSYSTEM": "media"}
    )
    rig.live.handle_readable()
    rig.live.snapshot()
    hvr, cam = (str(rig.root / "dev" / n) for n in ("media0", "media1"))
    assert rig.ioctl.calls[hvr] > before[hvr] and rig.ioctl.calls[cam] == before[cam]
    assert [e.fields["ACTION"] for e in seen] == ["change"]

    def overrun() -> list[dict[str, str]]:
        raise OSError(errno.ENOBUFS, "No buffer space available")

    events.receive = overrun  # type: ignore[method-assign]
    rig.live._monitor_factory = PipeMonitor
    rig.live.handle_readable()
    assert "ENOBUFS" in seen[-1].text
    counts = dict(rig.ioctl.calls)
    rig.live.snapshot()
    assert rig.ioctl.calls[cam] > counts[cam]  # everything re-read
    rig.live.stop()


def test_uvc_webcam_is_its_own_unshared_device(rig: Rig) -> None:
    cam = rig.live.snapshot().media_devices[1]
    assert (cam.key, cam.shared, cam.refcount, cam.owner) == ("1-2:1.0", False, None, None)
    assert [h.driver for h in cam.holders] == ["uvcvideo"]


def test_device_mid_removal_is_a_state_not_a_crash(rig: Rig) -> None:
    (rig.root / "dev" / "media0").unlink()  # the node went between listing and open
    rig.live.invalidate()
    hvr = rig.live.snapshot().media_devices[0]
    assert hvr.anomalies[0].startswith("gone: open ") and hvr.topology.entities == ()
    # the node is back, but the device was unregistered under the open file: EIO
    (rig.root / "dev" / "media0").write_bytes(b"")
    rig.ioctl.devices[str(rig.root / "dev" / "media0")] = _Gone()  # type: ignore[assignment]
    rig.live.invalidate()
    hvr = rig.live.snapshot().media_devices[0]
    node = rig.root / "dev" / "media0"
    assert hvr.anomalies == (f"gone: MEDIA_IOC_DEVICE_INFO on {node}: Input/output error",)


class _Gone:
    """A media device that was unregistered under an open file: every ioctl is EIO."""

    registered = False


def test_garbage_and_missing_attributes(rig: Rig) -> None:
    usb = rig.root / "sys" / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / "1-1"
    (usb / "idVendor").write_text("not hex\n")
    (usb / "product").unlink()
    (usb / "media0" / "model").write_bytes(b"\xff\xfe garbage")
    (usb / "1-1:1.1" / "bInterfaceClass").write_bytes(b"")
    (usb / "media0" / "uevent").write_text("MAJOR=237\nMINOR=0\nDEVNAME=media0\nnot a line\n")
    rig.live.invalidate()
    snap = rig.live.snapshot()
    u = snap.usb("1-1")
    assert (u.vendor, u.product) == (0, "")
    assert snap.media_devices[0].info.driver == "au0828"  # the ioctls still answer


def test_unsupported_and_denied_states(tmp_path: Path) -> None:
    node = tmp_path / "media0"
    node.write_bytes(b"")

    def enotty(fd: int, request: int, buf: object) -> object:
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    with pytest.raises(media.MediaReadError) as err:
        media.read(str(node), enotty)
    assert err.value.state == "unsupported"

    def eacces(fd: int, request: int, buf: object) -> object:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(media.MediaReadError) as err:
        media.read(str(node), eacces)
    assert err.value.state == "denied"


class Growing:
    """A device whose graph changes between the two G_TOPOLOGY calls, ``times`` times."""

    def __init__(self, mdev: object, times: int, grow_by: int = 0) -> None:
        self.mdev, self.times, self.grow_by, self.calls = mdev, times, grow_by, 0
        self.registered = True

    def device_info(self) -> DeviceInfo:
        return self.mdev.device_info()  # type: ignore[attr-defined]

    def topology(self):
        t = self.mdev.topology()  # type: ignore[attr-defined]
        self.calls += 1
        if self.calls <= 2 * self.times and self.calls % 2 == 0:  # the second call of a pair
            extra = tuple(t.entities[:1]) * self.grow_by
            return t._replace(topology_version=t.topology_version + 1, entities=t.entities + extra)
        return t

    def enum_entities(self):
        return self.mdev.enum_entities()  # type: ignore[attr-defined]

    def enum_links(self, eid: int):
        return self.mdev.enum_links(eid)  # type: ignore[attr-defined]


def _read_with(dev: object, tmp_path: Path) -> media.MediaRead:
    node = tmp_path / "media0"
    node.write_bytes(b"")
    return media.read(str(node), FakeIoctl({str(node): dev}))  # type: ignore[dict-item]


def test_g_topology_retries_when_the_version_changes(tmp_path: Path) -> None:
    mdev = make_kernel("au0828", plug=("hvr950q",)).allocator.instances()[0].mdev
    result = _read_with(Growing(mdev, times=2), tmp_path)
    assert result.retries == 2 and result.topology == mdev.topology()
    with pytest.raises(media.MediaReadError) as err:
        _read_with(Growing(mdev, times=media.RETRIES), tmp_path)
    assert err.value.errno == errno.EAGAIN


def test_g_topology_enospc_when_the_graph_outgrows_the_arrays(tmp_path: Path) -> None:
    mdev = make_kernel("au0828", plug=("hvr950q",)).allocator.instances()[0].mdev
    result = _read_with(Growing(mdev, times=1, grow_by=media.SLACK + 1), tmp_path)
    assert result.retries == 1 and result.topology == mdev.topology()


def test_kernels_before_4_19_have_no_entity_flags_or_pad_index(tmp_path: Path) -> None:
    mdev = make_kernel("au0828", plug=("hvr950q",)).allocator.instances()[0].mdev

    class Old(Growing):
        def device_info(self) -> DeviceInfo:
            return self.mdev.device_info()._replace(media_version=(4 << 16) | (18 << 8))  # type: ignore[attr-defined]

    topo = _read_with(Old(mdev, times=0), tmp_path).topology
    assert all(e.flags == 0 for e in topo.entities)
    demux = next(e.id for e in topo.entities if e.name == "dvb-demux")
    assert [p.index for p in topo.pads if p.entity_id == demux] == list(range(257))


def test_bind_unbind_write_sysfs_only_for_listed_names(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    [unbind] = parse("unbind au0828 1-1:1.0")
    rig.live.perform(unbind)
    assert (rig.root / "sys" / "bus" / "usb" / "drivers" / "au0828" / "unbind").read_text() == "1-1:1.0"
    for line, code in (
        ("unbind nosuch 1-1:1.0", errno.ENOENT),
        ("bind au0828 ../../x", errno.ENODEV),
        ("plug hvr950q", errno.EPERM),
    ):
        with pytest.raises(KernelError) as err:
            rig.live.perform(parse(line)[0])
        assert err.value.errno == code
    real_open = os.open

    def denied(path: object, flags: int, *a: object) -> int:
        if str(path).endswith("/unbind"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(KernelError) as err:
        rig.live.perform(unbind)
    assert err.value.errno == errno.EACCES
    wording = "needs root: echo 1-1:1.0 > /sys/bus/usb/drivers/au0828/unbind: Permission denied"
    assert str(err.value.strerror) == wording
    assert err.value.device == "1-1:1.0"
    monkeypatch.undo()
    read_only = LiveSource(rig.live.sysfs, rig.ioctl, read_only=True, **rig.proc_args)
    with pytest.raises(KernelError) as err:
        read_only.perform(unbind)
    assert err.value.errno == errno.EROFS


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4096), count=st.integers(min_value=-5, max_value=300))
def test_the_decoders_take_any_bytes(data: bytes, count: int) -> None:
    decode.unpack_device_info(data)
    decode.unpack_entities(data, count)
    decode.unpack_interfaces(data, count)
    decode.unpack_pads(data, count, has_index=bool(count % 2))
    decode.unpack_links(data, count)


@settings(max_examples=100, deadline=None)
@given(head=st.binary(min_size=72, max_size=72), arrays=st.binary(max_size=2048))
def test_g_topology_with_a_lying_kernel_gives_a_result_or_a_clear_error(
    head: bytes, arrays: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever counts and bytes come back, the reader answers or raises MediaReadError."""
    node = tmp_path_factory.mktemp("fuzz") / "media0"
    node.write_bytes(b"")

    def liar(fd: int, request: int, buf: object) -> object:
        view = memoryview(buf).cast("B")  # type: ignore[arg-type]
        mine = uapi_layout.MediaV2Topology.from_buffer_copy(head)
        theirs = uapi_layout.MediaV2Topology.from_buffer_copy(bytes(view))
        for name in ("entities", "interfaces", "pads", "links"):  # fill what they allowed
            ptr, room = getattr(theirs, f"ptr_{name}"), getattr(theirs, f"num_{name}")
            if ptr:
                size = room * {"entities": 96, "interfaces": 112, "pads": 32, "links": 40}[name]
                chunk = arrays[:size]
                ctypes.memmove(ptr, chunk, len(chunk))
                setattr(mine, f"ptr_{name}", ptr)
        view[:72] = bytes(mine)
        return 0

    fd = os.open(node, os.O_RDONLY)
    try:
        topo, _ = media.g_topology(fd, str(node), liar, 0x060C00)
        assert topo.topology_version >= 0
    except media.MediaReadError as exc:
        assert exc.state in ("error", "gone", "unsupported", "denied", "unstable")
    finally:
        os.close(fd)


def test_exact_mode_follows_the_allocators_own_lines() -> None:
    """The lines the simulated allocator logs are mainline's; replay them as kmsg records."""
    from mdtui.live.kmsg import ExactTracker, parse_record

    k = make_kernel("au0828", "snd_usb_audio", "uvcvideo")
    lines: list[str] = []
    k.subscribe(lambda e: lines.append(e.line()) if e.kind == "trace" else None)
    tracker = ExactTracker()

    def feed() -> None:
        for n, line in enumerate(lines):
            record = f"7,{n},1000,-;{line}\n SUBSYSTEM=usb\n DEVICE=+usb:1-1\n".encode()
            tracker.apply(parse_record(record) or "")
        lines.clear()

    k.plug("hvr950q")
    feed()
    assert (tracker.devices["1-1"].refcount, tracker.devices["1-1"].owner) == (2, "au0828")
    k.open("/dev/video0")
    k.unbind("au0828", "1-1:1.0")  # the owner's delete is deferred, and not logged anyway
    feed()
    k.unbind("snd-usb-audio", "1-1:1.1")
    feed()
    assert tracker.devices["1-1"].refcount == 1  # exact where inference says 0: the open file
    k.close("/dev/video0")
    feed()
    assert "1-1" not in tracker.devices  # "releasing Media Device"
    k.plug("hvr950q", "2-1")
    feed()
    k.open("/dev/video0", "tvheadend")
    k.unbind("au0828", "2-1:1.0")
    tracker.owner_unbound("2-1")  # what the live source does on the owner driver's unbind
    feed()
    t = tracker.devices["2-1"]
    # the owner's delete is logged nowhere: it ran at the unbind, or (a file keeps it) not yet
    assert (t.refcount_now(owner_kept=False), t.refcount_now(owner_kept=True)) == (1, 2)


def test_exact_mode_says_why_it_is_unavailable(tmp_path: Path) -> None:
    from mdtui.live.kmsg import DebugSwitch

    assert "dynamic debug" in (DebugSwitch(tmp_path / "no-debugfs").enable() or "")
    control = tmp_path / "dynamic_debug"
    control.mkdir()
    (control / "control").write_text("# filename:lineno [module]function flags format\n")
    assert "lists none" in (DebugSwitch(tmp_path).enable() or "")  # mc not loaded: nothing to switch
    site = 'drivers/media/mc/mc-dev-allocator.c:96 [mc]__media_device_get =_ "%s: ..."\n'
    (control / "control").write_text(site)
    switch = DebugSwitch(tmp_path)
    assert switch.enable() is None and switch.switched
    assert (control / "control").read_text() == "file mc-dev-allocator.c +p\n"


@pytest.mark.asyncio
async def test_the_app_on_the_live_source_follows_uevents(rig: Rig) -> None:
    from mdtui.app import MdtuiApp

    feed = PipeMonitor()
    rig.live._monitor_factory = lambda: feed
    app = MdtuiApp(rig.live)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        assert app.snapshot.device("1-1").refcount == 2
        assert "live system, inferred allocator state" in app.sub_title
        rig.k.unbind("au0828", "1-1:1.0")  # what happens on the machine...
        write_tree(rig.k, rig.root)
        iface = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"
        feed.send({"ACTION": "unbind", "DEVPATH": iface, "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface"})
        await pilot.pause(0.2)  # ...reaches the screen through the fd the loop watches
        await settle(app)
        assert app.snapshot.device("1-1").refcount == 1
        assert app.check_action("choose", ("plug",)) is False


def test_the_real_sys_is_enumerated_through_pyudev() -> None:
    """On /sys, devices come from libudev (these machines have no media or USB devices, so the
    lists are empty: the rig's tests see the same code find the mocked ones)."""
    real = Sysfs()
    assert real._udev is not None
    assert real.media_devices() == [] and real.usb_devices() == []
    assert Sysfs("/nonexistent")._udev is None


def test_the_close_of_a_keeping_file_wakes_the_source_and_the_release_is_read(rig: Rig) -> None:
    """No uevent says a file was closed: the keeping file is watched (inotify through its
    /proc/PID/fd link), and after its close the device is read again until the release shows
    (the kernel notifies the close before the driver's release runs)."""
    rig.live.start()
    try:
        rig.live.snapshot()
        rig.k.open("/dev/video0", "tvheadend")
        rig.k.unbind("au0828", "1-1:1.0")
        rig.sync()
        target = Path(f"{rig.root}/dev/video0 (deleted)")
        target.touch()  # what the fake fd link points at: a file inotify can watch
        assert rig.live.snapshot().media_devices[0].refcount == 2
        assert rig.live.closes is not None and rig.live.closes.watched == {f"{rig.proc.proc}/1000/fd/3"}
        seen: list[Event] = []
        rig.live.subscribe(seen.append)
        assert not select.select(rig.live.filenos(), [], [], 0)[0]  # nothing to read while nothing happens
        os.close(os.open(target, os.O_RDONLY))  # a close of the kept inode
        assert select.select(rig.live.filenos(), [], [], 2)[0]
        rig.live.handle_readable()
        closed = f"{rig.root}/dev/video0 (deleted) (pid 1000 tvheadend)"
        assert [e.text for e in seen] == [f"close of {closed}: reading 1-1 again"]
        assert cause_of(seen) == f"closed {closed}"  # what the allocator change line says caused it
        shutil.rmtree(rig.proc.proc / "1000")  # the process closed it: gone from /proc at once,
        later = threading.Timer(0.06, rig.k.close, ("/dev/video0", "tvheadend"))  # released a little later
        later.start()
        settled = rig.live.snapshot().media_devices[0]
        later.join()
        assert (settled.refcount, kept(settled, rig.root)) == (1, [])
        assert rig.live.closes.watched == frozenset()
    finally:
        rig.live.stop()


def test_a_hostile_process_name_never_reaches_the_terminal(rig: Rig) -> None:
    """/proc/PID/comm is whatever the process set (prctl PR_SET_NAME): escape sequences and
    newlines are shown in caret notation in the text dump, and kept as they are in JSON."""
    rig.live.snapshot()
    rig.k.open("/dev/video0", "\x1b]0;pwn\x07\nx")
    rig.k.unbind("au0828", "1-1:1.0")
    rig.sync()
    snap = rig.live.snapshot()
    text = render_text(snap)
    assert "\x1b" not in text and "\x07" not in text
    assert "open in pid 1000 (^[]0;pwn^G^Jx)" in text
    [f] = snap.media_devices[0].open_files or ()
    assert f.comm == "\x1b]0;pwn\x07\nx"


def test_a_rebind_while_the_old_node_is_held_counts_both_of_au0828s_references(rig: Rig) -> None:
    """Found by a hostile review: a one-shot reader (never saw it bound) named the old
    instance's reference "?" and counted it as a sharer's."""
    rig.k.open("/dev/vbi0", "tvtime")
    rig.k.unbind("au0828", "1-1:1.0")
    rig.k.bind("au0828", "1-1:1.0")
    rig.sync()
    live = rig.live.snapshot().media_devices[0]
    sim = SimSource(rig.k).snapshot().media_devices[0]
    assert (live.refcount, live.owner_refs_from_sharers) == (sim.refcount, sim.owner_refs_from_sharers) == (3, 1)
    assert sorted((h.driver, h.state) for h in live.holders) == sorted((h.driver, h.state) for h in sim.holders)
