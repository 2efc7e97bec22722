"""Helpers shared by the interop tests in tests/interop (standard library only).

Bounded child processes (a timeout, then SIGKILL to the child's own process group), free
loopback ports, a self-signed certificate made with `openssl`, polling with a deadline, Maildir
and header-section readers, a byte-level difference for failure messages, greeting probes (plain
or TLS) and a wait for a server process's greeting, a stop by PID (SIGTERM, then SIGKILL), and
PigeondProcess: pigeond started from its own directory with a pigeond.toml the test writes,
waited for until its listeners answer, and stopped by its PID.

The tests import it from their own directory (`python3 tests/interop/X.py` puts tests/interop/
first on sys.path).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

HOST = "127.0.0.1"


class Failure(Exception):
    """A check failed; the message says how."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise Failure(what)


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct free ports (each was free when asked for)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


def run_bounded(argv: list[str], *, timeout: float = 60, stdin: bytes | None = b"",
                env: dict[str, str] | None = None, cwd: str | Path | None = None,
                on_pid: Callable[[int | None], None] | None = None
                ) -> subprocess.CompletedProcess:
    """Runs argv with a timeout; on timeout kills its process group (the child leads it, so
    the id is ours) and returns returncode None with a note on stderr. `on_pid` is told the
    child's PID once it runs and None once it has ended (to watch it meanwhile)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    if on_pid is not None:
        on_pid(proc.pid)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=30)
        code = None
        err += f"\n(killed after {timeout:g} s)".encode()
    finally:
        if on_pid is not None:
            on_pid(None)
    return subprocess.CompletedProcess(argv, code, out, err)


def describe(proc: subprocess.CompletedProcess, limit: int = 3000) -> str:
    """A failed command, for a failure message: its argv, exit status and output tails."""
    args = proc.args if isinstance(proc.args, str) else " ".join(str(a) for a in proc.args)
    return (f"command: {args}\nexit: {proc.returncode}\n"
            f"stdout: {proc.stdout.decode(errors='replace')[-limit:]}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-limit:]}")


def make_cert(directory: Path, name: str = "server", cn: str = "localhost",
              ip: str | None = HOST) -> tuple[Path, Path]:
    """A self-signed RSA-2048 certificate for `cn` (and `ip`): (certificate, key) paths."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    san = f"DNS:{cn}" + (f",IP:{ip}" if ip else "")
    made = run_bounded(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
                        "-keyout", str(key), "-out", str(cert)], timeout=60)
    expect(made.returncode == 0, "openssl req failed:\n" + describe(made))
    os.chmod(key, 0o600)
    return cert, key


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               interval: float = 0.1) -> object:
    """Polls condition() until it returns something true (returned) or the deadline passes
    (Failure naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def tail(data: bytes | str, lines: int = 25) -> str:
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    return "\n".join(data.rstrip("\n").split("\n")[-lines:])


def first_difference(expected: bytes, got: bytes) -> str:
    i = next((n for n, (x, y) in enumerate(zip(expected, got)) if x != y),
             min(len(expected), len(got)))
    return (f"{len(expected)} bytes expected, {len(got)} got; first difference at byte {i}:\n"
            f"  expected ...{expected[max(0, i - 40):i + 40]!r}\n"
            f"  got      ...{got[max(0, i - 40):i + 40]!r}")


# ----------------------------------------------------------------------------------------
# Messages on disk


def maildir_files(maildir: Path) -> dict[str, bytes]:
    """The messages in a Maildir's new/ and cur/ by file name (none if it does not exist)."""
    return {p.name: p.read_bytes() for sub in ("new", "cur") if (maildir / sub).is_dir()
            for p in sorted((maildir / sub).iterdir()) if not p.name.startswith(".")}


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def header_fields(data: bytes) -> list[tuple[str, bytes]]:
    """The header section of an LF text as (lower-case name, raw bytes with folding lines)."""
    fields: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            name = re.match(rb"([!-9;-~]+):", line)
            if name is None:
                break
            fields.append((name.group(1).decode().lower(), line))
        pos = end
    return fields


def split_leading(data: bytes, names: set[str]) -> tuple[list[tuple[str, bytes]], bytes]:
    """(the header fields of those names at the top of an LF text, in order; the rest)."""
    taken = []
    pos = 0
    for name, raw in header_fields(data):
        if name not in names:
            break
        taken.append((name, raw))
        pos += len(raw)
    return taken, data[pos:]


def message_id(data: bytes) -> bytes | None:
    found = re.search(rb"^Message-ID:\s*<([^>\r\n]+)>", data, re.IGNORECASE | re.MULTILINE)
    return found.group(1) if found else None


