#!/usr/bin/env python3
"""Brute-force burst benchmark: what 10,000 wrong passwords from one address cost a POP3 server.

The issue's requirement: "A burst of 10,000 wrong passwords from one address must cost the
server little and leave other users' logins fast". This script measures it, for pigeond and,
side by side, for Dovecot 2.3 (when installed), on loopback only:

  1. baseline  - a legitimate user logs in (connect, USER/PASS, STAT, QUIT) from 127.0.0.2,
                 sequentially, --baseline-logins times: p50/p99 latency and server CPU per login.
  2. burst     - an attacker on 127.0.0.1 sends --attempts wrong passwords (half for one victim,
                 half spread over random existing users) as fast as it can over --concurrency
                 connections, reconnecting when the server closes or refuses. Every attempt is
                 either answered (-ERR), refused (the connection meant to carry it was refused:
                 "-ERR [SYS/TEMP] Too many connections", a reset, or closed before the greeting)
                 or still pending at the cutoff (--burst-seconds). Meanwhile the legitimate user
                 logs in every --legit-interval seconds from 127.0.0.2 (a separate process).
  3. drain     - the attacker has gone; for --drain-seconds we watch what the server still does
                 (hashes of abandoned attempts, CPU).

Reported per server: server CPU during the burst (ms, per attempt answered), password hashes
computed (pigeond: 'auth failed ... reason=invalid_credentials' log lines; Dovecot: 'Password
mismatch' lines with auth_verbose=yes), RSS before/after, legit login p50/p99/max during the burst
against the baseline, log lines. A table, then one JSON line.

  bench/auth_burst.py build/release/apps/pigeond/pigeond            # full: 10,000 attempts, 60 s
  bench/auth_burst.py build/dev/apps/pigeond/pigeond --quick        # smoke: 1,000 attempts, 15 s
  bench/auth_burst.py PIGEOND --no-dovecot                          # pigeond only

Servers are started by this script in a temporary directory and killed by pid in finally blocks;
nothing but loopback is touched. Run it as root for the Dovecot part (Dovecot's master needs it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import pwd
import random
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field

from benchlib import ServerProcess, doveconf_warnings, make_maildir, percentile, sha512_crypt, timed_pop3_login, \
    tool_versions, write_passwd

SERVER_ADDR = "127.0.0.1"
ATTACKER_ADDR = "127.0.0.1"
LEGIT_ADDR = "127.0.0.2"
LEGIT_USER = "legit"
LEGIT_PASSWORD = "legit-password-1"
VICTIM = "user000"
N_USERS = 100


# --- helpers ----------------------------------------------------------------------------------

def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def busy_pct(a: tuple[int, int], b: tuple[int, int]) -> float | None:
    """Machine busy share between two machine_ticks(), in % of all CPUs."""
    return 100.0 * (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else None


def fmt_num(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def write_maildir(root: str, user: str, messages: int) -> None:
    """`messages` messages of about 2 KB (CRLF line ends) for `user`, already seen."""
    def message(i: int) -> bytes:
        return (f"From: a@example.org\r\nTo: {user}@example.org\r\nSubject: message {i}\r\n"
                f"Message-ID: <{i}.bench@example.org>\r\n\r\nBody {i}\r\n" + "x" * 2000 + "\r\n").encode()

    make_maildir(root, user, ((f"17000000{i:02d}.M{i}P1.bench:2,S", message(i)) for i in range(messages)))


# --- the legitimate user's POP3 client (blocking, in its own process) -------------------------

def pop3_login(port: int, timeout: float, source: str = LEGIT_ADDR) -> tuple[float, float, str | None]:
    """One full login of LEGIT_USER from `source`: (total s, s until PASS was answered, error)."""
    t_auth, total, err = timed_pop3_login(SERVER_ADDR, port, source, LEGIT_USER, LEGIT_PASSWORD, timeout,
                                          (b"STAT",))
    return total, float("nan") if t_auth is None else t_auth, None if err is None else err[:200]


def legit_process(port: int, interval: float, max_logins: int, max_seconds: float, timeout: float,
                  start_evt, stop_evt, out_q) -> None:
    """Logs in every `interval` s (or back to back when interval is 0) until stop_evt, max_logins or
    max_seconds. Sends [(start offset s, total s, auth s, error)] through out_q."""
    results = []
    start_evt.wait(timeout=max_seconds)
    t_start = time.monotonic()
    next_at = t_start
    for _ in range(max_logins):
        if stop_evt.is_set() or time.monotonic() - t_start > max_seconds:
            break
        now = time.monotonic()
        if next_at > now:
            if stop_evt.wait(timeout=next_at - now):
                break
        began = time.monotonic() - t_start
        total, auth, err = pop3_login(port, timeout)
        results.append((began, total, auth, err))
        next_at = t_start + (math.floor((time.monotonic() - t_start) / interval) + 1) * interval \
            if interval > 0 else 0
    out_q.put(results)


def run_legit(port: int, interval: float, max_logins: int, max_seconds: float, timeout: float):
    """Starts the legit prober; returns (process, start_evt, stop_evt, queue)."""
    ctx = mp.get_context("fork")
    start_evt, stop_evt, q = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=legit_process, args=(port, interval, max_logins, max_seconds, timeout,
                                                start_evt, stop_evt, q), daemon=True)
    p.start()
    return p, start_evt, stop_evt, q


def collect_legit(p, stop_evt, q, wait: float) -> list:
    if stop_evt is not None:
        stop_evt.set()
    try:
        results = q.get(timeout=wait)
    except Exception:  # noqa: BLE001
        results = []
    p.join(timeout=5)
    if p.is_alive():
        p.kill()
        p.join(timeout=5)
    return results


def summarize_logins(results: list) -> dict:
    ok = [r for r in results if r[3] is None]
    lat = [r[1] * 1000 for r in ok]
    auth = [r[2] * 1000 for r in ok]
    errors: dict[str, int] = {}
    for r in results:
        if r[3] is not None:
            errors[r[3]] = errors.get(r[3], 0) + 1
    return {
        "logins": len(results), "ok": len(ok), "failed": len(results) - len(ok),
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else None,
        "auth_p50_ms": percentile(auth, 50), "auth_p99_ms": percentile(auth, 99),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
    }


# --- the attacker (asyncio, in this process) --------------------------------------------------

@dataclass
class AttackStats:
    target: int
    issued: int = 0            # attempts consumed (answered + refused + dropped + pending)
    answered: int = 0          # PASS answered with -ERR
    answered_temp: int = 0     # ... of which -ERR [SYS/TEMP] (busy, not a real verification)
    answered_ok: int = 0       # PASS accepted (must stay 0: the passwords are wrong)
    refused: int = 0           # connection refused / reset / closed before the greeting
    refused_reasons: dict = field(default_factory=dict)
    dropped: int = 0           # PASS sent, connection closed (or killed: Dovecot's "-ERR Connection
                               # queue full") before its answer
    user_rejected: int = 0     # USER answered -ERR
    pending: int = 0           # in flight right now
    pending_at_cutoff: int = 0
    connecting: int = 0        # connecting or awaiting the greeting right now
    connecting_at_cutoff: int = 0
    connections: int = 0       # TCP connections that got a +OK greeting
    closed_by_server: int = 0  # closed after an answered attempt (the per-connection limit)
    answer_latency: list = field(default_factory=list)  # seconds from PASS sent to its -ERR
    first_err_lines: dict = field(default_factory=dict)
    wall_s: float = 0.0
    cut_off: bool = False


async def attacker(port: int, attempts: int, concurrency: int, seconds: float, users: list[str],
                   seed: int, patient_backoff: float | None = None) -> AttackStats:
    """patient_backoff None: a refused connection consumes its attempt (the brief's burst).
    A number: a refused connection gives its attempt back and the worker retries after that
    many seconds (an attacker who keeps the per-address connection cap full for the whole run)."""
    st = AttackStats(target=attempts)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds

    async def refuse(reason: str) -> None:
        st.refused += 1
        st.refused_reasons[reason] = st.refused_reasons.get(reason, 0) + 1
        if patient_backoff is not None:
            st.issued -= 1
            await asyncio.sleep(patient_backoff)

    async def worker() -> None:
        while st.issued < attempts and time.monotonic() < deadline:
            writer = None
            try:
                st.issued += 1  # the attempt this connection is for; refusal consumes it
                st.connecting += 1
                try:
                    reader, writer = await asyncio.open_connection(SERVER_ADDR, port,
                                                                   local_addr=(ATTACKER_ADDR, 0))
                    greeting = await reader.readline()
                except (ConnectionError, OSError) as e:
                    st.connecting -= 1
                    await refuse(type(e).__name__)
                    continue
                except BaseException:
                    st.connecting -= 1
                    raise
                st.connecting -= 1
                if not greeting.startswith(b"+OK"):
                    await refuse("-ERR greeting" if greeting.startswith(b"-ERR") else "closed before greeting")
                    continue
                st.connections += 1
                st.issued -= 1  # given back: the loop below takes it again
                while st.issued < attempts and time.monotonic() < deadline:
                    n = st.issued
                    st.issued += 1
                    user = VICTIM if n % 2 == 0 else rng.choice(users)
                    writer.write(f"USER {user}\r\nPASS wrong-{n}\r\n".encode())
                    st.pending += 1
                    sent = time.monotonic()
                    try:
                        await writer.drain()
                        r_user = await reader.readline()
                        if not r_user:
                            # Closed before this attempt was read: the earlier answer was the
                            # connection's last (per-connection failure limit). Not consumed.
                            st.pending -= 1
                            st.issued -= 1
                            st.closed_by_server += 1
                            break
                        if not r_user.startswith(b"+OK"):
                            st.user_rejected += 1
                        r_pass = await reader.readline()
                    except (ConnectionError, OSError):
                        st.pending -= 1
                        st.dropped += 1
                        break
                    st.pending -= 1
                    if not r_pass or b"Connection queue full" in r_pass or b"Connection queue full" in r_user:
                        st.dropped += 1
                        if r_pass:
                            key = "dropped: " + r_pass[:60].decode("ascii", "replace").strip()
                            st.first_err_lines[key] = st.first_err_lines.get(key, 0) + 1
                        break
                    if r_pass.startswith(b"+OK"):
                        st.answered_ok += 1
                        break
                    st.answered += 1
                    st.answer_latency.append(time.monotonic() - sent)
                    key = r_pass[:60].decode("ascii", "replace").strip()
                    st.first_err_lines[key] = st.first_err_lines.get(key, 0) + 1
                    if b"[SYS/TEMP]" in r_pass:
                        st.answered_temp += 1
            finally:
                if writer is not None:
                    writer.close()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    done, not_done = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
    if not_done:
        st.cut_off = True
        st.pending_at_cutoff = st.pending
        st.connecting_at_cutoff = st.connecting
        for t in not_done:
            t.cancel()
        await asyncio.gather(*not_done, return_exceptions=True)
    st.wall_s = time.monotonic() - t0
    for t in done:
        if t.exception() is not None:
            raise t.exception()
    return st


# --- servers ----------------------------------------------------------------------------------

class Server(ServerProcess):
    """One plain port on SERVER_ADDR; ready when it greets; a log file to count hashes in."""
    ready_timeout = 20.0

    def __init__(self, workdir: str):
        super().__init__(workdir, SERVER_ADDR)

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_slice(self, start: int, end: int | None) -> list[bytes]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                data = f.read() if end is None else f.read(max(0, end - start))
        except OSError:
            return []
        return data.splitlines()

    def count_hashes(self, lines: list[bytes]) -> dict:
        raise NotImplementedError


class Pigeond(Server):
    name = "pigeond"
    tree = False

    def __init__(self, binary: str, workdir: str, passwd_path: str, maildir_root: str):
        super().__init__(workdir)
        self.log_path = os.path.join(workdir, "pigeond.log")
        self.conf = os.path.join(workdir, "pigeond.toml")
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/auth_burst.py
[server]
host_name = "bench.invalid"

[[listen]]
address = "{SERVER_ADDR}:{self.port}"
tls = "none"

[storage]
driver = "maildir"
location = "{maildir_root}/%u"

[passdb]
driver = "passwd-file"
path = "{passwd_path}"

[auth]
plaintext = "always"
# defaults, spelled out: failure_delay = "250ms", max_failure_delay = "15s", max_concurrent = 128,
# max_failures_per_connection = 3; [limits] max_connections_per_ip = 50

[log]
level = "info"
destination = "{self.log_path}"
""")
        self.argv = [binary, "--config", self.conf]

    def count_hashes(self, lines: list[bytes]) -> dict:
        failed = sum(1 for l in lines if b"auth failed:" in l and b"reason=invalid_credentials" in l)
        attacker_failed = sum(1 for l in lines if b"auth failed:" in l and f"rip={ATTACKER_ADDR} ".encode() in l)
        logins = sum(1 for l in lines if b": login: user=" in l)
        busy = sum(1 for l in lines if b"auth busy:" in l)
        refused = sum(1 for l in lines if b"connection refused:" in l)
        # Every 'auth failed ... invalid_credentials' and every 'login:' line is one verification
        # (unknown users get a dummy hash of the same cost); 'auth busy' is answered unhashed.
        return {"hashes": failed + logins, "failed_verifications": failed,
                "attacker_failed_verifications": attacker_failed, "successful_logins": logins,
                "busy": busy, "refusal_lines": refused}


