"""The wheel, as a user gets it: ``python -m build`` makes the sdist and builds the wheel from
it (so the sdist holds everything the wheel needs), the wheel goes into a clean virtualenv
outside the checkout (as ``pipx install`` puts it: its own venv, the ``mdtui`` script linked
into a directory on PATH), and the installed copy runs, from a directory outside the checkout
and without PYTHONPATH: ``dump`` (text, and JSON valid against the installed schema),
``watch`` on a script, the TUI in a pseudo-terminal, ``rig`` (which compiles its shim from
the installed C source, and builds umockdev's preload library as ``python -m
mdtui.rig.preload``), and ``man`` finds the page under the venv's share/man.

Building and installing is what this costs (the dependencies come from the index, or pip's
cache): one venv for the whole module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

import mdtui
from tests.ptyterm import PtyTerminal

ROOT = Path(__file__).resolve().parents[2]
#: where pip puts the data files of a wheel (``[tool.setuptools.data-files]``)
MAN_PAGE = "share/man/man1/mdtui.1"
LIFECYCLE = """\
# a device comes and goes, one of its drivers unbound on the way
modprobe au0828
modprobe snd_usb_audio
plug hvr950q
unbind au0828 1-1:1.0
unplug 1-1
"""


def _checkout_files() -> list[str]:
    """The checkout's files as a clean clone of it would have them (tracked, or new and not
    ignored); every file but the usual litter when this is not a git checkout."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0:
        return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]
    litter = {".git", ".venv", "__pycache__", "build", "dist", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    return [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if path.is_file()
        and not litter.intersection(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def _run(
    line: list[str | Path], what: str, timeout: float, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{what}: exit status {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@dataclass
class Installed:
    """The built sdist and wheel, the venv the wheel went into, and how to run it there."""

    source: Path  # the checkout, copied as a clone has it
    sdist: Path
    wheel: Path
    venv: Path
    home: Path  # the working directory: outside the checkout
    env: dict[str, str]
    site: Path  # the venv's site-packages, where mdtui/ and allocator/ are

    def run(
        self, *args: str | Path, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.home,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    # the checkout copied as a clone has it: the build writes its egg-info there, never into
    # the checkout, and sees no stray build/ of an earlier one
    source = tmp / "source"
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # nothing of the checkout on PATH or PYTHONPATH, here and for the installed mdtui (pipx's
    # layout: its script linked into a directory on PATH, as ~/.local/bin; the venv's bin/ not
    # on it)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not Path(p).is_relative_to(ROOT)]
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("MDTUI_")
    } | {"PATH": os.pathsep.join(path)}
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, source], "python -m build", 600, cwd=tmp, env=clean)
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], "python -m venv", 120, cwd=tmp, env=clean)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel]
    _run(pip, "pip install of the wheel", 600, cwd=tmp, env=clean)  # with pip's cache
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "mdtui").symlink_to(venv / "bin" / "mdtui")
    home = tmp / "home"
    home.mkdir()
    env = clean | {
        "PATH": os.pathsep.join([str(bin_dir), *path]),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "NO_COLOR": "1",
    }
    [site] = (venv / "lib").glob("python3*/site-packages")
    return Installed(source, sdist, wheel, venv, home, env, site)


