"""Regression tests for the live source's reliability bugs: a node that cannot be opened,
exact mode's switch of the debug lines, symlink loops and unresolvable directories,
ancillary links, pads of missing entities, and media devices on non-USB parents.

These tests run as root on the test machines, where ``chmod 000`` denies nothing: EACCES is
simulated by monkeypatching ``os.open`` / ``os.path.realpath`` (the system calls the reader
makes), which is what a user outside the ``video`` group gets from the kernel."""

from __future__ import annotations

import errno
import io
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from allocator.mc import uapi
from allocator.mc.topology import TopoEntity, TopoLink, TopoPad
from mdtui import changes
from mdtui.live import kmsg
from mdtui.model import MediaDeviceView, SystemSnapshot
from mdtui.render import dot, drawing, jsondump, text
from mdtui.scenarios import settle
from mdtui.sources.live import LiveSource
from mdtui.widgets.detail import render_detail
from mdtui.widgets.graph import EntityTree

from ..conftest import make_kernel
from ..doubles import ALLOCATOR_SITES, FakeDynamicDebug, PipeMonitor
from .test_live import Rig

SCHEMA = json.loads(jsondump.SCHEMA_PATH.read_text())
ALL_SITES = {line for line, _ in ALLOCATOR_SITES}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270")), tmp_path)


