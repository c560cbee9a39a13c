"""Fuzzing the live reader with odd sysfs trees and lying media devices.

A hypothesis strategy draws a machine: media devices on every kind of parent (a USB device,
a USB interface, PCI, platform, none), their USB devices, interfaces, drivers and modules,
with what a live tree does to a reader: symlink loops (``a -> a``, ``a -> b -> a``), links
to nothing or to a file, garbage, binary and huge attributes, DEVNAMEs that are no /dev
path, node files that are missing, directories or FIFOs, modules with absurd refcnts.  The
reader's file-system seam (``FaultyFs``) adds what root cannot get from ``chmod``: EACCES,
EIO, ELOOP on any path and below it, and paths removed right after a listing names them.
Each /dev node is answered through the ioctl seam by a simulated device, by a made-up graph
(duplicate and dangling ids, pads of missing entities, every link type, markup in names),
by raw garbage with huge counts, or by an errno.

Invariant: ``snapshot()`` never raises, and every name the reader listed in
/sys/bus/media/devices is in the snapshot exactly once, with a state; whatever could not be
read says why, naming a path.  Everything rendered from it (text, JSON against the schema,
DOT, the drawing, the graph tree, the detail) renders without an exception, and uevents
and kernel log lines for the same tree are taken without one.

``make test`` runs a few seconds' worth (``EXAMPLES``, derandomized by the ci profile);
``MDTUI_SOAK=1`` runs ``SOAK_EXAMPLES`` per test, with fresh randomness.
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rich.console import Console

from allocator.mc import uapi, uapi_layout
from allocator.mc.topology import DeviceInfo, EntityDesc, TopoEntity, TopoInterface, TopoLink, Topology, TopoPad
from mdtui.live import media
from mdtui.live.kmsg import ExactTracker, parse_record
from mdtui.live.sysfs import Sysfs
from mdtui.model import SystemSnapshot
from mdtui.render import dot, drawing, jsondump, text
from mdtui.sources.live import LiveSource
from mdtui.widgets.detail import render_detail
from mdtui.widgets.graph import EntityTree

from ..conftest import make_kernel
from ..doubles import FakeIoctl, FaultyFs, PipeMonitor

SOAK = os.environ.get("MDTUI_SOAK") == "1"
EXAMPLES, SOAK_EXAMPLES = 60, 2000
SCHEMA_FILE = jsondump.SCHEMA_PATH
SCHEMA = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))  # checked once, not per example
TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # trees in memory, as sysfs


def fuzz_settings(examples: int = EXAMPLES) -> settings:
    return settings(
        max_examples=SOAK_EXAMPLES if SOAK else examples,
        deadline=None,
        derandomize=not SOAK,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- what a tree is made of -------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
ERRNOS = st.sampled_from([errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT, errno.ELOOP, errno.ENODEV, errno.EINVAL])
IOCTL_ERRNOS = st.sampled_from(
    [errno.EACCES, errno.EPERM, errno.ENOTTY, errno.EIO, errno.ENXIO, errno.ENODEV, errno.EINVAL, errno.EFAULT, 0, 4095]
)
NAMES = st.one_of(
    st.sampled_from(["au0828", "snd-usb-audio", "uvcvideo", "snd_hda_intel", "vimc", "[/]", "[bold]x", 'q"uote\\']),
    st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=12),
).filter(lambda n: n not in (".", ".."))
MARKUP = st.sampled_from([b"[/]\n", b"USB Camera [HD]\n", b"[bold]x\n"])  # crashes rich, if parsed as markup
ATTRIBUTE = st.one_of(
    st.sampled_from([b"0\n", b"1\n", b"2040\n", b"046d\n", b"WinTV HVR-950Q\n", b"", b"\n", b"-1\n"]),
    MARKUP,
    st.binary(max_size=64),
    st.sampled_from([b"9" * 5000 + b"\n", b"\xff" * 70_000, b"ffff" * 20_000]),  # huge: more digits than int() takes
)
UEVENT = st.sampled_from(["ok", "no_devname", "garbage", "dotdot", "absolute", "nul", "absent", "huge"])
LINK = st.sampled_from(["ok", "ok", "ok", "loop", "loop2", "dangling", "to_file"])
NODE = st.sampled_from(["file", "file", "missing", "dir", "fifo"])
PARENT = st.sampled_from(["usb_device", "usb_interface", "pci", "platform", "virtual", "bare"])


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    """A made-up graph: ids from small pools so they collide, pads of entities that are not
    there, links between anything with every link type (data, interface, ancillary, undefined)."""
    ent_ids = st.sampled_from([1, 2, 3, 5, 0, 2**32 - 1])
    pad_ids = st.sampled_from([0x01000001, 0x01000002, 0x01000003, 7])
    intf_ids = st.sampled_from([0x03000001, 0x03000002])
    functions = st.one_of(st.sampled_from([0x10001, 0x20001, uapi.MEDIA_ENT_F_LENS]), U32)
    names = st.one_of(NAMES, st.text(max_size=80))
    entities = draw(st.lists(st.builds(TopoEntity, ent_ids, names, functions, U32), max_size=6))
    majors = st.sampled_from([81, 212, 0])
    interfaces = draw(st.lists(st.builds(TopoInterface, intf_ids, U32, U32, majors, st.integers(0, 3)), max_size=3))
    pad_entities = st.one_of(ent_ids, U32)
    pads = draw(st.lists(st.builds(TopoPad, pad_ids, pad_entities, st.integers(0, 7), st.integers(0, 300)), max_size=6))
    ends = st.one_of(ent_ids, pad_ids, intf_ids, U32)
    types = st.sampled_from([0, 1 << 28, 2 << 28, 3 << 28, 15 << 28])
    links = draw(
        st.lists(
            st.builds(TopoLink, U32, ends, ends, st.tuples(types, st.integers(0, 0xFFFF)).map(lambda t: t[0] | t[1])),
            max_size=8,
        )
    )
    version = draw(st.integers(0, 2**64 - 1))
    return Topology(version, tuple(entities), tuple(interfaces), tuple(pads), tuple(links))


class MadeUp:
    """A media device answering DEVICE_INFO / G_TOPOLOGY / ENUM_ENTITIES with a made-up graph
    (through the kernel's byte layout: ``allocator.mc.ioctl.media_ioctl``)."""

    registered = True

    def __init__(self, info: DeviceInfo, topology: Topology, legacy: list[tuple[int, int, int]]) -> None:
        self.info, self.topo, self.legacy = info, topology, legacy

    def device_info(self) -> DeviceInfo:
        return self.info

    def topology(self) -> Topology:
        return self.topo

    def enum_entities(self) -> tuple[EntityDesc, ...]:
        return tuple(
            EntityDesc(e.id, e.name, etype, e.flags, 1, 1, major, minor)
            for e, (etype, major, minor) in zip(self.topo.entities, self.legacy, strict=False)
        )

    def enum_links(self, eid: int) -> tuple[tuple[()], tuple[()]]:
        return (), ()


@st.composite
def made_up(draw: st.DrawFn) -> MadeUp:
    topo = draw(topologies())
    text_ = st.text(max_size=40)
    info = DeviceInfo(draw(text_), draw(text_), draw(text_), draw(text_), draw(U32), draw(U32), draw(U32))
    legacy = draw(st.lists(st.tuples(U32, st.sampled_from([0, 81]), st.integers(0, 3)), max_size=len(topo.entities)))
    return MadeUp(info, topo, legacy)


HUGE_COUNTS = [0, 1, 3, media.MAX_OBJECTS + 1, 2**31, 2**32 - 1]
SIZES = {
    "entities": uapi_layout.ENTITY.size,
    "interfaces": uapi_layout.INTERFACE.size,
    "pads": uapi_layout.PAD.size,
    "links": uapi_layout.LINK.size,
}


class Liar:
    """An ioctl seam that answers every call with garbage: random errnos, random structs, and
    G_TOPOLOGY counts and versions that change between calls, never writing past the room
    the caller gave (the kernel's copy_to_user never does)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def __call__(self, fd: int, request: int, buf: object) -> object:
        rnd = self.rnd
        if rnd.random() < 0.1:
            raise OSError(rnd.choice([errno.EIO, errno.ENOSPC, errno.EINVAL, errno.ENOTTY, 0]), "lie")
        view = memoryview(buf).cast("B")  # type: ignore[arg-type]
        if request != uapi_layout.MEDIA_IOC_G_TOPOLOGY:
            view[:] = rnd.randbytes(len(view))
            return 0
        theirs = uapi_layout.MediaV2Topology.from_buffer_copy(bytes(view))
        mine = uapi_layout.MediaV2Topology.from_buffer_copy(rnd.randbytes(72))
        mine.topology_version = rnd.choice([0, 1, mine.topology_version])
        for name, size in SIZES.items():
            room, ptr = getattr(theirs, f"num_{name}"), getattr(theirs, f"ptr_{name}")
            setattr(mine, f"num_{name}", rnd.choice([*HUGE_COUNTS, room, rnd.randrange(0, 40)]))
            setattr(mine, f"ptr_{name}", ptr)
            if ptr:
                data = rnd.randbytes(min(room, rnd.randrange(0, 40)) * size)
                ctypes.memmove(ptr, data, len(data))
        view[:72] = bytes(mine)
        return 0


ANSWERS = st.one_of(
    st.sampled_from(["c270", "c270", "hvr"]),
    made_up(),
    IOCTL_ERRNOS.map(lambda code: ("errno", code)),
    st.randoms(use_true_random=False).map(lambda r: ("liar", r)),
)


@dataclass
class MediaSpec:
    parent: str
    uevent: str
    model: bytes | None
    link: str
    node: str
    answer: object


@dataclass
class UsbSpec:
    link: str
    devtype_ok: bool
    attrs: list[bytes]
    drivers: list[str | None]
    module_link: str
    refcnt: bytes


@dataclass
class Machine:
    media: list[MediaSpec]
    usb: list[UsbSpec]
    faults: list[tuple[int, int]]  # (index into the tree's paths, errno)
    vanish: list[int]  # indexes into the tree's paths
    events: list[dict[str, str]] = field(default_factory=list)


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    n = draw(st.integers(0, 4))
    media_specs = []
    for _ in range(n):  # half of them sane up to the ioctls, so the answers and renderers get exercised
        sane = draw(st.booleans())
        uevent, link, node = ("ok", "ok", "file") if sane else (draw(UEVENT), draw(LINK), draw(NODE))
        media_specs.append(MediaSpec(draw(PARENT), uevent, draw(st.none() | ATTRIBUTE), link, node, draw(ANSWERS)))
    usb = [
        UsbSpec(
            draw(LINK),
            draw(st.booleans().map(lambda odd: not odd)),  # a readable uevent is what shrinking goes to
            [draw(ATTRIBUTE), draw(ATTRIBUTE), draw(MARKUP | ATTRIBUTE), draw(ATTRIBUTE)],  # the product: shown
            draw(st.lists(st.none() | NAMES, min_size=1, max_size=3)),
            draw(LINK),
            draw(ATTRIBUTE),
        )
        for _ in range(n)
    ]
    faults = draw(st.lists(st.tuples(st.integers(0, 10_000), ERRNOS), max_size=4))
    vanish = draw(st.lists(st.integers(0, 10_000), max_size=3))
    devpaths = st.one_of(st.text(max_size=40), st.sampled_from(["/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"]))
    events = draw(
        st.lists(
            st.fixed_dictionaries(
                {"ACTION": st.sampled_from(["add", "remove", "bind", "unbind", "change", ""]), "DEVPATH": devpaths},
                optional={"DEVTYPE": st.sampled_from(["usb_interface", "usb_device"]), "DEVNAME": st.text(max_size=10)},
            ),
            max_size=3,
        )
    )
    return Machine(media_specs, usb, faults, vanish, events)


# -- writing a tree ------------------------------------------------------------------------


_SIM: dict[str, object] = {}


def simulated(name: str) -> object:
    """The simulated webcam's and HVR-950Q's media devices, built once."""
    if not _SIM:
        _SIM["c270"] = make_kernel("uvcvideo", plug=("c270",)).view.media_devices()[0].mdev
        _SIM["hvr"] = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",)).view.media_devices()[0].mdev
    return _SIM[name]


class Tree:
    def __init__(self, root: Path) -> None:
        self.root, self.sys, self.dev = root, root / "sys", root / "dev"
        self.paths: list[Path] = []
        for d in ("bus/media/devices", "bus/usb/devices", "bus/usb/drivers", "bus/pci/devices", "module", "dev/char"):
            (self.sys / d).mkdir(parents=True)
        self.dev.mkdir()

    def file(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.paths.append(path)

    def link(self, link: Path, target: Path, kind: str = "ok") -> None:
        """A sysfs link, or what goes wrong with one: a loop, a two-link loop, nothing, a file."""
        link.parent.mkdir(parents=True, exist_ok=True)
        if kind == "loop":
            link.symlink_to(link.name)
        elif kind == "loop2":
            other = link.parent / f".{link.name}-other"
            other.symlink_to(link.name)
            link.symlink_to(other.name)
        elif kind == "dangling":
            link.symlink_to(os.path.relpath(target.parent / f"{target.name}-gone", link.parent))
        elif kind == "to_file":
            self.file(link.parent / f".{link.name}-file", b"not a directory\n")
            link.symlink_to(f".{link.name}-file")
        else:
            link.symlink_to(os.path.relpath(target, link.parent))
        self.paths.append(link)

    def usb_device(self, n: int, spec: UsbSpec) -> Path:
        name = f"1-{n + 1}"
        d = self.sys / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / name
        d.mkdir(parents=True)
        self.paths.append(d)
        self.file(d / "uevent", b"DEVTYPE=usb_device\n" if spec.devtype_ok else b"\xff\xfe")
        for attr, value in zip(("idVendor", "idProduct", "product", "bInterfaceClass"), spec.attrs, strict=True):
            self.file(d / attr, value)
        self.link(d / "subsystem", self.sys / "bus" / "usb")
        self.link(self.sys / "bus" / "usb" / "devices" / name, d, spec.link)
        for i, driver in enumerate(spec.drivers):
            intf = d / f"{name}:1.{i}"
            self.file(intf / "uevent", b"DEVTYPE=usb_interface\n")
            self.file(intf / "bInterfaceClass", spec.attrs[3])
            self.file(intf / "video4linux" / f"video{n}{i}" / "uevent", f"DEVNAME=video{n}{i}\n".encode())
            self.link(self.sys / "dev" / "char" / f"81:{n * 10 + i}", intf / "video4linux" / f"video{n}{i}")
            if driver is not None:
                drv = self.sys / "bus" / "usb" / "drivers" / driver
                drv.mkdir(parents=True, exist_ok=True)
                if not (intf / "driver").is_symlink():
                    self.link(intf / "driver", drv)
                module = self.sys / "module" / driver
                if not module.exists():
                    self.file(module / "refcnt", spec.refcnt)
                    (module / "holders").mkdir()
                if not (drv / "module").is_symlink():
                    self.link(drv / "module", module, spec.module_link)
        return d

    def parent_dir(self, n: int, spec: MediaSpec, usb: Path | None) -> Path:
        if spec.parent in ("usb_device", "usb_interface") and usb is not None:
            return usb if spec.parent == "usb_device" else usb / f"{usb.name}:1.0"
        if spec.parent == "pci":
            p = self.sys / "devices" / "pci0000:00" / f"0000:00:1f.{n}"
            self.file(p / "uevent", b"PCI_SLOT_NAME=x\n")
            if not (p / "subsystem").is_symlink():
                self.link(p / "subsystem", self.sys / "bus" / "pci")
            return p
        if spec.parent == "platform":
            p = self.sys / "devices" / "platform" / f"vimc.{n}"
            self.file(p / "uevent", b"DRIVER=vimc\n")
            self.link(p / "subsystem", self.sys / "bus" / "platform")
            return p
        if spec.parent == "virtual":
            return self.sys / "devices" / "virtual" / "media"
        return self.sys / "devices" / f"bare{n}"

    def media_device(self, n: int, spec: MediaSpec, usb: Path | None, ioctl: Seam) -> None:
        name = f"media{n}"
        d = self.parent_dir(n, spec, usb) / name
        d.mkdir(parents=True)
        self.paths.append(d)
        uevents = {
            "ok": f"MAJOR=237\nMINOR={n}\nDEVNAME={name}\n".encode(),
            "no_devname": b"MAJOR=237\n",
            "garbage": b"\xff\xfe\x00=\n==\n",
            "dotdot": b"DEVNAME=../../etc/passwd\n",
            "absolute": b"DEVNAME=/etc/passwd\n",
            "nul": b"DEVNAME=me\x00dia\n",
            "huge": b"DEVNAME=" + b"m" * 70_000 + b"\n",
        }
        if spec.uevent in uevents:
            self.file(d / "uevent", uevents[spec.uevent])
        if spec.model is not None:
            self.file(d / "model", spec.model)
        self.link(self.sys / "bus" / "media" / "devices" / name, d, spec.link)
        node = self.dev / name
        if spec.node == "file":
            self.file(node, b"")
        elif spec.node == "dir":
            node.mkdir()
        elif spec.node == "fifo":
            os.mkfifo(node)
        answer = spec.answer
        if isinstance(answer, str):
            ioctl.devices[str(node)] = simulated(answer)  # type: ignore[assignment]
        elif isinstance(answer, MadeUp):
            ioctl.devices[str(node)] = answer  # type: ignore[assignment]
        else:
            ioctl.answers[str(node)] = answer  # type: ignore[assignment]


class Seam(FakeIoctl):
    """FakeIoctl, plus per-node errnos and liars."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, tuple[str, object]] = {}

    def __call__(self, fd: int, request: int, buf: object) -> object:
        path = os.readlink(f"/proc/self/fd/{fd}")
        kind, value = self.answers.get(path, ("", None))
        if kind == "errno":
            raise OSError(value, "refused")
        if kind == "liar":
            return Liar(value)(fd, request, buf)  # type: ignore[arg-type]
        return super().__call__(fd, request, buf)


def build(root: Path, m: Machine) -> tuple[Tree, Seam, FaultyFs]:
    tree, seam = Tree(root), Seam()
    usb_dirs = [tree.usb_device(n, spec) for n, spec in enumerate(m.usb)]
    for n, spec in enumerate(m.media):
        tree.media_device(n, spec, usb_dirs[n] if n < len(usb_dirs) else None, seam)
    paths = tree.paths
    faults = {str(paths[i % len(paths)]): code for i, code in m.faults} if paths else {}
    vanish = {str(paths[i % len(paths)]) for i in m.vanish} if paths else set()
    return tree, seam, FaultyFs(faults, vanish)


# -- the invariant --------------------------------------------------------------------------


def check(live: LiveSource, fs: FaultyFs, tree: Tree) -> SystemSnapshot:
    """A snapshot, and every media device the reader listed in it once, with a state."""
    snap = live.snapshot()
    listed = fs.listed.get(str(tree.sys / "bus" / "media" / "devices"), [])
    assert sorted(d.media or "" for d in snap.media_devices) == sorted(listed)
    assert len({d.key for d in snap.media_devices}) == len(snap.media_devices)
    for d in snap.media_devices:
        assert d.state
        event(f"device: {d.unread.state if d.unread else 'read'}, parent {(d.parent_device or 'none').split()[0]}")
        if d.unread is not None:
            assert "/" in d.unread.reason, d.unread  # it names the node or the sysfs path
            assert d.unread.errno is None or d.unread.errno.startswith("E") or d.unread.errno.isdigit()
    return snap


def render_all(snap: SystemSnapshot) -> None:
    text.render(snap)
    SCHEMA.validate(json.loads(jsondump.render(snap)))
    dot.render(snap), dot.render(snap, interfaces=True)
    console = Console(width=160, file=io.StringIO(), color_system=None)
    for d in snap.media_devices:
        console.print(render_detail(d, snap))
        if len(d.topology.entities) < 100:  # the HVR-950Q's drawing is covered by the app tests
            drawing.to_text(drawing.draw(d))
            drawing.to_text(drawing.draw(d, frozenset(drawing.fold_groups(d))))
        EntityTree().show(d)


@fuzz_settings()
@given(m=machines())
def test_the_reader_never_raises_and_never_drops_a_device(m: Machine) -> None:
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        tree, seam, fs = build(Path(tmp), m)
        events = PipeMonitor()
        proc = Path(tmp) / "proc"  # no process: every device number the graph claims is still looked for
        proc.mkdir()
        live = LiveSource(Sysfs(tree.sys, tree.dev, fs), seam, monitor_factory=lambda: events, proc=proc)
        live.start()
        snap = check(live, fs, tree)
        render_all(snap)
        for env in m.events:
            events.send(env)
        live.handle_readable()
        live.invalidate()
        fs.vanish.clear()
        render_all(check(live, fs, tree))
        live.stop()  # closes the monitor


@fuzz_settings(EXAMPLES * 2)
@given(m=st.lists(st.one_of(st.text(max_size=120), st.sampled_from([
    "usb 1-1: __media_device_get: Allocated media device for owner au0828",
    "usb 1-1: __media_device_get: module snd_usb_audio got owner reference",
    "usb 1-1: __media_device_get: module x get owner reference error",
    "usb 1-1: media_device_delete: module x put owner module reference",
    "usb 1-1: media_device_instance_release: releasing Media Device",
    "usb 1-9: media_device_delete: module x put owner module reference",
])), max_size=12), raw=st.binary(max_size=200))
def test_the_kernel_log_follower_takes_any_line(m: list[str], raw: bytes) -> None:
    tracker = ExactTracker()
    parse_record(raw)
    for line in m:
        tracker.apply(line)
        tracker.owner_unbound(line.split(" ", 2)[1] if line.count(" ") > 1 else line)
    assert all(t.refcount >= -len(m) for t in tracker.devices.values())
