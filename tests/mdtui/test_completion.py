"""``mdtui completion bash|zsh|fish``: the scripts, generated from the parser, loaded and
exercised in the real shells.

bash: the script is sourced in ``bash --norc --noprofile`` (alone, and after
bash-completion), ``complete -p mdtui`` names it, and its function is called with COMP_WORDS,
COMP_CWORD, COMP_LINE and COMP_POINT set as readline sets them; COMPREPLY is checked.  fish:
``complete -C``.  zsh: a ``zsh -f -i`` on a pseudo-terminal, compinit with the script in
$fpath, Tab pressed; the candidates are those handed to ``compadd``.  Every shell runs with
.venv/bin first on PATH (the mdtui the scripts ask for devices is this one), in a home of
its own (no user configuration), in a directory with known files.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allocator.catalog import CATALOG
from mdtui import completion
from mdtui.cli import THEMES, parser
from mdtui.completion import bash as bash_script
from mdtui.completion import lists as listing
from mdtui.completion import tree
from mdtui.live.sysfs import Sysfs
from mdtui.rig.tree import write_tree
from mdtui.sources.sim import SimSource

from ..conftest import make_kernel
from ..doubles import FakeIoctl

BIN = Path(sys.executable).parent  # .venv/bin: its mdtui is the one under test
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in p._actions if isinstance(a, argparse._SubParsersAction))


def option_strings(p: argparse.ArgumentParser, prefix: str = "-") -> set[str]:
    """What the parser takes, as the user may type it (hidden options left out)."""
    return {s for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings if s.startswith(prefix)}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shells' home and working directory: two files and a directory to complete."""
    home = tmp_path_factory.mktemp("home")
    (home / "lifecycle.txt").write_text("plug hvr950q\n")
    (home / "report.tar.gz").write_bytes(b"")
    (home / "somedir").mkdir()
    return home


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    assert (BIN / "mdtui").exists(), f"run the tests with the venv's python ({BIN / 'mdtui'} missing)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDTUI_", "BASH_", "XDG_")) and k != "ENV"}
    env.update(
        PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONDONTWRITEBYTECODE="1",
        TERM="dumb",
        LC_ALL="C.UTF-8",
    )
    return env


@pytest.fixture(scope="module")
def scripts(home: Path) -> dict[str, Path]:
    out = {}
    for shell in completion.SHELLS:
        out[shell] = home / f"mdtui.{shell}"
        out[shell].write_text(completion.script(shell, parser()))
    return out


@pytest.fixture(scope="module")
def devices() -> list[str]:
    """What --device completes to here: the live machine's media devices, or the
    simulated default world's (this machine's /sys/bus/media, as the 'auto' source)."""
    found = listing.devices()
    assert found, "no media device to complete"
    return found


# -- the command itself ----------------------------------------------------------------------


