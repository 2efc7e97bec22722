#!/usr/bin/env python3
"""pigeond as a process: what an operator and systemd see.

Checks --help, --version and --check-config; configuration errors (exit 78, EX_CONFIG, with
file:line: key); systemd's readiness protocol (READY=1 on $NOTIFY_SOCKET, RELOADING=1 then
READY=1 on SIGHUP); socket activation (LISTEN_FDS: pigeond serves on a socket it did not open);
dropping root to server.user after binding (when run as root); SIGHUP replacing the certificate
and the user database without dropping a session; SIGTERM ending with exit 0, a session that did
not QUIT committing nothing.

Usage: pigeond_process_test.py --pigeond PATH
Only the standard library and `openssl` (for certificates). Every process is bounded by a
timeout and killed by its pid at the end; everything is written in one temporary directory.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT_S = 20
failures: list[str] = []


def check(condition: bool, what: str, detail: str = "") -> None:
    print(("ok    " if condition else "FAIL  ") + what + ("" if condition or not detail else f"\n      {detail}"))
    if not condition:
        failures.append(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory: Path, name: str, cn: str) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                    "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem")],
                   check=True, capture_output=True, timeout=TIMEOUT_S)


def write_config(work: Path, port: int, tls_port: int, cert: str, extra: str = "") -> Path:
    config = work / "pigeond.toml"
    config.write_text(f"""
{extra}
[[listen]]
address = "127.0.0.1:{port}"
tls = "starttls"

[[listen]]
address = "127.0.0.1:{tls_port}"
tls = "implicit"

[tls]
certificate = "{cert}.pem"
key = "{cert}.key"

[storage]
location = "mail/%u"

[passdb]
driver = "passwd-file"
path = "users"

[limits]
shutdown_grace = "300ms"

