"""A real OpenSSH server for tests of ``mdtui --source ssh:HOST``: Debian's /usr/sbin/sshd
(package openssh-server) in the foreground on a free port of 127.0.0.1, as the current user,
with throw-away keys, and an ssh client config that reaches it under two host aliases.

    with SshServer(session_env=rig_env()) as server:
        server.run("board-a", "python3", "-V")            # ssh -F CFG board-a python3 -V
        env = {**os.environ, "MDTUI_SSH": server.mdtui_ssh}

sshd runs without the rig's LD_PRELOAD (the testbed would otherwise reach sshd itself);
the sessions get the environment they are given back through ``SetEnv``, so the programs
they start see the rig's simulated /sys and /dev.

What a session sees.  sshd builds a session's environment itself (USER, HOME, PATH from a
compiled-in default, SSH_CLIENT, ...), adds the ``SetEnv`` values, and runs the command
with the user's login shell as ``SHELL -c COMMAND``.  Debian's bash then reads ~/.bashrc
when it is started by sshd (SSH_SOURCE_BASHRC), and root's .bashrc here prepends pyenv's
and cargo's folders to PATH: a ``SetEnv PATH`` alone does not win.  So each session gets a
HOME of its own, an empty folder in the server's temporary folder, by default
(``session_env={"HOME": ...}`` overrides it).  /etc/bash.bashrc is read too, but Debian's
returns at once in a shell that is not interactive; /etc/environment is read only by PAM,
which is off.

sshd_config takes only the first ``SetEnv`` line (and the first value of a name on it):
every variable goes on one line, each argument double-quoted with backslash and double
quote escaped, which keeps spaces, tabs, quotes, ``#`` and ``$`` as they are.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

SSHD = "/usr/sbin/sshd"
#: the host aliases of the client config
HOSTS = ("board-a", "board-b")
#: the variables through which the rig reaches a program (tests/rig runs inside it)
RIG_VARS = ("UMOCKDEV_DIR", "LD_PRELOAD", "MDTUI_RIG_CONTROL", "MDTUI_RIG_KMSG", "MDTUI_RIG_DYNDBG")
#: sshd's privilege separation directory (Debian's); sshd run by root refuses to start without it
PRIVSEP_DIR = Path("/run/sshd")


def rig_env() -> dict[str, str]:
    """The rig's variables of this process, for ``SshServer(session_env=...)``."""
    return {name: os.environ[name] for name in RIG_VARS if name in os.environ}


