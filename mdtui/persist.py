"""A ``SystemSnapshot`` as JSON and back, exactly: ``load(dump(snap)) == snap``.

The shape is read from the type annotations (``typing.get_type_hints``) of the dataclasses
in ``mdtui/model.py`` and the NamedTuples of ``allocator/mc/topology.py``, so a field added
there is carried without a change here.  What the annotations may say, and how it is
written:

=====================================  ==============================================
``int``, ``str``, ``bool``, ``float``  itself (a float must be finite)
``X | None``                           ``null`` or X
a dataclass, a NamedTuple              an object of its fields, by name
``tuple[X, ...]``, ``tuple[X, Y]``     a list
``frozenset[X]``                       a list, sorted (by the JSON of each element)
``dict[str, V]``                       an object
``dict[K, V]``, K not ``str``          a list of ``[key, value]`` pairs
=====================================  ==============================================

Anything else is a ``TypeError`` when the codec is built (a programming error, found by the
tests).  Reading is strict: a value of the wrong shape, an unknown field, a missing field
without a default, an unknown format or version is a ``FormatError`` (a ``ValueError``)
naming the path of the bad value (``snapshot.media_devices[0].holders[1].state: expected
str, got 3``).  A missing field that has a default takes it, so that a snapshot written
before a field was added still reads.

The document: ``{"format": "mdtui-state", "version": 1, ...metadata..., "snapshot": {...}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, Callable

from .model import SystemSnapshot

FORMAT = "mdtui-state"
VERSION = 1
#: the keys of the document that are not metadata
RESERVED = ("format", "version", "snapshot")

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]
_NONE = type(None)
_MISSING = object()


class FormatError(ValueError):
    """A document that is not a snapshot this version of mdtui can read; ``path`` is where."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        self.message = message
        self.path = path
        super().__init__(f"{_path_text(path)}: {message}" if path else message)

    def inside(self, segment: str) -> FormatError:
        """The same error, one level further out (``segment`` is prepended to the path)."""
        return FormatError(self.message, (segment, *self.path))


def _path_text(path: tuple[str, ...]) -> str:
    return "".join(p if p.startswith("[") or not i else f".{p}" for i, p in enumerate(path))


