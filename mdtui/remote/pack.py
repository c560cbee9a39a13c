"""The agent as one program for a target's ``python3``: the live reader's own modules, sent
as source over ssh's standard input (nothing is installed on the target).

``command()`` is what ssh runs there: ``python3 -I -S -c STAGE1``.  ``-I -S``: no user
site, no site-packages, no PYTHON* variables, so the agent sees the standard library only,
whatever the target has installed.  STAGE1 (base64, no quoting to survive the remote shell)
checks the version (3.8 or newer, else one ``fatal`` line), then reads exactly the
payload's length from descriptor 0 and runs it; what follows on descriptor 0 is requests.
The payload (``payload()``) installs an importer of the modules in ``MODULES``, from their
source as it is in this checkout, and calls ``mdtui.remote.agent.main(options)``.

The packages ``allocator`` and ``allocator.mc`` are sent empty: their ``__init__`` imports
the whole simulated kernel, which the agent never uses; so is ``mdtui.soak`` (its
``__init__`` is the command line; the agent runs its ``machine`` for ``soak --source ssh:``).
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

from . import wire

ROOT = Path(__file__).resolve().parents[2]
#: the agent's modules: the live reader and what it imports (a test runs the agent from
#: exactly these, with ``python3 -I -S``: a missing one fails it)
MODULES = (
    "allocator",
    "allocator.errors",
    "allocator.events",
    "allocator.ioc",
    "allocator.mc",
    "allocator.mc.legacy",
    "allocator.mc.topology",
    "allocator.mc.uapi",
    "allocator.mc.uapi_layout",
    "allocator.subsys",
    "allocator.subsys.v4l2_uapi",
    "mdtui",
    "mdtui.live",
    "mdtui.live.closes",
    "mdtui.live.decode",
    "mdtui.live.infer",
    "mdtui.live.kmsg",
    "mdtui.live.media",
    "mdtui.live.monitor",
    "mdtui.live.netlink",
    "mdtui.live.openers",
    "mdtui.live.sysfs",
    "mdtui.model",
    "mdtui.persist",
    "mdtui.remote",
    "mdtui.remote.agent",
    "mdtui.remote.wire",
    "mdtui.rig",
    "mdtui.rig.control",
    "mdtui.soak",
    "mdtui.soak.machine",
    "mdtui.sources",
    "mdtui.sources.live",
    "mdtui.step",
)
EMPTY_PACKAGES = ("allocator", "allocator.mc", "mdtui.soak")
MIN_PYTHON = (3, 8)

_IMPORTER = """
import importlib.abc, importlib.util, json, sys, zlib
_SOURCES = json.loads(zlib.decompress(%r))
class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in _SOURCES:
            return importlib.util.spec_from_loader(name, self, is_package=_SOURCES[name][0])
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        name = module.__name__
        path = "<mdtui-agent>/" + name.replace(".", "/") + ("/__init__.py" if _SOURCES[name][0] else ".py")
        exec(compile(_SOURCES[name][1], path, "exec"), module.__dict__)
sys.meta_path.insert(0, _Finder())
"""
_MAIN = """
import mdtui.remote.agent
mdtui.remote.agent.main(json.loads(%r))
"""

_STAGE1 = """import os, sys, zlib
if sys.version_info < %r:
    text = "python3 is %%s; the agent needs 3.8 or newer" %% sys.version.split()[0]
    os.write(1, ('{"v": %d, "t": "fatal", "kind": "python", "text": "%%s"}\\n' %% text).encode())
    sys.exit(3)
n, b = %d, b""
while len(b) < n:
    c = os.read(0, n - len(b))
    if not c:
        sys.exit(4)
    b += c
exec(compile(zlib.decompress(b), "<mdtui-agent>", "exec"))
"""


def _source(module: str) -> tuple[bool, str]:
    """(is a package, its source)."""
    base = ROOT.joinpath(*module.split("."))
    package = (base / "__init__.py").exists()
    if module in EMPTY_PACKAGES:
        return True, ""
    return package, (base / "__init__.py" if package else base.with_suffix(".py")).read_text()


def importer() -> str:
    """Python that makes ``MODULES`` importable, from their source carried inside it."""
    sources = {m: _source(m) for m in MODULES}
    return _IMPORTER % zlib.compress(json.dumps(sources).encode(), 9)


def payload(options: dict[str, Any]) -> bytes:
    """The program STAGE1 runs: the importer, then the agent's ``main(options)``."""
    return zlib.compress((importer() + _MAIN % json.dumps(options)).encode(), 9)


def stage1(size: int) -> str:
    return _STAGE1 % (MIN_PYTHON, wire.VERSION, size)


def command(size: int, python: str = "python3") -> str:
    """The remote command line (one string: ssh hands it to the target's shell)."""
    code = base64.b64encode(stage1(size).encode()).decode()
    return f"{python} -I -S -c 'import base64;exec(base64.b64decode(\"{code}\"))'"
