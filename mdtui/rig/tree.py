"""Write a simulated kernel out as the sysfs tree (and /dev) the real kernel would show: the
entries ``allocator.sysfs.layout`` lists, under a root directory.  ``write_tree`` rewrites
the whole tree; it is for tests and the rig, not a hot path."""

from __future__ import annotations

import shutil
from pathlib import Path

from allocator import Kernel
from allocator.sysfs import DIR, FILE, Entry, layout


def write_entry(root: Path, entry: Entry) -> None:
    """One entry, at ``root`` + its path; a link or file already there is replaced."""
    path = root / entry.path.lstrip("/")
    if entry.kind == DIR:
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if entry.kind == FILE:
        path.write_text(entry.data)
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(entry.data)


def write_tree(k: Kernel, root: Path) -> None:
    for part in ("sys", "dev"):
        if (root / part).exists():
            shutil.rmtree(root / part)
    for entry in layout(k.view):
        write_entry(root, entry)
