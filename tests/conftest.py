from __future__ import annotations

import os

import pytest
from hypothesis import settings

from allocator import Kernel
from mdtui.sources.sim import fake_clock


@pytest.fixture(autouse=True, scope="session")
def _crash_reports_stay_in_the_test_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An app that crashes in a test (the fuzzers look for that) saves its traceback under
    $XDG_STATE_HOME: a directory of this run, never the user's home."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))


settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci")


def make_kernel(*drivers: str, plug: tuple[str, ...] = (), **kwargs: object) -> Kernel:
    k = Kernel(clock=fake_clock(), **kwargs)  # type: ignore[arg-type]
    for name in drivers:
        k.modprobe(name)
    for device in plug:
        k.plug(device)
    return k


@pytest.fixture
def hvr() -> Kernel:
    """au0828 and snd_usb_audio loaded, then a HVR-950Q plugged in at 1-1."""
    return make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))


def state(k: Kernel) -> list[tuple[str | None, str | None, int, list[str]]]:
    """(devnode, owner, refcount, holders) of every allocator instance."""
    return [
        (
            inst.mdev.devnode_name,
            inst.owner,
            inst.refcount.refcount,
            sorted(f"{h.driver}:{h.state}" for m, h in k.view.holders() if m is inst.mdev),
        )
        for inst in k.allocator.instances()
    ]


def media_nodes(k: Kernel) -> list[str]:
    """What ``ls /dev/media*`` would print."""
    return sorted(p for p in k.devices.nodes if p.startswith("/dev/media"))


# tests/rig runs inside `mdtui rig` only (make test starts it there); see tests/rig/conftest.py
collect_ignore = [] if "MDTUI_RIG_CONTROL" in os.environ else ["rig"]
