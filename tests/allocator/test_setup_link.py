"""MEDIA_IOC_SETUP_LINK as mc-device.c's media_device_setup_link() and mc-entity.c's
__media_entity_setup_link() answer it, through the uapi bytes (allocator/mc/ioctl.py)."""

from __future__ import annotations

import errno

from allocator.mc import uapi
from allocator.mc.device import MediaDevice
from allocator.mc.entity import Entity, Link
from allocator.mc.ioctl import media_ioctl
from allocator.mc.uapi_layout import MEDIA_IOC_SETUP_LINK, MediaLinkDesc

from ..conftest import make_kernel


def _mdev(k: object, model: str) -> MediaDevice:
    return next(s.mdev for s in k.view.media_devices() if s.mdev.model == model)  # type: ignore[attr-defined]


def _entity(mdev: MediaDevice, name: str) -> Entity:
    return next(e for e in mdev.entities.values() if e.name == name)


def _link(mdev: MediaDevice, source: str, sink: str) -> Link:
    src = _entity(mdev, source)
    return next(ln for ln in src.links if not ln.is_backlink and ln.sink.entity.name == sink)  # type: ignore[union-attr]


def _desc(link: Link, flags: int) -> MediaLinkDesc:
    desc = MediaLinkDesc()
    desc.source.entity, desc.source.index = link.source.entity.id, link.source.index  # type: ignore[union-attr]
    desc.sink.entity, desc.sink.index = link.sink.entity.id, link.sink.index  # type: ignore[union-attr]
    desc.flags = flags
    desc.reserved[0] = desc.reserved[1] = 0xDEAD
    return desc


def _setup(mdev: MediaDevice, desc: MediaLinkDesc) -> tuple[int, bytes | None]:
    reply = media_ioctl(mdev, MEDIA_IOC_SETUP_LINK, bytes(desc))
    return reply.errno, reply.arg


def _flags(mdev: MediaDevice, link: Link) -> int:
    return next(r.flags for r in mdev.topology().links if r.id == link.id)


def test_a_mutable_link_toggles_and_the_topology_shows_it_without_a_new_version() -> None:
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    mdev = _mdev(k, "WinTV HVR-950Q")
    link = _link(mdev, "tuner 0-0061", "au8522 0-0047")
    assert not link.flags & uapi.MEDIA_LNK_FL_ENABLED  # disabled at registration
    version, seq = mdev.topology_version, k.events.last_seq
    code, arg = _setup(mdev, _desc(link, uapi.MEDIA_LNK_FL_ENABLED))
    assert code == 0 and arg is not None
    back = MediaLinkDesc.from_buffer_copy(arg)
    assert list(back.reserved) == [0, 0] and back.flags == uapi.MEDIA_LNK_FL_ENABLED
    assert _flags(mdev, link) == uapi.MEDIA_LNK_FL_ENABLED
    assert mdev.topology_version == version  # objects count, flags do not
    assert k.events.last_seq == seq  # no uevent for a link change
    assert _setup(mdev, _desc(link, 0))[0] == 0
    assert _flags(mdev, link) == 0


def test_the_error_paths_v4l2_compliance_tries() -> None:
    k = make_kernel("au0828", "snd_usb_audio", "uvcvideo", plug=("hvr950q", "c270"))
    hvr = _mdev(k, "WinTV HVR-950Q")
    assert _setup(hvr, MediaLinkDesc()) == (errno.EINVAL, None)  # a zeroed link: no entity 0
    link = _link(hvr, "tuner 0-0061", "au8522 0-0047")
    assert _setup(hvr, _desc(link, uapi.MEDIA_LNK_FL_ENABLED | uapi.MEDIA_LNK_FL_INTERFACE_LINK))[0] == errno.EINVAL
    assert _setup(hvr, _desc(link, uapi.MEDIA_LNK_FL_ENABLED | uapi.MEDIA_LNK_FL_DYNAMIC))[0] == errno.EINVAL
    bad_pad = _desc(link, 0)
    bad_pad.sink.index = len(link.sink.entity.pads)  # type: ignore[union-attr]
    assert _setup(hvr, bad_pad)[0] == errno.EINVAL
    no_link = _desc(link, 0)
    no_link.sink.entity = link.source.entity.id  # type: ignore[union-attr]
    no_link.sink.index = 0
    assert _setup(hvr, no_link)[0] == errno.EINVAL
    cam = _mdev(k, "UVC Camera (046d:0825)")
    immutable = next(ln for ln in cam.links.values() if not ln.is_backlink and ln.flags & uapi.MEDIA_LNK_FL_IMMUTABLE)
    assert immutable.flags & uapi.MEDIA_LNK_FL_ENABLED
    assert _setup(cam, _desc(immutable, uapi.MEDIA_LNK_FL_IMMUTABLE))[0] == errno.EINVAL  # cannot disable
    assert _setup(cam, _desc(immutable, immutable.flags))[0] == 0  # asking for what it is: fine
    assert _flags(cam, immutable) == immutable.flags