class Dovecot(Server):
    name = "dovecot"
    tree = True

    def __init__(self, workdir: str, passwd_path: str, maildir_root: str, mail_uid: int, mail_gid: int):
        super().__init__(workdir)
        self.log_path = os.path.join(workdir, "dovecot.log")
        self.conf = os.path.join(workdir, "dovecot.conf")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/auth_burst.py: a minimal POP3-only Dovecot on loopback
base_dir = {workdir}/run
state_dir = {workdir}/state
protocols = pop3
listen = {SERVER_ADDR}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
# one log line per failed verification ("Password mismatch"), to count the hashes computed
auth_verbose = yes
log_path = {self.log_path}
mail_location = maildir:{maildir_root}/%u
# auth_failure_delay is left at its default (2 secs)
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {passwd_path}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={maildir_root}/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {SERVER_ADDR}
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
        self.argv = ["dovecot", "-F", "-c", self.conf]

    def start(self) -> None:
        doveconf_warnings(self.conf)  # RuntimeError when Dovecot does not accept the configuration
        super().start()

    def count_hashes(self, lines: list[bytes]) -> dict:
        mismatch = sum(1 for l in lines if b"Password mismatch" in l)
        attacker_mismatch = sum(1 for l in lines
                                if b"Password mismatch" in l and f",{ATTACKER_ADDR},".encode() in l)
        unknown = sum(1 for l in lines if b"unknown user" in l)
        logins = sum(1 for l in lines if b"pop3-login: Login: user=" in l)
        return {"hashes": mismatch + logins, "failed_verifications": mismatch,
                "attacker_failed_verifications": attacker_mismatch, "successful_logins": logins,
                "unknown_user_lines": unknown}