def shown(renderable: object) -> str:
    console = Console(width=200, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def device(snap: SystemSnapshot, name: str) -> MediaDeviceView:
    return next(d for d in snap.media_devices if d.name == name)


# -- 1. a node that cannot be opened: unknown, never 0 / "none" / "built in" ---------------


def _deny_open(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open
    node = str(rig.root / "dev" / "media0")

    def open_(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(path) == node:
            raise PermissionError(errno.EACCES, "Permission denied", node)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)


def _gone(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    (rig.root / "dev" / "media0").unlink()  # removed between the listing and open()


def _unsupported(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    del rig.ioctl.devices[str(rig.root / "dev" / "media0")]  # the seam answers ENOTTY


UNREADABLE = {
    "denied": (_deny_open, "permission denied", "EACCES"),
    "gone": (_gone, "no such file or directory", "ENOENT"),
    "unsupported": (_unsupported, "inappropriate ioctl for device", "ENOTTY"),
}


@pytest.mark.parametrize("state", sorted(UNREADABLE))
def test_a_device_that_cannot_be_read_reads_unknown_everywhere(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
) -> None:
    before = rig.live.snapshot()
    make_unreadable, words, errname = UNREADABLE[state]
    make_unreadable(rig, monkeypatch)
    rig.live.invalidate()
    snap = rig.live.snapshot()
    hvr = device(snap, "media0")
    node = str(rig.root / "dev" / "media0")
    unknown = f"unknown ({words}: {node} ({errname} on "

    dump = text.render(snap)
    section = dump.split("=== ")[1]
    assert f"refcount          {unknown}" in section
    assert f"owner module      {unknown}" in section and "built in" not in section
    assert f"holders           {unknown}" in section and "holders           none" not in section
    assert f"topology_version  {unknown}" in section and "0 entities" not in section
    assert "API version 0.0.0" not in dump and f"(media-ctl -p: {unknown}" in dump
    # what sysfs still says: the USB device, the drivers bound there, their modules' refcnt
    assert "key device        1-1 (2040:7200 WinTV HVR-950Q)" in section
    au0828 = snap.module("au0828")
    assert au0828 is not None
    assert f"bound drivers     au0828 1-1:1.0 (module au0828, refcnt {au0828.refcnt})" in section

    doc = json.loads(jsondump.render(snap))
    jsonschema.validate(doc, SCHEMA)
    d = next(x for x in doc["media_devices"] if x["devnode"] == node)
    for field in ("refcount", "owner", "owner_refs_from_sharers", "holders", "driver", "bus_info"):
        assert d[field] is None, field
    for field in ("media_version", "hw_revision", "topology_version", "entities", "links"):
        assert d[field] is None, field
    assert d["model"] == "WinTV HVR-950Q" and d["usb_device"] == "1-1" and d["registered"] is True
    assert d["unread"]["state"] == state and d["unread"]["errno"] == errname
    assert {b["driver"] for b in d["bound_drivers"]} == {"au0828", "snd-usb-audio"}

    detail = " ".join(shown(render_detail(hvr, snap)).split())  # the grid's padding folded
    assert f"refcount {unknown}" in detail and "built in" not in detail
    assert f"holders {unknown}" in detail and f"DEVICE_INFO {unknown}" in detail
    assert f"bound drivers au0828 1-1:1.0 (module au0828, refcnt {au0828.refcnt})" in detail

    lines = [c.text for c in changes.diff(before, snap)]  # what `watch` prints
    assert f"media0 refcount 2→{unknown}" in " ".join(lines)
    appeared = [c.text for c in changes.diff(None, snap)]
    assert any(t.startswith(f"media0 allocated by {unknown}") for t in appeared)
    assert not any("allocated by ," in t or "refcount 0" in t for t in appeared)
    assert hvr.unread is not None and hvr.unread.state == state and hvr.unread.errno == errname


# -- 2. exact mode: --read-only writes nothing; what it switched on is put back -------------


class FakeKmsg:
    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.r, self.w = os.pipe()

    def fileno(self) -> int:
        return self.r

    def messages(self) -> list[str]:
        return []

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def dyndbg(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeDynamicDebug]:
    """Install a fake dynamic_debug/control (kmsg's ``open`` on that path) and /dev/kmsg."""

    def install(printing: tuple[int, ...] = (), writable: bool = True) -> FakeDynamicDebug:
        fake = FakeDynamicDebug(printing, writable=writable)
        monkeypatch.setattr(kmsg, "open", fake.open, raising=False)
        monkeypatch.setattr(kmsg, "KmsgReader", FakeKmsg)
        return fake

    return install


def test_read_only_exact_mode_writes_nothing(rig: Rig, dyndbg: Callable[..., FakeDynamicDebug]) -> None:
    fake = dyndbg()
    live = LiveSource(rig.live.sysfs, rig.ioctl, **rig.proc_args, read_only=True, exact=True)
    live.start()
    assert fake.opened_for_writing == 0 and fake.printing == set()
    assert live.mode == "inferred"
    note = " ".join(live.snapshot().notes)
    assert "--read-only" in note and "debug lines are off" in note
    live.stop()
    assert fake.opened_for_writing == 0


def test_read_only_exact_mode_works_when_the_lines_already_print(
    rig: Rig,
    dyndbg: Callable[..., FakeDynamicDebug],
) -> None:
    fake = dyndbg(printing=tuple(ALL_SITES))
    live = LiveSource(rig.live.sysfs, rig.ioctl, **rig.proc_args, read_only=True, exact=True)
    live.start()
    assert live.mode == "exact" and fake.opened_for_writing == 0
    assert "already on" in " ".join(live.snapshot().notes)
    live.stop()
    assert fake.printing == ALL_SITES  # left as they were


def test_exact_mode_puts_the_debug_lines_back(
    rig: Rig,
    dyndbg: Callable[..., FakeDynamicDebug],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = dyndbg(printing=(96,))  # one site printed before mdtui started: it stays on
    live = LiveSource(rig.live.sysfs, rig.ioctl, **rig.proc_args, exact=True)
    live.start()
    assert live.mode == "exact" and fake.printing == ALL_SITES
    live.stop()
    assert fake.printing == {96}

    fake = dyndbg()  # none printed before; this time mdtui exits without stop()
    at_exit: list[Callable[[], None]] = []
    monkeypatch.setattr("atexit.register", lambda f, *a: at_exit.append(f) or f)
    monkeypatch.setattr("atexit.unregister", lambda f: None)
    live = LiveSource(rig.live.sysfs, rig.ioctl, **rig.proc_args, exact=True)
    live.start()
    assert fake.printing == ALL_SITES and at_exit
    for hook in at_exit:
        hook()
    assert fake.printing == set()
    assert fake.queries == ["file mc-dev-allocator.c +p", "file mc-dev-allocator.c -p"]


def test_watch_says_why_exact_mode_is_off(rig: Rig, dyndbg: Callable[..., FakeDynamicDebug]) -> None:
    from mdtui.watch import Printer, Watch

    dyndbg(writable=False)  # not root
    live = LiveSource(rig.live.sysfs, rig.ioctl, **rig.proc_args, exact=True, monitor_factory=PipeMonitor)
    out = io.StringIO()
    w = Watch(live, Printer(out, False, False))  # type: ignore[call-arg]
    follower = threading.Thread(target=w.follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 5
    while "exact mode" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop()
    follower.join(5)
    w.close()
    live.stop()
    assert "exact mode needs root" in out.getvalue()  # at start, before any event


# -- 3. symlink loops and directories that cannot be resolved: shown, never raised or dropped


def _loop(link: Path) -> None:
    link.unlink()
    link.symlink_to(link.name)  # media0 -> media0: ELOOP


def test_symlink_loops_are_shown_with_why(rig: Rig) -> None:
    sys_ = rig.root / "sys"
    _loop(sys_ / "bus" / "media" / "devices" / "media0")
    _loop(sys_ / "bus" / "usb" / "devices" / "1-2")
    stray = sys_ / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / "1-9"
    stray.symlink_to("1-9")
    rig.live.invalidate()
    snap = rig.live.snapshot()
    assert sorted(d.name for d in snap.media_devices) == ["media0", "media1"]
    hvr = device(snap, "media0")
    assert hvr.unread is not None and hvr.unread.errno == "ELOOP"
    why = "cannot resolve /sys/bus/media/devices/media0: Too many levels of symbolic links (ELOOP)"
    assert why in hvr.unread.reason
    assert device(snap, "media1").unread is None  # found through its real directory
    assert "unknown (cannot resolve" in text.render(snap)
    jsonschema.validate(json.loads(jsondump.render(snap)), SCHEMA)

    events = PipeMonitor()
    rig.live._monitor_factory = lambda: events
    rig.live.start()
    events.send({"ACTION": "add", "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-9/1-9:1.0"})
    rig.live.handle_readable()  # the touched USB device resolves into a loop: no RuntimeError
    rig.live._mark("1-2")
    rig.live.snapshot()
    rig.live.stop()


def _deny_on_the_media_bus(rig: Rig, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """EACCES on resolving /sys/bus/media/devices/NAME, as a directory on the way that the
    user may not search gives it (root is never denied: patched)."""
    real = os.path.realpath
    denied = str(rig.root / "sys" / "bus" / "media" / "devices" / name)

    def realpath(path: object, *args: object, **kwargs: object) -> str:
        if str(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", denied)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os.path, "realpath", realpath)
    rig.live.invalidate()


def test_a_directory_that_cannot_be_resolved_is_listed_with_why(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _deny_on_the_media_bus(rig, monkeypatch, "media1")
    snap = rig.live.snapshot()
    assert sorted(d.name for d in snap.media_devices) == ["media0", "media1"]
    cam = device(snap, "media1")
    assert cam.unread is not None and cam.unread.errno == "EACCES"
    assert cam.refcount is None and cam.holders == () and cam.usb_device is None


def test_a_device_libudev_skips_is_still_listed(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """libudev leaves out a device whose directory it cannot read (found on the rig as a
    non-root user): the media bus's own listing still names it, shown with why."""

    class Udev:
        def list_devices(self, subsystem: str) -> object:
            if subsystem != "media":
                raise OSError(errno.ENOSYS, "list it directly")  # the reader then lists sysfs itself
            return [type("D", (), {"sys_path": str(rig.root / "sys" / "bus" / "media" / "devices" / "media1")})()]

    monkeypatch.setattr(rig.live.sysfs, "_udev", Udev())
    _deny_on_the_media_bus(rig, monkeypatch, "media0")
    snap = rig.live.snapshot()
    assert sorted(d.name for d in snap.media_devices) == ["media0", "media1"]
    hvr = device(snap, "media0")
    assert hvr.unread is not None and hvr.unread.errno == "EACCES"


# -- 4. ancillary links, pads of missing entities, parents that are no USB device ----------


class Patched:
    """A simulated media device whose G_TOPOLOGY answer is edited (a lens and its ancillary
    link, a pad of an entity the graph lacks...)."""

    def __init__(self, mdev: object, edit: Callable[[object], object]) -> None:
        self.mdev, self.edit, self.registered = mdev, edit, True

    def device_info(self) -> object:
        return self.mdev.device_info()  # type: ignore[attr-defined]

    def topology(self) -> object:
        return self.edit(self.mdev.topology())  # type: ignore[attr-defined]

    def enum_entities(self) -> object:
        return self.mdev.enum_entities()  # type: ignore[attr-defined]

    def enum_links(self, eid: int) -> object:
        return self.mdev.enum_links(eid)  # type: ignore[attr-defined]


LENS = 0x00F0
ANCILLARY_LINK = uapi.MEDIA_LNK_FL_ANCILLARY_LINK | uapi.MEDIA_LNK_FL_ENABLED | uapi.MEDIA_LNK_FL_IMMUTABLE


def _with_lens(t):  # type: ignore[no-untyped-def]
    sensor = t.entities[0].id
    lens = TopoEntity(LENS, "dw9714 lens", uapi.MEDIA_ENT_F_LENS, 0)
    return t._replace(entities=(*t.entities, lens), links=(*t.links, TopoLink(0x02F0, sensor, LENS, ANCILLARY_LINK)))


def _patch(rig: Rig, node: str, edit: Callable[[object], object]) -> None:
    path = str(rig.root / "dev" / node)
    rig.ioctl.devices[path] = Patched(rig.ioctl.devices[path], edit)  # type: ignore[assignment]
    rig.live.invalidate()


def test_ancillary_links_are_their_own_kind(rig: Rig) -> None:
    _patch(rig, "media1", _with_lens)
    snap = rig.live.snapshot()
    cam = device(snap, "media1")
    sensor = cam.topology.entities[0]
    doc = json.loads(jsondump.render(snap))
    jsonschema.validate(doc, SCHEMA)
    [link] = [ln for d in doc["media_devices"] for ln in d["links"] if ln["id"] == 0x02F0]
    assert link["kind"] == "ancillary"
    assert link["source"] == {"entity": sensor.id, "entity_name": sensor.name}
    assert link["sink"] == {"entity": LENS, "entity_name": "dw9714 lens"}
    dump = text.render(snap)
    assert f"ancillary links   {sensor.name} <=> dw9714 lens [ENABLED,IMMUTABLE]" in dump
    assert "-> \"dw9714 lens\"" not in text.media_ctl_p(cam)  # media-ctl -p does not show them
    assert "magenta" not in dot.print_dot(cam)  # nor does --print-dot
    assert f"n{sensor.id:08x} -> n{LENS:08x} [dir=\"none\" color=\"magenta\"]" in dot.print_dot(cam, interfaces=True)
    assert "◇ dw9714 lens (ancillary)" in shown(drawing.draw(cam))
    tree = EntityTree()
    tree.show(cam)
    leaves = [str(leaf.label) for node in _walk(tree.root) for leaf in node.children]
    assert "ancillary ⇔ dw9714 lens [ENABLED,IMMUTABLE]" in leaves


def _walk(node):  # type: ignore[no-untyped-def]
    yield node
    for child in node.children:
        yield from _walk(child)


def _with_a_missing_entity(t):  # type: ignore[no-untyped-def]
    source = next(p for p in t.pads if p.flags & uapi.MEDIA_PAD_FL_SOURCE)
    orphan = TopoPad(0x01F0, 0x0999, uapi.MEDIA_PAD_FL_SINK, 0)  # entity 0x999 is not in the graph
    return t._replace(pads=(*t.pads, orphan), links=(*t.links, TopoLink(0x02F1, source.id, orphan.id, 1)))


def test_a_pad_whose_entity_is_missing_is_drawn_as_unknown(rig: Rig) -> None:
    _patch(rig, "media1", _with_a_missing_entity)
    snap = rig.live.snapshot()
    cam = device(snap, "media1")
    assert "? entity 2457" in shown(drawing.draw(cam))
    tree = EntityTree()
    tree.show(cam)
    labels = [str(n.label) for n in _walk(tree.root)]
    assert "not in the graph (1)" in labels and any(label.startswith("? entity 2457") for label in labels)
    text.render(snap), dot.print_dot(cam, interfaces=True), jsondump.render(snap)


def _media_on(rig: Rig, parent: str, name: str, bus: str | None, driver: str | None = None) -> None:
    """A media device NAME under /sys/devices/PARENT (no USB device above it), answering
    with the webcam's graph."""
    sys_ = rig.root / "sys"
    p = sys_ / "devices" / parent
    p.mkdir(parents=True, exist_ok=True)
    if bus is not None:
        (p / "uevent").write_text(f"DRIVER={driver}\n" if driver else "")
        (sys_ / "bus" / bus / "devices").mkdir(parents=True, exist_ok=True)
        if not (p / "subsystem").is_symlink():
            (p / "subsystem").symlink_to(os.path.relpath(sys_ / "bus" / bus, p))
    if driver is not None:
        drv = sys_ / "bus" / bus / "drivers" / driver  # type: ignore[operator]
        drv.mkdir(parents=True, exist_ok=True)
        (sys_ / "module" / driver).mkdir(parents=True, exist_ok=True)
        (sys_ / "module" / driver / "refcnt").write_text("3\n")
        (drv / "module").symlink_to(os.path.relpath(sys_ / "module" / driver, drv))
        (p / "driver").symlink_to(os.path.relpath(drv, p))
    m = p / name
    m.mkdir()
    (m / "uevent").write_text(f"MAJOR=237\nMINOR=9\nDEVNAME={name}\n")
    (m / "model").write_text("Some card\n")
    (sys_ / "bus" / "media" / "devices" / name).symlink_to(os.path.relpath(m, sys_ / "bus" / "media" / "devices"))
    (rig.root / "dev" / name).write_bytes(b"")
    rig.ioctl.devices[str(rig.root / "dev" / name)] = rig.ioctl.devices[str(rig.root / "dev" / "media1")]


def test_media_devices_on_other_parents_show_the_real_parent(rig: Rig) -> None:
    _media_on(rig, "pci0000:00/0000:00:1f.3", "media2", "pci", "snd_hda_intel")
    _media_on(rig, "platform/vimc.0", "media3", "platform")
    _media_on(rig, "virtual/media", "media4", None)
    rig.live.invalidate()
    snap = rig.live.snapshot()
    pci, vimc, none = (device(snap, n) for n in ("media2", "media3", "media4"))
    dump = text.render(snap)
    assert "pci0000:00" not in dump and "key device        0000:00:1f.3" not in dump
    assert "parent            pci 0000:00:1f.3" in dump and "parent            platform vimc.0" in dump
    assert "parent            none" in dump
    assert "bound drivers     snd_hda_intel 0000:00:1f.3 (module snd_hda_intel, refcnt 3)" in dump
    doc = json.loads(jsondump.render(snap))
    jsonschema.validate(doc, SCHEMA)
    d = next(x for x in doc["media_devices"] if x["key"] == "0000:00:1f.3")
    assert (d["usb_device"], d["parent"]) == (None, "pci 0000:00:1f.3")
    detail = shown(render_detail(pci, snap))
    assert "parent  " in detail and "key device" not in detail
    assert (pci.key, pci.usb_device, pci.parent, pci.shared) == ("0000:00:1f.3", None, "pci 0000:00:1f.3", False)
    bound = [(b.driver, b.module, b.device) for b in pci.bound or ()]
    assert bound == [("snd_hda_intel", "snd_hda_intel", "0000:00:1f.3")]
    assert (vimc.key, vimc.usb_device, vimc.parent) == ("vimc.0", None, "platform vimc.0")
    assert (none.key, none.usb_device, none.parent) == ("media4", None, None)
    assert pci.holders == () and pci.refcount is None and pci.owner is None


def test_an_event_behind_a_hub_marks_the_device_not_the_hub(tmp_path: Path) -> None:
    from mdtui.sources.live import _usb_device_path

    usb1 = tmp_path / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1"
    (usb1 / "1-1" / "1-1.2" / "1-1.2:1.0").mkdir(parents=True)
    devpath = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2/1-1.2:1.0/video4linux/video0"
    assert _usb_device_path(tmp_path, devpath) == str(usb1 / "1-1" / "1-1.2")
    assert _usb_device_path(tmp_path, "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0") == str(usb1 / "1-1")
    platform = "/devices/platform/vimc.0/media3"
    assert _usb_device_path(tmp_path, platform) == str(tmp_path / platform.lstrip("/"))


@pytest.mark.asyncio
async def test_the_app_shows_devices_it_cannot_read(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tab of a device whose node is denied, whose directory loops, and one with an
    ancillary link and a pad of a missing entity: shown, no exception."""
    from mdtui.app import MdtuiApp

    _deny_open(rig, monkeypatch)
    _patch(rig, "media1", lambda t: _with_a_missing_entity(_with_lens(t)))
    _media_on(rig, "platform/vimc.0", "media3", "platform")
    sys_ = rig.root / "sys" / "bus" / "media" / "devices"
    (sys_ / "media9").symlink_to("media9")
    app = MdtuiApp(rig.live)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app)
        assert sorted(d.name for d in app.snapshot.media_devices) == ["media0", "media1", "media3", "media9"]
        for _ in app.snapshot.media_devices:
            for tab in ("1", "2", "3", "4"):
                await pilot.press(tab)
                await settle(app)
            await pilot.press("down")
            await settle(app)
        from mdtui.widgets.device_list import DeviceList

        row = app.query_one(DeviceList).cells("1-1")
        assert row[3:] == ("?", "?", "?", "unknown: denied")  # driver, ref, holders: nothing invented