[log]
destination = "pigeond.log"
""")
    return config


def pop3(port: int, *commands: bytes, tls: bool = False) -> list[bytes]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    sock = raw
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(raw, server_hostname="localhost")
    reader = sock.makefile("rb")
    lines = [reader.readline()]
    for command in commands:
        sock.sendall(command + b"\r\n")
        lines.append(reader.readline())
    sock.close()
    return lines


def peer_cn(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            der = sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem.encode(), capture_output=True,
                         timeout=TIMEOUT_S, check=True).stdout.decode()
    return out.strip()


class Notify:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)  # as systemd's: pigeond sends after dropping root
        self.sock.settimeout(TIMEOUT_S)

    def next(self) -> str:
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return "(nothing within the bound)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pigeond", required=True)
    args = parser.parse_args()
    pigeond = os.path.abspath(args.pigeond)

    out = subprocess.run([pigeond, "--help"], capture_output=True, text=True, timeout=TIMEOUT_S)
    check(out.returncode == 0 and "--config" in out.stdout and "--check-config" in out.stdout, "--help answers")
    out = subprocess.run([pigeond, "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    check(out.returncode == 0 and out.stdout.startswith("pigeond "), "--version", out.stdout + out.stderr)

    work = Path(tempfile.mkdtemp(prefix="pigeond-process-"))
    proc = None
    try:
        os.chmod(work, 0o755)
        make_cert(work, "first", "first.example")
        make_cert(work, "second", "second.example")
        (work / "users").write_text("alice:{PLAIN}secret::::\n")
        maildir = work / "mail" / "alice"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        (maildir / "new" / "1.M1P1.test").write_bytes(b"Subject: one\n\nbody\n")
        port, tls_port = free_port(), free_port()

        # Configuration errors: exit 78 (EX_CONFIG) and file:line: key.
        bad = work / "bad.toml"
        bad.write_text('[[listen]]\naddress = "127.0.0.1:110"\ntls = "none"\n[limits]\nidle_timeout = 5\n')
        out = subprocess.run([pigeond, "--config", str(bad)], capture_output=True, text=True, timeout=TIMEOUT_S)
        check(out.returncode == 78 and f"{bad}:5: limits.idle_timeout:" in out.stderr,
              "a bad key: exit 78 with file:line: key", f"rc={out.returncode} {out.stderr}")
        out = subprocess.run([pigeond, "--config", str(work / "missing.toml")], capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        check(out.returncode == 78 and "missing.toml: cannot be read" in out.stderr, "a missing file is named",
              out.stderr)

        config = write_config(work, port, tls_port, "first")
        out = subprocess.run([pigeond, "--check-config", "--config", str(config)], capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        check(out.returncode == 0 and "configuration OK" in out.stdout, "--check-config", out.stdout + out.stderr)
        check(not (work / "pigeond.log").exists(), "--check-config does not create the log file")

        # --check-config reads what the configuration names, and creates nothing.
        def check_config_of(text: str, name: str) -> subprocess.CompletedProcess:
            path = work / name
            path.write_text(config.read_text().replace('driver = "passwd-file"\npath = "users"', text))
            return subprocess.run([pigeond, "--check-config", "--config", str(path)], capture_output=True,
                                  text=True, timeout=TIMEOUT_S)
        out = check_config_of('driver = "passwd-file"\npath = "no-such-users"', "c1.toml")
        check(out.returncode == 78 and "cannot read" in out.stderr and "no-such-users" in out.stderr,
              "--check-config: an unreadable passwd-file is an error", out.stderr)
        out = check_config_of('driver = "sqlite"\npath = "users.db"', "c2.toml")
        check(out.returncode == 78 and "does not exist" in out.stderr and not (work / "users.db").exists(),
              "--check-config: a missing SQLite file is reported, not created", out.stderr)
        out = check_config_of('driver = "passwd-file"\npath = "users"\ndefault_scheme = "MD5-NOPE"', "c3.toml")
        check(out.returncode == 78 and "passdb.default_scheme" in out.stderr and "MD5-NOPE" in out.stderr,
              "an unknown passdb.default_scheme is a configuration error", out.stderr)

        # OAuth bearer tokens: OAUTHBEARER needs [auth.oauth], whose key file is loaded.
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                        str(work / "jwt.key")], check=True, capture_output=True, timeout=TIMEOUT_S)
        subprocess.run(["openssl", "ec", "-in", str(work / "jwt.key"), "-pubout", "-out", str(work / "jwt.pub")],
                       check=True, capture_output=True, timeout=TIMEOUT_S)
        oauth = ('driver = "passwd-file"\npath = "users"\n[auth]\nmechanisms = ["PLAIN", "OAUTHBEARER", "XOAUTH2"]\n'
                 '[auth.oauth]\nissuer = "https://id.example/"\naudience = "pop3"\nkey_file = "{}"\n')
        out = check_config_of('driver = "passwd-file"\npath = "users"\n[auth]\nmechanisms = ["OAUTHBEARER"]', "c4.toml")
        check(out.returncode == 78 and "OAUTHBEARER needs [auth.oauth]" in out.stderr,
              "OAUTHBEARER without [auth.oauth] is a configuration error", out.stderr)
        out = check_config_of(oauth.format("jwt.pub"), "c5.toml")
        check(out.returncode == 0 and "configuration OK" in out.stdout, "[auth.oauth] with a P-256 key loads",
              out.stdout + out.stderr)
        out = check_config_of(oauth.format("jwt.key"), "c6.toml")
        check(out.returncode == 78 and "auth.oauth:" in out.stderr, "[auth.oauth] refuses a private key file",
              out.stderr)

        # Socket activation for the plain listener: systemd's socket is fd 3.
        activated = socket.socket()
        activated.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        activated.bind(("127.0.0.1", port))
        activated.listen(16)
        tls_activated = socket.socket()
        tls_activated.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tls_activated.bind(("127.0.0.1", tls_port))
        tls_activated.listen(16)
        notify = Notify(work / "notify.sock")
        run_as_root = os.geteuid() == 0
        if run_as_root:
            config = write_config(work, port, tls_port, "first", extra='[server]\nuser = "nobody"\n')
            nobody = pwd.getpwnam("nobody")
            for path in [work, *work.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)

        # High numbers first, so that placing them at 3 and 4 cannot overwrite one another.
        high = [os.dup2(activated.fileno(), 200, inheritable=True),
                os.dup2(tls_activated.fileno(), 201, inheritable=True)]

        def preexec() -> None:
            os.dup2(200, 3)
            os.dup2(201, 4)
            os.close(200)
            os.close(201)
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.environ["LISTEN_FDS"] = "2"

        os.environ["NOTIFY_SOCKET"] = str(work / "notify.sock")
        proc = subprocess.Popen([pigeond, "--config", str(config)], cwd=work, preexec_fn=preexec,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=False)
        del os.environ["NOTIFY_SOCKET"]
        activated.close()
        tls_activated.close()
        for fd in high:
            os.close(fd)
        ready = notify.next()
        if ready != "READY=1" and proc.poll() is not None:
            print(proc.stderr.read().decode(errors="replace"))
        check(ready == "READY=1", "READY=1 after start", ready)

        lines = pop3(port, b"USER alice", b"PASS secret", b"STAT", b"QUIT")
        check(lines[0].startswith(b"+OK") and lines[3] == b"+OK 1 22\r\n",
              "serves on systemd's socket (LISTEN_FDS)", repr(lines))
        if run_as_root:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            check(all(int(x) == nobody.pw_uid for x in uid_line.split()[1:]), "dropped root to server.user",
                  uid_line)
        check("first.example" in peer_cn(tls_port), "implicit TLS serves the first certificate")

        # A session open across SIGHUP keeps working; afterwards new logins see the new files.
        keep = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        keep_reader = keep.makefile("rb")
        keep_reader.readline()
        keep.sendall(b"USER alice\r\nPASS secret\r\n")
        keep_reader.readline()
        logged_in = keep_reader.readline()
        config.write_text(config.read_text().replace('"first.pem"', '"second.pem"').replace('"first.key"',
                                                                                            '"second.key"'))
        (work / "users").write_text("alice:{PLAIN}changed::::\n")
        if run_as_root:
            for path in (config, work / "users"):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        proc.send_signal(signal.SIGHUP)
        check(notify.next() == "RELOADING=1" and notify.next() == "READY=1", "SIGHUP: RELOADING=1 then READY=1")
        check("second.example" in peer_cn(tls_port), "SIGHUP replaced the certificate")
        lines = pop3(port, b"USER alice", b"PASS changed", b"QUIT")
        check(lines[2].startswith(b"+OK Logged in"), "SIGHUP: the user database was read again", repr(lines))
        keep.sendall(b"DELE 1\r\nSTAT\r\n")
        dele, stat = keep_reader.readline(), keep_reader.readline()
        check(logged_in.startswith(b"+OK") and dele.startswith(b"+OK") and stat == b"+OK 0 0\r\n",
              "a session survives SIGHUP", repr((logged_in, dele, stat)))

        # The sandbox (on by default): seccomp filter and no_new_privs on every thread; Landlock
        # keeps a reload from reading a user database outside the directories it started with.
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        check(fields.get("Seccomp", "").strip() == "2" and fields.get("NoNewPrivs", "").strip() == "1",
              "sandbox: a seccomp filter and no_new_privs", f"{fields.get('Seccomp')!r} {fields.get('NoNewPrivs')!r}")
        tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
        filtered = [t for t in tasks if "Seccomp:\t2" in (t / "status").read_text()]
        check(len(tasks) > 1 and len(filtered) == len(tasks), "sandbox: every thread filtered",
              f"{len(filtered)} of {len(tasks)}")
        outside = Path(tempfile.mkdtemp(prefix="pigeon-outside-"))
        try:
            os.chmod(outside, 0o755)
            (outside / "users").write_text("alice:{PLAIN}outside::::\n")
            os.chmod(outside / "users", 0o644)
            before = config.read_text()
            config.write_text(before.replace('path = "users"', f'path = "{outside / "users"}"'))
            proc.send_signal(signal.SIGHUP)
            check(notify.next() == "RELOADING=1" and notify.next() == "READY=1",
                  "sandbox: a reload naming a file outside answers READY=1")
            lines = pop3(port, b"USER alice", b"PASS outside", b"QUIT")
            log = (work / "pigeond.log").read_text()
            check(not lines[2].startswith(b"+OK") and "reload failed" in log and "ermission denied" in log,
                  "sandbox: Landlock refused the user database outside (reload failed, old one kept)",
                  repr(lines) + log[-400:])
            lines = pop3(port, b"USER alice", b"PASS changed", b"QUIT")
            check(lines[2].startswith(b"+OK Logged in"), "sandbox: the running configuration still serves",
                  repr(lines))
            config.write_text(before)
        finally:
            shutil.rmtree(outside, ignore_errors=True)

        # SIGTERM: the session that never sent QUIT commits nothing; pigeond exits 0.
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        keep.close()
        check(code == 0, "SIGTERM: exit 0 after the grace period", f"exit {code}")
        check(len(list((maildir / "new").iterdir())) + len(list((maildir / "cur").iterdir())) == 1,
              "SIGTERM: the unfinished session's DELE was not committed")
        log = (work / "pigeond.log").read_text()
        check('reason="shutdown"' in log and "stopped" in log, "the log tells the shutdown",
              log[-600:])
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT_S)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