# --- one server's run -------------------------------------------------------------------------

def run_server(server: Server, args, users: list[str]) -> dict:
    res: dict = {"server": server.name, "port": server.port}
    server.start()
    res["pid"] = server.pid
    time.sleep(0.5)

    # 1. baseline
    m0 = machine_ticks()
    cpu0 = server.cpu_ms()
    p, start_evt, stop_evt, q = run_legit(server.port, 0.0, args.baseline_logins, 120.0, args.login_timeout)
    start_evt.set()
    results = collect_legit(p, None, q, 130.0)
    cpu1 = server.cpu_ms()
    base = summarize_logins(results)
    base["server_cpu_ms"] = cpu1 - cpu0
    base["machine_busy_pct"] = busy_pct(m0, machine_ticks())
    base["server_cpu_ms_per_login"] = (cpu1 - cpu0) / base["ok"] if base["ok"] else None
    res["baseline"] = base
    time.sleep(0.5)

    # 2. burst
    rss_before, pss_before, procs_before = server.rss_kib(), server.pss_kib(), server.processes()
    log_off0 = server.log_size()
    max_legit = int(args.burst_seconds / args.legit_interval) + 50
    p, start_evt, stop_evt, q = run_legit(server.port, args.legit_interval, max_legit,
                                          args.burst_seconds + 5, args.login_timeout)
    me0 = os.times()
    m0 = machine_ticks()
    cpu0 = server.cpu_ms()
    t0 = time.monotonic()
    start_evt.set()
    st = asyncio.run(attacker(server.port, args.attempts, args.concurrency, args.burst_seconds,
                              users, args.seed, args.patient))
    t1 = time.monotonic()
    cpu1 = server.cpu_ms()
    m1 = machine_ticks()
    me1 = os.times()
    rss_after, pss_after, procs_after = server.rss_kib(), server.pss_kib(), server.processes()
    log_off1 = server.log_size()
    legit = collect_legit(p, stop_evt, q, args.login_timeout + 10)
    burst = {
        "wall_s": t1 - t0, "cut_off": st.cut_off,
        "attempts_target": st.target, "attempts_consumed": st.issued,
        "answered_err": st.answered, "answered_sys_temp": st.answered_temp, "accepted": st.answered_ok,
        "refused": st.refused, "refused_reasons": st.refused_reasons, "dropped_unanswered": st.dropped,
        "user_rejected": st.user_rejected,
        "pending_at_cutoff": st.pending_at_cutoff, "connecting_at_cutoff": st.connecting_at_cutoff,
        "connections": st.connections,
        "closed_by_server_after_answer": st.closed_by_server,
        "attacker_answer_latency_p50_s": percentile(st.answer_latency, 50),
        "attacker_answer_latency_max_s": max(st.answer_latency) if st.answer_latency else None,
        "err_lines": dict(sorted(st.first_err_lines.items(), key=lambda kv: -kv[1])[:4]),
        "server_cpu_ms": cpu1 - cpu0,
        "server_cpu_ms_per_answered": (cpu1 - cpu0) / st.answered if st.answered else None,
        "server_cpu_ms_per_consumed": (cpu1 - cpu0) / st.issued if st.issued else None,
        "server_cpu_pct_of_one_core": 100.0 * (cpu1 - cpu0) / 1000.0 / (t1 - t0),
        "attacker_client_cpu_ms": ((me1.user - me0.user) + (me1.system - me0.system)) * 1000,
        "machine_busy_pct": busy_pct(m0, m1), "loadavg_end": os.getloadavg()[0],
        "rss_kb_before": rss_before, "rss_kb_after": rss_after,
        "pss_kb_before": pss_before, "pss_kb_after": pss_after,
        "processes_before": procs_before, "processes_after": procs_after,
    }
    lines = server.log_slice(log_off0, log_off1)
    burst["log_lines"] = len(lines)
    burst.update({f"log_{k}": v for k, v in server.count_hashes(lines).items()})
    burst["legit"] = summarize_logins(legit)
    b = res["baseline"]
    # What the attacker cost: the burst's CPU less what the legit logins in it cost at the baseline rate.
    if b["server_cpu_ms_per_login"] is not None:
        net = burst["server_cpu_ms"] - burst["legit"]["ok"] * b["server_cpu_ms_per_login"]
        burst["server_cpu_ms_net_of_legit"] = net
        burst["server_cpu_ms_net_per_consumed"] = net / st.issued if st.issued else None
    for k in ("p50_ms", "p99_ms"):
        burst["legit"][f"{k}_vs_baseline"] = (burst["legit"][k] / b[k]) if burst["legit"][k] and b[k] else None
    res["burst"] = burst

    # 3. drain: the attacker is gone; does the server keep working for it?
    cpu2 = server.cpu_ms()
    time.sleep(args.drain_seconds)
    cpu3 = server.cpu_ms()
    log_off2 = server.log_size()
    drain_lines = server.log_slice(log_off1, log_off2)
    res["drain"] = {"seconds": args.drain_seconds, "server_cpu_ms": cpu3 - cpu2,
                    "log_lines": len(drain_lines),
                    **{f"log_{k}": v for k, v in server.count_hashes(drain_lines).items()},
                    "rss_kb": server.rss_kib(), "pss_kb": server.pss_kib(), "processes": server.processes()}
    # Legit logins after the drain: from another address, and once from the attacker's own address
    # (a legit user behind the same NAT: the address penalty applies to it too).
    after = summarize_logins([(0.0, *pop3_login(server.port, args.login_timeout)) for _ in range(3)])
    res["after_drain_legit"] = {k: after[k] for k in ("ok", "failed", "p50_ms", "max_ms", "errors")}
    same = summarize_logins([(0.0, *pop3_login(server.port, args.login_timeout, ATTACKER_ADDR))])
    res["after_drain_legit_from_attacker_addr"] = {k: same[k] for k in ("ok", "failed", "max_ms", "errors")}
    return res