def test_the_command_prints_what_the_parser_makes(env: dict[str, str], scripts: dict[str, Path]) -> None:
    result = subprocess.run(
        [BIN / "mdtui", "completion", "bash"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == scripts["bash"].read_text()
    assert result.stdout.rstrip().endswith("complete -F _mdtui mdtui")


def test_no_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["completion"])
    assert completion.run(args, sys.stdout) == 2
    assert "name a shell" in capsys.readouterr().err


def test_every_option_of_every_command_is_in_every_script(scripts: dict[str, Path]) -> None:
    """Nothing is listed by hand: what the parser takes, the scripts offer."""
    p = parser()
    for shell, path in scripts.items():
        text = path.read_text()
        for name, sub in [("", p), *subparsers(p).items()]:
            assert name in text
            for s in option_strings(sub, "--"):
                flag = f"-l {s[2:]}" if shell == "fish" else s
                assert flag in text, f"{shell}: {name or 'mdtui'} {s} missing"
        assert not re.search(r"--list(?![\w-])", text.replace("completion --list", "")), f"{shell}: --list offered"


def test_the_values_follow_from_the_parser() -> None:
    """A parser of its own: choices, FILE, DIR, DEVICE, forms with prefixes, a command."""
    p = argparse.ArgumentParser(prog="mdtui")
    sub = p.add_subparsers().add_parser("frob", help="frob it")
    sub.add_argument("--colour", choices=("red", "blue"), help="red or blue")
    sub.add_argument("--out", metavar="FILE")
    sub.add_argument("--into", metavar="DIR")
    sub.add_argument("--device", metavar="DEVICE")
    sub.add_argument("--from", metavar="{here,there,bundle:FILE,ssh:[USER@]HOST}")
    sub.add_argument("--count", type=int, metavar="N")
    sub.add_argument("--quiet", action="store_true")
    sub.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    root = tree.walk(p)
    [frob] = root.subcommands
    assert (frob.name, frob.summary) == ("frob", "frob it")
    values = {o.strings[-1]: o.value for o in frob.options}
    assert values == {
        "--help": None,
        "--colour": tree.Value("choices", ("red", "blue")),
        "--out": tree.Value("file"),
        "--into": tree.Value("dir"),
        "--device": tree.Value("device"),
        "--from": tree.Value("forms", ("here", "there"), (("bundle:", "file"), ("ssh:", "host"))),
        "--count": tree.Value("free"),
        "--quiet": None,
    }
    assert [pos.value.kind for pos in frob.positionals] == ["command"]
    assert "'frob --colour') REPLY='choices red blue'" in bash_script.script(root)


# -- what the scripts ask mdtui for ----------------------------------------------------------


def test_devices_of_the_simulated_default_world() -> None:
    assert listing.sim_devices() == [
        "media0",
        "usb-0000:00:14.0-1",
        "au0828",
        "media1",
        "usb-0000:00:14.0-2",
        "uvcvideo",
    ]


def test_devices_of_a_live_machine(tmp_path: Path) -> None:
    """A sysfs tree with media devices: they are listed (node, bus_info, driver), not the
    simulation's; a node that cannot be opened still gives its name."""
    k = make_kernel("au0828", "snd_usb_audio", plug=("hvr950q",))
    write_tree(k, tmp_path)
    ioctl = FakeIoctl()
    ioctl.follow(k, tmp_path)
    sysfs = Sysfs(tmp_path / "sys", tmp_path / "dev")
    [dev] = SimSource(k).snapshot().media_devices
    assert listing.devices(sysfs, ioctl) == ["media0", dev.info.bus_info, "au0828"]
    (tmp_path / "dev" / "media0").unlink()
    assert listing.devices(sysfs, ioctl) == ["media0"]


def test_no_live_media_device_means_the_simulation(tmp_path: Path) -> None:
    (tmp_path / "sys" / "bus" / "media" / "devices").mkdir(parents=True)
    assert listing.devices(Sysfs(tmp_path / "sys", tmp_path / "dev")) == listing.sim_devices()


def test_list_prints_one_candidate_a_line(capsys: pytest.CaptureFixture[str], devices: list[str]) -> None:
    for what, expected in (("catalog", list(CATALOG)), ("devices", devices)):
        assert completion.run(parser().parse_args(["completion", "--list", what]), sys.stdout) == 0
        assert capsys.readouterr().out.splitlines() == expected


def test_list_says_nothing_on_an_error_or_when_late(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> list[str]:
        raise OSError("no")

    monkeypatch.setattr(listing, "devices", broken)
    assert completion.run(parser().parse_args(["completion", "--list", "devices"]), sys.stdout) == 0
    assert capsys.readouterr() == ("", "")

    def hangs() -> list[str]:
        time.sleep(5)
        return ["media9"]

    monkeypatch.setattr(listing, "devices", hangs)
    monkeypatch.setattr(listing, "LIST_DEADLINE", 0.2)
    start = time.monotonic()
    assert listing.candidates("devices") == []
    assert time.monotonic() - start < 2


# -- bash ------------------------------------------------------------------------------------

#: sets COMP_WORDS as readline splits the line (at blanks, and at COMP_WORDBREAKS' = and :,
#: which are words of their own), then calls the function `complete -p mdtui` names
BASH_DRIVER = r"""
[[ $1 == with ]] && source /usr/share/bash-completion/bash_completion
source "$2"
shift 2
complete -p mdtui
spec=$(complete -p mdtui)
fn=${spec#*-F }
fn=${fn%% *}
compopt() { local IFS=' '; OPTIONS+=" $*"; }
split() {
    local line=$1 w= c i
    COMP_WORDS=()
    for ((i = 0; i < ${#line}; i++)); do
        c=${line:i:1}
        if [[ $c == [[:space:]] ]]; then
            [[ -n $w ]] && COMP_WORDS+=("$w")
            w=
        elif [[ $c == [=:] ]]; then
            [[ -n $w ]] && COMP_WORDS+=("$w")
            COMP_WORDS+=("$c")
            w=
        else
            w+=$c
        fi
    done
    if [[ -n $w || $line == *[[:space:]] ]]; then COMP_WORDS+=("$w"); fi
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
}
for line; do
    COMP_LINE=$line COMP_POINT=${#line} COMPREPLY=() OPTIONS=
    split "$line"
    "$fn" mdtui "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '@@ %s\n' "$line"
    printf '%s\n' "${COMPREPLY[@]}"
    printf '@options%s\n' "$OPTIONS"
done
"""


def run_bash(
    env: dict[str, str], home: Path, script: Path, lines: list[str], with_bash_completion: bool
) -> dict[str, tuple[list[str], list[str]]]:
    """Each line's COMPREPLY (sorted) and the options compopt was given."""
    mode = "with" if with_bash_completion else "alone"
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", mode, str(script), *lines],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    head, *cases = result.stdout.split("@@ ")
    assert head == "complete -F _mdtui mdtui\n"
    out = {}
    for case in cases:
        line, *rest = case.split("\n")
        options = next(r for r in rest if r.startswith("@options"))
        out[line] = (sorted({r for r in rest[: rest.index(options)] if r}), options.split()[1:])
    return out


@pytest.mark.parametrize("with_bash_completion", [False, True], ids=["alone", "with-bash-completion"])
def test_bash(
    env: dict[str, str], home: Path, scripts: dict[str, Path], devices: list[str], with_bash_completion: bool
) -> None:
    p = parser()
    cases = common_cases(p, devices) | {
        "mdtui d": {"dump"},
        "mdtui -": option_strings(p),
        "mdtui dump --format=j": {"json"},
        "mdtui dump --variant m": {"mainline"},
        "mdtui --log-level w": {"warning"},
        "mdtui soak --device=m": {d for d in devices if d.startswith("m")},
        # readline replaces what follows the last colon
        "mdtui dump --device usb-0000:00": {d[len("usb-0000:") :] for d in devices if d.startswith("usb-0000:00")},
        "mdtui --source ss": {"ssh:"},
        "mdtui --source bundle:rep": {"report.tar.gz"},
        "mdtui --source=bundle:l": {"lifecycle.txt"},
        "mdtui --source sim d": {"dump"},  # a value skipped: dump is the subcommand
        "mdtui metrics --textfile so": {"somedir"},
        "mdtui metrics --textfile ": {"somedir"},  # directories only
        "mdtui serve -- --so": {"--source"},  # the served TUI's options
        "mdtui serve -- --source s": {"sim", "ssh:"},
        "mdtui serve -- ": set(),  # no subcommand there
        "mdtui rig -- bas": {"bash"},  # a command
        "mdtui dump --json": set(),
        "mdtui dump --listen": set(),  # metrics' own
    }
    if with_bash_completion:  # the command's own completion, through bash-completion
        cases["mdtui rig -- mdtui dump --format "] = {"text", "json", "dot"}
        cases["mdtui rig --variant v3 -- mdtui --source=b"] = {"bundle:"}
    else:
        cases["mdtui rig -- mdtui dump --format "] = {"lifecycle.txt", "mdtui.bash", "mdtui.fish", "mdtui.zsh"}
    got = run_bash(env, home, scripts["bash"], list(cases), with_bash_completion)
    for line, expected in cases.items():
        replies, _ = got[line]
        if line.startswith("mdtui rig -- bas") or line.endswith(" bas"):
            assert expected <= set(replies), line
            assert all(r.startswith("bas") for r in replies), line
        elif line == "mdtui rig -- mdtui dump --format " and not with_bash_completion:
            assert expected <= set(replies), line
        else:
            assert set(replies) == expected, line
    assert "nospace" in got["mdtui --source ss"][1]
    assert "nospace" not in got["mdtui dump --format "][1]
    assert "filenames" in got["mdtui dump --script li"][1]


# -- fish ------------------------------------------------------------------------------------

FISH_DRIVER = r"""
source $argv[1]
for line in $argv[2..-1]
    echo "@@ $line"
    complete -C "$line"
end
"""


def common_cases(p: argparse.ArgumentParser, devices: list[str]) -> dict[str, set[str]]:
    """Lines whose completions fish and zsh must both offer, and what they must offer."""
    return {
        "mdtui ": set(subparsers(p)),
        "mdtui dump --": option_strings(subparsers(p)["dump"], "--"),
        "mdtui rig -": option_strings(subparsers(p)["rig"]),
        "mdtui dump --format ": {"text", "json", "dot"},
        "mdtui compare --format ": {"text", "json"},
        "mdtui --theme ": set(THEMES),
        "mdtui completion ": {"bash", "zsh", "fish"},
        "mdtui dump --device ": set(devices),
        "mdtui --source ": {"sim", "live", "auto", "bundle:", "ssh:"},
        "mdtui soak --source ": {"sim", "live", "rig", "ssh:"},
        "mdtui dump --script li": {"lifecycle.txt"},
        "mdtui dump --script lifecycle.txt --form": {"--format"},
        "mdtui rig --script lifecycle.txt bas": {"bash"},
    }


def test_fish(env: dict[str, str], home: Path, scripts: dict[str, Path], devices: list[str]) -> None:
    p = parser()
    cases = common_cases(p, devices) | {
        "mdtui dump --format=": {"--format=text", "--format=json", "--format=dot"},
        "mdtui soak --device usb": {d for d in devices if d.startswith("usb")},
        "mdtui --source bundle:rep": {"bundle:report.tar.gz"},
        "mdtui --source sim d": {"dump"},
        "mdtui metrics --textfile so": {"somedir/"},
        "mdtui serve -- --so": {"--source"},
        "mdtui serve --port 1 -- --theme dr": {"dracula"},
        "mdtui serve -- ": set(),
        "mdtui rig -- mdtui dump --format ": {"text", "json", "dot"},
    }
    result = subprocess.run(
        ["fish", "-c", FISH_DRIVER, str(scripts["fish"]), *cases],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    got = {}
    for case in result.stdout.split("@@ ")[1:]:
        line, *rest = case.split("\n")
        got[line] = {r.split("\t")[0] for r in rest if r}
    for line, expected in cases.items():
        if line.endswith(" bas"):
            assert expected <= got[line] and all(c.startswith("bas") for c in got[line]), line
        else:
            assert got[line] == expected, line


# -- zsh -------------------------------------------------------------------------------------

ZSH_SETUP = r"""
PS1='%% '
unsetopt zle_bracketed_paste auto_list auto_menu list_beep beep 2>/dev/null
fpath=({dir} $fpath)
autoload -Uz compinit
compinit -u -d {dir}/.zcompdump
compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits
  builtin compadd -A __hits "$@"
  (( $#__hits )) && print -rl -- ${^__hits} >> {dir}/hits
  builtin compadd "$@"
}
tab() {
  zle complete-word
  print -r -- @@done >> {dir}/hits
}
zle -N tab
bindkey '^I' tab
print -r -- READY""READY
"""


class Zsh:
    """An interactive ``zsh -f`` on a pseudo-terminal: Tab pressed after a line, the
    candidates the completion functions hand to compadd read back."""

    def __init__(self, env: dict[str, str], home: Path, fpath: Path) -> None:
        self.dir = fpath
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: zsh, in the home
            os.chdir(home)
            os.execvpe("zsh", ["zsh", "-f", "-i"], env | {"ZDOTDIR": str(fpath)})
        self.output = b""
        self.write(ZSH_SETUP.replace("{dir}", str(fpath)))
        self.read_until(b"READYREADY")

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read_until(self, marker: bytes, timeout: float = 20, done: Path | None = None) -> None:
        """Read the terminal until ``marker`` is printed (or the file ``done`` ends with it)."""
        end = time.monotonic() + timeout
        start = len(self.output)
        while marker not in (self.output[start:] if done is None else done.read_bytes()[-len(marker) - 1 :]):
            left = end - time.monotonic()
            assert left > 0, f"zsh: no {marker!r} in {self.output[start:]!r}"
            if select.select([self.fd], [], [], min(left, 0.01))[0]:
                self.output += os.read(self.fd, 65536)

    def complete(self, n: int, line: str) -> set[str]:
        """Tab pressed after ``line``: its candidates (Tab is a widget that completes, then
        says so in the file the candidates go to)."""
        hits = self.dir / "hits"
        hits.write_bytes(b"")
        self.write(line + "\t")
        self.read_until(b"@@done\n", done=hits)
        self.write(f"\x15print -r -- END{n}''END\n")  # Ctrl-U: the line is dropped
        self.read_until(f"END{n}END".encode())
        return set(hits.read_text().split("\n")) - {"", "@@done"}

    def close(self) -> str:
        self.write("exit\n")
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        return self.output.decode(errors="replace")


def test_zsh_script_parses_and_registers(env: dict[str, str], scripts: dict[str, Path], home: Path) -> None:
    check = subprocess.run(["zsh", "-n", scripts["zsh"]], capture_output=True, text=True, timeout=30, check=False)
    assert (check.returncode, check.stderr) == (0, "")
    sourced = subprocess.run(
        [
            "zsh",
            "-f",
            "-c",
            f"autoload -Uz compinit; compinit -u -D; source {scripts['zsh']}; print -r -- $_comps[mdtui]",
        ],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (sourced.returncode, sourced.stdout, sourced.stderr) == (0, "_mdtui\n", "")


def test_zsh(env: dict[str, str], home: Path, scripts: dict[str, Path], devices: list[str], tmp_path: Path) -> None:
    assert shutil.which("zsh")
    shutil.copy(scripts["zsh"], tmp_path / "_mdtui")  # found in $fpath, as installed
    p = parser()
    cases = {
        "mdtui ": set(subparsers(p)),
        "mdtui dump --": option_strings(subparsers(p)["dump"], "--"),
        "mdtui dump --format ": {"text", "json", "dot"},
        "mdtui dump --format=": {"text", "json", "dot"},
        "mdtui compare --format ": {"text", "json"},
        "mdtui --theme ": set(THEMES),
        "mdtui completion ": {"bash", "zsh", "fish"},
        "mdtui dump --device ": set(devices),
        "mdtui soak --device usb": {d for d in devices if d.startswith("usb")},
        "mdtui --source ": {"sim", "live", "auto", "bundle:", "ssh:"},
        "mdtui soak --source ": {"sim", "live", "rig", "ssh:"},
        "mdtui --source bundle:rep": {"report.tar.gz"},
        "mdtui dump --script li": {"lifecycle.txt"},
        "mdtui --source sim d": {"dump"},
        "mdtui dump --script lifecycle.txt --form": {"--format"},
        "mdtui metrics --textfile so": {"somedir"},
        "mdtui serve -- --so": {"--source"},
        "mdtui serve --port 1 -- --theme dr": {"dracula"},
        "mdtui rig -- mdtui dump --format ": {"text", "json", "dot"},
        "mdtui rig --script lifecycle.txt -- mdtui --log-level w": {"warning"},
    }
    zsh = Zsh(env, home, tmp_path)
    try:
        got = {line: zsh.complete(n, line) for n, line in enumerate(cases)}
        commands = zsh.complete(len(cases), "mdtui rig bas")
    finally:
        output = zsh.close()
    for line, expected in cases.items():
        assert got[line] == expected, line
    assert "bash" in commands and all(c.startswith("bas") for c in commands)
    for error in ("not found", "parse error", "_arguments:", "bad pattern", "no such"):
        assert error not in output, output
