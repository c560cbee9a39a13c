"""Errors the simulated kernel returns, as ``OSError`` subclasses with the right errno.

The message is the wording a user would see from the kernel or from the userspace tool that
made the call (``rmmod: ERROR: Module au0828 is in use``, ``bash: echo: write error: No such
device``), and ``device`` names what the call was about, so that the UI can say both.
"""

from __future__ import annotations

import errno
import os


class KernelError(OSError):
    """A failed call into the simulated kernel: ``errno`` plus the user-visible wording."""

    def __init__(self, code: int, message: str, device: str = "") -> None:
        super().__init__(code, message)
        self.device = device

    @property
    def errno_name(self) -> str:
        return errno.errorcode.get(self.errno or 0, str(self.errno))

    def __str__(self) -> str:
        return f"{self.strerror} ({self.errno_name})"


def sysfs_write_error(code: int, path: str, device: str) -> KernelError:
    """What ``echo NAME > path`` reports when the kernel's store() returns ``-code``."""
    return KernelError(code, f"write {path}: {os.strerror(code)}", device)
