"""The ioctls of the rig's device nodes, in the kernel's order, EFAULT included: the media
ioctls of /dev/mediaN (``MediaNode``), and the uapi ioctls of the video/VBI nodes, the ALSA
control nodes and the DVB frontends (``CharNode``), which the simulated kernel answers through
the open file's ``unlocked_ioctl`` (``allocator.chrdev.vfs_ioctl``).  Every open of one of
those nodes is an open of the simulated node (it pins the modules behind it, runs the
driver's open, and is released at close or exit), as for /dev/mediaN.

``media_ioctl()`` (drivers/media/mc/mc-devnode.c) answers EIO once the devnode is
unregistered; ``media_device_ioctl()`` (mc-device.c) answers ENOTTY for an unknown request,
copies the whole argument in (EFAULT if it cannot), runs the call, and copies the argument
back out only if the call succeeded (EFAULT if it cannot).  G_TOPOLOGY and ENUM_LINKS write
their arrays one element at a time to the user pointers inside the argument: the first
element that cannot be written makes the call fail with EFAULT, the elements before it stay
written, and the arrays after it are not written.  A NULL array pointer means "do not fill".

The client's memory is reached through umockdev, which reads and writes it from inside the
client and kills the client at an unmapped address.  The write shim (``shim.c``) therefore
sends every media ioctl as ``MDTUI_RIG_IOCTL`` with a ``RigCall``: the request, the argument
pointer, and how many bytes are readable and writable there and at each user pointer; the
rig touches nothing beyond that.  A request that comes without the shim (a program that
does not load it) is trusted, except for a NULL argument.  The same holds for every request
on the other nodes the rig answers (the shim wraps any V4L2, ALSA control, DVB frontend or
media request on a node that has a handler), FE_GET_PROPERTY's property array included.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

from allocator import Kernel, KernelError  # noqa: E402
from allocator.chrdev import vfs_ioctl  # noqa: E402
from allocator.mc import uapi_layout  # noqa: E402
from allocator.mc.device import MediaDevice  # noqa: E402
from allocator.mc.ioctl import Reply, media_ioctl  # noqa: E402
from allocator.subsys import dvb_ioctl  # noqa: E402

from ..sources.sim import SimSource  # noqa: E402
from .peers import hung_up  # noqa: E402

if TYPE_CHECKING:
    from .server import Rig

_POINTER = struct.Struct("<Q")
#: struct rig_call in shim.c: request, arg, readable, writable, ptr[4], room[4]
RIG_CALL = struct.Struct("<QQQQ4Q4Q")
MDTUI_RIG_IOCTL = (3 << 30) | (RIG_CALL.size << 16) | (ord("|") << 8) | 0xF0
_ARG_OFFSET = 8  # where RigCall holds the caller's argument pointer
_UNLIMITED = 1 << 63

#: the user pointers inside an argument, in the order the kernel writes them: (offset in the
#: argument, size of one array element)
POINTERS: dict[int, tuple[tuple[int, int], ...]] = {
    uapi_layout.MEDIA_IOC_G_TOPOLOGY: (
        (uapi_layout.MediaV2Topology.ptr_entities.offset, uapi_layout.ENTITY.size),
        (uapi_layout.MediaV2Topology.ptr_interfaces.offset, uapi_layout.INTERFACE.size),
        (uapi_layout.MediaV2Topology.ptr_pads.offset, uapi_layout.PAD.size),
        (uapi_layout.MediaV2Topology.ptr_links.offset, uapi_layout.LINK.size),
    ),
    uapi_layout.MEDIA_IOC_ENUM_LINKS: (
        (uapi_layout.MediaLinksEnum.pads.offset, ctypes.sizeof(uapi_layout.MediaPadDesc)),
        (uapi_layout.MediaLinksEnum.links.offset, ctypes.sizeof(uapi_layout.MediaLinkDesc)),
    ),
    dvb_ioctl.FE_GET_PROPERTY: ((8, dvb_ioctl.DTV_PROPERTY.size),),  # dtv_properties.props
}


def _quiet_stuck_client(domain: str | None, level: Any, message: str, _: Any = None) -> None:
    """umockdev 0.17 never closes its end of a connection whose client died in the middle of
    an ioctl (it stops at the failed reply); the rig releases that client's file itself and
    drops the object, whose finalizer then closes the connection and complains about it.
    That complaint is expected: it alone is dropped, every other message goes on as usual."""
    if "Destroying IoctlClient with open stream" not in (message or ""):
        GLib.log_default_handler(domain, level, message)


GLib.log_set_handler(None, GLib.LogLevelFlags.LEVEL_CRITICAL, _quiet_stuck_client, None)


def arg_size(request: int) -> int:
    """``_IOC_SIZE(request)``."""
    return (request >> 16) & 0x3FFF


@dataclass(frozen=True)
class Access:
    """What the client's memory allows for one call: bytes readable and writable at the
    argument, and the room (writable bytes) at each user pointer the shim saw in it."""

    readable: int
    writable: int
    pointers: tuple[int, ...] = ()
    room: tuple[int, ...] = ()
    checked: bool = True

    @classmethod
    def from_shim(cls, data: bytes) -> tuple[int, Access]:
        """The caller's request and what its memory allows, from a RigCall."""
        fields = RIG_CALL.unpack(data[: RIG_CALL.size])
        return fields[0] & 0xFFFFFFFF, cls(fields[2], fields[3], fields[4:8], fields[8:12])

    @classmethod
    def unchecked(cls, pointer: int, size: int) -> Access:
        """A call that did not come through the shim: only a NULL argument is known to fault."""
        size = size if pointer else 0
        return cls(size, size, checked=False)

    def room_for(self, index: int, pointer: int) -> int:
        """Writable bytes at the ``index``-th user pointer, which now reads ``pointer``: none
        if it changed since the shim looked (nothing unchecked is touched)."""
        if not self.checked:
            return _UNLIMITED
        if index >= len(self.pointers) or self.pointers[index] != pointer:
            return 0
        return self.room[index]