def test_a_streaming_entity_refuses_link_changes_until_it_stops() -> None:
    """au0828's enable_source starts the analog pipeline (tuner -> decoder -> video): a link of
    the tuner is then EBUSY (__media_entity_setup_link), and free again once it stops."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    mdev = _mdev(k, "WinTV HVR-950Q")
    dvb = _link(mdev, "tuner 0-0061", "Auvitek AU8522 QAM/8VSB Frontend")
    video = k.open("/dev/video0")
    k.ioctl(video, "VIDIOC_STREAMON")
    assert MediaDevice.media_entity_is_streaming(_entity(mdev, "tuner 0-0061"))
    assert _setup(mdev, _desc(dvb, uapi.MEDIA_LNK_FL_ENABLED))[0] == errno.EBUSY
    k.ioctl(video, "VIDIOC_STREAMOFF")  # the stream stops; the source stays taken until close
    assert _setup(mdev, _desc(dvb, uapi.MEDIA_LNK_FL_ENABLED))[0] == errno.EBUSY
    k.close(video)  # the last V4L2 file: au0828 stops the pipeline and drops the tuner link
    assert not MediaDevice.media_entity_is_streaming(_entity(mdev, "tuner 0-0061"))
    assert _setup(mdev, _desc(dvb, uapi.MEDIA_LNK_FL_ENABLED))[0] == 0


def test_the_last_close_releases_the_tuner_and_the_pipeline() -> None:
    """v4l2_fh_exit() calls v4l_disable_media_source() on every close of a V4L2 file, and
    au0828_v4l2_close() takes the source again on the last one, so that the last close
    stops the pipeline and drops the tuner link, whichever file started it (the review's case)."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    a = k.open("/dev/vbi0")
    k.ioctl(a, "VIDIOC_STREAMON")
    b = k.open("/dev/vbi0")
    k.ioctl(a, "VIDIOC_STREAMOFF")
    k.close(a)  # users == 2: au0828 keeps the link, as the kernel does
    mdev = _mdev(k, "WinTV HVR-950Q")
    assert MediaDevice.media_entity_is_streaming(_entity(mdev, "tuner 0-0061"))
    k.close(b)
    assert [p.entity.name for p in mdev.pads.values() if p.pipe is not None] == []
    k.close(k.open("/dev/dvb/adapter0/frontend0"))  # the tuner is free: no EBUSY
    assert k.check() == []


def test_entity_ids_with_flag_next_name_the_next_entity() -> None:
    """find_entity() honours MEDIA_ENT_ID_FLAG_NEXT for SETUP_LINK and ENUM_LINKS too."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    mdev = _mdev(k, "WinTV HVR-950Q")
    link = _link(mdev, "tuner 0-0061", "au8522 0-0047")
    desc = _desc(link, uapi.MEDIA_LNK_FL_ENABLED)
    before = max(e.id for e in mdev.entities.values() if e.id < link.source.entity.id)  # type: ignore[union-attr]
    desc.source.entity = before | uapi.MEDIA_ENT_ID_FLAG_NEXT
    assert _setup(mdev, desc)[0] == 0
    assert _flags(mdev, link) == uapi.MEDIA_LNK_FL_ENABLED
    pads, _ = mdev.enum_links(before | uapi.MEDIA_ENT_ID_FLAG_NEXT)
    assert pads[0].entity == link.source.entity.id  # type: ignore[union-attr]
