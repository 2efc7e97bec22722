#!/usr/bin/env python3
"""Soak: 10,000 logged-in POP3 sessions held for 10 minutes while other users keep logging in.

Issue #8 ("Load and soak"). On loopback only, this script

  1. writes a pigeond configuration in a temporary directory: one plain POP3 listener on
     127.0.0.1, Maildir maildrops (ROOT/%u), a passwd-file with --sessions held users (s00000 ...,
     one small message each) and --workers cycling users (w000 ..., three messages each), the
     connection limits raised above what the run opens and limits.idle_timeout = 30m; raises
     RLIMIT_NOFILE (soft and hard: run as root) for itself and pigeond, and starts pigeond;
  2. ramp: opens --sessions connections (from 127.0.1.1-127.0.1.20, --ramp-concurrency logins at
     a time) that each log in with USER/PASS as their own user (RFC 1939 locks a maildrop per user);
  3. hold, --hold seconds: every held session sends NOOP about every --noop-interval seconds (a
     random phase each, so they are spread) and must get +OK; meanwhile --workers loops (in a
     second process, from 127.0.0.3) repeat connect, USER/PASS, STAT, RETR of one message, QUIT
     back to back, recording the login latency (connect to PASS's +OK) and the cycle latency
     (connect to QUIT's +OK). pigeond's VmRSS, thread count, open descriptors and CPU time are
     sampled every --sample-interval seconds (/proc/PID/status, /proc/PID/fd, /proc/PID/stat);
  4. check: every held session must still answer NOOP with +OK, then QUIT with +OK.

Reported: errors (must be 0; every failed login, NOOP, cycle or final check counts), login and
cycle latency p50/p90/p99/max, cycles completed, pigeond's RSS at the start, middle and end of
the hold and its maximum, and the growth between the hold's first and last minute (the mean of
the samples in each), threads and descriptors; pigeond's warning and error log lines. A markdown
table, then one JSON line.

  bench/soak_sessions.py build/release/apps/pigeond/pigeond              # the issue's run (~13 min,
                                                                         # and a few to delete the maildirs)
  bench/soak_sessions.py build/release/apps/pigeond/pigeond --quick      # smoke: 500 sessions, 60 s
  bench/soak_sessions.py PIGEOND --sessions 2000 --hold 120 --workers 4

Passwords: --scheme SHA512-CRYPT (the default: what a passwd-file taken over from Dovecot holds;
5000 rounds, a few ms per check), ARGON2ID (what `pigeon user add` writes; needs the `pigeon`
CLI beside pigeond's build directory, or --pigeon) or PLAIN. 64 distinct passwords are hashed
and shared round robin: pigeond verifies every login in full all the same.

pigeond is started by this script and stopped by its PID (SIGTERM, then SIGKILL) in a finally
block; every loop is bounded in count and in time; the temporary directory is removed unless
--keep. Standard library only (plus bench/benchlib.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

from benchlib import (ServerProcess, checked_pigeond_argv, count_fds, make_maildir, percentile, read_stat,
                      sha512_crypt, tool_versions, wait_bounded, write_passwd)

HOST = "127.0.0.1"
HELD_SOURCES = [f"127.0.1.{i}" for i in range(1, 21)]
WORKER_SOURCE = "127.0.0.3"
N_PASSWORDS = 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Pop3Error(Exception):
    pass


# --- /proc of one process -----------------------------------------------------------------------

def proc_status(pid: int) -> dict:
    """VmRSS, VmHWM (KiB) and Threads of /proc/PID/status ({} when the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_ms(pid: int) -> float | None:
    stat = read_stat(pid)
    if stat is None:
        return None
    return (stat[1] + stat[2]) * 1000.0 / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


# --- passwords ---------------------------------------------------------------------------------

def find_pigeon_cli(pigeond: str, given: str | None) -> str | None:
    if given:
        return os.path.abspath(given)
    # build/<preset>/apps/pigeond/pigeond -> build/<preset>/apps/pigeon/pigeon
    cand = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(pigeond))), "pigeon", "pigeon")
    return cand if os.access(cand, os.X_OK) else shutil.which("pigeon")


