"""The live reader's ENUM_ENTITIES answers: derived from G_TOPOLOGY on a kernel whose
G_TOPOLOGY is complete (4.19+), so a read is DEVICE_INFO and the two G_TOPOLOGY calls, plus
ENUM_ENTITIES by id for what G_TOPOLOGY cannot settle; the walk on older kernels.  Always
what the simulated kernel's ENUM_ENTITIES answers."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest

from allocator.mc import uapi, uapi_layout
from allocator.mc.device import MediaDevice
from allocator.mc.topology import DeviceInfo
from mdtui.live import media

from ..conftest import make_kernel
from ..doubles import FakeIoctl

OLD = uapi.version_code(4, 18, 0)
MODERN = uapi.version_code(4, 19, 0)


class Counting(FakeIoctl):
    """The ioctl seam, counting requests by name (ENUM_ENTITIES split by exact id / NEXT)."""

    def __init__(self, devices: dict[str, object]) -> None:
        super().__init__(devices)  # type: ignore[arg-type]
        self.requests: Counter[str] = Counter()

    def __call__(self, fd: int, request: int, buf: object) -> object:
        name = uapi_layout.REQUESTS.get(request, hex(request))
        if request == uapi_layout.MEDIA_IOC_ENUM_ENTITIES:
            want = struct.unpack_from("<I", memoryview(buf).cast("B"))[0]  # type: ignore[arg-type]
            name += " NEXT" if want & uapi.MEDIA_ENT_ID_FLAG_NEXT else " id"
        self.requests[name] += 1
        return super().__call__(fd, request, buf)


class Version:
    """A simulated media device whose DEVICE_INFO reports another kernel version."""

    registered = True

    def __init__(self, mdev: MediaDevice, media_version: int) -> None:
        self.mdev, self.media_version = mdev, media_version

    def device_info(self) -> DeviceInfo:
        return self.mdev.device_info()._replace(media_version=self.media_version)

    def __getattr__(self, name: str) -> object:
        return getattr(self.mdev, name)


def _mdevs() -> dict[str, MediaDevice]:
    k = make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270"))
    nodes = k.view.media_nodes()
    return {"hvr950q": nodes["/dev/media0"], "c270": nodes["/dev/media1"]}


def _read(
    dev: object, tmp_path: Path, known: media.MediaRead | None = None, links: bool = False
) -> tuple[media.MediaRead, Counter[str]]:
    node = tmp_path / "media0"
    node.write_bytes(b"")
    seam = Counting({str(node): dev})
    return media.read(str(node), seam, known, links), seam.requests


def _enum(mdev: MediaDevice) -> dict[int, tuple[int, int, int]]:
    return {d.id: (d.type, d.major, d.minor) for d in mdev.enum_entities()}


def test_a_modern_kernel_is_read_in_three_ioctls(tmp_path: Path) -> None:
    mdev = _mdevs()["hvr950q"]
    assert mdev.device_info().media_version >= MODERN
    result, calls = _read(mdev, tmp_path)
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2}
    assert len(result.legacy) == 522 and result.legacy == _enum(mdev)


def test_only_what_g_topology_cannot_settle_is_asked_by_id(tmp_path: Path) -> None:
    mdev = _mdevs()["c270"]
    result, calls = _read(mdev, tmp_path)
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2, "MEDIA_IOC_ENUM_ENTITIES id": 2}
    assert result.legacy == _enum(mdev)
    again, calls = _read(mdev, tmp_path, known=result, links=True)  # the units' answers are kept
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2}
    assert again.legacy == result.legacy


def test_a_graph_of_the_same_version_is_not_read_again_unless_its_links_are_asked_for(tmp_path: Path) -> None:
    mdev = _mdevs()["hvr950q"]
    first, _ = _read(mdev, tmp_path)
    again, calls = _read(mdev, tmp_path, known=first)  # the counts' answer has the same version
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 1}
    assert again is first  # the same objects: nothing decoded, nothing encoded again by the agent
    links, calls = _read(mdev, tmp_path, known=first, links=True)  # SETUP_LINK bumps no version
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2}
    assert links.topology == first.topology and links.topology is not first.topology


@pytest.mark.parametrize("name", ["hvr950q", "c270"])
def test_a_kernel_before_4_19_walks_enum_entities(name: str, tmp_path: Path) -> None:
    mdev = _mdevs()[name]
    n = len(mdev.topology().entities)
    result, calls = _read(Version(mdev, OLD), tmp_path)
    # one per entity, and the EINVAL past the last one
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2, "MEDIA_IOC_ENUM_ENTITIES NEXT": n + 1}
    assert result.legacy == _enum(mdev)
    again, calls = _read(Version(mdev, OLD), tmp_path, known=result, links=True)  # nothing new: no walk
    assert calls == {"MEDIA_IOC_DEVICE_INFO": 1, "MEDIA_IOC_G_TOPOLOGY": 2}
    assert again.legacy == result.legacy


def test_an_entity_gone_before_it_is_asked_has_no_answer(tmp_path: Path) -> None:
    mdev = _mdevs()["c270"]

    class Vanishing(Version):
        def enum_entities(self) -> tuple[object, ...]:  # the units went after G_TOPOLOGY
            return tuple(d for d in self.mdev.enum_entities() if d.type != uapi.MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN)

    result, calls = _read(Vanishing(mdev, MODERN), tmp_path)
    assert calls["MEDIA_IOC_ENUM_ENTITIES id"] == 2
    assert set(result.legacy) == set(_enum(mdev)) - {
        e.id for e in mdev.topology().entities if e.function == uapi.MEDIA_ENT_F_PROC_VIDEO_PIXEL_FORMATTER
    }
