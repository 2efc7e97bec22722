"""Helpers shared by the loopback POP3 benchmarks in bench/ (pop3_vs_dovecot.py, auth_burst.py,
soak_sessions.py, login_storm.py).

/proc sampling (CPU, Pss, RSS and descriptors of a process or of a process tree), nearest-rank
percentiles, free loopback ports, a timed blocking POP3 login, a bounded wait for asyncio tasks,
test data on disk (Maildir, passwd-file, SHA512-CRYPT hashes), and ServerProcess: a server started by pid from its own directory, polled until it greets, and
stopped by pid (SIGTERM, then SIGKILL; for Dovecot also the descendants seen before).

Standard library only. The scripts import it from their own directory (`python3 bench/X.py` puts
bench/ first on sys.path).
"""
from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


# --- /proc ------------------------------------------------------------------------------------

def read_stat(pid: int):
    """(ppid, utime, stime, cutime, cstime) in ticks, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime is field 14 -> rest[11].
    return int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])


def process_tree(root: int) -> list[int]:
    """root and all its descendants (by ppid), live now."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo and len(out) < 100_000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_ms(pids: list[int]) -> float:
    """utime+stime of every process, plus cutime+cstime (children that exited and were reaped:
    Dovecot's per-session pop3 processes end up in the master's cutime/cstime)."""
    ticks = 0
    for pid in pids:
        st = read_stat(pid)
        if st is not None:
            ticks += st[1] + st[2] + st[3] + st[4]
    return ticks * 1000.0 / CLK_TCK


def _sum_kib(pids: list[int], proc_file: str, field: str) -> int:
    """The first `field` line's KiB in /proc/PID/<proc_file>, summed over the processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{proc_file}") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def pss_kib(pids: list[int]) -> int:
    """Proportional set size (shared pages divided among their users), summed."""
    return _sum_kib(pids, "smaps_rollup", "Pss:")


def rss_kib(pids: list[int]) -> int:
    return _sum_kib(pids, "status", "VmRSS:")


def count_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


# --- small helpers ----------------------------------------------------------------------------

def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100.0 * len(s)) - 1))]  # nearest rank


def timed_pop3_login(host: str, port: int, source: str, user: str, password: str, timeout: float,
                     commands: tuple[bytes, ...] = ()) -> tuple[float | None, float, str | None]:
    """One blocking login from `source`: greeting, USER, PASS, then each of `commands` and QUIT,
    every answer +OK. (seconds until PASS was answered or None, seconds in all, error or None)."""
    t0 = time.perf_counter()
    t_login = None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind((source, 0))
        s.connect((host, port))
        f = s.makefile("rb")

        def expect_ok(what: str) -> None:
            line = f.readline(1024)
            if not line.startswith(b"+OK"):
                raise RuntimeError(f"{what}: {line[:80]!r}")

        expect_ok("greeting")
        s.sendall(f"USER {user}\r\n".encode())
        expect_ok("USER")
        s.sendall(f"PASS {password}\r\n".encode())
        expect_ok("PASS")
        t_login = time.perf_counter() - t0
        for command in (*commands, b"QUIT"):
            s.sendall(command + b"\r\n")
            expect_ok(command.decode())
        return t_login, time.perf_counter() - t0, None
    except Exception as e:  # noqa: BLE001 - every failure is a data point
        return t_login, time.perf_counter() - t0, f"{type(e).__name__}: {e}"
    finally:
        s.close()


async def wait_bounded(tasks: list, timeout: float) -> int:
    """Waits up to `timeout` s for the tasks, then cancels and reaps the rest: how many that was."""
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


def tool_versions(**argvs: list[str]) -> dict[str, str]:
    """{key: stdout of argv} for every command of argvs that runs (within 10 s each)."""
    out = {}
    for key, argv in argvs.items():
        try:
            out[key] = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


# --- data on disk -----------------------------------------------------------------------------

def sha512_crypt(passwords: list[str]) -> list[str]:
    """'{SHA512-CRYPT}$6$...' (5000 rounds, what `doveadm pw -s SHA512-CRYPT` makes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: PLC0415 (removed in Python 3.13: then openssl below)
        return ["{SHA512-CRYPT}" + crypt.crypt(p, crypt.mksalt(crypt.METHOD_SHA512)) for p in passwords]
    except ImportError:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input="\n".join(passwords) + "\n",
                             capture_output=True, text=True, check=True, timeout=60).stdout.split()
        assert len(out) == len(passwords)
        return ["{SHA512-CRYPT}" + h for h in out]


def write_passwd(path: str, entries, uid: int | str = "", gid: int | str = "", mail_root: str = "") -> None:
    """A Dovecot-style passwd-file (user:password:uid:gid:gecos:home:shell:extra), mode 0644, from
    (user, hashed password) pairs; home is mail_root/user when mail_root is given."""
    with open(path, "w") as f:
        for user, hashed in entries:
            home = f"{mail_root}/{user}" if mail_root else ""
            f.write(f"{user}:{hashed}:{uid}:{gid}::{home}::\n")
    os.chmod(path, 0o644)


