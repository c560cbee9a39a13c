"""The JSON lines between the agent and mdtui, and the snapshot deltas they carry.

Every line is one JSON object with ``"v": VERSION``; the agent writes

* ``hello``: ``host``, ``python``, ``kernel``, ``clock`` (its monotonic clock), ``pid``;
* ``update``: ``events`` (each ``[seq, time, kind, level, device, text, fields]``) and either
  ``snapshot`` (the first: the whole state, ``persist.plain``'s JSON, keyed below) or
  ``patch`` (what changed since the last one), or ``error`` (the snapshot could not be made);
* ``reply``: to a request ``id``: ``ok`` (and the call's ``value``, for ``machine``), or
  ``error`` ``[errno, text, device]``;
* ``fatal``: ``kind`` and ``text``, before it exits.

mdtui writes requests: ``{"v", "id", "op": "perform", "command", "args"}``,
``{"v", "id", "op": "reread", "key"}`` and, for ``mdtui soak --source ssh:``, ``{"v", "id",
"op": "machine", "method", "args"}``: a call of the soak's machine on the target (its value
``persist.plain``'s JSON; ``mdtui.soak.remote``).  Replies to machine calls may come in
another order than their requests: each is made on a thread of its own.

A patch is ``{"=": value}`` (the value replaced), or ``{"~": {key: patch}, "-": [key]}`` (an
object's members changed, added or removed).  Lists are replaced whole, except the
snapshot's devices, USB devices and modules, which are sent as objects by their key
(``keyed``): a refcount that changes sends that device's refcount, not its graph.

Standard library only, Python 3.8: the agent imports it.
"""

from __future__ import annotations

import json
import math
from typing import Any

VERSION = 1
#: the snapshot's lists whose items have a name: sent as objects by it, in ``order``
KEYED = {"media_devices": "key", "usb_devices": "name", "modules": "name"}


class ProtocolError(ValueError):
    """A line that is not what this version of the protocol says."""


def line(kind: str, **fields: Any) -> bytes:
    return (json.dumps({"v": VERSION, "t": kind, **fields}, separators=(",", ":"), allow_nan=False) + "\n").encode()


def request(ident: int, op: str, **fields: Any) -> bytes:
    return (json.dumps({"v": VERSION, "id": ident, "op": op, **fields}, separators=(",", ":")) + "\n").encode()


def parse(raw: bytes) -> dict[str, Any]:
    """One line as an object of this protocol's version; a ``ProtocolError`` otherwise."""
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except ProtocolError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {raw[:60]!r} ({exc})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"not a JSON object: {raw[:60]!r}")
    if obj.get("v") != VERSION:
        raise ProtocolError(f"protocol version {obj.get('v')!r}, expected {VERSION} (mdtui and its agent differ)")
    return obj


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is no JSON number")


def number(value: Any, what: str) -> float:
    """``value`` as a finite float; a ``ProtocolError`` naming ``what`` otherwise."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ProtocolError(f"{what}: expected a finite number, got {value!r:.40}")
    return float(value)


def is_error(value: Any) -> bool:
    """Whether ``value`` is a reply's error: ``[errno, text, file or null]``."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and type(value[0]) is int
        and isinstance(value[1], str)
        and (value[2] is None or isinstance(value[2], str))
    )


def keyed(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot's named lists as ``{"order": [...], "items": {name: item}}``."""
    out = dict(snapshot)
    for field, name in KEYED.items():
        items = snapshot.get(field, [])
        out[field] = {"order": [i[name] for i in items], "items": {i[name]: i for i in items}}
    return out


def unkeyed(doc: dict[str, Any]) -> dict[str, Any]:
    """``keyed`` undone; a ``ProtocolError`` when a name in ``order`` has no item."""
    out = dict(doc)
    for field in KEYED:
        table = doc.get(field)
        if not isinstance(table, dict) or not isinstance(table.get("order"), list):
            raise ProtocolError(f"snapshot.{field}: expected order and items")
        items = table.get("items")
        try:
            out[field] = [items[k] for k in table["order"]]
        except (KeyError, TypeError):
            raise ProtocolError(f"snapshot.{field}: an item named in order is missing") from None
    return out


def diff(old: Any, new: Any) -> dict[str, Any] | None:
    """The patch that makes ``old`` into ``new``; None when they are equal."""
    if old is new or old == new:
        return None
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return {"=": new}
    changed = {}
    for key, value in new.items():
        if key not in old:
            changed[key] = {"=": value}
        else:
            patch = diff(old[key], value)
            if patch is not None:
                changed[key] = patch
    removed: list[str] = [k for k in old if k not in new]
    return {"~": changed, "-": removed} if removed else {"~": changed}


def apply(old: Any, patch: Any) -> Any:
    """``old`` with ``patch`` applied (``old`` is not changed); a ``ProtocolError`` for what is
    no patch, or a patch of members of what is no object."""
    if not isinstance(patch, dict):
        raise ProtocolError("a patch is an object")
    if "=" in patch:
        return patch["="]
    if not isinstance(old, dict) or not isinstance(patch.get("~", {}), dict):
        raise ProtocolError("a patch of members of what is no object")
    out = dict(old)
    for key, member in patch.get("~", {}).items():
        out[key] = apply(out.get(key), member)
    for key in patch.get("-", []):
        out.pop(key, None)
    return out
