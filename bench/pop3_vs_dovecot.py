#!/usr/bin/env python3
"""pigeond and Dovecot 2.3 side by side: the same Maildir tree, the same passwd-file users, loopback.

Both servers are started by this script (pigeond as root, Dovecot's master as root with its mail
processes running as the system user `pigeonbench`, which owns the mail and is created with
useradd when absent). Both read one passwd-file with one password scheme (--scheme: {PLAIN} by
default, or {SHA512-CRYPT}: then every login also pays one 5000-round hash on both sides), and
serve one Maildir root, mail_location = maildir:ROOT/%u. Both have a plain port and an
implicit-TLS port with the same self-signed RSA-2048 certificate.

Measurements (every loop is bounded in count and in time; only 127.0.0.1 is used):

  logins  N sequential sessions (connect, [TLS handshake,] greeting, USER, PASS, STAT, QUIT)
          over plain TCP and over implicit TLS (full handshake each time: no client session
          cache, so no resumption). Server CPU per login (utime+stime from /proc: pigeond's one
          process; Dovecot's master, all live descendants and the exited ones through the
          master's cutime/cstime), sessions/s, p50/p99 of the whole session.
  memory  K sessions logged in and idle (distinct users: RFC 1939 locks the maildrop);
          Pss (/proc/PID/smaps_rollup) summed over the server's processes, minus the baseline
          just before, / K. Each server is restarted before each such measurement, so memory a
          previous measurement left in the allocator does not hide the cost; users never logged
          in before get one unmeasured login first (index files). Plain and TLS, K = 1,000 for
          both, then 10,000 for pigeond alone, lowered to what RLIMIT_NOFILE allows given the
          descriptors per session measured at K = 1,000 (pigeond is one process; the script
          raises its soft limit to the hard limit and pigeond inherits it).
  retr    one client RETRs a whole 10,000-message maildir (2-50 KB, about 200 MB), pipelined
          (a window of outstanding commands, so neither side deadlocks), counting the
          terminators; MB/s of message octets (the STAT size) for plain and TLS; one unmeasured
          warm-up run first (Dovecot builds its index and caches the sizes on first access).
  uidl    UIDL of a 100,000-message maildir after login, warm: time from sending UIDL to the
          final ".", median of 5 runs (each in its own session, after 2 warm-up sessions); also
          the PASS round trip on that maildir, and once after a session that ended without QUIT.

Dovecot runs with its "high-performance" login service (service_count = 0, one pop3-login per
core, vsz_limit 1G), pop3 process_limit 20000, and pop3_no_flag_updates = yes (otherwise RETR
sets \Seen at QUIT and renames every file sent, changing the shared maildir). Everything else is
left at the defaults on both sides, logging included (info: about 2-3 lines per session each).

Output: a table (pigeond, Dovecot, and the ratio Dovecot/pigeond for every figure), then one
JSON line with everything.

  bench/pop3_vs_dovecot.py build/release/apps/pigeond/pigeond            # full (about 5-15 min)
  bench/pop3_vs_dovecot.py build/dev/apps/pigeond/pigeond --quick        # smoke run (< 2 min)
  bench/pop3_vs_dovecot.py PIGEOND --only logins,uidl                    # a subset

The big maildirs are cached under build/bench-data/pop3-vs-dovecot-<version>/ (Dovecot's and
pigeond's index files stay in them, which is what "warm" means here). Servers are killed by pid
in finally blocks; the temporary directory (configurations, certificate, logs) is removed unless
--keep. Must run as root (Dovecot's master, chown of the mail to pigeonbench).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import pwd
import random
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

from benchlib import (ServerProcess, checked_pigeond_argv, count_fds, doveconf_warnings, free_port, make_maildir,
                      percentile, sha512_crypt, tool_versions, tree_cpu_ms, wait_bounded,
                      write_passwd as write_passwd_file)

DATA_VERSION = "v1"  # bump when the generated mail changes
HOST = "127.0.0.1"
MAIL_USER = "pigeonbench"
PASSWORD = "bench-Passw0rd"  # one password for every user (so SHA512-CRYPT is hashed once here)
TERM = b"\r\n.\r\n"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- small helpers ----------------------------------------------------------------------------

def client_cpu_ms() -> float:
    t = os.times()
    return (t.user + t.system) * 1000.0


def median_of(runs: list[dict], field: str):
    """The median of the runs' `field`, None without runs."""
    return statistics.median([r[field] for r in runs]) if runs else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Pop3Error(Exception):
    pass