def _each(values: Iterable[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """``convert`` of each item; a bad one's error says which (``[3]``)."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(convert(v))
        except FormatError as exc:
            raise exc.inside(f"[{i}]") from None
    return out


def _show(value: Any) -> str:
    """A bad value, short enough for one line."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value) if isinstance(value, str | int | float | bool | _NONE) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


# -- codecs, one per annotation, made once ----------------------------------------------------

_CODECS: dict[Any, tuple[Encode, Decode]] = {}


def codec(tp: Any) -> tuple[Encode, Decode]:
    """The encoder and decoder of values annotated ``tp``."""
    found = _CODECS.get(tp)
    if found is None:
        found = _CODECS[tp] = _make(tp)
    return found


def _make(tp: Any) -> tuple[Encode, Decode]:
    if tp in (int, str, bool, float):
        return _scalar(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not _NONE]
        if len(others) != 1 or len(args) != 2:
            raise TypeError(f"cannot serialize {tp!r}: only X | None unions")
        return _optional(others[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(args[0], tuple, "tuple")
        return _fixed(args)
    if origin is frozenset:
        return _frozenset(args[0])
    if origin is dict:
        return _dict(*args)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields = [(f.name, _default(f)) for f in dataclasses.fields(tp) if f.init]
        return _record(tp, fields, lambda values: tp(**values))
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple
        defaults = tp._field_defaults
        fields = [(name, defaults.get(name, _MISSING)) for name in tp._fields]
        return _record(tp, fields, lambda values: tp(**values))
    raise TypeError(f"cannot serialize values annotated {tp!r}")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _MISSING


def _scalar(tp: type) -> tuple[Encode, Decode]:
    name = tp.__name__

    def check(value: Any) -> Any:
        if tp is float:
            if type(value) not in (float, int):
                raise FormatError(f"expected float, got {_show(value)}")
            if not math.isfinite(value):
                raise FormatError(f"expected a finite float, got {value!r}")
            return float(value)
        if type(value) is not tp:  # bool is an int to isinstance: not here
            raise FormatError(f"expected {name}, got {_show(value)}")
        return value

    return check, check


def _optional(tp: Any) -> tuple[Encode, Decode]:
    enc, dec = codec(tp)
    return (lambda v: None if v is None else enc(v)), (lambda v: None if v is None else dec(v))


def _sequence(tp: Any, make: Callable[[list[Any]], Any], what: str) -> tuple[Encode, Decode]:
    enc, dec = codec(tp)

    def encode(value: Any) -> list[Any]:
        if not isinstance(value, tuple):
            raise FormatError(f"expected a {what}, got {_show(value)}")
        return _each(value, enc)

    def decode(value: Any) -> Any:
        if not isinstance(value, list):
            raise FormatError(f"expected a list, got {_show(value)}")
        return make(_each(value, dec))

    return encode, decode


def _fixed(args: tuple[Any, ...]) -> tuple[Encode, Decode]:
    codecs = [codec(a) for a in args]

    def convert(value: Any, which: int) -> list[Any]:
        if len(value) != len(codecs):
            raise FormatError(f"expected {len(codecs)} items, got {len(value)}")
        return _each(zip(value, codecs, strict=True), lambda pair: pair[1][which](pair[0]))

    def encode(value: Any) -> list[Any]:
        if not isinstance(value, tuple):
            raise FormatError(f"expected a tuple, got {_show(value)}")
        return convert(value, 0)

    def decode(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise FormatError(f"expected a list, got {_show(value)}")
        return tuple(convert(value, 1))

    return encode, decode


def _frozenset(tp: Any) -> tuple[Encode, Decode]:
    enc, dec = _sequence(tp, frozenset, "tuple")

    def encode(value: Any) -> list[Any]:
        if not isinstance(value, frozenset | set):
            raise FormatError(f"expected a frozenset, got {_show(value)}")
        return sorted(enc(tuple(value)), key=lambda v: json.dumps(v, sort_keys=True))

    return encode, dec


def _dict(key: Any, value: Any) -> tuple[Encode, Decode]:
    kenc, kdec = codec(key)
    venc, vdec = codec(value)

    def pair(k: Any, v: Any, kconv: Callable[[Any], Any], vconv: Callable[[Any], Any], at: str) -> tuple[Any, Any]:
        try:
            k = kconv(k)
        except FormatError as exc:
            raise exc.inside(f"{at}[0]") from None
        try:
            return k, vconv(v)
        except FormatError as exc:
            raise exc.inside(f"{at}[1]" if key is not str else f"[{json.dumps(k)}]") from None

    def encode(d: Any) -> Any:
        if not isinstance(d, dict):
            raise FormatError(f"expected a dict, got {_show(d)}")
        pairs = [pair(k, v, kenc, venc, f"[{i}]") for i, (k, v) in enumerate(d.items())]
        return dict(pairs) if key is str else [list(p) for p in pairs]

    def decode(obj: Any) -> dict[Any, Any]:
        if key is str:
            if not isinstance(obj, dict):
                raise FormatError(f"expected an object, got {_show(obj)}")
            return dict(pair(k, v, kdec, vdec, "") for k, v in obj.items())
        if not isinstance(obj, list):
            raise FormatError(f"expected a list of [key, value] pairs, got {_show(obj)}")
        out: dict[Any, Any] = {}
        for i, item in enumerate(obj):
            if not isinstance(item, list) or len(item) != 2:
                raise FormatError(f"expected a [key, value] pair, got {_show(item)}", (f"[{i}]",))
            k, v = pair(item[0], item[1], kdec, vdec, f"[{i}]")
            if k in out:
                raise FormatError(f"the key {_show(item[0])} again", (f"[{i}]",))
            out[k] = v
        return out

    return encode, decode


def _record(tp: type, fields: list[tuple[str, Any]], make: Callable[[dict[str, Any]], Any]) -> tuple[Encode, Decode]:
    """A dataclass or NamedTuple: an object of its fields.  The fields' codecs are made on
    first use (a type may name itself)."""
    names = {name for name, _ in fields}
    resolved: list[tuple[str, Any, Encode, Decode]] = []

    def resolve() -> list[tuple[str, Any, Encode, Decode]]:
        if not resolved:
            hints = typing.get_type_hints(tp)
            resolved.extend((name, default, *codec(hints[name])) for name, default in fields)
        return resolved

    def encode(value: Any) -> dict[str, Any]:
        if type(value) is not tp and not (issubclass(tp, tuple) and type(value) is tuple):
            raise FormatError(f"expected {tp.__name__}, got {_show(value)}")
        if isinstance(value, tuple) and len(value) != len(fields):
            raise FormatError(f"expected {tp.__name__} ({len(fields)} items), got {len(value)} items")
        out = {}
        for i, (name, _, enc, _) in enumerate(resolve()):
            try:
                out[name] = enc(value[i] if type(value) is tuple else getattr(value, name))
            except FormatError as exc:
                raise exc.inside(name) from None
        return out

    def decode(obj: Any) -> Any:
        if not isinstance(obj, dict):
            raise FormatError(f"expected an object ({tp.__name__}), got {_show(obj)}")
        unknown = sorted(set(obj) - names)
        if unknown:
            raise FormatError(f"unknown field in {tp.__name__} (written by a newer mdtui?)", (unknown[0],))
        values = {}
        for name, default, _, dec in resolve():
            if name not in obj:
                if default is _MISSING:
                    raise FormatError(f"missing field of {tp.__name__}", (name,))
                values[name] = default
                continue
            try:
                values[name] = dec(obj[name])
            except FormatError as exc:
                raise exc.inside(name) from None
        return make(values)

    return encode, decode


# -- the document -------------------------------------------------------------------------------


def encode(snap: SystemSnapshot) -> dict[str, Any]:
    """The snapshot as JSON values; a ``FormatError`` names a field whose value does not fit
    its annotation (a source that broke the model's contract)."""
    try:
        return codec(SystemSnapshot)[0](snap)
    except FormatError as exc:
        raise exc.inside("snapshot") from None


class Memo:
    """The JSON of records of ``kinds`` (a graph: ~150 KB of it per HVR-950Q), by the
    record's identity: a graph that was not read again is the same object, and is not
    encoded again.  ``turn()`` after each use forgets what that use did not meet."""

    def __init__(self, kinds: tuple[type, ...]) -> None:
        self.kinds = kinds
        self._last: dict[int, tuple[Any, Any]] = {}
        self._now: dict[int, tuple[Any, Any]] = {}

    def get(self, value: Any) -> Any:
        found = self._now.get(id(value)) or self._last.get(id(value))
        if found is None or found[0] is not value:
            return None
        self._now[id(value)] = found
        return found[1]

    def put(self, value: Any, out: Any) -> None:
        self._now[id(value)] = (value, out)

    def turn(self) -> None:
        self._last, self._now = self._now, {}


def plain(value: Any, memo: Memo | None = None) -> Any:
    """``value`` as the JSON values ``encode`` makes of it, read from the value itself, not
    from the annotations: what the remote agent (mdtui/remote/agent.py) sends, on a Python
    (3.8) that cannot evaluate them.  ``decode`` checks what arrives against them.  A dict
    is a list of ``[key, value]`` pairs unless its keys are strings; an empty one is ``[]``
    (the model has no dict with string keys).

    ``memo``: records already encoded (``Memo``)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    remember = memo is not None and kind in memo.kinds
    if remember:
        found = memo.get(value)  # type: ignore[union-attr]
        if found is not None:
            return found
    fields = getattr(kind, "__dataclass_fields__", None)
    if fields is not None:
        out: Any = {
            name: plain(getattr(value, name), memo) for name, f in fields.items() if f.init and f._field_type is _FIELD
        }
    elif isinstance(value, tuple):
        names = getattr(value, "_fields", None)  # a NamedTuple
        if names is None:
            return [plain(v, memo) for v in value]
        out = {name: plain(v, memo) for name, v in zip(names, value)}
    elif isinstance(value, frozenset):
        return sorted((plain(v, memo) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    elif isinstance(value, dict):
        if value and all(isinstance(k, str) for k in value):
            return {k: plain(v, memo) for k, v in value.items()}
        return [[plain(k, memo), plain(v, memo)] for k, v in value.items()]
    else:
        return value
    if remember:
        memo.put(value, out)  # type: ignore[union-attr]
    return out


_SCALARS = frozenset((str, int, float, bool, type(None)))
_FIELD = dataclasses._FIELD  # type: ignore[attr-defined]  # a field proper (not a ClassVar or InitVar)


def decode(obj: Any) -> SystemSnapshot:
    try:
        return codec(SystemSnapshot)[1](obj)
    except FormatError as exc:
        raise exc.inside("snapshot") from None


def document(snap: SystemSnapshot, **metadata: Any) -> dict[str, Any]:
    """The whole document: format, version, the metadata given, and the snapshot."""
    clash = set(metadata) & set(RESERVED)
    if clash:
        raise ValueError(f"metadata may not be named {sorted(clash)}")
    return {"format": FORMAT, "version": VERSION, **metadata, "snapshot": encode(snap)}


def read_document(doc: Any) -> tuple[SystemSnapshot, dict[str, Any]]:
    """The snapshot of a document, and its metadata (the other keys, unchecked)."""
    if not isinstance(doc, dict):
        raise FormatError(f"not an mdtui state document: expected an object, got {_show(doc)}")
    if doc.get("format") != FORMAT:
        raise FormatError(f"not an mdtui state document (format {_show(doc.get('format'))}, expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is not int:
        raise FormatError(f"expected an integer version, got {_show(version)}", ("version",))
    if version != VERSION:
        newer = " (written by a newer mdtui?)" if version > VERSION else ""
        raise FormatError(f"version {version} is not supported{newer}: this mdtui reads version {VERSION}")
    if "snapshot" not in doc:
        raise FormatError("no snapshot in the document", ("snapshot",))
    return decode(doc["snapshot"]), {k: v for k, v in doc.items() if k not in RESERVED}


def dumps(snap: SystemSnapshot, **metadata: Any) -> str:
    """The document as JSON text (ASCII: any string, even a lone surrogate from a file name
    that is not UTF-8, survives)."""
    return json.dumps(document(snap, **metadata), indent=1, allow_nan=False) + "\n"


def loads(text: str | bytes) -> tuple[SystemSnapshot, dict[str, Any]]:
    """Parse and read a document; any fault is a ``FormatError`` (never another exception)."""
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("not JSON that mdtui wrote: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError; too many digits; not UTF-8
        raise FormatError(f"not JSON: {exc}") from None
    return read_document(doc)


def _no_constant(name: str) -> Any:
    raise FormatError(f"not JSON that mdtui wrote: {name}")


def dump(snap: SystemSnapshot) -> str:
    """The snapshot as a document with no metadata (``load(dump(snap)) == snap``)."""
    return dumps(snap)


def load(text: str | bytes) -> SystemSnapshot:
    return loads(text)[0]
