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
import sys
from typing import IO

from .lists import LISTS, candidates

SHELLS = ("bash", "zsh", "fish")

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
    from ..cli import output_failed, parser

    try:
        out.write(script(args.shell, parser()))
        out.flush()
    except OSError as exc:  # | head, /dev/full
        return output_failed("completion", exc, out)
    return 0


def script(shell: str, p: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (bash, zsh or fish) of the parser ``p``."""
    from . import bash, fish, zsh
    from .tree import walk

    return {"bash": bash.script, "zsh": zsh.script, "fish": fish.script}[shell](walk(p))