# --- main -------------------------------------------------------------------------------------

def print_table(results: list[dict]) -> None:
    rows = [
        ("baseline legit p50 (ms)", lambda r: r["baseline"]["p50_ms"]),
        ("baseline legit p99 (ms)", lambda r: r["baseline"]["p99_ms"]),
        ("baseline server CPU/login (ms)", lambda r: r["baseline"]["server_cpu_ms_per_login"]),
        ("baseline failed logins", lambda r: r["baseline"]["failed"]),
        ("baseline machine busy (% of all CPUs)", lambda r: r["baseline"]["machine_busy_pct"]),
        ("burst wall time (s)", lambda r: r["burst"]["wall_s"]),
        ("attempts consumed", lambda r: r["burst"]["attempts_consumed"]),
        ("  answered -ERR", lambda r: r["burst"]["answered_err"]),
        ("    of which [SYS/TEMP]", lambda r: r["burst"]["answered_sys_temp"]),
        ("  refused connections", lambda r: r["burst"]["refused"]),
        ("  dropped unanswered", lambda r: r["burst"]["dropped_unanswered"]),
        ("  USER refused (-ERR)", lambda r: r["burst"]["user_rejected"]),
        ("  pending at cutoff", lambda r: r["burst"]["pending_at_cutoff"]),
        ("  connecting at cutoff", lambda r: r["burst"]["connecting_at_cutoff"]),
        ("  accepted (must be 0)", lambda r: r["burst"]["accepted"]),
        ("attacker connections", lambda r: r["burst"]["connections"]),
        ("server CPU in burst (ms)", lambda r: r["burst"]["server_cpu_ms"]),
        ("  net of legit logins (ms)", lambda r: r["burst"]["server_cpu_ms_net_of_legit"]),
        ("server CPU / answered (ms)", lambda r: r["burst"]["server_cpu_ms_per_answered"]),
        ("server CPU / consumed (ms)", lambda r: r["burst"]["server_cpu_ms_per_consumed"]),
        ("  net of legit, / consumed (ms)", lambda r: r["burst"]["server_cpu_ms_net_per_consumed"]),
        ("server CPU % of a core", lambda r: r["burst"]["server_cpu_pct_of_one_core"]),
        ("hashes computed in burst", lambda r: r["burst"]["log_hashes"]),
        ("  failed verifications (attacker)", lambda r: r["burst"]["log_attacker_failed_verifications"]),
        ("RSS before (KiB)", lambda r: r["burst"]["rss_kb_before"]),
        ("RSS after (KiB)", lambda r: r["burst"]["rss_kb_after"]),
        ("PSS before (KiB)", lambda r: r["burst"]["pss_kb_before"]),
        ("PSS after (KiB)", lambda r: r["burst"]["pss_kb_after"]),
        ("processes before/after", lambda r: f'{r["burst"]["processes_before"]}/{r["burst"]["processes_after"]}'),
        ("log lines in burst", lambda r: r["burst"]["log_lines"]),
        ("legit logins in burst", lambda r: r["burst"]["legit"]["logins"]),
        ("legit failed in burst", lambda r: r["burst"]["legit"]["failed"]),
        ("legit p50 in burst (ms)", lambda r: r["burst"]["legit"]["p50_ms"]),
        ("legit p99 in burst (ms)", lambda r: r["burst"]["legit"]["p99_ms"]),
        ("legit max in burst (ms)", lambda r: r["burst"]["legit"]["max_ms"]),
        ("legit p50 burst/baseline", lambda r: r["burst"]["legit"]["p50_ms_vs_baseline"]),
        ("legit p99 burst/baseline", lambda r: r["burst"]["legit"]["p99_ms_vs_baseline"]),
        ("attacker client CPU (ms)", lambda r: r["burst"]["attacker_client_cpu_ms"]),
        ("burst machine busy (% of all CPUs)", lambda r: r["burst"]["machine_busy_pct"]),
        ("drain: server CPU (ms)", lambda r: r["drain"]["server_cpu_ms"]),
        ("drain: hashes computed", lambda r: r["drain"]["log_hashes"]),
        ("drain: log lines", lambda r: r["drain"]["log_lines"]),
    ]
    names = [r["server"] for r in results]
    head = f"{'metric':40s}" + "".join(f"{n:>14s}" for n in names)
    if len(results) == 2:
        head += f"{'ratio p/d':>12s}"
    print(head)
    print("-" * len(head))
    for label, get in rows:
        vals = []
        for r in results:
            try:
                vals.append(get(r))
            except (KeyError, TypeError):
                vals.append(None)
        line = f"{label:40s}" + "".join(f"{fmt_num(v, 2 if isinstance(v, float) and abs(v) < 10 else 1):>14s}"
                                         for v in vals)
        if len(vals) == 2:
            a, b = vals
            ratio = (a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
            line += f"{fmt_num(ratio, 3):>12s}"
        print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pigeond", help="path to the pigeond binary")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 attempts, 15 s, shorter drain")
    ap.add_argument("--attempts", type=int, default=None, help="wrong passwords to send (10,000)")
    ap.add_argument("--burst-seconds", type=float, default=None, help="burst cutoff (60 s)")
    ap.add_argument("--concurrency", type=int, default=200, help="attacker connections (200)")
    ap.add_argument("--baseline-logins", type=int, default=None, help="sequential baseline logins (200)")
    ap.add_argument("--legit-interval", type=float, default=0.05, help="legit login period in the burst (s)")
    ap.add_argument("--login-timeout", type=float, default=30.0, help="legit login socket timeout (s)")
    ap.add_argument("--drain-seconds", type=float, default=None, help="watch after the burst (16 s)")
    ap.add_argument("--users", type=int, default=N_USERS, help="users in the passwd-file (100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--patient", type=float, default=None, metavar="SECONDS",
                    help="refused connections do not consume attempts; retry after SECONDS")
    ap.add_argument("--no-dovecot", action="store_true", help="pigeond only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = ap.parse_args()
    args.attempts = args.attempts or (1_000 if args.quick else 10_000)
    args.burst_seconds = args.burst_seconds or (15.0 if args.quick else 60.0)
    args.baseline_logins = args.baseline_logins or (50 if args.quick else 200)
    args.drain_seconds = args.drain_seconds if args.drain_seconds is not None else (5.0 if args.quick else 16.0)
    for name in ("attempts", "concurrency", "baseline_logins", "users"):
        if not 1 <= getattr(args, name) <= 1_000_000:
            ap.error(f"--{name.replace('_', '-')} out of range")
    if not 0 < args.burst_seconds <= 600 or not 0 <= args.drain_seconds <= 600 or args.legit_interval <= 0:
        ap.error("times out of range")
    if args.patient is not None and not 0 <= args.patient <= 60:
        ap.error("--patient out of range")
    pigeond = os.path.abspath(args.pigeond)
    if not os.access(pigeond, os.X_OK):
        ap.error(f"{pigeond}: not an executable")
    try:
        with socket.socket() as s:
            s.bind((LEGIT_ADDR, 0))
    except OSError as e:
        ap.error(f"cannot bind {LEGIT_ADDR}: {e}")
    dovecot_ok = not args.no_dovecot and shutil.which("dovecot") and shutil.which("doveconf")
    if not args.no_dovecot and not dovecot_ok:
        print("dovecot not found: pigeond only", file=sys.stderr)
    if dovecot_ok and os.geteuid() != 0:
        print("not root: Dovecot's master needs root, pigeond only", file=sys.stderr)
        dovecot_ok = False

    users = [f"user{i:03d}" for i in range(args.users)]
    spray = [u for u in users]  # the attacked names; LEGIT_USER is never among them
    passwords = [f"pw-{u}-{random.Random(u).randrange(10**9)}" for u in users] + [LEGIT_PASSWORD]
    t_hash = time.monotonic()
    hashes = sha512_crypt(passwords)
    hash_gen_s = time.monotonic() - t_hash

    meta = {
        "pigeond": pigeond, "quick": args.quick, "attempts": args.attempts, "burst_seconds": args.burst_seconds,
        "concurrency": args.concurrency, "baseline_logins": args.baseline_logins,
        "legit_interval_s": args.legit_interval, "patient_backoff_s": args.patient, "users": args.users + 1, "seed": args.seed,
        "nproc": os.cpu_count(), "loadavg_before": os.getloadavg(),
        "python_sha512_crypt_ms_each": 1000 * hash_gen_s / len(passwords),
    }
    meta.update(tool_versions(pigeond_version=[pigeond, "--version"]))
    if dovecot_ok:
        meta.update(tool_versions(dovecot_version=["dovecot", "--version"]))

    results: list[dict] = []
    top = tempfile.mkdtemp(prefix="pigeon-auth-burst-")
    try:
        os.chmod(top, 0o755)  # Dovecot's login (dovenull) and mail (nobody) users must traverse it
        passwd = os.path.join(top, "users.passwd")
        write_passwd(passwd, zip(users + [LEGIT_USER], hashes))

        # pigeond
        d = os.path.join(top, "pigeond")
        os.makedirs(d)
        mail = os.path.join(d, "mail")
        write_maildir(mail, LEGIT_USER, 5)
        server = Pigeond(pigeond, d, passwd, mail)
        try:
            results.append(run_server(server, args, spray))
        finally:
            server.stop()
        results[-1]["exit_code"] = server.exit_code
        results[-1]["stderr_tail"] = server.stderr_tail()[-500:]

        if dovecot_ok:
            d = os.path.join(top, "dovecot")
            os.makedirs(d)
            os.chmod(d, 0o755)
            mail = os.path.join(d, "mail")
            write_maildir(mail, LEGIT_USER, 5)
            nobody = pwd.getpwnam("nobody")
            for dirpath, dirnames, filenames in os.walk(mail):
                os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
                for fn in filenames:
                    os.chown(os.path.join(dirpath, fn), nobody.pw_uid, nobody.pw_gid)
            server = Dovecot(d, passwd, mail, nobody.pw_uid, nobody.pw_gid)
            try:
                time.sleep(2)
                results.append(run_server(server, args, spray))
            finally:
                server.stop()
    finally:
        if args.keep:
            print(f"kept {top}", file=sys.stderr)
        else:
            shutil.rmtree(top, ignore_errors=True)

    meta["loadavg_after"] = os.getloadavg()
    print()
    if args.patient is not None:
        print(f"patient attacker: refused connections do not consume attempts, retried after {args.patient:g} s")
    print(f"auth burst: {args.attempts:,} wrong passwords from {ATTACKER_ADDR} over {args.concurrency} "
          f"connections, cutoff {args.burst_seconds:g} s; legit user from {LEGIT_ADDR} every "
          f"{args.legit_interval * 1000:g} ms; {os.cpu_count()} CPUs, load before {meta['loadavg_before'][0]:.2f}")
    print_table(results)
    for r in results:
        extra = {"err_lines": r["burst"]["err_lines"], "refused_reasons": r["burst"]["refused_reasons"],
                 "legit_errors_in_burst": r["burst"]["legit"]["errors"], "after_drain_legit": r["after_drain_legit"],
                 "after_drain_legit_from_attacker_addr": r["after_drain_legit_from_attacker_addr"]}
        print(f"{r['server']}: {json.dumps(extra)}")
    print(json.dumps({"meta": meta, "results": results}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
