#!/usr/bin/env python3
"""Login storm: do real users still log in quickly while one address sprays wrong passwords?

Issue #8 ("Load and soak"); goal: p99 of the real users' login latency during the storm at most
2x its p99 when quiet. On loopback only, with the pigeond set-up of bench/soak_sessions.py
(Maildir, passwd-file) and pigeond's defaults for every [auth] and [limits] key (failure_delay
250ms, max_failure_delay 15s, max_concurrent 128, max_failures_per_connection 3,
max_connections_per_ip 50, login_timeout 60s): what a deployment runs. Passwords are stored as
--scheme ARGON2ID by default (what `pigeon user add` and `pigeon hash` write, and pigeond's
auth.unknown_user_scheme default), since the hashing cost is what a storm burns.

  1. warm-up: each real user logs in once (the maildrop's index is written), not measured;
  2. quiet: --workers real users, each in its own process and from its own address (127.0.0.2,
     127.0.0.3, ...), log in (connect, USER, PASS, QUIT) one every --interval seconds for
     --phase-seconds: latency of the login (connect to PASS's +OK) and of the session (to QUIT's
     +OK);
  3. storm: the same, while an attacker on 127.0.0.66 runs --storm-concurrency connections for
     --storm-seconds, each sending USER/PASS with wrong passwords as fast as it is answered
     (a third for the real users' names, a third for other existing users, a third for unknown
     names), reconnecting whenever the server closes or refuses the connection;
  4. drain: --drain-seconds with the attacker gone (the server's CPU, its log).

Reported: p50/p99/max of both phases and the ratio p99(storm)/p99(quiet), with the verdict; how
the throttle (src/auth/throttle.*) treated the storm: the attacker's attempts answered -ERR [AUTH]
and how long each answer took, those answered -ERR [SYS/TEMP] unhashed, connections refused over
max_connections_per_ip, and the password hashes pigeond computed for it (its `auth failed: ...
rip=127.0.0.66 ... reason=invalid_credentials` log lines: each is one verification); pigeond's
CPU and RSS per phase. A markdown table, then one JSON line.

  bench/login_storm.py build/release/apps/pigeond/pigeond                 # full: 90 s + 90 s (~5 min)
  bench/login_storm.py build/release/apps/pigeond/pigeond --quick         # smoke: 15 s + 15 s
  bench/login_storm.py PIGEOND --scheme SHA512-CRYPT --storm-concurrency 500

pigeond is started by this script and stopped by its PID in a finally block; every loop is
bounded in count and in time; the temporary directory is removed unless --keep.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter

from benchlib import make_maildir, percentile, timed_pop3_login, tool_versions, wait_bounded, write_passwd
from soak_sessions import HOST, Pigeond, find_pigeon_cli, log, machine_ticks, make_hashes, message, \
    proc_cpu_ms, proc_status, raise_nofile

ATTACKER = "127.0.0.66"
N_OTHER = 100


# --- real users (blocking, one process each) ---------------------------------------------------

def one_login(port: int, source: str, user: str, password: str, timeout: float):
    """(login s, session s, error): connect, greeting, USER, PASS, QUIT."""
    login, total, err = timed_pop3_login(HOST, port, source, user, password, timeout)
    return login, total, None if err is None else err[:160]


def real_user(port, source, user, password, interval, seconds, timeout, seed, start_evt, out_q) -> None:
    """Logs in every `interval` s (random phase, +-20 % jitter) for `seconds`; bounded in count."""
    results = []
    if start_evt.wait(timeout=600):
        rng = random.Random(seed)
        t_start = time.monotonic()
        next_at = t_start + rng.uniform(0, interval)
        for _ in range(int(seconds / interval) + 10):
            now = time.monotonic()
            if next_at - t_start >= seconds:
                break
            if next_at > now:
                time.sleep(next_at - now)
            began = time.monotonic() - t_start
            login, total, err = one_login(port, source, user, password, timeout)
            results.append((began, login, total, err))
            next_at += interval * rng.uniform(0.8, 1.2)
            if next_at < time.monotonic():
                # Behind after a slow login: the missed turns are skipped, not run back to back
                # (a catch-up burst would queue the real users behind each other).
                next_at = time.monotonic() + rng.uniform(0, interval)
    out_q.put((user, results))


def run_real_users(port, users, passwords, args, seconds):
    """Starts one process per real user; returns (start_evt, [processes], queue)."""
    ctx = mp.get_context("fork")
    start_evt, q = ctx.Event(), ctx.Queue()
    procs = []
    for i, u in enumerate(users):
        p = ctx.Process(target=real_user, args=(port, f"127.0.0.{2 + i}", u, passwords[u], args.interval,
                                                seconds, args.login_timeout, 1000 + i, start_evt, q), daemon=True)
        p.start()
        procs.append(p)
    return start_evt, procs, q


def collect_real_users(procs, q, wait: float) -> list:
    out = []
    end = time.monotonic() + wait
    for _ in procs:
        try:
            _, results = q.get(timeout=max(1.0, end - time.monotonic()))
            out.extend(results)
        except Exception:  # noqa: BLE001
            break
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    return out


def summarize_logins(results: list) -> dict:
    ok = [r for r in results if r[3] is None]
    login = [r[1] * 1000 for r in ok]
    total = [r[2] * 1000 for r in ok]
    errors = Counter(r[3] for r in results if r[3] is not None)
    return {"logins": len(results), "ok": len(ok), "failed": len(results) - len(ok),
            **{f"login_p{q}_ms": percentile(login, q) for q in (50, 90, 99)},
            "login_max_ms": max(login, default=None),
            **{f"session_p{q}_ms": percentile(total, q) for q in (50, 99)},
            "session_max_ms": max(total, default=None),
            "slowest": sorted(((round(r[0], 2), round(r[1] * 1000)) for r in ok), key=lambda x: -x[1])[:8],
            "errors": dict(errors.most_common(5))}


# --- the attacker (asyncio, a process of its own) -----------------------------------------------

async def _storm(port: int, concurrency: int, seconds: float, max_attempts: int, victims: list[str],
                 refused_backoff: float, seed: int) -> dict:
    st = Counter()
    lat_auth: list[float] = []   # -ERR [AUTH]: seconds from PASS sent to the answer
    lat_temp: list[float] = []   # -ERR [SYS/TEMP]
    first_lines: Counter = Counter()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline and st["attempts"] < max_attempts:
            w = None
            try:
                try:
                    r, w = await asyncio.wait_for(
                        asyncio.open_connection(HOST, port, local_addr=(ATTACKER, 0)),
                        max(0.1, deadline - time.monotonic()))
                    greeting = await asyncio.wait_for(r.readline(), max(0.1, deadline - time.monotonic()))
                except (OSError, asyncio.TimeoutError) as e:
                    st["connect_failed"] += 1
                    first_lines[f"connect: {type(e).__name__}"] += 1
                    if refused_backoff:
                        await asyncio.sleep(refused_backoff)
                    continue
                if not greeting.startswith(b"+OK"):
                    st["refused"] += 1
                    first_lines["greeting: " + greeting[:60].decode("ascii", "replace").strip()] += 1
                    if refused_backoff:
                        await asyncio.sleep(refused_backoff)
                    continue
                st["connections"] += 1
                while time.monotonic() < deadline and st["attempts"] < max_attempts:
                    n = st["attempts"]
                    st["attempts"] += 1
                    user = victims[rng.randrange(len(victims))]
                    w.write(f"USER {user}\r\nPASS wrong-{n}-{rng.randrange(10**6)}\r\n".encode())
                    sent = time.monotonic()
                    left = max(0.1, deadline - sent)
                    try:
                        await w.drain()
                        r_user = await asyncio.wait_for(r.readline(), left)
                        if not r_user:
                            st["attempts"] -= 1
                            st["closed_by_server"] += 1
                            break
                        r_pass = await asyncio.wait_for(r.readline(), max(0.1, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        st["pending_at_end"] += 1
                        break
                    except OSError:
                        st["dropped"] += 1
                        break
                    if not r_pass:
                        st["dropped"] += 1
                        break
                    took = time.monotonic() - sent
                    first_lines[r_pass[:60].decode("ascii", "replace").strip()] += 1
                    if r_pass.startswith(b"+OK"):
                        st["accepted"] += 1  # must stay 0
                    elif b"[SYS/TEMP]" in r_pass:
                        st["answered_temp"] += 1
                        lat_temp.append(took)
                    else:
                        st["answered_auth"] += 1
                        lat_auth.append(took)
            finally:
                if w is not None:
                    w.close()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await wait_bounded(tasks, seconds + 5)
    wall = time.monotonic() - t0

    def dist(v):
        return {"n": len(v), "p50_s": percentile(v, 50), "p90_s": percentile(v, 90), "max_s": max(v, default=None),
                "under_50ms": sum(1 for x in v if x < 0.05)}

    return {"wall_s": wall, **st, "answer_auth": dist(lat_auth), "answer_temp": dist(lat_temp),
            "lines": dict(first_lines.most_common(8))}


def attacker_process(port, concurrency, seconds, max_attempts, victims, backoff, seed, start_evt, out_q) -> None:
    res = {}
    if start_evt.wait(timeout=600):
        t = os.times()
        res = asyncio.run(_storm(port, concurrency, seconds, max_attempts, victims, backoff, seed))
        t2 = os.times()
        res["client_cpu_ms"] = ((t2.user - t.user) + (t2.system - t.system)) * 1000
    out_q.put(res)


# --- pigeond's log -----------------------------------------------------------------------------

def log_counts(server: Pigeond, start: int, end: int) -> dict:
    try:
        with open(server.log_path, "rb") as f:
            f.seek(start)
            lines = f.read(max(0, end - start)).splitlines()
    except OSError:
        lines = []
    att = f"rip={ATTACKER} ".encode()
    refused_lines = [l for l in lines if b"connection refused:" in l and att in l]
    more = sum(int(m.group(1)) for l in refused_lines for m in [re.search(rb"and (\d+) more", l)] if m)
    # When the attacker's hashes were computed (the log's timestamps), seconds from the first.
    stamps = []
    for l in lines:
        if b"auth failed:" in l and att in l and b"reason=invalid_credentials" in l:
            m = re.match(rb"(\d{4}-\d\d-\d\dT\d\d):(\d\d):(\d\d\.\d+)", l)
            if m:
                stamps.append(int(m.group(2)) * 60 + float(m.group(3)))
    timeline = None
    if stamps:
        base = stamps[0]
        rel = [(x - base) % 3600 for x in stamps]
        timeline = {"first_to_last_s": round(rel[-1], 2),
                    "in_first_5s": sum(1 for x in rel if x < 5), "in_first_30s": sum(1 for x in rel if x < 30),
                    "after_30s": sum(1 for x in rel if x >= 30)}
    return {
        "attacker_hash_timeline": timeline,
        "lines": len(lines),
        "attacker_connects": sum(1 for l in lines if b": connect: " in l and att in l),
        "attacker_hashed_failures": sum(1 for l in lines if b"auth failed:" in l and att in l
                                        and b"reason=invalid_credentials" in l),
        "attacker_temporary_failures": sum(1 for l in lines if b"auth failed:" in l and att in l
                                           and b"reason=temporary_failure" in l),
        "attacker_auth_busy": sum(1 for l in lines if b"auth busy:" in l and att in l),
        "attacker_refused_connections": len(refused_lines) + more,
        "attacker_disconnect_reasons": dict(Counter(
            m.group(1).decode() for l in lines if b"disconnect:" in l and att in l
            for m in [re.search(rb'reason="([^"]*)"', l)] if m).most_common(6)),
        "logins": sum(1 for l in lines if b": login: user=" in l),
        "auth_busy_all": sum(1 for l in lines if b"auth busy:" in l),
    }


# --- main --------------------------------------------------------------------------------------

def phase(server, port, real, passwords, args, seconds, storm: bool, victims):
    """One measured phase: the real users (and the attacker when storm); returns a dict."""
    log(f"{'storm' if storm else 'quiet'}: {seconds:g} s, {len(real)} real users every {args.interval:g} s"
        + (f", attacker {args.storm_concurrency} connections from {ATTACKER}" if storm else ""))
    start_evt, procs, q = run_real_users(port, real, passwords, args, seconds)
    ap = aq = None
    if storm:
        ctx = mp.get_context("fork")
        aq = ctx.Queue()
        ap = ctx.Process(target=attacker_process,
                         args=(port, args.storm_concurrency, seconds, args.max_attempts, victims,
                               args.refused_backoff, 7, start_evt, aq), daemon=True)
        ap.start()
    time.sleep(0.5)
    off0 = server.log_size()
    m0, cpu0 = machine_ticks(), proc_cpu_ms(server.pid)
    rss_max = proc_status(server.pid).get("VmRSS", 0)
    t0 = time.monotonic()
    start_evt.set()
    # Sample pigeond while the phase runs (bounded by the phase's length).
    while time.monotonic() - t0 < seconds and any(p.is_alive() for p in procs):
        time.sleep(1.0)
        rss_max = max(rss_max, proc_status(server.pid).get("VmRSS", 0))
    results = collect_real_users(procs, q, args.login_timeout + 30)
    m1, cpu1 = machine_ticks(), proc_cpu_ms(server.pid)
    wall = time.monotonic() - t0
    out = {"seconds": round(wall, 1), "real": summarize_logins(results),
           "server_cpu_ms": (cpu1 or 0) - (cpu0 or 0),
           "server_cpu_pct_of_one_core": 100.0 * ((cpu1 or 0) - (cpu0 or 0)) / 1000.0 / wall,
           "machine_busy_pct": 100.0 * (m1[0] - m0[0]) / (m1[1] - m0[1]) if m1[1] > m0[1] else None,
           "rss_max_kib": rss_max}
    if storm:
        try:
            out["attacker"] = aq.get(timeout=30)
        except Exception:  # noqa: BLE001
            out["attacker"] = {"error": "no result"}
        ap.join(timeout=10)
        if ap.is_alive():
            ap.kill()
            ap.join(timeout=5)
    out["log"] = log_counts(server, off0, server.log_size())
    server.check_alive("storm" if storm else "quiet")
    return out


def fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_markdown(res: dict, args, meta: dict) -> None:
    q, s = res["quiet"], res["storm"]
    a = s.get("attacker", {})
    print()
    print(f"### Login storm: {args.workers} real users every {args.interval:g} s, "
          f"{args.storm_concurrency} attacker connections from {ATTACKER} for {args.storm_seconds:g} s "
          f"({meta['scheme']})")
    print()
    print("| real users' logins | quiet | storm | storm / quiet |")
    print("|---|---|---|---|")

    def row(label, key, ratio=True):
        a_, b_ = q["real"].get(key), s["real"].get(key)
        r = (b_ / a_) if ratio and isinstance(a_, (int, float)) and isinstance(b_, (int, float)) and a_ else None
        print(f"| {label} | {fmt(a_)} | {fmt(b_)} | {fmt(r, 2) + '×' if r is not None else ''} |")

    row("logins (ok / all)", "ok", False)
    row("failed", "failed", False)
    row("login p50 (ms): connect to PASS's +OK", "login_p50_ms")
    row("login p90 (ms)", "login_p90_ms")
    row("**login p99 (ms)**", "login_p99_ms")
    row("login max (ms)", "login_max_ms")
    row("session p50 (ms): to QUIT's +OK", "session_p50_ms")
    row("session p99 (ms)", "session_p99_ms")
    print(f"| pigeond CPU (% of one core) | {fmt(q['server_cpu_pct_of_one_core'])} | "
          f"{fmt(s['server_cpu_pct_of_one_core'])} | |")
    print(f"| machine busy (% of {os.cpu_count()} CPUs) | {fmt(q['machine_busy_pct'])} | {fmt(s['machine_busy_pct'])} | |")
    print(f"| pigeond RSS max (MiB) | {fmt(q['rss_max_kib'] / 1024)} | {fmt(s['rss_max_kib'] / 1024)} | |")
    print()
    ratio = res["p99_ratio"]
    print(f"p99(storm) / p99(quiet) = **{fmt(ratio, 2)}×** (goal ≤ 2×: **{'met' if res['goal_met'] else 'missed'}**)")
    print()
    lg = s["log"]
    aa, at = a.get("answer_auth", {}), a.get("answer_temp", {})
    print("| the storm, as the throttle treated it | value |")
    print("|---|---|")
    for k, v in [
        ("attacker connections that got a greeting", fmt(a.get("connections"))),
        ("... refused over max_connections_per_ip (client side / pigeond's log)",
         f"{fmt(a.get('refused'))} / {fmt(lg['attacker_refused_connections'])}"),
        ("wrong passwords sent", fmt(a.get("attempts"))),
        ("answered -ERR [AUTH] (a failed verification)", fmt(aa.get("n"))),
        ("... answer time p50 / p90 / max (s)",
         f"{fmt(aa.get('p50_s'), 2)} / {fmt(aa.get('p90_s'), 2)} / {fmt(aa.get('max_s'), 2)}"),
        ("answered -ERR [SYS/TEMP] (its turn came after login_timeout: not hashed)", fmt(at.get("n"))),
        ("... answer time p50 / max (s)", f"{fmt(at.get('p50_s'), 2)} / {fmt(at.get('max_s'), 2)}"),
        ("still waiting for an answer when the storm ended", fmt(a.get("pending_at_end", 0))),
        ("connections closed by pigeond (max_failures_per_connection)", fmt(a.get("closed_by_server", 0))),
        ("accepted (must be 0)", fmt(a.get("accepted", 0))),
        ("password hashes pigeond computed for the attacker (auth failed ... invalid_credentials)",
         fmt(lg["attacker_hashed_failures"])),
        ("... of which in the first 5 s / first 30 s / after 30 s of them (pigeond's log times)",
         " / ".join(fmt((lg.get("attacker_hash_timeline") or {}).get(k))
                    for k in ("in_first_5s", "in_first_30s", "after_30s"))),
        ("... in the drain after the storm", fmt(res["drain"]["log"]["attacker_hashed_failures"])),
        ("auth busy (max_concurrent) lines", fmt(lg["auth_busy_all"])),
        ("attacker CPU (client, s)", fmt(a.get("client_cpu_ms", 0) / 1000)),
    ]:
        print(f"| {k} | {v} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pigeond", help="path to the pigeond binary")
    ap.add_argument("--quick", action="store_true", help="smoke run: 15 s phases")
    ap.add_argument("--workers", type=int, default=4, help="real users, each its own process and address (4)")
    ap.add_argument("--interval", type=float, default=3.0, help="seconds between a real user's logins (3.0)")
    ap.add_argument("--phase-seconds", type=float, default=None, help="quiet phase (90 s)")
    ap.add_argument("--storm-seconds", type=float, default=None, help="storm phase (90 s)")
    ap.add_argument("--drain-seconds", type=float, default=None, help="after the storm (20 s)")
    ap.add_argument("--storm-concurrency", type=int, default=200, help="attacker connections (200)")
    ap.add_argument("--max-attempts", type=int, default=1_000_000, help="bound on the attacker's attempts")
    ap.add_argument("--refused-backoff", type=float, default=0.0,
                    help="attacker's pause after a refused connection (0: reconnect at once)")
    ap.add_argument("--login-timeout", type=float, default=120.0, help="real users' socket timeout (120 s)")
    ap.add_argument("--scheme", choices=("ARGON2ID", "SHA512-CRYPT", "PLAIN"), default="ARGON2ID")
    ap.add_argument("--pigeon", help="the pigeon CLI (for ARGON2ID hashes; default: beside pigeond's build)")
    ap.add_argument("--auth", default="", help="extra [auth] lines for pigeond.toml (experiments)")
    ap.add_argument("--limits", default="", help="extra [limits] lines for pigeond.toml (experiments)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.phase_seconds = args.phase_seconds or (15.0 if args.quick else 90.0)
    args.storm_seconds = args.storm_seconds or (15.0 if args.quick else 90.0)
    args.drain_seconds = args.drain_seconds if args.drain_seconds is not None else (5.0 if args.quick else 20.0)
    if not 1 <= args.workers <= 50 or not 0.05 <= args.interval <= 60 or not 1 <= args.storm_concurrency <= 5000:
        ap.error("--workers 1-50, --interval 0.05-60, --storm-concurrency 1-5000")
    if not all(0 < x <= 900 for x in (args.phase_seconds, args.storm_seconds)) or not 0 <= args.drain_seconds <= 300:
        ap.error("phase times out of range")
    pigeond = os.path.abspath(args.pigeond)
    if not os.access(pigeond, os.X_OK):
        ap.error(f"{pigeond}: not an executable")
    for src in [ATTACKER] + [f"127.0.0.{2 + i}" for i in range(args.workers)]:
        with socket.socket() as s:
            s.bind((src, 0))
    nofile = raise_nofile(8192 + 2 * args.storm_concurrency)

    real = [f"r{i:02d}" for i in range(args.workers)]
    other = [f"v{i:03d}" for i in range(N_OTHER)]
    unknown = [f"nobody{i:03d}" for i in range(N_OTHER)]
    # a third each: the real users' names, other existing users, unknown names
    victims = real * (N_OTHER // len(real)) + other + unknown
    pw = {u: f"storm-pw-{u}-{random.Random(u).randrange(10**9)}" for u in real}
    t = time.monotonic()
    cli = find_pigeon_cli(pigeond, args.pigeon)
    real_hashes = make_hashes(args.scheme, [pw[u] for u in real], cli)
    other_hashes = make_hashes(args.scheme, ["other-users-password"] * 4, cli)
    hash_s = time.monotonic() - t
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pigeond": pigeond,
            "scheme": args.scheme, "workers": args.workers, "interval_s": args.interval,
            "phase_s": args.phase_seconds, "storm_s": args.storm_seconds,
            "storm_concurrency": args.storm_concurrency, "refused_backoff_s": args.refused_backoff,
            "extra_auth": args.auth, "extra_limits": args.limits, "nproc": os.cpu_count(), "rlimit_nofile": nofile,
            "loadavg_before": os.getloadavg(), "hash_generation_s_each": round(hash_s / (len(real) + 4), 3)}
    meta.update(tool_versions(pigeond_version=[pigeond, "--version"]))

    top = tempfile.mkdtemp(prefix="pigeon-storm-")
    server = None
    res: dict = {}
    try:
        passwd = os.path.join(top, "users.passwd")
        write_passwd(passwd, list(zip(real, real_hashes)) + [(u, other_hashes[i % 4]) for i, u in enumerate(other)])
        mail = os.path.join(top, "mail")
        for i, u in enumerate(real + other):
            make_maildir(mail, u, [(f"1764400000.M{i}P1.storm:2,", message(u, 1, 2000))])
        server = Pigeond(pigeond, top, passwd, mail, limits='shutdown_grace = "2s"\n' + args.limits, auth=args.auth,
                         unknown_user_scheme=args.scheme if args.scheme != "PLAIN" else "ARGON2ID",
                         script="login_storm.py")
        server.start()
        meta["pigeond_pid"] = server.pid
        log(f"pigeond {server.pid} on {HOST}:{server.port} ({args.scheme})")
        for i, u in enumerate(real):  # warm-up: index files, passwd-file read
            _, _, err = one_login(server.port, f"127.0.0.{2 + i}", u, pw[u], args.login_timeout)
            if err:
                raise RuntimeError(f"warm-up login of {u}: {err}")
        res["rss_start_kib"] = proc_status(server.pid).get("VmRSS")
        res["quiet"] = phase(server, server.port, real, pw, args, args.phase_seconds, False, victims)
        time.sleep(1.0)
        res["storm"] = phase(server, server.port, real, pw, args, args.storm_seconds, True, victims)
        log(f"drain: {args.drain_seconds:g} s")
        off, cpu0 = server.log_size(), proc_cpu_ms(server.pid)
        time.sleep(args.drain_seconds)
        res["drain"] = {"seconds": args.drain_seconds, "server_cpu_ms": (proc_cpu_ms(server.pid) or 0) - (cpu0 or 0),
                        "log": log_counts(server, off, server.log_size()),
                        "rss_kib": proc_status(server.pid).get("VmRSS")}
        # One real user from the attacker's own address afterwards (a NAT): the address penalty applies.
        login, total, err = one_login(server.port, ATTACKER, real[0], pw[real[0]], args.login_timeout)
        res["after_from_attacker_address"] = {"login_ms": login * 1000 if login else None, "error": err}
        res["log_problems"] = server.log_problems()
        server.check_alive("drain")
    finally:
        if server is not None:
            server.stop()
            meta["pigeond_exit"] = server.exit_code
            meta["pigeond_events"] = server.events
        if args.keep:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    qp, sp = res["quiet"]["real"]["login_p99_ms"], res["storm"]["real"]["login_p99_ms"]
    res["p99_ratio"] = sp / qp if qp and sp else None
    res["goal_met"] = bool(res["p99_ratio"] is not None and res["p99_ratio"] <= 2.0
                           and res["storm"]["real"]["failed"] == 0 and res["quiet"]["real"]["failed"] == 0)
    meta["loadavg_after"] = os.getloadavg()
    print_markdown(res, args, meta)
    for k in ("quiet", "storm"):
        if res[k]["real"]["errors"]:
            print(f"{k}: real-user errors {json.dumps(res[k]['real']['errors'])}")
    print(f"storm: slowest real logins (s into the phase, ms): {res['storm']['real']['slowest']}")
    print(f"after the storm, a real login from {ATTACKER}: {res['after_from_attacker_address']}")
    print()
    print(json.dumps({"meta": meta, "result": res}, default=str))
    return 0 if res["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