def make_hashes(scheme: str, passwords: list[str], pigeon_cli: str | None) -> list[str]:
    """'{SCHEME}...' for each password."""
    if scheme == "PLAIN":
        return ["{PLAIN}" + p for p in passwords]
    if scheme == "SHA512-CRYPT":
        return sha512_crypt(passwords)
    if scheme == "ARGON2ID":
        if not pigeon_cli:
            raise RuntimeError("ARGON2ID needs the pigeon CLI (--pigeon)")
        out = []
        for p in passwords:
            r = subprocess.run([pigeon_cli, "hash", "--scheme", "ARGON2ID", "--stdin"], input=p + "\n",
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0 or not r.stdout.strip().startswith("{ARGON2ID}"):
                raise RuntimeError(f"pigeon hash: {r.returncode} {r.stdout.strip()} {r.stderr.strip()}"[:300])
            out.append(r.stdout.strip())
        return out
    raise ValueError(scheme)


def raise_nofile(want: int) -> int:
    """Raises RLIMIT_NOFILE (soft and hard: root may) to at least `want`; pigeond inherits it.
    Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
        except (ValueError, OSError):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (ValueError, OSError):
                pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- pigeond -----------------------------------------------------------------------------------

class Pigeond(ServerProcess):
    """pigeond on one plain port of HOST, Maildirs under mail_root, a passwd-file, log to a file.
    `limits` and `auth` are extra lines for those sections (None: pigeond's defaults)."""
    name = "pigeond"
    tree = False
    ready_timeout = 30.0

    def __init__(self, binary: str, workdir: str, passwd: str, mail_root: str, *, limits: str = "",
                 auth: str = "", unknown_user_scheme: str = "SHA512-CRYPT", script: str = "soak_sessions.py"):
        super().__init__(workdir, HOST)
        self.binary = binary
        self.mail_root = mail_root
        self.log_path = os.path.join(workdir, "pigeond.log")
        self.conf = os.path.join(workdir, "pigeond.toml")
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/{script}
[server]
host_name = "bench.invalid"

[[listen]]
address = "{HOST}:{self.port}"
tls = "none"

[storage]
driver = "maildir"
location = "{mail_root}/%u"

[passdb]
driver = "passwd-file"
path = "{passwd}"

[auth]
# plaintext = "loopback" (the default): USER/PASS from 127.0.0.0/8 without TLS
unknown_user_scheme = "{unknown_user_scheme}"
{auth}
[limits]
{limits}
[log]
level = "info"
destination = "{self.log_path}"
""")
        self.argv = checked_pigeond_argv(binary, self.conf)

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_problems(self, start: int = 0, end: int | None = None) -> dict:
        """Warning and error lines of pigeond's log between two offsets, grouped by message
        (fields with '=' dropped); the expected "running as root" warning is left out."""
        counts: Counter = Counter()
        samples: dict[str, str] = {}
        pat = re.compile(r"pigeond\[\d+\]: (warning|error|critical): (.*)$")
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                data = f.read() if end is None else f.read(max(0, end - start))
        except OSError:
            data = b""
        for raw in data.splitlines():
            m = pat.search(raw.decode("utf-8", "replace").rstrip())
            if not m or "running as root" in m.group(2):
                continue
            key = m.group(1) + ": " + " ".join(w for w in m.group(2).split() if "=" not in w)[:80]
            counts[key] += 1
            samples.setdefault(key, m.group(0)[:300])
        return {"counts": dict(counts.most_common(12)), "samples": [samples[k] for k, _ in counts.most_common(6)]}


# --- data --------------------------------------------------------------------------------------

def message(user: str, n: int, size: int) -> bytes:
    head = (f"From: sender{n}@example.net\r\nTo: {user}@example.org\r\nSubject: soak message {n}\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{n}.{user}@example.net>\r\n\r\n")
    body = "".join(f"line {i} of a small test message for the soak benchmark\r\n" for i in range(size // 50))
    return (head + body).encode()


def write_data(root: str, held: list[str], cyclers: list[str]) -> None:
    for i, u in enumerate(held):
        make_maildir(root, u, [(f"1764400000.M{i}P1.soak:2,", message(u, 1, 1500))])
    for i, u in enumerate(cyclers):
        make_maildir(root, u, [(f"17644000{k:02d}.M{i}_{k}P1.soak:2,", message(u, k, 4000 + 2000 * k))
                               for k in range(3)])


# --- the worker loops (a process of their own, so their timings do not share the held
#     sessions' event loop) ----------------------------------------------------------------------

async def _cycles(port: int, users: list[str], passwords: dict, seconds: float, max_cycles: int,
                  timeout: float) -> list:
    results = []  # (start offset s, login s, cycle s, error)
    t_start = time.monotonic()
    deadline = t_start + seconds
    done = 0

    async def expect_ok(r, what):
        line = await asyncio.wait_for(r.readline(), timeout)
        if not line.startswith(b"+OK"):
            raise Pop3Error(f"{what}: {line[:80]!r}")
        return line

    async def loop(user: str):
        nonlocal done
        rng = random.Random(user)
        while time.monotonic() < deadline and done < max_cycles:
            done += 1
            t0 = time.monotonic()
            t_login = None
            w = None
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port, local_addr=(WORKER_SOURCE, 0)),
                                              timeout)
                await expect_ok(r, "greeting")
                w.write(f"USER {user}\r\n".encode())
                await expect_ok(r, "USER")
                w.write(f"PASS {passwords[user]}\r\n".encode())
                await expect_ok(r, "PASS")
                t_login = time.monotonic() - t0
                w.write(b"STAT\r\n")
                stat = await expect_ok(r, "STAT")
                count = int(stat.split()[1])
                if count < 1:
                    raise Pop3Error(f"STAT: {stat[:80]!r}")
                w.write(f"RETR {rng.randint(1, count)}\r\n".encode())
                await expect_ok(r, "RETR")
                while True:
                    line = await asyncio.wait_for(r.readline(), timeout)
                    if not line:
                        raise Pop3Error("RETR: closed inside the message")
                    if line == b".\r\n":
                        break
                w.write(b"QUIT\r\n")
                await expect_ok(r, "QUIT")
                results.append((t0 - t_start, t_login, time.monotonic() - t0, None))
            except (OSError, Pop3Error, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                    IndexError) as e:
                results.append((t0 - t_start, t_login, time.monotonic() - t0, f"{type(e).__name__}: {e}"[:160]))
                await asyncio.sleep(0.1)  # a failing server is not hammered
            finally:
                if w is not None:
                    w.close()

    await asyncio.gather(*(loop(u) for u in users))
    return results


def worker_process(port, users, passwords, seconds, max_cycles, timeout, start_evt, out_q) -> None:
    if not start_evt.wait(timeout=3600):
        out_q.put(([], 0.0))
        return
    t = os.times()
    results = asyncio.run(_cycles(port, users, passwords, seconds, max_cycles, timeout))
    t2 = os.times()
    out_q.put((results, ((t2.user - t.user) + (t2.system - t.system)) * 1000))


# --- held sessions -----------------------------------------------------------------------------

class Held:
    __slots__ = ("user", "r", "w", "noops", "noop_lat")

    def __init__(self, user, r, w):
        self.user, self.r, self.w = user, r, w
        self.noops = 0
        self.noop_lat = 0.0  # worst NOOP round trip


async def open_sessions(port: int, users: list[str], passwords: dict, concurrency: int, seconds: float,
                        errors: Counter, progress) -> tuple[list[Held], list[float]]:
    """Logs every user in on a connection of its own; (the sessions held, login latencies in s)."""
    sem = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + seconds
    held: list[Held] = []
    login_lat: list[float] = []

    async def one(i: int, user: str):
        async with sem:
            if time.monotonic() > deadline:
                errors["ramp: not started, time limit"] += 1
                return
            w = None
            t0 = time.monotonic()
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(HOST, port, local_addr=(HELD_SOURCES[i % len(HELD_SOURCES)], 0),
                                            limit=4096), 60)
                for cmd, what in ((None, "greeting"), (f"USER {user}", "USER"), (f"PASS {passwords[user]}", "PASS")):
                    if cmd:
                        w.write(cmd.encode() + b"\r\n")
                    line = await asyncio.wait_for(r.readline(), 60)
                    if not line.startswith(b"+OK"):
                        raise Pop3Error(f"{what}: {line[:80]!r}")
                login_lat.append(time.monotonic() - t0)
                held.append(Held(user, r, w))
                if len(held) % 1000 == 0:
                    progress(len(held))
            except (OSError, Pop3Error, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                errors[f"ramp: {type(e).__name__}: {e}"[:140]] += 1
                if w is not None:
                    w.close()

    tasks = [asyncio.create_task(one(i, u)) for i, u in enumerate(users)]
    if cancelled := await wait_bounded(tasks, seconds + 130):
        errors["ramp: cancelled at time limit"] += cancelled
    return held, login_lat


async def keep_alive(s: Held, hold_end: float, interval: float, rng: random.Random, errors: Counter) -> bool:
    """NOOP about every `interval` s until hold_end; False (and the session closed) on a failure."""
    next_at = time.monotonic() + rng.uniform(0, interval)
    while True:
        if next_at >= hold_end:
            await asyncio.sleep(max(0.0, hold_end - time.monotonic()))
            return True
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        t0 = time.monotonic()
        try:
            s.w.write(b"NOOP\r\n")
            line = await asyncio.wait_for(s.r.readline(), 60)
            if not line.startswith(b"+OK"):
                raise Pop3Error(f"NOOP: {line[:80]!r}")
        except (OSError, Pop3Error, asyncio.TimeoutError) as e:
            errors[f"hold: {type(e).__name__}: {e}"[:140]] += 1
            s.w.close()
            return False
        s.noops += 1
        s.noop_lat = max(s.noop_lat, time.monotonic() - t0)
        next_at += interval * rng.uniform(0.9, 1.1)


async def final_check(sessions: list[Held], errors: Counter) -> int:
    """NOOP then QUIT on every session, 500 at a time; the count of sessions that passed."""
    passed = 0

    async def one(s: Held):
        nonlocal passed
        try:
            for cmd in (b"NOOP", b"QUIT"):
                s.w.write(cmd + b"\r\n")
                line = await asyncio.wait_for(s.r.readline(), 60)
                if not line.startswith(b"+OK"):
                    raise Pop3Error(f"final {cmd.decode()}: {line[:80]!r}")
            passed += 1
        except (OSError, Pop3Error, asyncio.TimeoutError) as e:
            errors[f"final: {type(e).__name__}: {e}"[:140]] += 1
        finally:
            s.w.close()

    for i in range(0, len(sessions), 500):
        await asyncio.gather(*(one(s) for s in sessions[i:i + 500]))
    return passed


# --- the run -----------------------------------------------------------------------------------

async def soak(server: Pigeond, args, held_users: list[str], passwords: dict, worker) -> dict:
    errors: Counter = Counter()
    samples: list[dict] = []
    pid = server.pid
    t_origin = time.monotonic()
    phase = {"name": "ramp", "held": 0, "hold_start": None}

    def sample():
        st = proc_status(pid)
        return {"t": round(time.monotonic() - t_origin, 1), "phase": phase["name"], "held": phase["held"],
                "rss_kib": st.get("VmRSS"), "hwm_kib": st.get("VmHWM"), "threads": st.get("Threads"),
                "fds": count_fds([pid]), "cpu_ms": proc_cpu_ms(pid)}

    async def sampler(stop: asyncio.Event):
        while not stop.is_set():
            samples.append(sample())
            try:
                await asyncio.wait_for(stop.wait(), args.sample_interval)
            except asyncio.TimeoutError:
                pass

    stop_sampling = asyncio.Event()
    sampler_task = asyncio.create_task(sampler(stop_sampling))
    res: dict = {"baseline": sample()}

    # 2. ramp
    log(f"ramp: opening {len(held_users):,} sessions, {args.ramp_concurrency} logins at a time")
    t0 = time.monotonic()
    cpu0 = proc_cpu_ms(pid)
    held, login_lat = await open_sessions(server.port, held_users, passwords, args.ramp_concurrency, args.ramp_seconds,
                               errors, lambda n: log(f"ramp: {n:,} sessions logged in"))
    ramp_s = time.monotonic() - t0
    lat = [x * 1000 for x in login_lat]
    res["ramp"] = {"opened": len(held), "target": len(held_users), "seconds": round(ramp_s, 1),
                   "logins_per_s": round(len(held) / ramp_s, 1) if ramp_s else None,
                   "server_cpu_ms": (proc_cpu_ms(pid) or 0) - (cpu0 or 0),
                   "login_p50_ms": percentile(lat, 50), "login_p99_ms": percentile(lat, 99),
                   "login_max_ms": max(lat) if lat else None}
    log(f"ramp: {len(held):,} of {len(held_users):,} logged in after {ramp_s:.1f} s")
    server.check_alive("ramp")

    # 3. hold
    phase.update(name="hold", held=len(held))
    hold_start = time.monotonic()
    phase["hold_start"] = hold_start - t_origin
    hold_end = hold_start + args.hold
    log(f"hold: {args.hold:g} s, NOOP every ~{args.noop_interval:g} s, {args.workers} worker loops")
    samples.append(sample())
    worker["start"].set()
    m0, cpu0, me0 = machine_ticks(), proc_cpu_ms(pid), os.times()
    rng = random.Random(7)
    keepers = [asyncio.create_task(keep_alive(s, hold_end, args.noop_interval, random.Random(rng.random()), errors))
               for s in held]

    async def progress():
        while time.monotonic() < hold_end - 1:
            await asyncio.sleep(min(60.0, max(0.0, hold_end - time.monotonic() - 0.5)))
            last = samples[-1] if samples else {}
            log(f"hold: {time.monotonic() - hold_start:.0f} s, RSS {last.get('rss_kib')} KiB, "
                f"threads {last.get('threads')}, fds {last.get('fds')}, errors {sum(errors.values())}")

    prog = asyncio.create_task(progress())
    ok = await asyncio.gather(*keepers)
    prog.cancel()
    samples.append(sample())
    phase["name"] = "check"
    m1, cpu1, me1 = machine_ticks(), proc_cpu_ms(pid), os.times()
    alive = [s for s, good in zip(held, ok) if good]
    noops = sum(s.noops for s in held)
    res["hold"] = {"seconds": round(time.monotonic() - hold_start, 1), "sessions_alive": len(alive),
                   "noops": noops, "noop_worst_ms": round(1000 * max((s.noop_lat for s in held), default=0), 1),
                   "server_cpu_ms": (cpu1 or 0) - (cpu0 or 0),
                   "machine_busy_pct": 100.0 * (m1[0] - m0[0]) / (m1[1] - m0[1]) if m1[1] > m0[1] else None,
                   "soak_client_cpu_ms": ((me1.user - me0.user) + (me1.system - me0.system)) * 1000}
    server.check_alive("hold")

    # 4. check
    log(f"check: NOOP and QUIT on {len(alive):,} sessions")
    passed = await final_check(alive, errors)
    res["check"] = {"passed": passed, "checked": len(alive)}
    phase.update(name="end", held=0)
    await asyncio.sleep(1.0)
    samples.append(sample())
    stop_sampling.set()
    await sampler_task
    res["errors"] = dict(errors.most_common(20))
    res["errors_total"] = sum(errors.values())
    res["samples"] = samples
    return res


def summarize(res: dict, cycles: list, args) -> dict:
    hold = [s for s in res["samples"] if s["phase"] == "hold" and s["rss_kib"]]
    out: dict = {}
    if hold:
        t0 = hold[0]["t"]
        t_end = hold[-1]["t"]
        mid = min(hold, key=lambda s: abs(s["t"] - (t0 + t_end) / 2))
        first = [s["rss_kib"] for s in hold if s["t"] - t0 < 60]
        last = [s["rss_kib"] for s in hold if t_end - s["t"] < 60]
        out = {"rss_start_kib": hold[0]["rss_kib"], "rss_mid_kib": mid["rss_kib"], "rss_end_kib": hold[-1]["rss_kib"],
               "rss_max_kib": max(s["rss_kib"] for s in hold),
               "rss_first_minute_mean_kib": sum(first) / len(first), "rss_last_minute_mean_kib": sum(last) / len(last),
               "threads_min": min(s["threads"] for s in hold), "threads_max": max(s["threads"] for s in hold),
               "fds_min": min(s["fds"] for s in hold), "fds_max": max(s["fds"] for s in hold),
               "hold_samples": len(hold)}
        out["rss_growth_kib"] = out["rss_last_minute_mean_kib"] - out["rss_first_minute_mean_kib"]
        out["rss_growth_pct"] = 100.0 * out["rss_growth_kib"] / out["rss_first_minute_mean_kib"]
        ramp_end = res["ramp"]["opened"]
        if ramp_end:
            out["rss_per_held_session_kib"] = (hold[0]["rss_kib"] - res["baseline"]["rss_kib"]) / ramp_end
            out["fds_per_held_session"] = (hold[0]["fds"] - res["baseline"]["fds"]) / ramp_end
    good = [c for c in cycles if c[3] is None]
    login = [c[1] * 1000 for c in good]
    cycle = [c[2] * 1000 for c in good]
    cerr = Counter(c[3] for c in cycles if c[3] is not None)
    out.update({
        "cycles": len(good), "cycle_errors": sum(cerr.values()), "cycle_error_kinds": dict(cerr.most_common(5)),
        "cycles_per_s": len(good) / args.hold if args.hold else None,
        **{f"login_p{q}_ms": percentile(login, q) for q in (50, 90, 99)}, "login_max_ms": max(login, default=None),
        **{f"cycle_p{q}_ms": percentile(cycle, q) for q in (50, 90, 99)}, "cycle_max_ms": max(cycle, default=None),
    })
    # per minute of the hold: cycles and p99, to see a trend
    per_min = []
    for m in range(int(args.hold // 60) + 1):
        sel = [c[2] * 1000 for c in good if m * 60 <= c[0] < (m + 1) * 60]
        if sel:
            per_min.append({"minute": m, "cycles": len(sel), "cycle_p50_ms": percentile(sel, 50),
                            "cycle_p99_ms": percentile(sel, 99)})
    out["per_minute"] = per_min
    return out


def fmt(v, unit="") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


def print_markdown(res: dict, s: dict, args, meta: dict) -> None:
    errors_total = res["errors_total"] + s["cycle_errors"]
    mib = lambda k: (s.get(k) or 0) / 1024 if s.get(k) is not None else None  # noqa: E731
    rows = [
        ("held sessions (logged in / target)", f"{res['ramp']['opened']:,} / {res['ramp']['target']:,}"),
        ("ramp time (s), logins/s", f"{res['ramp']['seconds']} s, {fmt(res['ramp']['logins_per_s'])}/s"),
        ("ramp login p50 / p99 / max (ms)", f"{fmt(res['ramp']['login_p50_ms'])} / "
                                             f"{fmt(res['ramp']['login_p99_ms'])} / {fmt(res['ramp']['login_max_ms'])}"),
        ("hold (s)", fmt(res["hold"]["seconds"])),
        ("NOOPs answered in the hold, worst round trip", f"{res['hold']['noops']:,}, {res['hold']['noop_worst_ms']} ms"),
        ("sessions passing the final NOOP + QUIT", f"{res['check']['passed']:,} / {res['ramp']['target']:,}"),
        ("**errors (must be 0)**", f"**{errors_total}**"),
        (f"worker cycles completed ({args.workers} loops)", f"{s['cycles']:,} ({fmt(s['cycles_per_s'])}/s)"),
        ("login latency p50 / p90 / p99 / max (ms)",
         " / ".join(fmt(s[k]) for k in ("login_p50_ms", "login_p90_ms", "login_p99_ms", "login_max_ms"))),
        ("cycle latency p50 / p90 / p99 / max (ms)",
         " / ".join(fmt(s[k]) for k in ("cycle_p50_ms", "cycle_p90_ms", "cycle_p99_ms", "cycle_max_ms"))),
        ("pigeond RSS before the ramp (MiB)", fmt(res["baseline"]["rss_kib"] / 1024)),
        ("pigeond RSS hold start / middle / end / max (MiB)",
         " / ".join(fmt(mib(k)) for k in ("rss_start_kib", "rss_mid_kib", "rss_end_kib", "rss_max_kib"))),
        ("RSS per held session (KiB)", fmt(s.get("rss_per_held_session_kib"))),
        ("RSS growth, last minute vs first minute of the hold",
         f"{fmt(s.get('rss_growth_kib'))} KiB ({s.get('rss_growth_pct', 0):+.2f} %)"),
        ("pigeond threads (min-max in the hold)", f"{s.get('threads_min')}-{s.get('threads_max')}"),
        ("pigeond open fds (min-max in the hold)", f"{fmt(s.get('fds_min'))}-{fmt(s.get('fds_max'))}"),
        ("pigeond CPU in the hold (s), machine busy", f"{res['hold']['server_cpu_ms'] / 1000:,.1f} s, "
                                                      f"{fmt(res['hold']['machine_busy_pct'])} % of {os.cpu_count()} CPUs"),
    ]
    print()
    print(f"### Soak: {res['ramp']['target']:,} held sessions, {args.hold:g} s, {args.workers} worker loops "
          f"({meta['scheme']})")
    print()
    print("| measure | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    if s.get("per_minute"):
        print()
        print("| minute of the hold | cycles | cycle p50 (ms) | cycle p99 (ms) | RSS at its end (MiB) |")
        print("|---|---|---|---|---|")
        hold = [x for x in res["samples"] if x["phase"] == "hold" and x["rss_kib"]]
        t0 = hold[0]["t"] if hold else 0
        for m in s["per_minute"]:
            upto = [x for x in hold if x["t"] - t0 <= (m["minute"] + 1) * 60]
            rss = upto[-1]["rss_kib"] / 1024 if upto else None
            print(f"| {m['minute']} | {m['cycles']:,} | {fmt(m['cycle_p50_ms'])} | {fmt(m['cycle_p99_ms'])} | {fmt(rss)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pigeond", help="path to the pigeond binary")
    ap.add_argument("--quick", action="store_true", help="smoke run: 500 sessions, 60 s hold")
    ap.add_argument("--sessions", type=int, default=None, help="held sessions (10,000)")
    ap.add_argument("--hold", type=float, default=None, help="hold time in seconds (600)")
    ap.add_argument("--workers", type=int, default=8, help="cycling worker loops (8)")
    ap.add_argument("--noop-interval", type=float, default=60.0, help="NOOP period of a held session (60 s)")
    ap.add_argument("--sample-interval", type=float, default=10.0, help="/proc sampling period (10 s)")
    ap.add_argument("--ramp-concurrency", type=int, default=64, help="logins in flight during the ramp (64)")
    ap.add_argument("--ramp-seconds", type=float, default=900.0, help="time limit of the ramp (900 s)")
    ap.add_argument("--max-cycles", type=int, default=2_000_000, help="bound on worker cycles")
    ap.add_argument("--scheme", choices=("SHA512-CRYPT", "ARGON2ID", "PLAIN"), default="SHA512-CRYPT")
    ap.add_argument("--pigeon", help="the pigeon CLI (for --scheme ARGON2ID)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (config, log, mail)")
    args = ap.parse_args()
    args.sessions = args.sessions if args.sessions is not None else (500 if args.quick else 10_000)
    args.hold = args.hold if args.hold is not None else (60.0 if args.quick else 600.0)
    if not 1 <= args.sessions <= 100_000 or not 0 <= args.workers <= 256 or not 10 <= args.hold <= 7200:
        ap.error("--sessions 1-100000, --workers 0-256, --hold 10-7200")
    if not 1 <= args.noop_interval <= 500 or not 1 <= args.sample_interval <= 300 or not 1 <= args.ramp_concurrency <= 1000:
        ap.error("interval or concurrency out of range")
    pigeond = os.path.abspath(args.pigeond)
    if not os.access(pigeond, os.X_OK):
        ap.error(f"{pigeond}: not an executable")
    for src in HELD_SOURCES[:1] + [WORKER_SOURCE]:
        with socket.socket() as s:
            s.bind((src, 0))

    nofile = raise_nofile(2 * args.sessions + 4096)
    if nofile < args.sessions + 512:
        ap.error(f"RLIMIT_NOFILE is {nofile}: too low for {args.sessions} sessions (run as root)")
    max_conn = args.sessions + args.workers + 1000

    held_users = [f"s{i:05d}" for i in range(args.sessions)]
    cyclers = [f"w{i:03d}" for i in range(args.workers)]
    pw_list = [f"soak-pw-{k}-{random.Random(k).randrange(10**9)}" for k in range(N_PASSWORDS)]
    t = time.monotonic()
    hashes = make_hashes(args.scheme, pw_list, find_pigeon_cli(pigeond, args.pigeon))
    hash_s = time.monotonic() - t
    all_users = held_users + cyclers
    passwords = {u: pw_list[i % N_PASSWORDS] for i, u in enumerate(all_users)}
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pigeond": pigeond,
            "sessions": args.sessions, "hold_s": args.hold, "workers": args.workers,
            "noop_interval_s": args.noop_interval, "scheme": args.scheme, "rlimit_nofile": nofile,
            "nproc": os.cpu_count(), "loadavg_before": os.getloadavg(), "python": sys.version.split()[0],
            "hash_generation_s": round(hash_s, 2)}
    meta.update(tool_versions(pigeond_version=[pigeond, "--version"], kernel=["uname", "-r"]))

    top = tempfile.mkdtemp(prefix="pigeon-soak-")
    server = None
    wp = None
    try:
        passwd = os.path.join(top, "users.passwd")
        write_passwd(passwd, ((u, hashes[i % N_PASSWORDS]) for i, u in enumerate(all_users)))
        mail = os.path.join(top, "mail")
        t = time.monotonic()
        write_data(mail, held_users, cyclers)
        log(f"data: {len(all_users):,} users, maildirs and passwd-file ({args.scheme}) in "
            f"{time.monotonic() - t + hash_s:.1f} s, under {top}")
        server = Pigeond(pigeond, top, passwd, mail,
                         limits=f"max_connections = {max_conn}\nmax_connections_per_ip = {max_conn}\n"
                                f"idle_timeout = \"30m\"\nshutdown_grace = \"5s\"\n",
                         unknown_user_scheme=args.scheme if args.scheme != "PLAIN" else "SHA512-CRYPT")
        # The worker process is forked before any session is open (it inherits no sockets).
        ctx = mp.get_context("fork")
        worker = {"start": ctx.Event()}
        q = ctx.Queue()
        server.start()
        meta["pigeond_pid"] = server.pid
        log(f"pigeond {server.pid} on {HOST}:{server.port}, RLIMIT_NOFILE {nofile}")
        wp = ctx.Process(target=worker_process,
                         args=(server.port, cyclers, passwords, args.hold, args.max_cycles, 60.0,
                               worker["start"], q), daemon=True)
        wp.start()
        res = asyncio.run(soak(server, args, held_users, passwords, worker))
        cycles, worker_cpu_ms = ([], 0.0)
        try:
            cycles, worker_cpu_ms = q.get(timeout=120)
        except Exception:  # noqa: BLE001
            res["errors"]["worker process: no results"] = 1
            res["errors_total"] += 1
        wp.join(timeout=10)
        res["worker_client_cpu_ms"] = worker_cpu_ms
        res["log_problems"] = server.log_problems()
        res["log_bytes"] = server.log_size()
        server.check_alive("check")
    finally:
        if wp is not None and wp.is_alive():
            wp.kill()
            wp.join(timeout=5)
        if server is not None:
            server.stop()
            meta["pigeond_exit"] = server.exit_code
            meta["pigeond_events"] = server.events
        if args.keep:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    s = summarize(res, cycles, args)
    meta["loadavg_after"] = os.getloadavg()
    print_markdown(res, s, args, meta)
    if res["errors"]:
        print()
        print("errors:", json.dumps(res["errors"]))
    if res["log_problems"]["counts"]:
        print("pigeond warnings/errors:", json.dumps(res["log_problems"]["counts"]))
    print()
    print(json.dumps({"meta": meta, "summary": s, "result": res}, default=str))
    return 0 if res["errors_total"] + s["cycle_errors"] == 0 and res["check"]["passed"] == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