def _package_files(root: Path) -> set[str]:
    """The files of the packages allocator/ and mdtui/ under ``root`` (compiled ones aside)."""
    return {
        path.relative_to(root).as_posix()
        for top in ("allocator", "mdtui")
        for path in (root / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_and_the_sdist_hold_the_data_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
    data = f"mdtui-{mdtui.__version__}.data/data/"
    needed = {"mdtui/app.tcss", "mdtui/dump.schema.json", "mdtui/rig/shim.c", f"{data}{MAN_PAGE}"}
    needed |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdtui").rglob("*.tcss")}
    needed |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdtui" / "rig").glob("*.c")}
    assert needed <= names, sorted(needed - names)
    # every file of the packages as the checkout has them, no more (nothing from tests/)
    packaged = {n for n in names if n.startswith(("allocator/", "mdtui/"))}
    sources = _package_files(installed.source)
    assert packaged == sources, f"missing: {sorted(sources - packaged)}; extra: {sorted(packaged - sources)}"
    assert not {n for n in names if n.startswith("tests/")}
    with zipfile.ZipFile(installed.wheel) as whl:
        assert whl.read(f"{data}{MAN_PAGE}") == (ROOT / "man" / "mdtui.1").read_bytes()
    prefix = installed.sdist.name.removesuffix(".tar.gz") + "/"
    with tarfile.open(installed.sdist) as tar:
        in_sdist = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    assert {"pyproject.toml", "README.md", "man/mdtui.1", "mdtui/dump.schema.json", "mdtui/rig/shim.c"} <= in_sdist


def test_mdtui_is_imported_from_the_venv(installed: Installed) -> None:
    done = installed.run(
        installed.venv / "bin" / "python",
        "-c",
        "import json, sys, allocator, mdtui, mdtui.app\n"
        "print(json.dumps([mdtui.__file__, allocator.__file__, sys.path]))",
    )
    assert done.returncode == 0, done.stderr
    mdtui_file, allocator_file, path = json.loads(done.stdout)
    assert Path(mdtui_file).is_relative_to(installed.site) and Path(allocator_file).is_relative_to(installed.site)
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(ROOT)]
    assert installed.run("mdtui", "--version").stdout == f"mdtui {mdtui.__version__}\n"


def test_dump(installed: Installed) -> None:
    text = installed.run("mdtui", "dump", "--source", "sim")
    assert (text.returncode, text.stderr) == (0, "")
    assert "=== /dev/media0: WinTV HVR-950Q ===" in text.stdout
    doc = installed.run("mdtui", "dump", "--source", "sim", "--format", "json")
    assert (doc.returncode, doc.stderr) == (0, "")
    schema = json.loads((installed.site / "mdtui" / "dump.schema.json").read_text())
    dumped = json.loads(doc.stdout)
    jsonschema.validate(dumped, schema)
    assert "WinTV HVR-950Q" in [d["model"] for d in dumped["media_devices"]]


def test_watch_runs_a_script_and_exits(installed: Installed) -> None:
    script = installed.home / "lifecycle.txt"
    script.write_text(LIFECYCLE)
    done = installed.run("mdtui", "watch", "--source", "sim", "--script", script, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    texts = [e["text"] for e in events]
    assert "media0 refcount 2→1 (au0828 unbound 1-1:1.0)" in texts
    assert any(e["kind"] == "uevent" and e["text"].startswith("remove media media0") for e in events), texts[-10:]


@pytest.fixture
def terminal(installed: Installed) -> Iterator[PtyTerminal]:
    """The installed ``mdtui`` on a pseudo-terminal of 30x100."""
    term = PtyTerminal(["mdtui", "--source", "sim"], installed.env, cwd=installed.home)
    try:
        yield term
    finally:
        if term.child.poll() is None:
            term.child.kill()
            term.child.wait()
        os.close(term.master)


def test_the_tui_shows_the_device_list_and_quits_on_q(terminal: PtyTerminal) -> None:
    terminal.wait_for(b"HVR-950Q", timeout=30)
    terminal.type(b"q")
    assert terminal.child.wait(timeout=15) == 0


def test_rig_runs_from_the_installed_copy(installed: Installed) -> None:
    def files() -> dict[str, int]:
        return {
            p.relative_to(installed.venv).as_posix(): p.stat().st_mtime_ns
            for p in installed.venv.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    before = files()
    library = installed.venv / "lib" / "mdtui-rig" / "libumockdev-preload.so.0"
    # without the patched preload library: umockdev's own, said so on stderr
    first = installed.run("mdtui", "rig", "--", "mdtui", "dump", "--source", "live", timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("# live system"), first.stdout[:400]
    assert "=== /dev/media0: WinTV HVR-950Q ===" in first.stdout
    assert f"mdtui rig: {library} is missing" in first.stderr
    # the rig compiled its shim (mdtui/rig/shim.c) into its testbed: nothing was written into
    # the venv
    assert files() == before
    # the library built from the installed recipe, into the venv (what `make rig-preload` does
    # for the checkout), then preloaded
    built = installed.run(installed.venv / "bin" / "python", "-m", "mdtui.rig.preload", timeout=300)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(f"{library}: built from umockdev ")
    second = installed.run("mdtui", "rig", "--", "mdtui", "dump", "--source", "live", timeout=120)
    assert (second.returncode, second.stderr) == (0, "")
    assert "=== /dev/media0: WinTV HVR-950Q ===" in second.stdout


def test_man_finds_the_installed_page(installed: Installed) -> None:
    page = installed.venv / MAN_PAGE
    assert page.read_bytes() == (ROOT / "man" / "mdtui.1").read_bytes()
    env = {k: v for k, v in installed.env.items() if not k.startswith(("MAN", "GROFF"))} | {
        "MANPAGER": "cat",
        "PAGER": "cat",
        "MANWIDTH": "80",
        "LC_ALL": "C.UTF-8",
    }
    rendered = installed.run("man", "-l", page, env=env)
    assert (rendered.returncode, rendered.stderr) == (0, "")
    assert "       mdtui - inspect media devices shared through the Media Device Allocator" in rendered.stdout
    # as `man mdtui` finds it once the venv's share/man is on its path (pipx links it into
    # ~/.local/share/man)
    found = installed.run("man", "mdtui", env=env | {"MANPATH": str(installed.venv / "share" / "man")})
    assert (found.returncode, found.stdout) == (0, rendered.stdout)