def make_maildir(root: str, user: str, files) -> None:
    """Writes the (name, data) pairs of `files` (any iterable) into root/.tmp-user/cur, then
    renames that to root/user: the directory exists only complete."""
    final = os.path.join(root, user)
    tmp = os.path.join(root, f".tmp-{user}")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(tmp, sub))
    cur = os.path.join(tmp, "cur")
    for name, data in files:
        with open(os.path.join(cur, name), "wb") as f:
            f.write(data)
    past = time.time() - 3600  # as on a server whose last delivery was a while ago
    for sub in ("cur", "new", "tmp"):
        os.utime(os.path.join(tmp, sub), (past, past))
    os.rename(tmp, final)


def doveconf_warnings(conf: str) -> list[str]:
    """Checks a Dovecot configuration with `doveconf -n`: its warnings, or RuntimeError."""
    check = subprocess.run(["doveconf", "-c", conf, "-n"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise RuntimeError(f"doveconf -n: {check.stderr.strip()}")
    return [line for line in check.stderr.splitlines() if line.strip()]


# --- a server process -------------------------------------------------------------------------

class ServerProcess:
    """A server run as `argv` from `dir` (stdout and stderr appended to dir/stderr.txt).

    Subclasses set name, tree (True: the server is a process tree, as Dovecot's master and its
    children, and CPU and memory are summed over it), argv, and may override probe()."""
    name = "?"
    tree = False
    ready_timeout = 30.0

    def __init__(self, workdir: str, host: str = LOOPBACK):
        self.dir = workdir
        self.host = host
        self.port = free_port(host)
        self.argv: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None  # of the last process stop() ended
        self.log_path = ""
        self.starts = 0
        self.events: list[str] = []  # crashes, unexpected exits

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def pids(self) -> list[int]:
        return process_tree(self.pid) if self.tree else [self.pid]

    def processes(self) -> int:
        return len(self.pids())

    def cpu_ms(self) -> float:
        return tree_cpu_ms(self.pids())

    def pss_kib(self) -> int:
        return pss_kib(self.pids())

    def rss_kib(self) -> int:
        return rss_kib(self.pids())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _event(self, msg: str) -> None:
        if msg not in self.events:
            self.events.append(msg)

    def check_alive(self, where: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            msg = f"{self.name} exited with {self.proc.returncode} during {where}"
            self._event(msg)
            raise RuntimeError(msg)

    def stderr_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "stderr.txt"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self) -> None:
        with open(os.path.join(self.dir, "stderr.txt"), "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         cwd=self.dir)
        self.starts += 1
        self.wait_ready()

    def probe(self):
        """None when the server answers with a +OK greeting on its port, else why not."""
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                s.settimeout(2)
                line = s.makefile("rb").readline(512)
                if line.startswith(b"+OK"):
                    s.sendall(b"QUIT\r\n")
                    return None
                return line
        except OSError as e:
            return e

    def wait_ready(self) -> None:
        end = time.monotonic() + self.ready_timeout
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.stderr_tail()}")
            last = self.probe()
            if last is None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready on port(s) {'/'.join(map(str, self.ports))}: {last!r}")

    def stop(self) -> None:
        """SIGTERM to the server's pid, then SIGKILL; for a tree, then SIGKILL to any Dovecot
        descendant seen before that is still there (by pid)."""
        if self.proc is None:
            return
        pids = self.pids() if self.alive() else [self.proc.pid]
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.events.append(f"{self.name} did not stop within 15 s of SIGTERM: killed")
                self.proc.kill()
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        elif self.proc.returncode not in (0, None):
            self._event(f"{self.name} had exited with {self.proc.returncode} before stop")
        if self.proc.returncode not in (0, -signal.SIGTERM, None):
            self._event(f"{self.name} exit status after SIGTERM: {self.proc.returncode}")
        for pid in pids[1:]:
            for _ in range(20):
                if read_stat(pid) is None:
                    break
                time.sleep(0.05)
            else:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                    if any(w in cmd for w in (b"dovecot", b"pop3", b"auth", b"anvil")):
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.exit_code = self.proc.returncode
        self.proc = None

    def restart(self) -> None:
        self.stop()
        time.sleep(0.3)
        self.start()


def checked_pigeond_argv(binary: str, conf: str) -> list[str]:
    """pigeond's command line for `conf`, once `pigeond --check-config` accepts it."""
    check = subprocess.run([binary, "--check-config", "--config", conf], capture_output=True, text=True,
                           timeout=60)
    if check.returncode != 0:
        raise RuntimeError(f"pigeond --check-config: {check.stdout}{check.stderr}")
    return [binary, "--config", conf]
