"""References drivers keep into a shared media graph: the hazard Sakari Ailus predicted.

Reviewing "[PATCH v4 1/3] media: Media Device Allocator API" (2016), on the drivers that share
a media device creating entities in it and removing them when they release it:

    We don't refcount graph objects at the moment, so if these objects are referred to
    elsewhere in the kernel while that driver goes away, bad things will follow.

No design of the allocator changes that: each keeps the *media device* alive until its last
user lets go, none refcounts what the drivers put in it.  What a driver leaving removes is
its own entities (with both halves of every link to them, which mc-core does for it); what
it cannot remove is a pointer another driver keeps to one of them.  au0828 keeps one: the
entity that owns the tuner (``active_link_owner``, and ``active_link_user`` when shared),
which is snd-usb-audio's capture entity while ``arecord`` holds the tuner.  Unbind
snd-usb-audio then, and its entity is unregistered and freed (``snd_media_stream_delete()``:
``kfree(mctl)``; the close that would have given the tuner back finds no ``media_ctl``), while
au0828 still reads it on the next ``enable_source``/``disable_source``: a use-after-free in
the kernel, a tuner owned by nothing in the model.

``stale_graph_references(k)`` lists every such reference: a live driver instance (or a
registered media device's ``source_priv``/``entity_notify``) pointing at an entity that is no
longer registered, a link no longer in its graph, or a driver instance that is gone.  It is a
query, not a ``check()`` invariant: the model reaches this state in ordinary lifecycles
(the random ones of ``tests/allocator/test_stateful.py`` among them), on every design alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .mc.device import MediaDevice
from .mc.entity import Entity, Link

if TYPE_CHECKING:
    from .kernel import Kernel


class StaleReference(NamedTuple):
    """``holder``'s ``field`` points at ``target``, which ``why``."""

    holder: str
    field: str
    target: str
    why: str


def stale_graph_references(k: Kernel) -> list[StaleReference]:
    """Every reference into a media graph that outlived what it points at (see the module)."""
    out: list[StaleReference] = []
    for drv in list(k.loader.drivers.values()):
        for instance in _instances(drv):
            holder = getattr(instance, "label", drv.name)
            for field, value in _fields(instance):
                why = _stale(value, getattr(instance, "media_dev", None))
                if why is not None:
                    out.append(StaleReference(holder, field, _describe(value), why))
    for state in k.view.media_devices():
        mdev = state.mdev
        if not mdev.registered:
            continue
        holder = mdev.devnode_name or "media device"
        if mdev.source_priv is not None and not getattr(mdev.source_priv, "alive", True):
            out.append(StaleReference(holder, "source_priv", _describe(mdev.source_priv), "is gone"))
        for notify in list(mdev.entity_notify):
            if not getattr(notify.notify_data, "alive", True):
                out.append(StaleReference(holder, "entity_notify", _describe(notify.notify_data), "is gone"))
    return out


def _instances(drv: Any) -> Iterator[Any]:
    """A driver's live per-device instances (au0828's ``devs``, snd-usb-audio's ``chips``)."""
    for name in ("devs", "chips"):
        yield from list(getattr(drv, name, ()))


def _fields(instance: Any) -> Iterator[tuple[str, Any]]:
    """The graph objects an instance points at, by field (one level into lists, so that
    snd-usb-audio's streams' entities count)."""
    for name, value in vars(instance).items():
        if isinstance(value, Entity | Link):
            yield name, value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Entity | Link):
                    yield f"{name}[{i}]", item
                elif hasattr(item, "__dict__"):
                    for sub, obj in vars(item).items():
                        if isinstance(obj, Entity | Link):
                            yield f"{name}[{i}].{sub}", obj


def _stale(obj: Entity | Link, mdev: MediaDevice | None) -> str | None:
    if isinstance(obj, Entity):
        if obj.mdev is not None:
            return None
        owner = obj.owner
        gone = owner is not None and not getattr(owner, "alive", True)
        by = getattr(owner, "label", None)
        return f"is unregistered ({by} is gone)" if gone and by else "is unregistered"
    if mdev is None or obj.id in mdev.links:
        return None
    return "is no longer in the graph"


def _describe(obj: Any) -> str:
    if isinstance(obj, Entity):
        return f"entity {obj.name!r}"
    if isinstance(obj, Link):
        return f"link {obj.id:#010x}"
    return str(getattr(obj, "label", obj))
