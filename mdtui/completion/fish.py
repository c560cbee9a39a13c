"""The fish script: a scanner of the command line, and a ``complete`` per option."""

from __future__ import annotations

from .tree import Command, Value, commands, fish_sq, short, version

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
        return "-x -a " + fish_sq(" ".join(value.words))
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
        return "-x -a " + fish_sq("(__mdtui_forms " + " ".join(value.spec().split()[1:]) + ")")
    return "-x"


def script(root: Command) -> str:
    """The fish script: a scanner of the command line, and a ``complete`` per option."""
    lines = []
    command_positionals = []
    self_positionals = []
    value_options = []
    for key, cmd in commands(root):
        condition = "-n " + fish_sq("__mdtui_is " + (key or '""'))
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
            parts.append(f"-d {fish_sq(short(opt.help))}")
            lines.append(" ".join(parts))
        for n, pos in enumerate(cmd.positionals):
            if pos.value.kind == "subcommands":
                for sub in root.subcommands:
                    lines.append(
                        f"complete -c mdtui {condition} -x -a {fish_sq(sub.name)} -d {fish_sq(short(sub.summary))}"
                    )
            elif pos.value.kind == "command":
                command_positionals.append(f"{key} {n}")
            elif pos.value.kind == "self":
                self_positionals.append(f"{key} {n}")
            else:
                lines.append(f"complete -c mdtui {condition} {_fish_value(pos.value)} -d {fish_sq(short(pos.help))}")
    return (
        FISH.replace("@VERSION@", version())
        .replace("@COMMAND_POSITIONALS@", " ".join(fish_sq(c) for c in command_positionals) or "''")
        .replace("@SELF_POSITIONALS@", " ".join(fish_sq(c) for c in self_positionals) or "''")
        .replace("@VALUE_OPTIONS@", " ".join(fish_sq(v) for v in value_options))
        .replace("@COMPLETES@", "\n".join(lines))
    )
