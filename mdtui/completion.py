"""``mdtui completion bash|zsh|fish``: a shell completion script, generated from the one
argparse parser (``mdtui.cli.parser()``).

The parser is walked (``walk``): its subcommands, each one's options (their strings, help,
choices and metavar) and positionals; nothing it knows is listed here again.  What a value
completes to follows from the parser: choices complete to themselves; a metavar FILE or PATH
to file names, DIR to directories, DEVICE to the media devices of the machine; a metavar of
forms such as ``{sim,live,auto,bundle:FILE,ssh:[USER@]HOST[:PORT]}`` to its words, and after
``bundle:`` to a file, after ``ssh:`` to a host; a REMAINDER positional (``rig -- COMMAND``) to
a command line of its own.  The media devices are asked of mdtui when Tab is pressed: the
scripts run the hidden ``mdtui completion --list devices`` (``--list catalog``: the simulated
kernel's catalog names, for lifecycle scripts), which prints one candidate per line and
nothing at all on any error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from .live.sysfs import Sysfs

#: the ioctl seam of mdtui/live/media.py: (fd, request, buffer)
Ioctl = Callable[[int, int, object], object]

SHELLS = ("bash", "zsh", "fish")
LISTS = ("devices", "catalog")
#: how long ``--list`` may take before it gives up (and prints nothing)
LIST_DEADLINE = 2.0

DESCRIPTION = """\
Print a completion script for bash, zsh or fish, generated from mdtui's own command line: it
completes the subcommands, their options, the values of options with choices (--format,
--variant, --theme, ...), file names for FILE and PATH, the media devices of this machine for
--device (asked of mdtui when Tab is pressed: the live machine when /sys/bus/media has
devices, else the simulated default world), the forms of --source (sim, live, auto, bundle:FILE,
ssh:HOST) and the command after 'mdtui rig --'.

examples:
  mdtui completion bash > ~/.local/share/bash-completion/completions/mdtui
  mdtui completion zsh > ~/.zfunc/_mdtui      (with fpath=(~/.zfunc $fpath) before compinit)
  mdtui completion fish > ~/.config/fish/completions/mdtui.fish
  source <(mdtui completion bash)             (this shell only; zsh too, after compinit)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``mdtui completion``: the shell, and the hidden ``--list``."""
    p.add_argument(
        "shell",
        nargs="?",
        choices=SHELLS,
        help="the shell to print the script for: bash (bash-completion 2 or none), zsh (compsys) or fish",
    )
    # what the scripts ask of mdtui when Tab is pressed; not for people
    p.add_argument("--list", choices=LISTS, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, out: IO[str] | None) -> int:
    """Print the script (or, with ``--list``, the candidates); 2 when no shell is named."""
    if args.list is not None:
        with contextlib.suppress(Exception):  # nothing, not a traceback, on a closed stdout too
            for line in candidates(args.list):
                out.write(line + "\n")  # type: ignore[union-attr]
        return 0
    if args.shell is None:
        print("mdtui completion: name a shell: bash, zsh or fish", file=sys.stderr)
        return 2
    if out is None:  # started with stdout closed (>&-)
        print("mdtui completion: no standard output to write to (EBADF)", file=sys.stderr)
        return 1
    from .cli import output_failed, parser

    try:
        out.write(script(args.shell, parser()))
        out.flush()
    except OSError as exc:  # | head, /dev/full
        return output_failed("completion", exc, out)
    return 0


def script(shell: str, p: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (bash, zsh or fish) of the parser ``p``."""
    root = walk(p)
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](root)


# -- what the scripts ask for when Tab is pressed ------------------------------------------


class _Late(Exception):
    """The deadline passed."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise ``_Late`` in the block after ``seconds`` (main thread only; elsewhere no limit)."""

    def late(_signum: int, _frame: object) -> None:
        raise _Late

    try:
        previous = signal.signal(signal.SIGALRM, late)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def candidates(what: str) -> list[str]:
    """``devices``: each media device's node name, bus_info and driver; ``catalog``: the
    simulated kernel's catalog names.  Empty on any error or after ``LIST_DEADLINE``."""
    try:
        with _deadline(LIST_DEADLINE):
            if what == "catalog":
                from allocator.catalog import CATALOG

                return list(CATALOG)
            if what == "devices":
                return devices()
    except Exception:  # _Late too
        pass
    return []