def client_tls_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Pop3:
    """A minimal blocking POP3 client (raw socket access for the pipelined reads)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None, timeout: float = 30.0):
        s = socket.create_connection((HOST, port), timeout=timeout)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname=None)  # full handshake: no session given
        except BaseException:
            s.close()
            raise
        self.s = s
        self.buf = b""
        try:
            self.expect_ok("greeting")
        except BaseException:
            self.close()
            raise

    def readline(self) -> bytes:
        for _ in range(10_000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 65536:
                raise Pop3Error("line too long")
            data = self.s.recv(65536)
            if not data:
                raise Pop3Error(f"connection closed (pending {self.buf[:60]!r})")
            self.buf += data
        raise Pop3Error("readline: too many reads")

    def expect_ok(self, what: str) -> bytes:
        line = self.readline()
        if not line.startswith(b"+OK"):
            raise Pop3Error(f"{what}: {line[:100].decode('utf-8', 'replace')}")
        return line

    def cmd(self, text: str) -> bytes:
        self.s.sendall(text.encode() + b"\r\n")
        return self.expect_ok(text.split()[0])

    def login(self, user: str, password: str = PASSWORD) -> None:
        self.cmd(f"USER {user}")
        self.cmd(f"PASS {password}")

    def close(self) -> None:
        try:
            self.s.close()
        except OSError:
            pass


# --- data -------------------------------------------------------------------------------------

WORDS = ("the of and to in is that for it as with was on be by this are from or at an have not "
         "we you they which one all will there can more if about their when what so up out them "
         "some would other into has her two like him see time could no make than first been its "
         "who now people my made over did down only way find use may water long little very after "
         "words called just where most know get through back much before go good new write our "
         "used me man too any day same right look think also around another came come work three "
         "release build server mailbox message report meeting invoice attached please regards "
         "thanks schedule project review budget quarter deadline draft version update").split()


class MailFactory:
    """Messages of realistic shape: Received chains, MIME, 60-76 octet text lines (one in ~97
    starting with a dot, one in ~50 empty), base64 attachments. LF line ends, as Maildir keeps."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        lines = []
        total = 0
        while total < 3_000_000:
            r = self.rng.random()
            if r < 0.02:
                line = ""
            else:
                width = self.rng.randint(60, 76)
                words = []
                n = 0
                while n < width:
                    w = self.rng.choice(WORDS)
                    words.append(w)
                    n += len(w) + 1
                line = " ".join(words)[:width]
                if r < 0.03:
                    line = "." + line
            lines.append(line)
            total += len(line) + 1
        self.text = ("\n".join(lines) + "\n").encode()
        self.text_starts = [0]
        for i, b in enumerate(self.text):
            if b == 10:
                self.text_starts.append(i + 1)
        self.blob = base64.encodebytes(self.rng.randbytes(3_000_000))  # 76-char lines, LF

    def _slice(self, data: bytes, starts: list[int] | None, size: int) -> bytes:
        size = max(1, min(size, len(data) // 2))
        if starts is None:  # the base64 blob: 77-octet lines
            first = self.rng.randrange(0, (len(data) - size) // 77) * 77
            end = first + (size // 77 + 1) * 77
            return data[first:end]
        i = self.rng.randrange(0, len(starts) // 2)
        first = starts[i]
        end = data.find(b"\n", first + size)
        return data[first:end + 1]

    def headers(self, n: int, user: str, subject: str, extra: str = "") -> bytes:
        day = 1 + n % 28
        hops = "".join(
            f"Received: from relay{h}.example.net (relay{h}.example.net [192.0.2.{(n + h) % 250 + 1}])\n"
            f"\tby mx.example.org (Postfix) with ESMTPS id {n:08X}{h:02d}\n"
            f"\tfor <{user}@example.org>; {day:02d} Nov 2026 09:{n % 60:02d}:{h * 7 % 60:02d} +0000\n"
            for h in range(self.rng.randint(2, 5)))
        return (f"Return-Path: <sender{n % 97}@example.net>\nDelivered-To: {user}@example.org\n{hops}"
                f"From: Sender {n % 97} <sender{n % 97}@example.net>\nTo: <{user}@example.org>\n"
                f"Subject: {subject} #{n}\nDate: Sat, {day:02d} Nov 2026 09:{n % 60:02d}:00 +0000\n"
                f"Message-ID: <{n}.{user}.bench@example.net>\nMIME-Version: 1.0\n{extra}").encode()

    def message(self, n: int, user: str, size: int) -> bytes:
        """About `size` octets (LF ends)."""
        if size < 16_000:
            head = self.headers(n, user, "Re: " + " ".join(self.rng.choices(WORDS, k=4)),
                                "Content-Type: text/plain; charset=us-ascii\n")
            return head + b"\n" + self._slice(self.text, self.text_starts, max(200, size - len(head)))
        b = f"b{n}_mixed"
        head = self.headers(n, user, "Report with attachment",
                            f'Content-Type: multipart/mixed; boundary="{b}"\n')
        text = self._slice(self.text, self.text_starts, self.rng.randint(300, 3000))
        att = self._slice(self.blob, None, max(1000, size - len(head) - len(text) - 300))
        return (head + f"\n--{b}\nContent-Type: text/plain; charset=us-ascii\n\n".encode() + text
                + f"\n--{b}\nContent-Type: application/pdf; name=\"r{n}.pdf\"\n"
                  f"Content-Disposition: attachment; filename=\"r{n}.pdf\"\n"
                  f"Content-Transfer-Encoding: base64\n\n".encode() + att + f"\n--{b}--\n".encode())


def ensure_data(args, uid: int, gid: int) -> dict:
    """The mail root (cached) with the users the chosen measurements need."""
    root = os.path.join(args.data_dir, f"pop3-vs-dovecot-{DATA_VERSION}", "mail")
    os.makedirs(root, exist_ok=True)
    for d in (os.path.dirname(root), root):
        os.chown(d, uid, gid)
        os.chmod(d, 0o755)
    factory = None
    made = []
    t0 = time.monotonic()

    def fac():
        nonlocal factory
        if factory is None:
            factory = MailFactory(seed=20261128)
        return factory

    # Small users for logins and idle sessions: 4 messages of 1-5 KB each.
    for i in range(args.users):
        user = f"u{i:05d}"
        if not os.path.isdir(os.path.join(root, user)):
            f = fac()
            make_maildir(root, user, [(f"17640000{k:02d}.M{i}_{k}P1.bench:2,",
                                       f.message(i * 10 + k, user, f.rng.randint(1000, 5000)))
                                      for k in range(4)])
            made.append(user)
    # The big maildir: 55% text 2-14 KB, 45% with an attachment 20-50 KB (mean about 20 KB).
    big = f"big{args.retr_messages}"
    if "retr" in args.only and not os.path.isdir(os.path.join(root, big)):
        f = fac()
        files = []
        for n in range(args.retr_messages):
            size = f.rng.randint(2_000, 14_000) if f.rng.random() < 0.55 else f.rng.randint(20_000, 50_000)
            files.append((f"{1764000000 + n}.M{n}P1.bench:2,", f.message(n, big, size)))
        make_maildir(root, big, files)
        made.append(big)
    # The huge maildir: small messages (300-600 octets) straight into cur/.
    huge = f"huge{args.uidl_messages}"
    if "uidl" in args.only and not os.path.isdir(os.path.join(root, huge)):
        rng = random.Random(100_000)

        def notifications():
            for n in range(args.uidl_messages):
                body = " ".join(rng.choices(WORDS, k=rng.randint(20, 70)))
                yield (f"{n}.M{n}P1.bench:2,",
                       (f"From: sender{n % 97}@example.net\nTo: {huge}@example.org\n"
                        f"Subject: notification {n}\nDate: Sat, 28 Nov 2026 09:00:00 +0000\n"
                        f"Message-ID: <{n}.{huge}@example.net>\n\n{body}\n").encode())

        make_maildir(root, huge, notifications())
        made.append(huge)
    if made:
        # Everything (including index files a root pigeond wrote) readable; the mail owned by
        # the mail user so Dovecot's pop3 processes can write their index files.
        subprocess.run(["chown", "-R", f"{uid}:{gid}", root], check=True, timeout=600)
        log(f"data: made {len(made)} maildir(s) in {time.monotonic() - t0:.1f} s under {root}")
    return {"root": root, "big": big, "huge": huge, "made": len(made),
            "seconds": round(time.monotonic() - t0, 2)}


def build_type(binary: str) -> str | None:
    """CMAKE_BUILD_TYPE from the CMakeCache.txt of the build tree the binary is in."""
    d = os.path.dirname(binary)
    for _ in range(6):
        cache = os.path.join(d, "CMakeCache.txt")
        if os.path.exists(cache):
            with open(cache, errors="replace") as f:
                for line in f:
                    if line.startswith("CMAKE_BUILD_TYPE:"):
                        return line.split("=", 1)[1].strip() or None
            return None
        d = os.path.dirname(d)
    return None


def ensure_mail_user() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", MAIL_USER], check=True, timeout=60)
        pw = pwd.getpwnam(MAIL_USER)
    return pw.pw_uid, pw.pw_gid


def write_passwd(path: str, users: list[str], scheme: str, uid: int, gid: int, root: str) -> None:
    hashed = "{PLAIN}" + PASSWORD if scheme == "PLAIN" else sha512_crypt([PASSWORD])[0]
    write_passwd_file(path, ((u, hashed) for u in users), uid, gid, root)


# --- servers ----------------------------------------------------------------------------------

class Server(ServerProcess):
    """Plain and implicit-TLS ports on HOST; ready when both greet and answer QUIT."""

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        super().__init__(workdir, HOST)
        self.tls_port = free_port(HOST)
        self.mail_root = ""

    @property
    def ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def probe(self):
        try:
            for port, tls in ((self.port, None), (self.tls_port, client_tls_context())):
                c = Pop3(port, tls, timeout=5)
                c.cmd("QUIT")
                c.close()
            return None
        except (OSError, Pop3Error) as e:
            return e

    def log_problems(self) -> dict:
        raise NotImplementedError


class Pigeond(Server):
    name = "pigeond"
    tree = False

    def __init__(self, binary: str, workdir: str, passwd: str, root: str, cert: str, key: str, threads: int):
        super().__init__(workdir)
        self.mail_root = root
        self.binary = binary
        self.log_path = os.path.join(workdir, "pigeond.log")
        self.conf = os.path.join(workdir, "pigeond.toml")
        threads_line = f"threads = {threads}\n" if threads else ""
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/pop3_vs_dovecot.py
[server]
host_name = "bench.invalid"
{threads_line}
[[listen]]
address = "{HOST}:{self.port}"
tls = "none"

[[listen]]
address = "{HOST}:{self.tls_port}"
tls = "implicit"

[tls]
certificate = "{cert}"
key = "{key}"

[storage]
driver = "maildir"
location = "{root}/%u"

[passdb]
driver = "passwd-file"
path = "{passwd}"

[auth]
plaintext = "always"

[limits]
max_connections = 15000
max_connections_per_ip = 15000
shutdown_grace = "2s"

[log]
level = "info"
destination = "{self.log_path}"
""")
        self.argv = checked_pigeond_argv(binary, self.conf)

    def log_problems(self) -> dict:
        """Warning and error lines of pigeond's log, grouped by message (user, address and
        session fields dropped); the expected "running as root" warning is left out."""
        counts: Counter = Counter()
        samples: dict[str, str] = {}
        pat = re.compile(r"pigeond\[\d+\]: (warning|error|critical): (.*)$")
        try:
            with open(self.log_path, "rb") as f:
                for raw in f:
                    m = pat.search(raw.decode("utf-8", "replace").rstrip())
                    if not m or "running as root" in m.group(2):
                        continue
                    key = m.group(1) + ": " + " ".join(w for w in m.group(2).split()
                                                       if "=" not in w)[:80]
                    counts[key] += 1
                    samples.setdefault(key, m.group(0)[:300])
        except OSError:
            pass
        return {"counts": dict(counts.most_common(12)), "samples": [samples[k] for k, _ in counts.most_common(6)],
                "stderr_tail": self.stderr_tail()[-600:]}


class Dovecot(Server):
    name = "dovecot"
    tree = True

    def __init__(self, workdir: str, passwd: str, root: str, cert: str, key: str, uid: int, gid: int,
                 scheme: str, cores: int):
        super().__init__(workdir)
        self.mail_root = root
        self.log_path = os.path.join(workdir, "dovecot.log")
        self.conf = os.path.join(workdir, "dovecot.conf")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        dh = "ssl_dh = </usr/share/dovecot/dh.pem\n" if os.path.exists("/usr/share/dovecot/dh.pem") else ""
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/pop3_vs_dovecot.py: a minimal POP3-only Dovecot on loopback
base_dir = {workdir}/run
state_dir = {workdir}/state
protocols = pop3
listen = {HOST}
log_path = {self.log_path}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
{dh}disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/%u
mail_max_userip_connections = 100000
# RETR would otherwise set \\Seen at QUIT, renaming every file it sent, which changes the shared
# maildir under pigeond's feet; pigeond never renames on RETR.
pop3_no_flag_updates = yes
default_client_limit = 15000
# login, auth, anvil... processes; pop3 has its own limit below. (Not higher: Dovecot sets
# RLIMIT_NPROC to the sum of all process limits.)
default_process_limit = 1000
passdb {{
  driver = passwd-file
  args = scheme={scheme} {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/%u
}}
# "High-performance mode": long-lived login processes, one per core, each serving many clients.
service pop3-login {{
  inet_listener pop3 {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener pop3s {{
    address = {HOST}
    port = {self.tls_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {cores}
  vsz_limit = 1G
}}
service pop3 {{
  process_limit = 20000
}}
""")
        self.doveconf_warnings = doveconf_warnings(self.conf)
        self.argv = ["dovecot", "-F", "-c", self.conf]

    def log_problems(self) -> dict:
        counts: Counter = Counter()
        samples: dict[str, str] = {}
        try:
            with open(self.log_path, "rb") as f:
                for raw in f:
                    line = raw.decode("utf-8", "replace").rstrip()
                    for level in ("Panic:", "Fatal:", "Error:", "Warning:"):
                        i = line.find(level)
                        if i >= 0 and "Killed with signal 15 (by pid=" + str(os.getpid()) not in line:
                            key = line[i:i + 70]
                            counts[key] += 1
                            samples.setdefault(key, line[:300])
                            break
        except OSError:
            pass
        return {"counts": dict(counts.most_common(12)), "samples": [samples[k] for k, _ in counts.most_common(6)],
                "doveconf_warnings": self.doveconf_warnings, "stderr_tail": self.stderr_tail()[-600:]}


# --- 1. logins --------------------------------------------------------------------------------

def one_session(port: int, ctx, user: str, timeout: float):
    """(seconds, error or None, ssl info or None)."""
    t0 = time.perf_counter()
    c = None
    try:
        c = Pop3(port, ctx, timeout)
        c.login(user)
        c.cmd("STAT")
        c.cmd("QUIT")
        info = None
        if ctx is not None:
            sess = c.s.session
            info = {"version": c.s.version(), "cipher": c.s.cipher()[0],
                    "session_ticket": bool(sess is not None and sess.has_ticket)}
        return time.perf_counter() - t0, None, info
    except (OSError, Pop3Error, ssl.SSLError) as e:
        return time.perf_counter() - t0, f"{type(e).__name__}: {e}"[:160], None
    finally:
        if c is not None:
            c.close()


def measure_logins(server: Server, tls: bool, n: int, users: list[str], seconds: float) -> dict:
    port = server.tls_port if tls else server.port
    ctx = client_tls_context() if tls else None
    # Warm-up (not measured): every user of the rotation once (Dovecot makes its index files).
    for u in users[: min(len(users), 100)]:
        one_session(port, ctx, u, 30.0)
    time.sleep(0.3)
    server.check_alive("logins warm-up")
    lat, errors, info = [], Counter(), None
    pids0 = server.pids()
    cpu0, me0 = tree_cpu_ms(pids0), client_cpu_ms()
    t0 = time.monotonic()
    deadline = t0 + seconds
    done = 0
    for i in range(n):
        if time.monotonic() > deadline:
            break
        dt, err, si = one_session(port, ctx, users[i % len(users)], 30.0)
        done += 1
        if err is None:
            lat.append(dt * 1000)
            info = info or si
        else:
            errors[err] += 1
            if errors.total() > max(20, n // 10):
                break
    wall = time.monotonic() - t0
    me1 = client_cpu_ms()
    time.sleep(0.3)  # Dovecot's last pop3 process exits and is reaped into the master's cutime
    cpu1 = server.cpu_ms()
    server.check_alive("logins")
    ok = len(lat)
    return {
        "sessions": done, "ok": ok, "failed": done - ok, "cut_off": done < n,
        "wall_s": round(wall, 3),
        "server_cpu_ms": round(cpu1 - cpu0, 1),
        "server_cpu_ms_per_login": (cpu1 - cpu0) / ok if ok else None,
        "sessions_per_s": ok / wall if wall > 0 else None,
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else None,
        "client_cpu_ms_per_login": (me1 - me0) / done if done else None,
        "errors": dict(errors.most_common(5)), "tls": info,
    }


# --- 2. memory of idle sessions -----------------------------------------------------------------

async def _idle_sessions(server: Server, tls: bool, users: list[str], concurrency: int, seconds: float) -> dict:
    port = server.tls_port if tls else server.port
    ctx = client_tls_context() if tls else None
    sem = asyncio.Semaphore(concurrency)
    opened: list = []
    errors: Counter = Counter()
    deadline = time.monotonic() + seconds

    async def expect_ok(reader, what):
        line = await asyncio.wait_for(reader.readline(), 30)
        if not line.startswith(b"+OK"):
            raise Pop3Error(f"{what}: {line[:80]!r}")

    max_errors = max(50, len(users) // 50)

    async def one(user: str):
        async with sem:
            if time.monotonic() > deadline:
                errors["not started: time limit"] += 1
                return
            if errors.total() >= max_errors:
                errors["not started: stopped after too many errors"] += 1
                return
            w = None
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(HOST, port, ssl=ctx, server_hostname="" if tls else None,
                                            limit=8192), 30)
                await expect_ok(r, "greeting")
                w.write(f"USER {user}\r\n".encode())
                await expect_ok(r, "USER")
                w.write(f"PASS {PASSWORD}\r\n".encode())
                await expect_ok(r, "PASS")
                opened.append((r, w))
            except (OSError, Pop3Error, asyncio.TimeoutError, ssl.SSLError, asyncio.IncompleteReadError) as e:
                errors[f"{type(e).__name__}: {e}"[:120]] += 1
                if w is not None:
                    w.close()

    base_pss = server.pss_kib()
    base_procs = len(server.pids())
    base_fds = count_fds(server.pids())
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(u)) for u in users]
    if cancelled := await wait_bounded(tasks, seconds + 35):
        errors["cancelled at time limit"] += cancelled
    open_s = time.monotonic() - t0
    await asyncio.sleep(2.0)  # let the server settle (Dovecot's pop3 processes finish starting up)
    server.check_alive("idle sessions")
    loaded_pss = server.pss_kib()
    procs = len(server.pids())
    loaded_fds = count_fds(server.pids())
    k = len(opened)
    # Close: QUIT, wait for the server's answer and close (bounded), then drop.
    for r, w in opened:
        try:
            w.write(b"QUIT\r\n")
        except (OSError, RuntimeError):
            pass

    async def drain(r, w):
        try:
            await asyncio.wait_for(r.read(), 10)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
        finally:
            w.close()

    for i in range(0, len(opened), 500):
        await asyncio.gather(*(drain(r, w) for r, w in opened[i:i + 500]), return_exceptions=True)
    return {
        "target": len(users), "opened": k, "open_s": round(open_s, 2),
        "pss_base_kib": base_pss, "pss_loaded_kib": loaded_pss,
        "kib_per_session": (loaded_pss - base_pss) / k if k else None,
        "processes_base": base_procs, "processes_loaded": procs,
        "fds_base": base_fds, "fds_loaded": loaded_fds,
        "fds_per_session": (loaded_fds - base_fds) / k if k else None,
        "errors": dict(errors.most_common(5)),
    }


async def _warm_users(server: Server, users: list[str], concurrency: int, seconds: float) -> int:
    """One login + QUIT per user, concurrently: a user's first session builds the server's
    index files in the maildir, which a later measurement must not pay for."""
    sem = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + seconds
    ok = 0

    async def one(user: str):
        nonlocal ok
        async with sem:
            if time.monotonic() > deadline:
                return
            w = None
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, server.port), 30)
                for cmd in (None, f"USER {user}", f"PASS {PASSWORD}", "QUIT"):
                    if cmd:
                        w.write(cmd.encode() + b"\r\n")
                    if not (await asyncio.wait_for(r.readline(), 60)).startswith(b"+OK"):
                        return
                ok += 1
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                if w is not None:
                    w.close()

    tasks = [asyncio.create_task(one(u)) for u in users]
    await wait_bounded(tasks, seconds + 65)
    return ok