# ----------------------------------------------------------------------------------------
# Server processes: greetings, stopping, pigeond


def greets(port: int, prefix: bytes = b"+OK", *, tls: bool = False) -> bool:
    """Whether a connection to `port` is greeted with a line starting with `prefix` (read
    through TLS, unverified, when `tls`); QUIT is sent after it."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as raw:
            raw.settimeout(2)
            with (unverified_tls().wrap_socket(raw, server_hostname="localhost") if tls
                  else raw) as s:
                line = s.makefile("rb").readline(512)
                s.sendall(b"QUIT\r\n")
                return line.startswith(prefix)
    except OSError:
        return False


def wait_for_greeting(port: int, proc: subprocess.Popen, seconds: float, *, tls: bool = False,
                      greeting: bytes = b"+OK") -> bool:
    """Whether `proc`'s listener on `port` greets (see greets) within `seconds`; False as soon
    as `proc` has exited."""
    try:
        wait_until(lambda: proc.poll() is not None or greets(port, greeting, tls=tls), seconds,
                   f"a greeting on port {port}", 0.05)
    except Failure:
        return False
    return proc.poll() is None


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> int | None:
    """SIGTERM to `proc` by its PID, then SIGKILL after `timeout` s; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


def plain_config(pop3_port: int, *, lmtp_port: int | None = None,
                 storage: str = 'driver = "maildir"\nlocation = "mail/%u"',
                 users: str = "users", extra: str = "") -> str:
    """A pigeond.toml for a test: plain POP3 on `pop3_port` (and LMTP on `lmtp_port`), the
    passwd-file `users`, plaintext logins allowed, a one-second shutdown grace; `storage` is the
    body of [storage]; `extra` is appended as is."""
    lmtp = f'\n[lmtp]\nlisten = ["{HOST}:{lmtp_port}"]\n' if lmtp_port is not None else ""
    return f"""\
[[listen]]
address = "{HOST}:{pop3_port}"
tls = "none"

[storage]
{storage}

[passdb]
driver = "passwd-file"
path = "{users}"

[auth]
plaintext = "always"
{lmtp}
[limits]
shutdown_grace = "1s"
{extra}"""


class PigeondProcess:
    """pigeond run from `work` with the pigeond.toml text the test gives (relative paths in it
    are relative to `work`); stdout and stderr go to work/pigeond.log."""

    def __init__(self, binary: str, work: Path, config_text: str) -> None:
        self.binary = binary
        self.work = work
        self.config = work / "pigeond.toml"
        self.config.write_text(config_text)
        self.log_path = work / "pigeond.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, *, pop3_ports: list[int] = (), pop3s_ports: list[int] = (),
              lmtp_ports: list[int] = (), unix_sockets: list[Path] = (),
              timeout: float = 20) -> None:
        """Starts pigeond; returns once each POP3 port greets +OK (each implicit-TLS one through
        TLS), each LMTP port 220 and each Unix socket exists (Failure with the log otherwise)."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", str(self.config)], cwd=self.work,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise Failure(f"pigeond exited with {self.proc.returncode}:\n{self.log_tail()}")
            return (all(greets(p, b"+OK") for p in pop3_ports)
                    and all(greets(p, b"+OK", tls=True) for p in pop3s_ports)
                    and all(greets(p, b"220 ") for p in lmtp_ports)
                    and all(s.exists() for s in unix_sockets))

        try:
            wait_until(ready, timeout, "pigeond's listeners", 0.05)
        except Failure as failure:
            raise Failure(f"{failure}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return "pigeond's log (tail):\n" + tail(self.log_path.read_bytes(), lines)
        except OSError:
            return "(no pigeond log)"

    def stop(self) -> int | None:
        """SIGTERM to its PID, then SIGKILL after 10 s; returns the exit status."""
        if self.proc is not None:
            stop_process(self.proc, 10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc is not None else None


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def run_checks(name: str, prefix: str, keep: bool, body: Callable[[Path], list[str]],
               errors: tuple[type[BaseException], ...] = (Failure,)) -> int:
    """Runs body(work) in a fresh temporary directory and prints its checks TAP-style:
    "ok N - what" for each line it returns and "PASS: NAME (...)", or "FAIL: why". Returns the
    exit status. The directory is removed afterwards unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    started = time.monotonic()
    try:
        done = body(work)
    except errors as failure:
        print("FAIL: " + str(failure).replace("\n", "\n    "))
        return 1
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for n, what in enumerate(done, start=1):
        print(f"ok {n} - {what}")
    print(f"PASS: {name} ({len(done)} checks, {time.monotonic() - started:.1f} s)")
    return 0