def _quote(arg: str) -> str:
    """One argument of an sshd_config or ssh_config line (OpenSSH's argv_split)."""
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise ValueError(f"an OpenSSH config value cannot hold a line break or NUL: {arg!r}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssh_version(sshd: str) -> tuple[int, int]:
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(m[1]), int(m[2])) if m else (0, 0)


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent's pid, start time, which tells a reused pid apart)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if fields[0] != "Z":  # a zombie is dead already
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _descendants(roots: Iterable[int], table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class SshServer:
    """sshd on 127.0.0.1:``port`` (a free one unless given) and a client config for it.

    ``session_env``: variables every session gets (``SetEnv``); ``session_path``: the
    sessions' PATH (a folder, or several joined with ``:``), instead of sshd's default.
    """

    def __init__(
        self,
        session_env: Mapping[str, str] | None = None,
        *,
        session_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        hosts: tuple[str, ...] = HOSTS,
        log_level: str = "VERBOSE",
        sshd: str = SSHD,
    ) -> None:
        _need_sshd(sshd)
        env = dict(session_env or {})
        if session_path is not None:
            env["PATH"] = os.fspath(session_path)
        for name, value in env.items():
            if not re.fullmatch(r"[^\s=\"'\\]+", name):
                raise ValueError(f"not a variable name for SetEnv: {name!r}")
            _quote(value)  # raises on what a config line cannot hold
        self.sshd = sshd
        self.hosts = hosts
        self.port = port or _free_port()
        self.user = _user()
        self.dir = Path(tempfile.mkdtemp(prefix="mdtui-sshd."))
        self._finalizer = weakref.finalize(self, _cleanup, self.dir, [None])
        self._proc: subprocess.Popen[bytes] | None = None
        self._orphans: dict[int, str] = {}  # sessions left behind by stop(keep_sessions=True)
        self._log_start = 0
        self.host_key = self.dir / "host_key"
        self.client_key = self.dir / "client_key"
        self.known_hosts = self.dir / "known_hosts"
        self.sshd_config = self.dir / "sshd_config"
        self.ssh_config = self.dir / "ssh_config"
        self.log_file = self.dir / "sshd.log"
        #: the sessions' HOME, empty: the login shell reads no ~/.bashrc that would change PATH
        self.home = self.dir / "home"
        self.home.mkdir()
        #: what the sessions get through SetEnv
        self.session_env = {"HOME": str(self.home), **env}
        try:
            self._make_keys()
            self._write_configs(log_level)
        except BaseException:
            self._finalizer()
            raise

    # -- the client side

    @property
    def ssh_command(self) -> list[str]:
        """``ssh -F CONFIG``: add a host alias and a command."""
        return ["ssh", "-F", str(self.ssh_config)]

    @property
    def mdtui_ssh(self) -> str:
        """The value of MDTUI_SSH that makes mdtui reach this server."""
        return shlex.join(self.ssh_command)

    def run(self, *args: str, timeout: float = 15, env: Mapping[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``ssh -F CONFIG ARGS`` (e.g. ``run("board-a", "true")``), no standard input unless
        ``input``; output captured as text, exit status not checked."""
        return subprocess.run(
            [*self.ssh_command, *args], capture_output=True, text=True, timeout=timeout,
            env=None if env is None else dict(env), input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )

    # -- the server's life

    @property
    def pid(self) -> int | None:
        """The listening sshd's pid, while it runs."""
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        """What sshd wrote since it was last started."""
        try:
            with self.log_file.open("rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, *, wait: bool = True) -> None:
        """Starts sshd (again, on the same port), then, unless ``wait`` is false, waits until
        a real ``ssh HOST true`` gets through."""
        if self.running:
            raise RuntimeError(f"sshd already runs (pid {self.pid})")
        _need_sshd(self.sshd)
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
        # sshd itself stays off the testbed: the sessions get LD_PRELOAD back through SetEnv
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self._log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(self.sshd_config)], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self.dir, [self._proc])
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 10) -> None:
        """Polls with ``ssh HOST true`` until it works; raises with sshd's log if it does not
        within ``timeout`` seconds or sshd exits."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if not self.running:
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(f"sshd is not running (exit status {code}); its log:\n{self.log}")
            if _port_open(self.port):
                try:
                    result = self.run(self.hosts[0], "true", timeout=max(1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    result = None
                if result is not None and result.returncode == 0:
                    return
                last = "ssh timed out" if result is None else f"ssh exit {result.returncode}: {result.stderr.strip()}"
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd on port {self.port} not ready after {timeout} s ({last}); its log:\n{self.log}")
            time.sleep(0.02)

    def stop(self, *, keep_sessions: bool = False) -> None:
        """Stops sshd: new connections are refused.  The established sessions (sshd's
        per-connection processes and what they run) are killed with it, as when the host
        goes away, unless ``keep_sessions``: then they go on, as after a restart of sshd,
        until ``drop_sessions()``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)  # no new connection while the tree is read
            try:
                table = _processes()
                sessions = _descendants([proc.pid], table)
                if keep_sessions:
                    self._orphans.update({pid: table[pid][1] for pid in sessions})
                else:
                    _kill(sessions)
            finally:
                proc.terminate()
                os.kill(proc.pid, signal.SIGCONT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not keep_sessions:
            self.drop_sessions()  # also those left behind by an earlier stop(keep_sessions=True)

    def session_pids(self) -> set[int]:
        """The processes of the established sessions: sshd's per-connection processes and
        what they run (also those a ``stop(keep_sessions=True)`` left behind)."""
        table = _processes()
        self._orphans = {pid: start for pid, start in self._orphans.items() if table.get(pid, (0, ""))[1] == start}
        roots = [*self._orphans, *([self._proc.pid] if self._proc is not None and self.running else [])]
        return set(self._orphans) | _descendants(roots, table)

    def drop_sessions(self) -> None:
        """Kills every established session (the connections drop) and leaves sshd listening."""
        for _ in range(10):
            victims = self.session_pids()
            if not victims:
                self._orphans.clear()
                return
            _kill(victims)
        raise RuntimeError(f"sshd's sessions do not die: {sorted(victims)}")

    def close(self) -> None:
        """Stops sshd and its sessions, removes the temporary folder."""
        try:
            self.stop()
        finally:
            self._finalizer()

    def __enter__(self) -> SshServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up

    def _make_keys(self) -> None:
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise RuntimeError("ssh-keygen missing: install the package openssh-client (`make rig-deps` does)")
        for key in (self.host_key, self.client_key):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)],
                           check=True, stdin=subprocess.DEVNULL, capture_output=True)
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        host_pub = " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")

    def _write_configs(self, log_level: str) -> None:
        q = _quote
        options = [
            ("ListenAddress", f"127.0.0.1:{self.port}"),
            ("HostKey", str(self.host_key)),
            ("PidFile", str(self.dir / "sshd.pid")),
            ("AuthorizedKeysFile", str(self.dir / "authorized_keys")),
            ("AllowUsers", self.user),
            ("PubkeyAuthentication", "yes"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("UsePAM", "no"),
            ("StrictModes", "no"),
            ("PermitRootLogin", "yes"),
            ("UseDNS", "no"),
            ("PrintMotd", "no"),
            ("PrintLastLog", "no"),
            ("X11Forwarding", "no"),
            ("MaxStartups", "100"),
            ("MaxSessions", "100"),
            ("LoginGraceTime", "30"),
            ("LogLevel", log_level),
        ]
        if _openssh_version(self.sshd) >= (9, 8):  # else it would penalise this address's refused tries
            options.append(("PerSourcePenalties", "no"))
        lines = [f"{key} {q(value)}" for key, value in options]
        # one SetEnv line: sshd takes only the first
        lines.append("SetEnv " + " ".join(q(f"{k}={v}") for k, v in self.session_env.items()))
        self.sshd_config.write_text("\n".join(lines) + "\n")
        client = [
            ("HostName", "127.0.0.1"),
            ("Port", str(self.port)),
            ("User", self.user),
            ("IdentityFile", str(self.client_key)),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", str(self.known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("StrictHostKeyChecking", "yes"),
            ("CheckHostIP", "no"),
            ("UpdateHostKeys", "no"),
            ("BatchMode", "yes"),
            ("ConnectTimeout", "5"),
            ("KexAlgorithms", "curve25519-sha256"),  # sntrup761x25519 costs ~50 ms a connection
            ("LogLevel", "ERROR"),
        ]
        body = "".join(f"    {key} {q(value)}\n" for key, value in client)
        self.ssh_config.write_text(f"Host {' '.join(self.hosts)}\n{body}")


def _need_sshd(sshd: str) -> None:
    if not os.access(sshd, os.X_OK):
        raise RuntimeError(f"{sshd} missing: install the package openssh-server "
                           "(apt-get install openssh-server openssh-client; `make rig-deps` does)")


def _user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _kill(pids: Iterable[int]) -> None:
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # they are not this process's children (but sshd's, or init's): wait until they are gone
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        table = _processes()
        pending = {pid for pid in pending if pid in table}
        if pending:
            time.sleep(0.01)


def _cleanup(folder: Path, procs: list[subprocess.Popen[bytes] | None]) -> None:
    """The last resort of a server never closed: kill sshd and whatever it started, remove
    the folder."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGSTOP)
                _kill(_descendants([proc.pid], _processes()))
            finally:
                proc.kill()
                proc.wait()
    shutil.rmtree(folder, ignore_errors=True)