def measure_memory(server: Server, tls: bool, users: list[str], seconds: float) -> dict:
    marker = "dovecot-uidlist" if server.name == "dovecot" else "pigeon-index"
    cold = [u for u in users if not os.path.exists(os.path.join(server.mail_root, u, marker))]
    if cold:
        log(f"{server.name}: first login of {len(cold)} users (not measured)")
        asyncio.run(_warm_users(server, cold, 32, seconds))
    server.restart()  # a fresh allocator: what an earlier measurement freed must not be reused here
    ctx = client_tls_context() if tls else None
    port = server.tls_port if tls else server.port
    for u in users[:20]:  # one-time costs (passwd-file read, TLS context, thread arenas) in the baseline
        one_session(port, ctx, u, 30.0)
    time.sleep(0.5)
    res = asyncio.run(_idle_sessions(server, tls, users, 64, seconds))
    time.sleep(1.0)
    return res


# --- 3. pipelined RETR of a whole maildir -----------------------------------------------------

def retr_all(server: Server, tls: bool, user: str, window: int, seconds: float) -> dict:
    port = server.tls_port if tls else server.port
    c = Pop3(port, client_tls_context() if tls else None, 60.0)
    try:
        c.login(user)
        stat = c.cmd("STAT").split()
        n, octets = int(stat[1]), int(stat[2])
        if c.buf:
            raise Pop3Error(f"unexpected data after STAT: {c.buf[:60]!r}")
        c.s.settimeout(30.0)
        buf = bytearray(4 << 20)
        mv = memoryview(buf)
        tail = b""
        sent = got = total = 0
        deadline = time.monotonic() + seconds
        cpu0, me0 = server.cpu_ms(), client_cpu_ms()
        t0 = time.perf_counter()
        reads = 0
        while got < n:
            if sent < n and sent - got <= window // 2:
                k = min(n - sent, window - (sent - got))
                c.s.sendall(b"".join(b"RETR %d\r\n" % i for i in range(sent + 1, sent + k + 1)))
                sent += k
            r = c.s.recv_into(buf)
            reads += 1
            if r == 0:
                raise Pop3Error(f"closed after {got} of {n} messages")
            total += r
            found = buf.count(TERM, 0, r)
            if tail:
                found += (tail + bytes(mv[:min(4, r)])).count(TERM)
            got += found
            tail = (tail + bytes(mv[max(0, r - 4):r]))[-4:]
            if time.monotonic() > deadline:
                break
        t1 = time.perf_counter()
        me1 = client_cpu_ms()
        cpu1 = server.cpu_ms()
        complete = got == n
        if complete:
            c.s.settimeout(30.0)
            c.cmd("QUIT")
        wall = t1 - t0
        return {"messages": n, "received": got, "complete": complete, "stat_octets": octets,
                "wire_octets": total, "wall_s": wall, "mb_per_s": octets / wall / 1e6 if complete else None,
                "wire_mb_per_s": total / wall / 1e6, "server_cpu_ms": cpu1 - cpu0,
                "server_cpu_ms_per_100mb": (cpu1 - cpu0) / (octets / 1e8) if octets else None,
                "client_cpu_pct_of_wall": 100 * (me1 - me0) / 1000 / wall if wall else None,
                "client_reads": reads}
    finally:
        c.close()