def devices(sysfs: Sysfs | None = None, ioctl: Ioctl | None = None) -> list[str]:
    """The media devices' names as ``--device`` takes them, as the source 'auto' would read
    them (mdtui/cli.py): this machine when /sys/bus/media has devices, else the simulated
    default world."""
    from .live.sysfs import Sysfs

    live = sysfs or Sysfs()
    paths = live.media_devices()
    found = live_devices(live, paths, ioctl) if paths else sim_devices()
    return list(dict.fromkeys(n for n in found if n))


def sim_devices() -> list[str]:
    """The default simulated world's media devices: node name, bus_info, driver."""
    from .sources.sim import build

    source, _ = build()
    out = []
    for dev in source.snapshot().media_devices:
        if dev.devnode:
            out.append(os.path.basename(dev.devnode))
        out += [dev.info.bus_info, dev.info.driver]
    return out


def live_devices(sysfs: Sysfs, paths: list[Path], ioctl: Ioctl | None = None) -> list[str]:
    """This machine's media devices: the node name from sysfs, bus_info and driver from
    MEDIA_IOC_DEVICE_INFO when the node can be opened (often root or the video group only)."""
    from .live import media

    out = []
    for path in paths:
        name = sysfs.uevent(path).get("DEVNAME")
        if not name or name.startswith("/") or ".." in name.split("/"):
            continue
        out.append(os.path.basename(name))
        node = str(sysfs.dev / name)
        try:
            fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            info = media.device_info(fd, node, ioctl or media.kernel_ioctl)
            out += [info.bus_info, info.driver]
        except Exception:  # a candidate less, never an error
            pass
        finally:
            os.close(fd)
    return out


