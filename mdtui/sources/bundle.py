"""A bug-report bundle as a source (``--source bundle:FILE``): the state a bundle recorded,
shown read-only.

``mdtui dump --bundle FILE`` (mdtui/bundle.py) writes a gzip'd tar whose ``state.json`` is
the snapshot, losslessly (mdtui/persist.py).  Opening one reads only that member, and only
so much: the compressed file, what it decompresses to, the number of members and the
member itself are all bounded, so a hostile or broken file (not gzip, not a tar, a gzip
bomb, ``/dev/zero``, garbage JSON, a newer format) is a ``BundleError`` with one line
saying why, never a traceback and never a long wait.  Nothing is extracted.

A bundle has no events (``history()`` is empty, nothing is ever published) and refuses
every action with EROFS, naming the bundle.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import os
import tarfile
import time
import zlib
from typing import Any

from allocator import KernelError

from .. import persist
from ..commands import Step
from ..model import SystemSnapshot
from . import Source

#: the member mdtui reads back, in the bundle's one top directory
STATE = "state.json"
#: the most read from the file, what it may decompress to (every member before state.json
#: is read through), the members looked at, and the size of state.json itself
MAX_COMPRESSED = 256 << 20
MAX_DECOMPRESSED = 512 << 20
MAX_MEMBERS = 10_000
MAX_STATE = 128 << 20
#: the metadata a bundle carries about itself (``made`` in state.json), all strings
MADE_KEYS = ("at", "mdtui", "command", "source", "kernel")


class BundleError(Exception):
    """A file that cannot be shown as a bundle; the message is one line, naming the file."""


class _TooBig(Exception):
    pass


class _Bounded(io.RawIOBase):
    """Reads of ``inner``, at most ``limit`` bytes in all (then ``_TooBig``)."""

    def __init__(self, inner: Any, limit: int, what: str) -> None:
        super().__init__()
        self.inner, self.left, self.what = inner, limit, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.inner.read(min(len(view), self.left + 1))
        if len(data) > self.left:
            raise _TooBig(self.what)
        self.left -= len(data)
        view[: len(data)] = data
        return len(data)


#: a header member tarfile reads whole (pax ``x``/``g``, GNU long names ``L``/``K``): a bundle
#: needs a few hundred bytes of it; 500 MiB of one made tarfile hold ~1 GiB
META_LIMIT = 64 << 10
META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class _TarHeaders(io.RawIOBase):
    """The tar stream passed through, each 512-byte header checked as it passes: a header
    member over ``META_LIMIT`` is refused before tarfile reads it into memory."""

    def __init__(self, inner: io.RawIOBase) -> None:
        super().__init__()
        self.inner = inner
        self.pos = self.next = 0  # where we are; where the next header starts
        self.header = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self.inner.readinto(view) or 0
        i = 0
        while i < n:
            if self.pos < self.next:  # a member's data: passed on unread
                skip = min(n - i, self.next - self.pos)
                i, self.pos = i + skip, self.pos + skip
                continue
            take = min(n - i, tarfile.BLOCKSIZE - len(self.header))
            self.header += view[i : i + take]
            i, self.pos = i + take, self.pos + take
            if len(self.header) == tarfile.BLOCKSIZE:
                self._check(bytes(self.header))
                self.header.clear()
        return n

    def _check(self, block: bytes) -> None:
        try:
            size = tarfile.nti(block[124:136])
        except tarfile.TarError:
            return  # not a header this guard can read: tarfile says what is wrong with it
        if block[156:157] in META_TYPES and size > META_LIMIT:
            raise _TooBig(f"a {size}-byte tar header member (over {META_LIMIT >> 10} KiB)")
        self.next = self.pos + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def read(path: str) -> tuple[SystemSnapshot, dict[str, str]]:
    """The snapshot a bundle holds and what it says about itself (``made``)."""
    text = _state_text(path)
    try:
        snap, meta = persist.loads(text)
        made = _made(meta.get("made", {}))
    except persist.FormatError as exc:
        raise BundleError(f"{path}: {STATE}: {exc}") from None
    for n, dev in enumerate(snap.media_devices):  # what the model promises beyond the types
        if len(dev.entity_legacy) != len(dev.topology.entities):
            raise BundleError(
                f"{path}: {STATE}: snapshot.media_devices[{n}].entity_legacy: {len(dev.entity_legacy)} entries "
                f"for {len(dev.topology.entities)} entities"
            )
    return snap, made


def _state_text(path: str) -> bytes:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, whatever happens)
    except OSError as exc:
        raise BundleError(f"cannot open bundle {path}: {_oserror(exc)}") from None
    with f:
        try:
            if f.peek(2)[:2] != b"\x1f\x8b":
                raise BundleError(f"{path}: not a bundle: not a gzip file (mdtui dump --bundle writes a .tar.gz)")
            compressed = _Bounded(f, MAX_COMPRESSED, f"over {MAX_COMPRESSED >> 20} MiB")
            gz = gzip.GzipFile(fileobj=io.BufferedReader(compressed), mode="rb")
            inner = _Bounded(gz, MAX_DECOMPRESSED, f"over {MAX_DECOMPRESSED >> 20} MiB uncompressed")
            with tarfile.open(fileobj=_TarHeaders(inner), mode="r|") as tar:
                return _find_state(path, tar)
        except BundleError:
            raise
        except _TooBig as exc:
            raise BundleError(f"{path}: not a bundle mdtui reads: {exc} before {STATE}") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise BundleError(f"{path}: not a bundle: a broken gzip file ({exc})") from None
        except EOFError:
            raise BundleError(f"{path}: not a bundle: the gzip file is cut short") from None
        except tarfile.TarError as exc:
            if str(exc).startswith("zlib error"):  # tarfile's word for a broken deflate stream
                raise BundleError(f"{path}: not a bundle: a broken gzip file ({exc})") from None
            raise BundleError(f"{path}: not a bundle: not a tar archive inside the gzip ({exc})") from None
        except OSError as exc:
            raise BundleError(f"cannot read bundle {path}: {_oserror(exc)}") from None


def _find_state(path: str, tar: tarfile.TarFile) -> bytes:
    for n, member in enumerate(tar):
        if n >= MAX_MEMBERS:
            raise BundleError(f"{path}: not a bundle mdtui reads: no {STATE} among the first {MAX_MEMBERS} members")
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if len(parts) != 2 or parts[1] != STATE:
            continue
        if not member.isfile():
            raise BundleError(f"{path}: {member.name} is not a regular file")
        if member.size > MAX_STATE:
            raise BundleError(
                f"{path}: {member.name} is {member.size} bytes: over the {MAX_STATE >> 20} MiB mdtui reads"
            )
        data = tar.extractfile(member)
        assert data is not None  # a regular file
        text = data.read(member.size)
        if len(text) != member.size:
            raise BundleError(f"{path}: {member.name} is cut short")
        return text
    raise BundleError(f"{path}: not an mdtui bundle: it has no {STATE} (in a top directory: mdtui-bundle/{STATE})")


def _made(made: Any) -> dict[str, str]:
    if not isinstance(made, dict) or not all(isinstance(v, str) for v in made.values()):
        raise persist.FormatError("expected an object of strings", ("made",))
    return {k: v for k, v in made.items() if k in MADE_KEYS}


def _oserror(exc: OSError) -> str:
    code = exc.errno or errno.EIO
    return f"{exc.strerror or os.strerror(code)} ({errno.errorcode.get(code, str(code))})"


class BundleSource(Source):
    """The state recorded in a bundle: one snapshot, no events, no actions."""

    read_only = True
    #: the snapshot is read once, when the bundle is opened: nothing to do later
    snapshot_on_loop = True

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        #: exactly what the bundle recorded; ``snapshot()`` adds a note saying it is one
        self.stored, self.made = read(path)
        self._snapshot = dataclasses.replace(self.stored, notes=(self.note(), *self.stored.notes))

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    def note(self) -> str:
        """``bundle x.tar.gz: live state of 2025-01-02 03:04:05 UTC (mdtui 0.1.0)``"""
        made = self.made
        when = f" of {made['at']}" if "at" in made else ""
        by = f" (mdtui {made['mdtui']})" if "mdtui" in made else ""
        return f"bundle {self.name}: {self.stored.source} state{when}{by}, read-only"

    def now(self) -> float:
        return time.monotonic()

    def snapshot(self) -> SystemSnapshot:
        return self._snapshot

    def perform(self, step: Step) -> None:
        device = step.args[-1] if step.args else ""
        raise KernelError(
            errno.EROFS, f"{step}: {self.name} is a bug-report bundle: what it recorded cannot be changed", device
        )