def measure_retr(server: Server, tls: bool, user: str, runs: int, seconds: float) -> dict:
    out = []
    errors = []
    t_end = time.monotonic() + seconds
    for _ in range(runs):
        if time.monotonic() > t_end:
            break
        try:
            out.append(retr_all(server, tls, user, 64, max(5.0, t_end - time.monotonic())))
        except (OSError, Pop3Error, ssl.SSLError) as e:
            errors.append(f"{type(e).__name__}: {e}"[:160])
        server.check_alive("retr")
    ok = [r for r in out if r["complete"]]
    best = max(ok, key=lambda r: r["mb_per_s"]) if ok else None
    return {"runs": len(out), "complete": len(ok), "mb_per_s_median": median_of(ok, "mb_per_s"),
            "mb_per_s_best": best["mb_per_s"] if best else None,
            "wall_s_median": median_of(ok, "wall_s"),
            "server_cpu_ms_per_100mb": median_of(ok, "server_cpu_ms_per_100mb"),
            "client_cpu_pct_of_wall": median_of(ok, "client_cpu_pct_of_wall"),
            "stat_octets": ok[0]["stat_octets"] if ok else None, "messages": ok[0]["messages"] if ok else None,
            "wire_octets": ok[0]["wire_octets"] if ok else None,
            "errors": errors + [f"incomplete: {r['received']}/{r['messages']}" for r in out if not r["complete"]],
            "all_runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in out]}


# --- 4. UIDL of a huge maildir ----------------------------------------------------------------

def uidl_once(server: Server, user: str, timeout: float) -> dict:
    c = Pop3(server.port, None, timeout)
    try:
        c.cmd(f"USER {user}")
        t_login = time.perf_counter()
        c.cmd(f"PASS {PASSWORD}")
        login_ms = (time.perf_counter() - t_login) * 1000
        if c.buf:
            raise Pop3Error("unexpected data after PASS")
        buf = bytearray(1 << 20)
        mv = memoryview(buf)
        tail = b""
        total = crlf = 0
        first = b""
        deadline = time.monotonic() + timeout
        t0 = time.perf_counter()
        c.s.sendall(b"UIDL\r\n")
        for _ in range(10_000_000):
            r = c.s.recv_into(buf)
            if r == 0:
                raise Pop3Error("closed in UIDL")
            if not first:
                first = bytes(mv[:3])
                if first != b"+OK":
                    raise Pop3Error(f"UIDL: {bytes(mv[:80])!r}")
            total += r
            crlf += buf.count(b"\r\n", 0, r)
            if tail[-1:] == b"\r" and buf[0] == 10:
                crlf += 1
            tail = (tail + bytes(mv[max(0, r - 5):r]))[-5:]
            if tail == TERM:
                break
            if time.monotonic() > deadline:
                raise Pop3Error(f"UIDL: time limit after {total} octets")
        ms = (time.perf_counter() - t0) * 1000
        c.cmd("QUIT")
        return {"uidl_ms": ms, "login_ms": login_ms, "lines": crlf - 2, "octets": total}
    finally:
        c.close()


def measure_uidl(server: Server, user: str, runs: int, warmups: int, seconds: float) -> dict:
    t_end = time.monotonic() + seconds
    warm = []
    errors = []
    for _ in range(warmups):
        try:
            warm.append(uidl_once(server, user, max(30.0, t_end - time.monotonic())))
        except (OSError, Pop3Error) as e:
            errors.append(f"warm-up: {type(e).__name__}: {e}"[:160])
    out = []
    for _ in range(runs):
        if time.monotonic() > t_end:
            break
        try:
            out.append(uidl_once(server, user, 60.0))
        except (OSError, Pop3Error) as e:
            errors.append(f"{type(e).__name__}: {e}"[:160])
        server.check_alive("uidl")
    # The same login once more after a session that ended without QUIT (no commit): shows what
    # the commit at QUIT costs the next login (pigeond rewrites its index there; see the report).
    after_noquit = None
    try:
        c = Pop3(server.port, None, 60.0)
        c.login(user)
        c.close()  # no QUIT
        time.sleep(0.3)
        after_noquit = uidl_once(server, user, 60.0)["login_ms"]
    except (OSError, Pop3Error) as e:
        errors.append(f"no-QUIT probe: {type(e).__name__}: {e}"[:160])
    ms = [r["uidl_ms"] for r in out]
    return {"runs": len(out), "login_ms_after_session_without_quit": after_noquit,
            "uidl_ms_median": median_of(out, "uidl_ms"),
            "uidl_ms_min": min(ms) if ms else None, "uidl_ms_max": max(ms) if ms else None,
            "login_ms_median": median_of(out, "login_ms"),
            "first_warmup_login_ms": warm[0]["login_ms"] if warm else None,
            "first_warmup_uidl_ms": warm[0]["uidl_ms"] if warm else None,
            "lines": out[0]["lines"] if out else None, "octets": out[0]["octets"] if out else None,
            "errors": errors}


# --- report -----------------------------------------------------------------------------------

def fmt(v, digits=2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:,.1f}"
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def build_rows(res: dict, args) -> list[tuple[str, object, object, str]]:
    P, D = res.get("pigeond", {}), res.get("dovecot", {})
    rows = []

    def either(key, field):
        return get(P, key, field) or get(D, key, field)

    def section(key, title, fields):
        """A title row, then (label, field, better) of results[server][key] for each server."""
        if key in P or key in D:
            rows.append((title, None, None, "section"))
            rows.extend((label, get(P, key, field), get(D, key, field), better) for label, field, better in fields)

    for kind in ("plain", "tls"):
        key = f"logins_{kind}"
        section(key, f"LOGINS {kind.upper()} ({either(key, 'sessions')} sequential sessions)", (
            ("  server CPU per login (ms)", "server_cpu_ms_per_login", "lower"),
            ("  sessions/s", "sessions_per_s", "higher"),
            ("  session p50 (ms)", "p50_ms", "lower"),
            ("  session p99 (ms)", "p99_ms", "lower"),
            ("  failed sessions", "failed", ""),
            ("  client CPU per session (ms)", "client_cpu_ms_per_login", "")))
    for key in dict.fromkeys(k for k in list(P) + list(D) if k.startswith("memory_")):
        section(key, f"MEMORY {key[7:]} (idle logged-in sessions)", (
            ("  sessions opened", "opened", ""),
            ("  KiB Pss per session", "kib_per_session", "lower"),
            ("  Pss before (KiB)", "pss_base_kib", ""),
            ("  Pss loaded (KiB)", "pss_loaded_kib", ""),
            ("  server processes loaded", "processes_loaded", ""),
            ("  descriptors per session (all procs)", "fds_per_session", ""),
            ("  seconds to open them", "open_s", "")))
    for kind in ("plain", "tls"):
        key = f"retr_{kind}"
        section(key, f"RETR {kind.upper()} ({either(key, 'messages')} messages pipelined)", (
            ("  MB/s (median of runs)", "mb_per_s_median", "higher"),
            ("  MB/s (best)", "mb_per_s_best", "higher"),
            ("  message octets (STAT)", "stat_octets", ""),
            ("  server CPU ms per 100 MB", "server_cpu_ms_per_100mb", "lower"),
            ("  client CPU % of wall", "client_cpu_pct_of_wall", "")))
    section("uidl", f"UIDL ({args.uidl_messages} messages, warm)", (
        ("  UIDL ms (median)", "uidl_ms_median", "lower"),
        ("  UIDL ms (min)", "uidl_ms_min", "lower"),
        ("  UIDL ms (max)", "uidl_ms_max", "lower"),
        ("  login ms, warm (median)", "login_ms_median", "lower"),
        ("  login ms, first warm-up", "first_warmup_login_ms", ""),
        ("  login ms, previous session no QUIT", "login_ms_after_session_without_quit", ""),
        ("  lines", "lines", "")))
    return rows


def print_table(rows) -> dict:
    ratios = {}
    print(f"{'':42s}{'pigeond':>14s}{'dovecot':>14s}{'dovecot/pigeond':>17s}")
    section = ""
    for label, p, d, better in rows:
        if better == "section":
            section = label.split(" (")[0]
            print(label)
            continue
        ratio = None
        if isinstance(p, (int, float)) and isinstance(d, (int, float)) and not isinstance(p, bool) and p:
            ratio = d / p
        note = ""
        if ratio is not None and better:
            note = f"  ({better} is better)"
            ratios[f"{section.lower().replace(' ', '_')}:{label.strip()}"] = round(ratio, 3)
        print(f"{label:42s}{fmt(p):>14s}{fmt(d):>14s}{fmt(ratio, 3):>17s}{note}")
    return ratios


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pigeond", help="path to the pigeond binary")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run under 2 minutes")
    ap.add_argument("--only", default="logins,memory,retr,uidl",
                    help="comma-separated subset of: logins, memory, retr, uidl")
    ap.add_argument("--servers", default="pigeond,dovecot", help="comma-separated: pigeond, dovecot")
    ap.add_argument("--scheme", choices=("PLAIN", "SHA512-CRYPT"), default="PLAIN",
                    help="password scheme in the passwd-file, for both servers (PLAIN)")
    ap.add_argument("--logins", type=int, help="sequential plain sessions (2000; quick 200)")
    ap.add_argument("--tls-logins", type=int, help="sequential TLS sessions (500; quick 50)")
    ap.add_argument("--idle", type=int, help="idle sessions for both servers (1000; quick 100)")
    ap.add_argument("--idle-pigeond", type=int, help="idle sessions, pigeond only (10000; quick 0)")
    ap.add_argument("--retr-messages", type=int, help="messages in the RETR maildir (10000; quick 1000)")
    ap.add_argument("--retr-runs", type=int, help="measured RETR runs per transport (3; quick 1)")
    ap.add_argument("--uidl-messages", type=int, help="messages in the UIDL maildir (100000; quick 10000)")
    ap.add_argument("--uidl-runs", type=int, help="measured UIDL runs (5; quick 3)")
    ap.add_argument("--pigeond-threads", type=int, default=0, help="[server] threads (0: one per core)")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "build", "bench-data"),
                    help="cache of the generated maildirs (build/bench-data)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = ap.parse_args()

    q = args.quick
    args.logins = args.logins if args.logins is not None else (200 if q else 2000)
    args.tls_logins = args.tls_logins if args.tls_logins is not None else (50 if q else 500)
    args.idle = args.idle if args.idle is not None else (100 if q else 1000)
    args.idle_pigeond = args.idle_pigeond if args.idle_pigeond is not None else (0 if q else 10_000)
    args.retr_messages = args.retr_messages or (1000 if q else 10_000)
    args.retr_runs = args.retr_runs or (1 if q else 3)
    args.uidl_messages = args.uidl_messages or (10_000 if q else 100_000)
    args.uidl_runs = args.uidl_runs or (3 if q else 5)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    servers = [w.strip() for w in args.servers.split(",") if w.strip()]
    for w in args.only:
        if w not in ("logins", "memory", "retr", "uidl"):
            ap.error(f"--only: unknown measurement {w!r}")
    for w in servers:
        if w not in ("pigeond", "dovecot"):
            ap.error(f"--servers: unknown server {w!r}")
    for name in ("logins", "tls_logins", "idle", "idle_pigeond", "retr_messages", "retr_runs",
                 "uidl_messages", "uidl_runs"):
        if not 0 <= getattr(args, name) <= 200_000:
            ap.error(f"--{name.replace('_', '-')} out of range")
    if os.geteuid() != 0:
        ap.error("run as root (Dovecot's master, chown of the mail to the mail user)")
    pigeond_bin = os.path.abspath(args.pigeond)
    if "pigeond" in servers and not os.access(pigeond_bin, os.X_OK):
        ap.error(f"{pigeond_bin}: not an executable")
    if "dovecot" in servers and not (shutil.which("dovecot") and shutil.which("doveconf")):
        ap.error("dovecot/doveconf not found (dovecot-core, dovecot-pop3d)")

    # File descriptors: 10,000 idle sessions need 10,000 in this process and in pigeond (which
    # inherits the limit). The hard limit cannot be raised without CAP_SYS_RESOURCE.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.idle_pigeond and args.idle_pigeond + 200 > nofile:
        log(f"RLIMIT_NOFILE is {nofile}: pigeond-only idle sessions lowered from {args.idle_pigeond}")
        args.idle_pigeond = max(0, nofile - 500)
    # distinct users: one per idle session (RFC 1939's exclusive maildrop), at least 100 for logins
    args.users = max(100, args.idle, args.idle_pigeond)

    t_start = time.monotonic()
    meta = {
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "pigeond": pigeond_bin, "scheme": args.scheme, "quick": q, "only": args.only, "servers": servers,
        "nproc": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "rlimit_nofile": nofile, "python": sys.version.split()[0], "openssl": ssl.OPENSSL_VERSION,
    }
    meta.update(tool_versions(pigeond_version=[pigeond_bin, "--version"], dovecot_version=["dovecot", "--version"]))

    meta["pigeond_build_type"] = build_type(pigeond_bin)
    uid, gid = ensure_mail_user()
    meta["mail_user"] = f"{MAIL_USER} ({uid}:{gid})"
    data = ensure_data(args, uid, gid)
    meta["data"] = data
    root = data["root"]
    login_users = [f"u{i:05d}" for i in range(100)]

    results: dict[str, dict] = {s: {} for s in servers}
    problems: dict[str, dict] = {}
    top = tempfile.mkdtemp(prefix="pigeon-pop3bench-")
    srv: dict[str, Server] = {}
    try:
        os.chmod(top, 0o755)  # Dovecot's login (dovenull) and mail (pigeonbench) users traverse it
        cert, key = os.path.join(top, "cert.pem"), os.path.join(top, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                       capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        passwd = os.path.join(top, "users.passwd")
        all_users = [f"u{i:05d}" for i in range(args.users)] + [data["big"], data["huge"]]
        write_passwd(passwd, all_users, args.scheme, uid, gid, root)

        if "pigeond" in servers:
            srv["pigeond"] = Pigeond(pigeond_bin, os.path.join(top, "pigeond"), passwd, root, cert, key,
                                     args.pigeond_threads)
        if "dovecot" in servers:
            srv["dovecot"] = Dovecot(os.path.join(top, "dovecot"), passwd, root, cert, key, uid, gid,
                                     args.scheme, os.cpu_count() or 2)
        for s in srv.values():
            s.start()
            log(f"{s.name} started: pid {s.pid}, ports {s.port} (plain) / {s.tls_port} (TLS)")

        def run(name: str, what: str, fn, *fargs):
            s = srv[name]
            log(f"{name}: {what}")
            try:
                if not s.alive():
                    s.start()
                results[name][what] = fn(s, *fargs)
            except Exception as e:  # noqa: BLE001 - recorded, the other measurements go on
                results[name][what] = {"error": f"{type(e).__name__}: {e}"[:300]}
                log(f"{name}: {what} failed: {e}")

        if "logins" in args.only:
            budget = 60.0 if q else 240.0
            for tls, n, what in ((False, args.logins, "logins_plain"), (True, args.tls_logins, "logins_tls")):
                if n:
                    for name in srv:
                        run(name, what, measure_logins, tls, n, login_users, budget)
        if "retr" in args.only:
            budget = 60.0 if q else 240.0
            for name in srv:  # warm-up: Dovecot's index and cached sizes; the page cache
                log(f"{name}: RETR warm-up")
                try:
                    retr_all(srv[name], False, data["big"], 64, budget)
                except (OSError, Pop3Error) as e:
                    log(f"{name}: RETR warm-up failed: {e}")
            for tls, what in ((False, "retr_plain"), (True, "retr_tls")):
                for name in srv:
                    run(name, what, measure_retr, tls, data["big"], args.retr_runs, budget)
        if "uidl" in args.only:
            budget = 90.0 if q else 240.0
            for name in srv:
                run(name, "uidl", measure_uidl, data["huge"], args.uidl_runs, 2, budget)
        if "memory" in args.only:
            budget = 60.0 if q else 200.0
            users = [f"u{i:05d}" for i in range(args.idle)]
            for tls in (False, True):
                for name in srv:
                    if args.idle:
                        run(name, f"memory_{'tls' if tls else 'plain'}_{args.idle}", measure_memory, tls, users, budget)
            if args.idle_pigeond and "pigeond" in srv:
                # pigeond is one process: every session's descriptors count against its
                # RLIMIT_NOFILE (inherited from this script). Measured per session above; stay
                # within the limit rather than measure a server out of descriptors.
                k = args.idle_pigeond
                fps = get(results, "pigeond", f"memory_plain_{args.idle}", "fds_per_session")
                if fps and fps > 0:
                    fit = int((nofile - 300) / fps)
                    if fit < k:
                        k = max(0, fit // 100 * 100)
                        log(f"pigeond holds {fps:.2f} descriptors per idle session and RLIMIT_NOFILE is "
                            f"{nofile}: {k} idle sessions instead of {args.idle_pigeond}")
                        meta["idle_pigeond_capped"] = {"wanted": args.idle_pigeond, "measured": k,
                                                       "fds_per_session": fps, "rlimit_nofile": nofile}
                users = [f"u{i:05d}" for i in range(k)]
                for tls in ((False, True) if k else ()):
                    run("pigeond", f"memory_{'tls' if tls else 'plain'}_{k}", measure_memory,
                        tls, users, 300.0)
    finally:
        for name, s in srv.items():
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                s.events.append(f"stop failed: {e}")
            problems[name] = {"events": s.events, "starts": s.starts, **s.log_problems()}
        if args.keep:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    print()
    print(f"pigeond ({meta.get('pigeond_build_type')} build) vs Dovecot {meta.get('dovecot_version', '?')}"
          f" - passwords {{{args.scheme}}}, "
          f"{os.cpu_count()} CPUs, load {meta['loadavg_before']} before, {meta['loadavg_after']} after, "
          f"{meta['wall_s']} s")
    ratios = print_table(build_rows(results, args))
    for name in srv:
        for what in ("retr_plain", "retr_tls"):
            pct = get(results, name, what, "client_cpu_pct_of_wall")
            if pct is not None and pct > 80:
                print(f"note: {name} {what}: the Python client used {pct:.0f}% of a core for the run's wall "
                      f"time: the client, not the server, is (close to) the bottleneck; the figure is a lower bound")
    for name in srv:
        errs = {k: v.get("errors") for k, v in results[name].items() if isinstance(v, dict) and v.get("errors")}
        fails = {k: v["error"] for k, v in results[name].items() if isinstance(v, dict) and "error" in v}
        tls = get(results[name], "logins_tls", "tls")
        print(f"{name}: tls={tls} client-side errors={errs or 'none'} failed measurements={fails or 'none'} "
              f"events={problems[name]['events'] or 'none'} log problems={problems[name]['counts'] or 'none'}")
    print(json.dumps({"meta": meta, "results": results, "ratios_dovecot_over_pigeond": ratios,
                      "problems": problems}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