# -- the parser, walked --------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """How an argument's value completes.  ``kind``: choices (``words``), file, dir, device,
    host, forms (``words``, and ``prefixed``: PREFIX then a value of a kind, e.g.
    ``("bundle:", "file")``), command (a command line of its own), self (the program's own
    options again: serve's ``-- MDTUI_ARGS``), subcommands, or free."""

    kind: str
    words: tuple[str, ...] = ()
    prefixed: tuple[tuple[str, str], ...] = ()

    def spec(self) -> str:
        """The value as the bash and fish scripts' helpers take it: ``choices a b``,
        ``forms sim live bundle:%file``, ``file``..."""
        parts = [self.kind, *self.words, *(f"{p}%{k}" for p, k in self.prefixed)]
        return " ".join(parts)


@dataclass(frozen=True)
class Option:
    """An option: its strings (``-f``, ``--follow``), help, value (None: a flag) and whether
    it may be given again (``action="append"``)."""

    strings: tuple[str, ...]
    help: str
    value: Value | None
    repeat: bool
    exits: bool  # --help, --version: nothing else goes with it
    metavar: str


@dataclass(frozen=True)
class Positional:
    """A positional argument: its metavar, dest, help, value and whether it takes the rest."""

    name: str  # its metavar
    dest: str
    help: str
    value: Value
    many: bool  # takes every word from here on (nargs *, +, REMAINDER)


@dataclass(frozen=True)
class Command:
    """A parser: the program or one of its subcommands."""

    name: str
    summary: str
    description: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[Command, ...]


#: metavars whose values are names of things the shells can list
METAVAR_KINDS = {"FILE": "file", "PATH": "file", "DIR": "dir", "DEVICE": "device"}
#: in a form's placeholder (bundle:FILE, ssh:[USER@]HOST[:PORT]): what follows the prefix
PLACEHOLDER_KINDS = (("FILE", "file"), ("PATH", "file"), ("HOST", "host"))


def help_text(action: argparse.Action, prog: str = "mdtui") -> str:
    """An action's help with ``%(default)s`` and the like filled in, on one line."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    text = argparse.HelpFormatter(prog)._expand_help(action)
    return " ".join(text.split())


def metavar_of(action: argparse.Action) -> str:
    """The metavar argparse shows for an action's value."""
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def value_of(action: argparse.Action, prog: str = "mdtui") -> Value | None:
    """How an action's value completes; None when it takes none (a flag)."""
    if action.nargs == 0:
        return None
    if action.nargs == argparse.REMAINDER:  # -- COMMAND, or (serve's -- MDTUI_ARGS) mdtui's own options
        return Value("self" if prog.split()[0].upper() in metavar_of(action) else "command")
    if isinstance(action, argparse._SubParsersAction):
        return Value("subcommands", tuple(action.choices))
    if action.choices is not None:
        return Value("choices", tuple(str(c) for c in action.choices))
    metavar = metavar_of(action)
    if metavar.startswith("{") and metavar.endswith("}"):
        words, prefixed = [], []
        for form in metavar[1:-1].split(","):
            prefix, colon, placeholder = form.partition(":")
            if not colon:
                words.append(form)
                continue
            kind = next((k for key, k in PLACEHOLDER_KINDS if key in placeholder), "free")
            prefixed.append((prefix + colon, kind))
        return Value("forms", tuple(words), tuple(prefixed))
    return Value(METAVAR_KINDS.get(metavar, "free"))


def walk(p: argparse.ArgumentParser, name: str | None = None, summary: str = "") -> Command:
    """The parser as a tree of commands (hidden options left out)."""
    options, positionals, subcommands = [], [], []
    for action in p._actions:
        if action.help == argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            options.append(
                Option(
                    strings=tuple(action.option_strings),
                    help=help_text(action, p.prog),
                    value=value_of(action, p.prog),
                    repeat=isinstance(action, (argparse._AppendAction, argparse._CountAction)),
                    exits=isinstance(action, (argparse._HelpAction, argparse._VersionAction)),
                    metavar=metavar_of(action),
                )
            )
            continue
        value = value_of(action, p.prog)
        assert value is not None
        many = action.nargs in ("*", "+", argparse.REMAINDER)
        positionals.append(Positional(metavar_of(action), action.dest, help_text(action, p.prog), value, many))
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                subcommands.append(walk(sub, sub_name, helps.get(sub_name, "")))
    return Command(
        name=name if name is not None else p.prog,
        summary=summary,
        description=p.description or "",
        options=tuple(options),
        positionals=tuple(positionals),
        subcommands=tuple(subcommands),
    )


def short(text: str, limit: int = 90) -> str:
    """A help text shortened for a completion menu: no parenthesized asides, its first
    clause, at most ``limit`` characters."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\s*\([^()]*\)", "", text)
    text = text.split("; ")[0].strip().rstrip(":,")
    if len(text) > limit:
        text = text[: limit - 3].rsplit(" ", 1)[0] + "..."
    return text


def _version() -> str:
    from . import __version__

    return __version__


def _sq(text: str) -> str:
    """``text`` single-quoted for bash, zsh and fish (fish: no backslash or quote inside)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_sq(text: str) -> str:
    """``text`` single-quoted for fish (a backslash and a quote escaped with a backslash)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _commands(root: Command) -> list[tuple[str, Command]]:
    """Every command with the key the scripts name it by: '' for the program itself."""
    return [("", root), *((c.name, c) for c in root.subcommands)]


def _value_cases(root: Command) -> dict[str, list[str]]:
    """Value spec → the ``"COMMAND OPTION"`` keys that take such a value."""
    cases: dict[str, list[str]] = {}
    for key, cmd in _commands(root):
        for opt in cmd.options:
            if opt.value is not None:
                for s in opt.strings:
                    cases.setdefault(opt.value.spec(), []).append(f"{key} {s}")
    return cases


# -- bash ------------------------------------------------------------------------------------

BASH = r"""# bash completion for mdtui (@VERSION@), generated from its command line parser by
# `mdtui completion bash`: regenerate it rather than edit it.  Install it with
#   mdtui completion bash > ~/.local/share/bash-completion/completions/mdtui
# (loaded on demand by bash-completion), or source it from ~/.bashrc:
#   source <(mdtui completion bash)
# With bash-completion loaded, file names and the command after 'mdtui rig --' complete as
# bash-completion completes them; without it, with compgen.

# _mdtui_value COMMAND OPTION: REPLY is how the value of OPTION (of COMMAND: '' before any)
# completes, empty when OPTION takes none
_mdtui_value()
{
    case "$1 $2" in
@VALUES@
        *) REPLY= ;;
    esac
}

