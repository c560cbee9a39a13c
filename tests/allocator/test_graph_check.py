"""check()'s G_TOPOLOGY rules catch each kind of broken graph, through its fast path and its
one-object-at-a-time path alike, and a record made at registration stays true to its object."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from allocator import Kernel
from allocator.check import _looks_sound, _structure
from allocator.mc import uapi
from allocator.mc.device import MediaDevice
from allocator.mc.entity import Link

from ..conftest import make_kernel


def _mdev(k: Kernel) -> MediaDevice:
    return k.allocator.instances()[0].mdev


def _data_link(mdev: MediaDevice) -> Link:
    return next(
        ln for ln in mdev.links.values() if not ln.is_backlink and not ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK
    )


def _intf_link(mdev: MediaDevice) -> Link:
    return next(ln for ln in mdev.links.values() if ln.flags & uapi.MEDIA_LNK_FL_INTERFACE_LINK)


def _both_directions(m: MediaDevice) -> None:
    next(iter(m.pads.values())).flags |= uapi.MEDIA_PAD_FL_SINK | uapi.MEDIA_PAD_FL_SOURCE


def _immutable_disabled(m: MediaDevice) -> None:
    _data_link(m).flags = uapi.MEDIA_LNK_FL_IMMUTABLE


def _lost_backlink(m: MediaDevice) -> None:
    del m.links[_data_link(m).reverse.id]  # type: ignore[union-attr]


def _entity_gone(m: MediaDevice) -> None:
    del m.entities[_data_link(m).source.entity.id]  # type: ignore[union-attr]


def _interface_gone(m: MediaDevice) -> None:
    del m.interfaces[_intf_link(m).source.id]


def _pad_gone(m: MediaDevice) -> None:
    del m.pads[_data_link(m).source.id]


def _wrong_type_byte(m: MediaDevice) -> None:
    entity = next(iter(m.entities.values()))
    del m.entities[entity.id]
    entity.id = (uapi.MEDIA_GRAPH_PAD << 24) | 0xFFFFFF
    m.entities[entity.id] = entity


def _id_disagrees(m: MediaDevice) -> None:
    next(iter(m.interfaces.values())).id += 1


CORRUPTIONS: dict[str, tuple[Callable[[MediaDevice], None], str]] = {
    "pad both directions": (_both_directions, "is not exactly one of SINK/SOURCE"),
    "immutable but disabled": (_immutable_disabled, "is IMMUTABLE but not ENABLED"),
    "backlink lost": (_lost_backlink, "has lost its other half"),
    "entity unregistered under its pads": (_entity_gone, "belongs to no registered entity"),
    "interface removed under its links": (_interface_gone, "does not start at an interface"),
    "pad removed under its link": (_pad_gone, "does not start at a source pad"),
    "id with the wrong type byte": (_wrong_type_byte, "has the wrong type or id"),
    "id that disagrees with its key": (_id_disagrees, "has the wrong type or id"),
}


def test_a_sound_graph_passes_both_paths(hvr: Kernel) -> None:
    mdev = _mdev(hvr)
    assert _looks_sound(mdev) and _structure(mdev) == []
    assert hvr.check() == []


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_is_reported(hvr: Kernel, name: str) -> None:
    corrupt, message = CORRUPTIONS[name]
    mdev = _mdev(hvr)
    hvr.check()  # cache the sound result first: a change must invalidate it
    corrupt(mdev)
    mdev.generation += 1
    assert not _looks_sound(mdev)
    assert any(message in text for text in _structure(mdev))
    found = [v for v in hvr.check() if v.kind == "graph"]
    assert any(message in v.message for v in found), found


def test_records_match_their_objects_after_setup_link_and_rebinds() -> None:
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    mdev = _mdev(k)
    mutable = next(  # a data link: SETUP_LINK reaches no interface link
        ln
        for ln in mdev.links.values()
        if not ln.is_backlink and not ln.flags & (uapi.MEDIA_LNK_FL_IMMUTABLE | uapi.MEDIA_LNK_FL_INTERFACE_LINK)
    )
    mdev.media_entity_setup_link(mutable, mutable.flags ^ uapi.MEDIA_LNK_FL_ENABLED)
    k.usb.unbind("snd-usb-audio", "1-1:1.1")
    k.usb.bind("snd-usb-audio", "1-1:1.1")
    topo = mdev.topology()
    assert [(e.id, e.name, e.function, e.flags) for e in mdev.entities.values()] == [tuple(r) for r in topo.entities]
    assert [(p.id, p.entity.id, p.flags, p.index) for p in mdev.pads.values()] == [tuple(r) for r in topo.pads]
    walked = [(ln.id, ln.source.id, ln.sink.id, ln.flags) for ln in mdev.links.values() if not ln.is_backlink]
    assert walked == [tuple(r) for r in topo.links]
    assert any(r.id == mutable.id and r.flags == mutable.flags for r in topo.links)