def copy_out_arrays(arg: Any, raw: bytes, request: int, writes: tuple[tuple[int, bytes], ...], access: Access) -> bool:
    """Write each array at its user pointer, whole elements while they fit; True when one did
    not fit (EFAULT: that array is cut at the last whole element, the later ones unwritten)."""
    fields = POINTERS.get(request, ())
    index = 0
    for pointer, payload in writes:
        while index < len(fields) and _POINTER.unpack_from(raw, fields[index][0])[0] != pointer:
            index += 1
        if index == len(fields):
            return True  # not a pointer of this argument: never written
        offset, element = fields[index]
        room = access.room_for(index, pointer)
        index += 1
        if not payload:
            continue
        fits = len(payload) if room >= len(payload) else room // element * element
        array = arg.resolve(offset, fits) if fits else None
        if array is not None:
            array.update(0, payload[:fits])
        if fits < len(payload) or (fits and array is None):
            return True
    return False


@dataclass(eq=False)
class Opened:
    """One open of a /dev/mediaN, as the simulation holds it: the machine it was made on (a
    reset leaves it there), the simulated fd and media device (None: nothing was registered
    at the node, so its ioctls get ENXIO), and the rig's end of the client's connection."""

    source: SimSource | None
    fd: int | None
    mdev: MediaDevice | None
    peer: socket.socket | None
    dead: bool = False  # the connection failed in the middle of a call

    def gone(self, client: Any) -> bool:
        """Is the client's file released: closed by every process holding it, or exited?"""
        if self.dead:
            return True
        if self.peer is not None:
            return hung_up(self.peer)
        return not client.get_connected()

    def release(self) -> bool:
        """The release: the simulated file closed on its machine (the module it pinned is let
        go, as ``media_release()`` does); True if there was one."""
        if self.peer is not None:
            self.peer.close()
        if self.source is None or self.fd is None:
            return False
        with self.source.lock, contextlib.suppress(KernelError):
            self.source.kernel.files.close(self.fd)
        return True


def char_nodes(kernel: Kernel) -> list[str]:
    """The nodes ``CharNode`` answers: those whose file operations take a program's ioctls
    (video and VBI nodes, ALSA control nodes, DVB frontends); the rest stay plain files."""
    return kernel.view.uapi_nodes()


