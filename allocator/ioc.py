"""Ioctl request numbers as asm-generic/ioctl.h makes them (``_IO``, ``_IOR``, ``_IOW``,
``_IOWR``): the simulated kernel's uapi and the live reader both build theirs here."""

from __future__ import annotations

_IOC_WRITE, _IOC_READ = 1, 2


def ioc(direction: str, kind: str, nr: int, size: int) -> int:
    """``_IO``/``_IOR``/``_IOW``/``_IOWR(kind, nr, size)`` for ``direction`` "", "r", "w", "rw"
    (asm-generic/ioctl.h)."""
    bits = (_IOC_READ if "r" in direction else 0) | (_IOC_WRITE if "w" in direction else 0)
    return (bits << 30) | (size << 16) | (ord(kind) << 8) | nr


def writes_in(request: int) -> bool:
    """Does the request pass its argument in (``_IOC_WRITE``)?"""
    return bool(request >> 30 & _IOC_WRITE)