# _mdtui_positional COMMAND N: REPLY is how COMMAND's positional argument N (from 0) completes
_mdtui_positional()
{
    case "$1 $2" in
@POSITIONALS@
        *) REPLY= ;;
    esac
}

# _mdtui_options COMMAND: REPLY is the options COMMAND takes
_mdtui_options()
{
    case $1 in
@OPTIONS@
        *) REPLY= ;;
    esac
}

# the words of the command line up to the cursor, with what readline split at = and :
# (COMP_WORDBREAKS) joined again: words, cword, cur (the word being completed), rl (the
# piece of it readline replaces), starts (each word's index in COMP_WORDS)
_mdtui_split()
{
    local line=${COMP_LINE:0:COMP_POINT} rest w i glued
    words=() starts=()
    for ((i = 0; i <= COMP_CWORD; i++)); do
        rest=${line#"${line%%[![:space:]]*}"}
        glued=$((i > 0 && ${#rest} == ${#line}))
        if ((i == COMP_CWORD)); then w=$rest; else w=${COMP_WORDS[i]}; fi
        line=${rest:${#w}}
        if ((glued)); then
            words[${#words[@]} - 1]+=$w
        else
            words+=("$w") starts+=("$i")
        fi
    done
    cword=$((${#words[@]} - 1))
    cur=${words[cword]}
    rl=$w
    [[ $rl == *[!=:]* ]] || rl=
}

# the arguments that start with $val, added to COMPREPLY
_mdtui_add()
{
    local c
    for c; do
        [[ $c == "$val"* ]] && COMPREPLY+=("$c")
    done
}

# file names (-d: directories) that start with $val
_mdtui_files()
{
    local cur=$val
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
    else
        compopt -o filenames 2>/dev/null
        mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen "${1:--f}" -- "$cur")
    fi
}

# what mdtui itself lists (devices, catalog): the mdtui being completed is asked
_mdtui_list()
{
    local prog=${words[0]/#\~/$HOME}
    local -a found
    mapfile -t found < <("$prog" completion --list "$1" 2>/dev/null </dev/null)
    _mdtui_add "${found[@]}"
}

# _mdtui_complete SPEC: the values SPEC describes that start with $val, into COMPREPLY
_mdtui_complete()
{
    local -a spec
    read -ra spec <<<"$1"
    local c p v n
    case ${spec[0]} in
        choices | subcommands) _mdtui_add "${spec[@]:1}" ;;
        file) _mdtui_files ;;
        dir) _mdtui_files -d ;;
        device) _mdtui_list devices ;;
        catalog) _mdtui_list catalog ;;
        host) mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -A hostname -- "$val") ;;
        executable) mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -c -- "$val") ;;
        forms)
            for c in "${spec[@]:1}"; do
                if [[ $c != *%* ]]; then
                    _mdtui_add "$c"
                    continue
                fi
                p=${c%\%*}
                if [[ $val == "$p"* ]]; then
                    v=$val n=${#COMPREPLY[@]}
                    val=${v#"$p"}
                    _mdtui_complete "${c#*\%}"
                    val=$v
                    for ((; n < ${#COMPREPLY[@]}; n++)); do COMPREPLY[n]=$p${COMPREPLY[n]}; done
                else
                    _mdtui_add "$p"
                fi
            done
            [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == *: ]] && compopt -o nospace 2>/dev/null
            ;;
    esac
}

_mdtui()
{
    local REPLY cur cword rl cmd= npos=0 skip= dashdash= nested= self= i w
    local -a words starts
    COMPREPLY=()
    _mdtui_split
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ -n $skip ]]; then
            skip=
        elif [[ $w == -- && -z $dashdash ]]; then
            dashdash=1
            _mdtui_positional "$cmd" "$npos"
            [[ $REPLY == command ]] && nested=$((i + 1)) && break
            [[ $REPLY == self ]] && cmd= npos=0 dashdash= self=1
        elif [[ $w == -?* && -z $dashdash ]]; then
            [[ $w == *=* ]] && continue
            _mdtui_value "$cmd" "$w"
            [[ -n $REPLY ]] && skip=1
        else
            _mdtui_positional "$cmd" "$npos"
            case $REPLY in
                command) nested=$i && break ;;
                self) cmd= npos=0 self=1 && ((i--)) ;;
                subcommands*) [[ -z $self ]] && cmd=$w npos=0 dashdash= ;;
                *) ((npos++)) ;;
            esac
        fi
    done
    if [[ -n $nested ]] && declare -F _command_offset >/dev/null; then
        _command_offset "${starts[nested]}"
        return
    fi
    local val=$cur spec
    if [[ -n $nested ]]; then
        spec=file
        ((nested == cword)) && spec=executable
    elif [[ -n $skip ]]; then
        _mdtui_value "$cmd" "${words[cword - 1]}"
        spec=$REPLY
    elif [[ $cur == -* && -z $dashdash ]]; then
        if [[ $cur == -*=* ]]; then
            _mdtui_value "$cmd" "${cur%%=*}"
            spec=$REPLY val=${cur#*=}
        else
            _mdtui_options "$cmd"
            spec="choices $REPLY"
        fi
    else
        _mdtui_positional "$cmd" "$npos"
        spec=$REPLY
        [[ -n $self && $spec == subcommands* ]] && spec=
        if [[ $spec == command ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset "${starts[cword]}"
                return
            fi
            spec=executable
        fi
    fi
    _mdtui_complete "$spec"
    # each candidate is a whole value of $cur; readline replaces only its last piece ($rl)
    local pre=${cur:0:${#cur}-${#val}} n=$((${#cur} - ${#rl}))
    for i in "${!COMPREPLY[@]}"; do
        w=$pre${COMPREPLY[i]}
        COMPREPLY[i]=${w:n}
    done
}

complete -F _mdtui mdtui
"""


def _bash_case(pattern_words: list[str], body: str) -> str:
    patterns = " | ".join(_sq(w) for w in pattern_words)
    return f"        {patterns}) {body} ;;"


def bash(root: Command) -> str:
    """The bash script: the parser's tree as three lookups, and the functions using them."""
    values = [_bash_case(keys, f"REPLY={_sq(spec)}") for spec, keys in _value_cases(root).items()]
    positionals, options = [], []
    for key, cmd in _commands(root):
        for n, pos in enumerate(cmd.positionals):
            if pos.many:
                positionals.append(f"        {_sq(key + ' ')}*) REPLY={_sq(pos.value.spec())} ;;")
            else:
                positionals.append(_bash_case([f"{key} {n}"], f"REPLY={_sq(pos.value.spec())}"))
        strings = [s for opt in cmd.options for s in opt.strings]
        options.append(_bash_case([key], f"REPLY={_sq(' '.join(strings))}"))
    return (
        BASH.replace("@VERSION@", _version())
        .replace("@VALUES@", "\n".join(values))
        .replace("@POSITIONALS@", "\n".join(positionals))
        .replace("@OPTIONS@", "\n".join(options))
    )


# -- zsh -------------------------------------------------------------------------------------

ZSH = r"""#compdef mdtui
# zsh completion for mdtui (@VERSION@), generated from its command line parser by
# `mdtui completion zsh`: regenerate it rather than edit it.  Install it as _mdtui in a
# directory of $fpath, before compinit runs:
#   mdtui completion zsh > ~/.zfunc/_mdtui    (and in ~/.zshrc: fpath=(~/.zfunc $fpath))
# or source it from ~/.zshrc after compinit:  source <(mdtui completion zsh)

# what mdtui itself lists (devices, catalog): the mdtui being completed is asked
_mdtui_list() {
  local -a found expl
  local prog=${_mdtui_prog:-mdtui}
  found=(${(f)"$(${prog/#\~/$HOME} completion --list $1 2>/dev/null </dev/null)"})
  _wanted $1 expl "${2:-$1}" compadd -a found
}

# the command a subcommand runs (rig -- COMMAND), completed as zsh completes it alone
_mdtui_command() {
  if [[ $words[1] == -- ]]; then
    shift words
    (( CURRENT-- ))
  fi
  _normal
}

# the program's own options again (serve -- MDTUI_ARGS): words[1] is skipped as a command
# name, and is -- only when -- was not taken as the end of options
_mdtui_self() {
  if [[ $words[1] != -- ]]; then
    words=(-- "$words[@]")
    (( CURRENT++ ))
  fi
  _mdtui_options
}

# words, and PREFIX%KIND forms: bundle:%file completes bundle:, then a file after it
_mdtui_forms() {
  local c
  local -a plain prefixes
  for c in "$@"; do
    if [[ $c == *%* ]]; then
      if compset -P "${(b)c%\%*}"; then
        case ${c#*\%} in
          file) _files ;;
          dir) _files -/ ;;
          host) _hosts ;;
          *) _message -e values "${c%\%*}..." ;;
        esac
        return
      fi
      prefixes+=(${c%\%*})
    else
      plain+=($c)
    fi
  done
  compadd -a plain
  compadd -S '' -a prefixes
}

@FUNCTIONS@

_mdtui() {
  local _mdtui_prog=$words[1]
  local curcontext=$curcontext state line ret=1
  typeset -A opt_args
  _arguments -C -S \
@ROOT@
    '(-)*:: :->command' && ret=0
  if [[ $state == command ]]; then
    curcontext=${curcontext%:*:*}:mdtui-$words[1]:
    case $words[1] in
@DISPATCH@
    esac
  fi
  return ret
}

_mdtui_commands() {
  local -a commands
  commands=(
@COMMANDS@
  )
  _describe -t commands 'mdtui command' commands
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _mdtui "$@"
else
  compdef _mdtui mdtui
fi
"""


def _zsh_escape(text: str) -> str:
    """Text for an _arguments spec's [explanation] or :message: part."""
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_action(value: Value) -> str:
    if value.kind in ("choices", "subcommands"):
        return "(" + " ".join(re.sub(r"([\\()\s])", r"\\\1", w) for w in value.words) + ")"
    if value.kind == "file":
        return "_files"
    if value.kind == "dir":
        return "_files -/"
    if value.kind == "host":
        return "_hosts"
    if value.kind == "device":
        return " _mdtui_list devices 'media device'"  # a space first: called with these arguments alone
    if value.kind == "catalog":
        return " _mdtui_list catalog 'catalog name'"
    if value.kind == "forms":
        return " _mdtui_forms " + " ".join(value.spec().split()[1:]).replace(":", "\\:")  # : ends an action
    if value.kind == "command":
        return "_normal"
    return " "


def _zsh_message(metavar: str, name: str) -> str:
    """An argument's name in zsh's messages: its metavar, or ``name`` for a list of choices."""
    return _zsh_escape(name if metavar.startswith("{") else metavar)


def _zsh_specs(cmd: Command) -> list[str]:
    """The _arguments specs of a command's options and (non-subcommand) positionals."""
    specs = []
    for opt in cmd.options:
        exclusion = "(- *)" if opt.exits else "(" + " ".join(opt.strings) + ")" if len(opt.strings) > 1 else ""
        for s in opt.strings:
            head = ("*" if opt.repeat else "") + s
            text = f"[{_zsh_escape(short(opt.help))}]"
            if opt.value is None:
                specs.append(f"{exclusion}{head}{text}")
            else:
                sep = "=" if s.startswith("--") else "+"
                message = _zsh_message(opt.metavar, opt.strings[-1].lstrip("-"))
                specs.append(f"{exclusion}{head}{sep}{text}:{message}:{_zsh_action(opt.value)}")
    for n, pos in enumerate(cmd.positionals, 1):
        if pos.value.kind == "subcommands":
            specs.append("(-)1: :_mdtui_commands")  # (-): no option of this parser after it
        elif pos.value.kind == "command":
            specs.append("(-)*::command: _mdtui_command")
        elif pos.value.kind == "self":
            specs.append("(-)*::options: _mdtui_self")
        elif pos.many:
            specs.append(f"*:{_zsh_message(pos.name, pos.dest)}:{_zsh_action(pos.value)}")
        else:
            specs.append(f"{n}:{_zsh_message(pos.name, pos.dest)}:{_zsh_action(pos.value)}")
    return specs


def _zsh_function_name(name: str) -> str:
    return "_mdtui_" + re.sub(r"\W", "_", name)


def zsh(root: Command) -> str:
    """The zsh script: _arguments specs for the program and each subcommand."""
    functions = []
    dispatch = []
    for cmd in root.subcommands:
        fn = _zsh_function_name(cmd.name)
        body = " \\\n".join("    " + _sq(s) for s in _zsh_specs(cmd))
        functions.append(f"{fn}() {{\n  _arguments -S \\\n{body}\n}}")
        dispatch.append(f"      {_sq(cmd.name)}) {fn} && ret=0 ;;")
    root_specs = [s for s in _zsh_specs(root) if s != "(-)1: :_mdtui_commands"]
    body = " \\\n".join("    " + _sq(s) for s in root_specs)
    functions.append(
        f"# the program's own options (serve -- MDTUI_ARGS)\n_mdtui_options() {{\n  _arguments -S \\\n{body}\n}}"
    )
    commands = [f"    {_sq(c.name + ':' + short(c.summary))}" for c in root.subcommands]
    return (
        ZSH.replace("@VERSION@", _version())
        .replace("@FUNCTIONS@", "\n\n".join(functions))
        .replace("@ROOT@", "".join(f"    {_sq(s)} \\\n" for s in [*root_specs, "(-)1: :_mdtui_commands"]).rstrip("\n"))
        .replace("@DISPATCH@", "\n".join(dispatch))
        .replace("@COMMANDS@", "\n".join(commands))
    )


# -- fish ------------------------------------------------------------------------------------

FISH = r"""# fish completion for mdtui (@VERSION@), generated from its command line parser by
# `mdtui completion fish`: regenerate it rather than edit it.  Install it with
#   mdtui completion fish > ~/.config/fish/completions/mdtui.fish

# the subcommand on the command line ('' before one), then, when the subcommand runs a
# command of its own (rig -- COMMAND), '--' and that command's words (serve -- MDTUI_ARGS:
# '--self', mdtui and the words after --)
function __mdtui_scan
    set -l tokens (commandline -opc)
    set -l cmd ''
    set -l npos 0
    set -l i 2
    set -l dashdash
    while test $i -le (count $tokens)
        set -l t $tokens[$i]
        set i (math $i + 1)
        if test "x$t" = x-- -a -z "$dashdash"
            set dashdash 1
            if contains -- "$cmd $npos" @COMMAND_POSITIONALS@
                printf '%s\n' "$cmd" -- $tokens[$i..-1]
                return
            else if contains -- "$cmd $npos" @SELF_POSITIONALS@
                printf '%s\n' "$cmd" --self $tokens[1] $tokens[$i..-1]
                return
            end
        else if string match -q -- '-?*' $t; and test -z "$dashdash"
            if not string match -q -- '*=*' $t; and contains -- "$cmd $t" @VALUE_OPTIONS@
                set i (math $i + 1)
            end
        else if test -z "$cmd"
            set cmd $t
            set dashdash
        else if contains -- "$cmd $npos" @COMMAND_POSITIONALS@
            printf '%s\n' "$cmd" -- $tokens[(math $i - 1)..-1]
            return
        else if contains -- "$cmd $npos" @SELF_POSITIONALS@
            printf '%s\n' "$cmd" --self $tokens[1] $tokens[(math $i - 1)..-1]
            return
        else
            set npos (math $npos + 1)
        end
    end
    echo $cmd
    # the command's first word being typed (rig media-c<Tab>)
    if test -z "$dashdash"; and contains -- "$cmd $npos" @COMMAND_POSITIONALS@
        string match -q -- '-*' (commandline -ct); or echo --
    end
end

# whether the subcommand is $argv[1] ('': none yet), its own options still being given
function __mdtui_is
    set -l scan (__mdtui_scan)
    test "$scan[1]" = "$argv[1]"; and not set -q scan[2]
end

# completes the command a subcommand runs (rig -- COMMAND) as fish completes it alone
function __mdtui_nested
    set -l scan (__mdtui_scan)
    set -q scan[2]; or return 1
    test (count $argv) -eq 0; and return 0
    set -l cur (commandline -ct)
    if test "$scan[2]" = --self; and not set -q scan[4]; and not string match -q -- '-*' "$cur"
        return 0  # serve -- MDTUI_ARGS: the TUI's options, no subcommand
    else if not set -q scan[3]
        __fish_complete_command "$cur"
    else
        __fish_complete_subcommand --commandline $scan[3..-1] "$cur"
    end
end

# what mdtui itself lists (devices, catalog): the mdtui being completed is asked
function __mdtui_list
    set -l prog (commandline -opc)[1]
    set prog (string replace -r -- '^~' $HOME $prog)
    command $prog completion --list $argv[1] 2>/dev/null </dev/null
end

# words, and PREFIX%KIND forms: bundle:%file completes bundle:, then a file after it
function __mdtui_forms
    set -l val (string replace -r -- '^--?[^=]*=' '' (commandline -ct))
    for form in $argv
        set -l parts (string split -m 1 % -- $form)
        if not set -q parts[2]
            echo $form
        else if string match -q -- "$parts[1]*" "$val"
            set -l rest (string sub -s (math (string length -- $parts[1]) + 1) -- "$val")
            switch $parts[2]
                case file
                    __fish_complete_path "$rest" | string replace -r -- '^' $parts[1]
                case dir
                    __fish_complete_directories "$rest" | string replace -r -- '^' $parts[1]
                case host
                    __fish_print_hostnames | string replace -r -- '^' $parts[1]
            end
        else
            echo $parts[1]
        end
    end
end

complete -c mdtui -f
complete -c mdtui -n '__mdtui_nested' -x -a '(__mdtui_nested complete)'
@COMPLETES@
"""


def _fish_value(value: Value) -> str:
    if value.kind in ("choices", "subcommands"):
        return "-x -a " + _fish_sq(" ".join(value.words))
    if value.kind == "file":
        return "-r -F"
    if value.kind == "dir":
        return "-x -a '(__fish_complete_directories (commandline -ct))'"
    if value.kind == "host":
        return "-x -a '(__fish_print_hostnames)'"
    if value.kind == "device":
        return "-x -a '(__mdtui_list devices)'"
    if value.kind == "catalog":
        return "-x -a '(__mdtui_list catalog)'"
    if value.kind == "forms":
        return "-x -a " + _fish_sq("(__mdtui_forms " + " ".join(value.spec().split()[1:]) + ")")
    return "-x"


def fish(root: Command) -> str:
    """The fish script: a scanner of the command line, and a ``complete`` per option."""
    lines = []
    command_positionals = []
    self_positionals = []
    value_options = []
    for key, cmd in _commands(root):
        condition = "-n " + _fish_sq("__mdtui_is " + (key or '""'))
        for opt in cmd.options:
            names = []
            for s in opt.strings:
                if s.startswith("--"):
                    names.append(f"-l {s[2:]}")
                elif len(s) == 2:
                    names.append(f"-s {s[1]}")
                else:
                    names.append(f"-o {s[1:]}")
                if opt.value is not None:
                    value_options.append(f"{key} {s}")
            parts = ["complete -c mdtui", condition, *names]
            if opt.value is not None:
                parts.append(_fish_value(opt.value))
            parts.append(f"-d {_fish_sq(short(opt.help))}")
            lines.append(" ".join(parts))
        for n, pos in enumerate(cmd.positionals):
            if pos.value.kind == "subcommands":
                for sub in root.subcommands:
                    lines.append(
                        f"complete -c mdtui {condition} -x -a {_fish_sq(sub.name)} -d {_fish_sq(short(sub.summary))}"
                    )
            elif pos.value.kind == "command":
                command_positionals.append(f"{key} {n}")
            elif pos.value.kind == "self":
                self_positionals.append(f"{key} {n}")
            else:
                lines.append(f"complete -c mdtui {condition} {_fish_value(pos.value)} -d {_fish_sq(short(pos.help))}")
    return (
        FISH.replace("@VERSION@", _version())
        .replace("@COMMAND_POSITIONALS@", " ".join(_fish_sq(c) for c in command_positionals) or "''")
        .replace("@SELF_POSITIONALS@", " ".join(_fish_sq(c) for c in self_positionals) or "''")
        .replace("@VALUE_OPTIONS@", " ".join(_fish_sq(v) for v in value_options))
        .replace("@COMPLETES@", "\n".join(lines))
    )
