"""Files replaced whole: a reader sees the old one or the new one, never part of one (the
bug-report bundle, mdtui/bundle.py; node_exporter's textfile, mdtui/metrics/exporter.py)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def replace(path: str, data: bytes, mode: int | None = None) -> None:
    """Put ``data`` at ``path``: atomically (a temporary file in the same directory, synced,
    renamed over it), unless ``path`` exists and is no regular file (a device, a FIFO:
    written straight).  The file gets ``mode``, or keeps the one it had (a new one follows
    the umask).  Raises ``OSError``; a failure leaves no temporary file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as f:  # /dev/stdout, a FIFO; a directory fails here (EISDIR)
            f.write(data)
        return
    target = os.path.realpath(path)  # a symlink's target is replaced, not the symlink
    directory = os.path.dirname(target) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is None and st is not None:
                mode = stat.S_IMODE(st.st_mode)
            elif mode is None:
                mask = os.umask(0)
                os.umask(mask)
                mode = 0o666 & ~mask
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    try:  # the rename itself, on disk
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
