"""Character-device ioctls in the uapi's bytes: ``vfs_ioctl()`` calling the open file's
``file_operations.unlocked_ioctl``.

``allocator.files`` routes the simulation's own calls by request *name* (``k.ioctl(fd,
"VIDIOC_STREAMON")``); a program on the rig sends numbers and bytes.  A subsystem whose nodes
answer those gives its ``Fops`` an ``unlocked_ioctl(file, request, arg, user)``, which gets
the bytes ``copy_from_user()`` took of the argument (None when that faulted: each subsystem
answers EFAULT where its own ioctl path copies) and a ``UserMemory`` for the user pointers
inside it, and returns the kernel's answer as an ``allocator.mc.ioctl.Reply`` (errno, the
argument to copy back, the bytes written at user pointers).  A file whose operations have
no ``unlocked_ioctl`` answers ENOTTY, as ``vfs_ioctl()`` does.

This module stays free of ctypes (the simulation alone never loads it): the answers live in
``allocator.subsys.{v4l2,alsa,dvb}_ioctl`` and are imported when the first ioctl arrives.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .files import File

if TYPE_CHECKING:
    from .files import FileTable
    from .mc.ioctl import Reply


class UserMemory(Protocol):
    """The caller's memory as the kernel reaches it: ``copy_from_user()`` of ``size`` bytes at
    ``pointer``, or None when they are not all readable (the call then fails with EFAULT)."""

    def copy_from_user(self, pointer: int, size: int) -> bytes | None: ...


UnlockedIoctl = Callable[[File, int, "bytes | None", UserMemory], "Reply"]


def strscpy(text: str, size: int) -> bytes:
    """``strscpy()`` into a char array of ``size``: at most ``size - 1`` bytes; a ctypes char
    array (or a zeroed buffer) supplies the NUL and the zeroed rest."""
    return text.encode()[: size - 1]


def vfs_ioctl(files: FileTable, fd: int, request: int, arg: bytes | None, user: UserMemory) -> Reply:
    """``ioctl(fd, request, arg)`` on an open simulated file: EBADF when nothing is open at
    ``fd``, ENOTTY when its node answers no uapi ioctl, else the node's answer."""
    from .mc.ioctl import Reply

    file = files.lookup(fd)
    if file is None:
        return Reply(errno.EBADF, None)
    if file.fops.unlocked_ioctl is None:
        return Reply(errno.ENOTTY, None)
    return file.fops.unlocked_ioctl(file, request, arg, user)
