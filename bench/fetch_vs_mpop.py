#!/usr/bin/env python3
"""Downloads a fresh mailbox from Dovecot 2.3 with pigeon fetch, mpop and fetchmail (and getmail6
with --getmail), one after the other in the same script, on the same data, into a Maildir each,
and prints the times and the ratios (the client issue's measured goal: pigeon fetch >= 3x faster
than mpop with every message durable before it is recorded and before its DELE).

Set-up: a POP3-only Dovecot on 127.0.0.1 (implicit TLS, a self-signed RSA-2048 certificate that
every client is told to trust; pop3_no_flag_updates so keep mode leaves the maildir unchanged), one
user whose maildir holds N messages of realistic shape (the MailFactory of pop3_vs_dovecot.py:
55% text 2-14 KB, 45% with an attachment 20-50 KB; cached in build/bench-data). Each client runs
in keep mode with a fresh state and a fresh target Maildir on the same file system, in rounds
(every client once per round, so a noisy machine weighs on all alike), after one warm-up round
that is not counted (Dovecot's index and the page cache are warm for everyone). Each run is
checked: N files delivered, N distinct messages.

Reported per client: wall time, MB/s of message data, the client's CPU (user+sys), its maximum
RSS, and the ratio to pigeon fetch. The wire alone is measured too (a pipelined RETR of every
message over the same TLS, discarding the data), as the bound no client can beat.

  bench/fetch_vs_mpop.py build/release/apps/pigeon/pigeon                # 5,000 messages
  bench/fetch_vs_mpop.py build/release/apps/pigeon/pigeon --messages 500 # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import make_maildir, tool_versions  # noqa: E402
from pop3_vs_dovecot import (HOST, PASSWORD, REPO, Dovecot, MailFactory, ensure_mail_user,  # noqa: E402
                             write_passwd)

USER = "fetchbench"
DATA_VERSION = "v1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_mailbox(data_dir: str, n: int, uid: int, gid: int) -> tuple[str, int]:
    root = os.path.join(data_dir, f"fetch-vs-mpop-{DATA_VERSION}", "mail")
    box = f"{USER}{n}"
    path = os.path.join(root, box)
    if not os.path.isdir(path):
        os.makedirs(root, exist_ok=True)
        t0 = time.monotonic()
        f = MailFactory(seed=20261129)
        files = []
        for i in range(n):
            size = f.rng.randint(2_000, 14_000) if f.rng.random() < 0.55 else f.rng.randint(20_000, 50_000)
            files.append((f"{1764000000 + i}.M{i}P1.bench:2,", f.message(i, box, size)))
        make_maildir(root, box, files)
        log(f"data: made {n} messages in {time.monotonic() - t0:.1f} s under {path}")
    subprocess.run(["chown", "-R", f"{uid}:{gid}", os.path.dirname(root)], check=True, timeout=600)
    for d in (os.path.dirname(root), root):
        os.chmod(d, 0o755)
    octets = sum(os.path.getsize(os.path.join(path, "cur", name)) for name in os.listdir(os.path.join(path, "cur")))
    return root, octets


def delivered(maildir: str) -> list[str]:
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            out.extend(os.path.join(d, name) for name in os.listdir(d))
    return out


def check_delivery(maildir: str, n: int) -> str | None:
    files = delivered(maildir)
    if len(files) != n:
        return f"{len(files)} messages delivered, {n} expected"
    ids = set()
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        start = data.find(b"\nMessage-ID: <")
        if start < 0:
            return f"{path}: no Message-ID"
        ids.add(data[start:data.find(b">", start)])
    if len(ids) != n:
        return f"{len(ids)} distinct messages among {n}"
    return None


def run_client(name: str, argv: list[str], env: dict, cwd: str, timeout: float) -> dict:
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = t0 + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                return {"ok": False, "rc": None, "wall_s": timeout, "cpu_s": 0, "maxrss_kib": 0,
                        "stderr_tail": f"{name}: timed out after {timeout} s", "stdout_tail": ""}
            time.sleep(0.002)  # polls the child's exit; the bound is the timeout
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"ok": proc.returncode == 0, "rc": proc.returncode, "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
                "stderr_tail": err.read().decode(errors="replace")[-800:],
                "stdout_tail": out.read().decode(errors="replace")[-400:]}


def measured(name: str, argv: list[str], env: dict, cwd: str, timeout: float) -> dict:
    """Wall time, the client's CPU (its wait4 rusage; fetchmail's MDA processes count too) and
    its maximum RSS as GNU time reports it (the client process itself)."""
    rss_file = os.path.join(cwd, "maxrss")
    res = run_client(name, ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv, env, cwd, timeout)
    try:
        with open(rss_file) as fh:
            res["maxrss_kib"] = int(fh.read().split()[-1])
    except (OSError, ValueError, IndexError):
        res["maxrss_kib"] = 0
    return res


def wire_only(port: int, cafile: str, n: int, timeout: float) -> float:
    """A pipelined RETR of every message over TLS, data discarded: what the wire allows."""
    ctx = ssl.create_default_context(cafile=cafile)
    t0 = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(f"USER {USER}{n}\r\nPASS {PASSWORD}\r\n".encode())
        f.flush()
        f.readline()
        f.readline()
        window = 32
        sent = 0
        done = 0
        while done < n:
            while sent < n and sent - done < window:
                sent += 1
                f.write(f"RETR {sent}\r\n".encode())
            f.flush()
            if not f.readline().startswith(b"+OK"):
                raise RuntimeError("RETR refused")
            for line in f:
                if line == b".\r\n":
                    break
            done += 1
        f.write(b"QUIT\r\n")
        f.flush()
        f.readline()
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pigeon", help="path to the pigeon binary")
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--clients", default="pigeon,mpop,fetchmail", help="pigeon, mpop, fetchmail, getmail")
    ap.add_argument("--getmail", action="store_true", help="add getmail6 (slow: over a minute for 5,000)")
    ap.add_argument("--runs", type=int, default=1, help="measured runs per client (the median is reported)")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "build", "bench-data"))
    ap.add_argument("--big-mb", type=int, default=50,
                    help="also download one message of this many MB (memory must not grow with it; 0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    clients = [c for c in args.clients.split(",") if c]
    if args.getmail and "getmail" not in clients:
        clients.append("getmail")
    if os.geteuid() != 0:
        ap.error("run as root (Dovecot's master, the mail user)")
    pigeon = os.path.abspath(args.pigeon)
    n = args.messages
    uid, gid = ensure_mail_user()
    root, octets = ensure_mailbox(args.data_dir, n, uid, gid)
    big_box = f"{USER}big{args.big_mb}"
    if args.big_mb:
        big_path = os.path.join(root, big_box)
        if not os.path.isdir(big_path):
            line = b"The quick brown fox jumps over the lazy dog, again and again, line after line.\n"
            body = line * (args.big_mb * 1024 * 1024 // len(line))
            make_maildir(root, big_box, [("1764000000.M1P1.big:2,",
                                          b"From: a@example.net\nSubject: big\nMessage-ID: <big@example.net>\n\n" + body)])
            subprocess.run(["chown", "-R", f"{uid}:{gid}", big_path], check=True, timeout=600)
    top = tempfile.mkdtemp(prefix="pigeon-fetchbench-", dir=os.path.join(REPO, "build"))
    os.chmod(top, 0o755)
    dovecot = None
    results: dict[str, dict] = {}
    try:
        cert, key = os.path.join(top, "cert.pem"), os.path.join(top, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        passwd = os.path.join(top, "users.passwd")
        write_passwd(passwd, [f"{USER}{n}"] + ([big_box] if args.big_mb else []), "PLAIN", uid, gid, root)
        dwork = os.path.join(top, "dovecot")
        os.makedirs(dwork)
        dovecot = Dovecot(dwork, passwd, root, cert, key, uid, gid, "PLAIN", os.cpu_count() or 2)
        dovecot.start()
        dovecot.wait_ready()
        port = dovecot.tls_port
        env_base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}

        def argv_for(client: str, run_dir: str, user: str = f"{USER}{n}") -> list[str]:
            target = os.path.join(run_dir, "Maildir")
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(target, sub), exist_ok=True)
            if client == "pigeon":
                return [pigeon, "fetch", "--host", HOST, "--port", str(port), "--user", user,
                        "--tls", "implicit", "--ca-file", cert, "--password-command", f"echo {PASSWORD}",
                        "--deliver-to", f"maildir:{target}", "--state-file", os.path.join(run_dir, "state"),
                        "--quiet"]
            if client == "mpop":
                rc = os.path.join(run_dir, "mpoprc")
                with open(rc, "w") as fh:
                    fh.write("\n".join(["account default", f"host {HOST}", f"port {port}", f"user {user}",
                                        f"password {PASSWORD}", "tls on", "tls_starttls off",
                                        f"tls_trust_file {cert}", "auth user", "keep on",
                                        f"uidls_file {os.path.join(run_dir, 'uidls')}",
                                        f"delivery maildir {target}"]) + "\n")
                os.chmod(rc, 0o600)
                return ["mpop", "-C", rc, "-q"]
            if client == "fetchmail":
                rc = os.path.join(run_dir, "fetchmailrc")
                with open(rc, "w") as fh:
                    fh.write(f'poll {HOST} port {port} proto pop3 uidl\n'
                             f'    user "{USER}{n}" password "{PASSWORD}" sslcommonname "localhost"\n')
                os.chmod(rc, 0o600)
                mda = os.path.join(run_dir, "mda.sh")
                with open(mda, "w") as fh:
                    # One file per message, renamed into new/ (no fsync: fetchmail has no Maildir
                    # delivery of its own, and an MDA per message is its cost already).
                    fh.write('#!/bin/sh\nset -e\ncat > "$1/tmp/$$"\nmv "$1/tmp/$$" "$1/new/$$"\n')
                os.chmod(mda, 0o755)
                return ["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "--silent",
                        "--pidfile", os.path.join(run_dir, "pid"), "--idfile", os.path.join(run_dir, "ids"),
                        "--ssl", "--sslcertfile", cert, "--sslcertck", "--keep", "--norewrite",
                        "--mda", f"{mda} {target}"]
            if client == "getmail":
                rc = os.path.join(run_dir, "getmailrc")
                with open(rc, "w") as fh:
                    fh.write(f"[retriever]\ntype = SimplePOP3SSLRetriever\nserver = {HOST}\nport = {port}\n"
                             f"username = {USER}{n}\npassword = {PASSWORD}\nca_certs = {cert}\n"
                             f"[destination]\ntype = Maildir\npath = {target}/\n"
                             "[options]\nread_all = false\ndelete = false\nverbose = 0\n")
                return ["getmail", "--getmaildir", run_dir, "--rcfile", rc]
            raise ValueError(client)

        timeout = max(300.0, n * 0.05)
        # Rounds: every client once per round, so that a noisy machine weighs on all alike; the
        # first round is a warm-up. Each client's median run is reported.
        runs: dict[str, list[dict]] = {c: [] for c in clients}
        for i in range(args.runs + 1):
            for client in clients:
                run_dir = os.path.join(top, f"{client}-{i}")
                os.makedirs(run_dir)
                env = dict(env_base, HOME=run_dir, XDG_STATE_HOME=run_dir)
                res = measured(client, argv_for(client, run_dir), env, run_dir, timeout)
                problem = check_delivery(os.path.join(run_dir, "Maildir"), n)
                res["problem"] = problem
                ok = res["ok"] and problem is None
                log(f"{client} run {i}{' (warm-up)' if i == 0 else ''}: {res['wall_s']:.2f} s, "
                    f"cpu {res['cpu_s']:.2f} s, {'ok' if ok else 'FAILED: ' + (problem or res['stderr_tail'])}")
                if i > 0:
                    runs[client].append(res)
                # The Maildir stays until the end: on this VM's ext4 (no journal) a file created
                # within 30 s of thousands of deletions makes the kernel scan past every recently
                # deleted inode (recently_deleted() in ext4's inode allocator), which cost the
                # next client in the round up to 40% of its CPU.
        for client in clients:
            ordered = sorted(runs[client], key=lambda r: r["wall_s"])
            results[client] = dict(ordered[len(ordered) // 2], all_wall_s=[round(r["wall_s"], 2) for r in runs[client]])
        big = {}
        if args.big_mb:
            for client in [c for c in clients if c in ("pigeon", "mpop")]:
                run_dir = os.path.join(top, f"{client}-big")
                os.makedirs(run_dir)
                env = dict(env_base, HOME=run_dir, XDG_STATE_HOME=run_dir)
                res = measured(client, argv_for(client, run_dir, big_box), env, run_dir, timeout)
                res["problem"] = check_delivery(os.path.join(run_dir, "Maildir"), 1)
                big[client] = res
                log(f"{client}, one {args.big_mb} MB message: {res['wall_s']:.2f} s, max RSS "
                    f"{res['maxrss_kib'] / 1024:.1f} MB, {'ok' if res['ok'] and not res['problem'] else 'FAILED'}")
                shutil.rmtree(run_dir, ignore_errors=True)
        wire = wire_only(port, cert, n, timeout)
        log(f"wire only (pipelined RETR, data discarded): {wire:.2f} s")
    finally:
        if dovecot is not None:
            dovecot.stop()
        if args.keep:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    mb = octets / 1e6
    print(f"\nDownloading {n} messages ({mb:.1f} MB) from Dovecot over implicit TLS into a Maildir "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")
    print(f"{'client':<12}{'wall s':>9}{'MB/s':>9}{'CPU s':>8}{'max RSS':>11}{'vs pigeon':>11}  status")
    base = results.get("pigeon", {}).get("wall_s")
    for client, res in results.items():
        ratio = f"{res['wall_s'] / base:.2f}x" if base else "-"
        status = "ok" if res["ok"] and not res["problem"] else f"FAILED {res['problem'] or res['rc']}"
        print(f"{client:<12}{res['wall_s']:>9.2f}{mb / res['wall_s']:>9.1f}{res['cpu_s']:>8.2f}"
              f"{res['maxrss_kib'] / 1024:>9.1f}MB{ratio:>11}  {status}")
    print(f"{'wire only':<12}{wire:>9.2f}{mb / wire:>9.1f}")
    for client, res in big.items():
        print(f"{client:<12} one {args.big_mb} MB message: {res['wall_s']:.2f} s, max RSS {res['maxrss_kib'] / 1024:.1f} MB"
              f" ({res['maxrss_kib'] / 1024 - results.get(client, {}).get('maxrss_kib', 0) / 1024:+.1f} MB over the"
              f" 5,000-message run)")
    if base and "mpop" in results:
        print(f"\nmpop / pigeon = {results['mpop']['wall_s'] / base:.2f} (goal >= 3)")
    versions = tool_versions(mpop=["mpop", "--version"], fetchmail=["fetchmail", "--version"],
                             dovecot=["dovecot", "--version"])
    print(json.dumps({"messages": n, "octets": octets, "wire_s": wire, "results": results, "big": big,
                      "versions": versions}))
    return 0 if all(r["ok"] and not r["problem"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