class Call:
    """One ioctl as the client made it: the request, what its memory allows, and the data
    holding its argument pointer (the shim's RigCall, or umockdev's own argument)."""

    def __init__(self, client: Any) -> None:
        request = client.get_request() & 0xFFFFFFFF
        top = client.get_arg()
        if request == MDTUI_RIG_IOCTL:
            call = top.resolve(0, RIG_CALL.size)
            self.request, self.access = Access.from_shim(bytes(call.retrieve()))
            self.holder, self.offset = call, _ARG_OFFSET
        else:
            pointer = _POINTER.unpack_from(bytes(top.retrieve()))[0]
            self.request, self.access = request, Access.unchecked(pointer, arg_size(request))
            self.holder, self.offset = top, 0
        self.size = arg_size(self.request)
        self.arg: Any = None
        self.raw = b""

    def copy_in(self) -> bool:
        """``copy_from_user()`` of the whole argument; False when it faults."""
        if self.access.readable < self.size:
            return False
        if not self.size:
            return True
        self.arg = self.holder.resolve(self.offset, self.size)
        if self.arg is None:  # a NULL argument that came unchecked: never dereferenced
            return False
        self.raw = bytes(self.arg.retrieve())
        return True

    def copy_out(self, reply: Reply) -> int:
        """The reply's array writes, then (on success) the argument: the call's errno."""
        if self.arg is not None and copy_out_arrays(self.arg, self.raw, self.request, reply.writes, self.access):
            return errno.EFAULT
        if reply.errno:
            return reply.errno
        if reply.arg is not None:
            if self.access.writable < self.size or self.arg is None:
                return errno.EFAULT  # copy_to_user() of the argument
            self.arg.update(0, reply.arg)
        return 0

    def copy_from_user(self, pointer: int, size: int) -> bytes | None:
        """``UserMemory``: ``size`` bytes at one of the argument's user pointers, if the
        shim saw that much there (nothing else is ever read)."""
        for index, (offset, _element) in enumerate(POINTERS.get(self.request, ())):
            if self.arg is None or _POINTER.unpack_from(self.raw, offset)[0] != pointer:
                continue
            if not pointer or self.access.room_for(index, pointer) < size:
                return None
            data = self.arg.resolve(offset, size)
            return bytes(data.retrieve()) if data is not None else None
        return None


class Node(UMockdev.IoctlBase):
    """The ioctls of one node: each client answered from the file it opened.  Runs on
    umockdev's ioctl thread; the rig's state is reached under ``rig.lock``."""

    def __init__(self, rig: Rig, node: str) -> None:
        super().__init__()
        self.rig = rig
        self.node = node
        self.clients: dict[Any, Opened] = {}
        self._lock = threading.Lock()

    def do_client_connected(self, client: Any) -> None:
        opened = self.rig.open_node(self.node)
        with self._lock:
            self.clients[client] = opened

    def gone(self) -> list[Opened]:
        """The clients whose file is released (see ``mdtui.rig.peers``), forgotten here."""
        with self._lock:
            gone = [client for client, opened in self.clients.items() if opened.gone(client)]
            return [self.clients.pop(client) for client in gone]

    def do_handle_ioctl(self, client: Any) -> bool:
        opened = self.clients.get(client)
        try:
            result = self.answer(Call(client), opened) if opened is not None else errno.ENXIO
        except GLib.Error:  # the client went away in the middle of the call
            if opened is not None:
                opened.dead = True
            result = errno.EIO
        except Exception as exc:  # a bug here must not reach umockdev: the call fails
            print(f"mdtui rig: {self.node}: ioctl: {type(exc).__name__}: {exc}", file=sys.stderr)
            result = errno.EIO
        client.complete(-1 if result else 0, result)
        return True

    def answer(self, call: Call, opened: Opened) -> int:
        """One ioctl; its errno (0: done)."""
        raise NotImplementedError


class MediaNode(Node):
    """A /dev/mediaN, in media_ioctl()'s and media_device_ioctl()'s order."""

    def answer(self, call: Call, opened: Opened) -> int:
        if call.request not in uapi_layout.REQUESTS:
            return errno.ENOTTY
        if opened.mdev is None:
            return errno.ENXIO  # opened while nothing was registered there
        if not opened.mdev.registered:
            return errno.EIO
        if not call.copy_in():
            return errno.EFAULT
        with self.rig.lock:
            reply = media_ioctl(opened.mdev, call.request, call.raw)
        return call.copy_out(reply)


class CharNode(Node):
    """A video/VBI node, an ALSA control node or a DVB frontend: the argument copied in (None
    to the kernel when that faults: each subsystem says EFAULT where its ioctl path copies),
    the simulated file's ``unlocked_ioctl``, then the copies out."""

    def answer(self, call: Call, opened: Opened) -> int:
        if opened.source is None or opened.fd is None:
            return errno.ENXIO  # nothing could be opened there
        arg = call.raw if call.copy_in() else None
        with self.rig.lock:
            reply = vfs_ioctl(opened.source.kernel.files, opened.fd, call.request, arg, call)
        return call.copy_out(reply)
