#!/usr/bin/env python3
"""pigeond's LMTP and Dovecot 2.3's LMTP side by side: delivery rate of 10 KB messages into Maildir,
each one durable before its 250, on the same disk, with the same messages and clients.

Both servers are started by this script on 127.0.0.1 with one passwd-file of U users (default 100)
and a Maildir root on the same file system (build/bench-data by default, on the machine's disk,
never a tmpfs): pigeond with [lmtp] on TCP (running as the bench user `pigeonbench` after binding,
default threads), Dovecot's master as root with `protocols = lmtp` and its lmtp processes
delivering as `pigeonbench`, `auth_username_format = %Ln` (RCPT u00042@bench.invalid is user
u00042, as pigeond finds it), no quota on either side.

Durability: pigeond writes tmp/, fsyncs the file, renames it into new/ and fsyncs new/ before each
250 (src/storage/maildir). Dovecot is run with mail_fsync = optimized (its default: the file is
fsynced before the rename and new/ is fdatasynced after it, maildir-save.c, so a 250 means the
same durability) and, as a second peer, mail_fsync = always (its index and dovecot-uidlist
writes are fsynced too). --dovecot-fsync picks them.

For each number of concurrent LMTP sessions C (--concurrency, default 1 and 8), each server is run
afresh on an empty Maildir root: C sessions connect and say LHLO; one message per user is
delivered (not measured: the maildirs and Dovecot's index files are created); then N messages
(--messages, default 2,000; cut off at --seconds) are delivered, each session sending MAIL, RCPT
and DATA pipelined (as Postfix's LMTP client does with PIPELINING), then the message, and waiting
for the 250; recipients go round the U users. Reported: messages/s over the measured phase,
latency p50/p99 (MAIL sent to 250 read), the server's CPU per message (Dovecot: every process of
its tree), the client's CPU, and the ratio pigeond/Dovecot. Each run is checked afterwards: the
number of files in the users' new/ and cur/, and one delivered message compared with what was sent.

The bound of the disk is measured too (--only-disk to measure only it): the same durable write
done by Python (write 10 KB to tmp/, fsync, rename into new/, fsync new/) in 1 and in C threads.

  bench/lmtp_vs_dovecot.py build/release/apps/pigeond/pigeond                 # about 2-4 minutes
  bench/lmtp_vs_dovecot.py build/release/apps/pigeond/pigeond --quick         # smoke run
  bench/lmtp_vs_dovecot.py --servers dovecot                                  # Dovecot alone

Every run keeps its Maildir root until the end of the script (a file created just after thousands
of deletions is slow on ext4; see the fetch benchmark in docs/benchmarks.md), then
build/bench-data/lmtp-vs-dovecot is removed unless --keep (about 20 MB per run). Servers are
stopped by PID in finally blocks. Must
run as root (Dovecot's master, pigeond's privilege drop, chown of the mail root). Standard library
only; imports bench/benchlib.py and bench/pop3_vs_dovecot.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (ServerProcess, doveconf_warnings, free_port, percentile, tool_versions,  # noqa: E402
                      tree_cpu_ms)
from pop3_vs_dovecot import (HOST, MAIL_USER, REPO, MailFactory, build_type, ensure_mail_user, fmt,  # noqa: E402
                             log, write_passwd)

DOMAIN = "bench.invalid"
SENDER = "sender@example.net"
IO_TIMEOUT_S = 60.0


# --- messages ---------------------------------------------------------------------------------

def make_messages(count: int, size: int) -> list[bytes]:
    """`count` distinct messages of about `size` octets (text/plain, realistic header), as an MTA
    hands them over: without Return-Path:/Delivered-To: (the LMTP server adds them), CRLF ends."""
    factory = MailFactory(seed=2033)
    out = []
    for n in range(count):
        lf = factory.message(n, "rcpt", size)
        lines = [line for line in lf.split(b"\n")
                 if not line.startswith((b"Return-Path:", b"Delivered-To:"))]
        out.append(b"\r\n".join(lines).rstrip(b"\r\n") + b"\r\n")
    return out


def dot_stuffed(message: bytes) -> bytes:
    """DATA's payload with its terminating line."""
    body = message.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


# --- the LMTP client --------------------------------------------------------------------------

class LmtpError(Exception):
    pass


class LmtpSession:
    """One persistent LMTP connection (blocking socket, bounded reads)."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reply("greeting", b"220")
        self.s.sendall(b"LHLO client.bench.invalid\r\n")
        self.reply("LHLO", b"250")

    def readline(self) -> bytes:
        for _ in range(10_000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 65536:
                raise LmtpError("reply line too long")
            data = self.s.recv(65536)
            if not data:
                raise LmtpError("connection closed")
            self.buf += data
        raise LmtpError("readline: too many reads")

    def reply(self, what: str, code: bytes) -> bytes:
        for _ in range(100):
            line = self.readline()
            if line[3:4] != b"-":
                if not line.startswith(code):
                    raise LmtpError(f"{what}: {line[:160].decode('utf-8', 'replace')}")
                return line
        raise LmtpError(f"{what}: reply of over 100 lines")

    def deliver(self, recipient: str, payload: bytes) -> None:
        """MAIL, RCPT and DATA pipelined, then the message; returns after its 250."""
        self.s.sendall(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        self.reply("MAIL", b"250")
        self.reply("RCPT", b"250")
        self.reply("DATA", b"354")
        self.s.sendall(payload)
        self.reply("end of DATA", b"250")

    def close(self) -> None:
        try:
            self.s.sendall(b"QUIT\r\n")
            self.reply("QUIT", b"221")
        except (OSError, LmtpError):
            pass
        self.s.close()


def drive(port: int, sessions: list[LmtpSession], jobs: list[tuple[str, bytes]], seconds: float
          ) -> dict:
    """Delivers jobs over the sessions (one thread each, taking the next job in turn) until done
    or the deadline; returns counts, wall time and per-message latencies (ms)."""
    lock = threading.Lock()
    next_job = [0]
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(len(sessions) + 1)
    deadline = [0.0]

    def worker(session: LmtpSession) -> None:
        mine = []
        start.wait()
        while True:
            with lock:
                i = next_job[0]
                if i >= len(jobs) or time.monotonic() > deadline[0] or len(errors) > 20:
                    break
                next_job[0] += 1
            recipient, payload = jobs[i]
            t0 = time.perf_counter()
            try:
                session.deliver(recipient, payload)
                mine.append((time.perf_counter() - t0) * 1000.0)
            except (OSError, LmtpError) as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                try:  # a broken session is replaced, once per error
                    session.s.close()
                    session.__init__(port)
                except (OSError, LmtpError) as e2:
                    with lock:
                        errors.append(f"reconnect: {e2}"[:200])
                    break
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join(seconds + 2 * IO_TIMEOUT_S)
    wall = time.monotonic() - t0
    return {"delivered": len(latencies), "wall_s": wall, "latencies": latencies, "errors": errors,
            "cut_off": next_job[0] < len(jobs), "hung": any(t.is_alive() for t in threads)}


# --- servers ----------------------------------------------------------------------------------

class LmtpServer(ServerProcess):
    """ServerProcess whose port is its LMTP port; ready when it greets 220 and answers LHLO."""

    def probe(self):
        try:
            s = LmtpSession(self.port)
            s.close()
            return None
        except (OSError, LmtpError) as e:
            return e


class PigeondLmtp(LmtpServer):
    name = "pigeond"
    tree = False

    def __init__(self, binary: str, workdir: str, passwd: str, root: str, worker_threads: int):
        super().__init__(workdir)
        self.label = "pigeond"
        self.pop3_port = free_port(HOST)  # a POP3 listener nobody connects to
        self.log_path = os.path.join(workdir, "pigeond.log")
        conf = os.path.join(workdir, "pigeond.toml")
        workers = f"worker_threads = {worker_threads}\n" if worker_threads else ""
        with open(conf, "w") as f:
            f.write(f"""# written by bench/lmtp_vs_dovecot.py
[server]
user = "{MAIL_USER}"
host_name = "bench.invalid"
{workers}
[[listen]]
address = "{HOST}:{self.pop3_port}"
tls = "none"

[storage]
driver = "maildir"
location = "{root}/%u"

[passdb]
driver = "passwd-file"
path = "{passwd}"

[lmtp]
listen = ["{HOST}:{self.port}"]

[limits]
shutdown_grace = "2s"

[log]
level = "info"
destination = "{self.log_path}"
""")
        check = subprocess.run([binary, "--check-config", "--config", conf], capture_output=True,
                               text=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(f"pigeond --check-config: {check.stdout}{check.stderr}")
        self.argv = [binary, "--config", conf]


class DovecotLmtp(LmtpServer):
    name = "dovecot"
    tree = True

    def __init__(self, workdir: str, passwd: str, root: str, fsync: str):
        super().__init__(workdir)
        self.label = f"dovecot ({fsync})"
        self.log_path = os.path.join(workdir, "dovecot.log")
        conf = os.path.join(workdir, "dovecot.conf")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""# written by bench/lmtp_vs_dovecot.py: an LMTP-only Dovecot on loopback
base_dir = {workdir}/run
state_dir = {workdir}/state
protocols = lmtp
listen = {HOST}
log_path = {self.log_path}
ssl = no
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/%u
mail_fsync = {fsync}
auth_username_format = %Ln
postmaster_address = postmaster@{DOMAIN}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {self.port}
  }}
}}
""")
        self.doveconf_warnings = doveconf_warnings(conf)
        self.argv = ["dovecot", "-F", "-c", conf]


# --- one run ----------------------------------------------------------------------------------

def maildir_count(root: str, users: list[str]) -> int:
    total = 0
    for u in users:
        for sub in ("new", "cur"):
            try:
                total += len(os.listdir(os.path.join(root, u, sub)))
            except FileNotFoundError:
                pass
    return total


def check_one(root: str, user: str, sent: bytes) -> str | None:
    """None when a message of `user`'s new/ ends with what was sent (LF-normalised: Dovecot
    stores LF, pigeond what it received) below the server's own trace fields."""
    d = os.path.join(root, user, "new")
    want = sent.replace(b"\r\n", b"\n")
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            got = f.read().replace(b"\r\n", b"\n")
        if got.endswith(want):
            return None
    return f"no message in {d} ends with the {len(want)} octets sent"


def run_once(make_server, port_of, concurrency: int, users: list[str], messages: list[bytes],
             n: int, seconds: float, root: str) -> dict:
    server = make_server()
    result: dict = {"server": server.label, "concurrency": concurrency}
    sessions: list[LmtpSession] = []
    try:
        server.start()
        sessions = [LmtpSession(port_of(server)) for _ in range(concurrency)]
        payloads = [dot_stuffed(m) for m in messages]
        warm = [(f"{u}@{DOMAIN}", payloads[i % len(payloads)]) for i, u in enumerate(users)]
        w = drive(port_of(server), sessions, warm, 120.0)
        if w["errors"] or w["delivered"] != len(warm):
            raise RuntimeError(f"warm-up: {w['delivered']}/{len(warm)} delivered, {w['errors'][:3]}")
        os.sync()  # the warm-up's dirty pages are not the measured phase's to write
        time.sleep(0.5)
        jobs = [(f"{users[i % len(users)]}@{DOMAIN}", payloads[i % len(payloads)]) for i in range(n)]
        cpu0 = tree_cpu_ms(server.pids())
        me0 = os.times()
        r = drive(port_of(server), sessions, jobs, seconds)
        me1 = os.times()
        cpu1 = tree_cpu_ms(server.pids())
        server.check_alive("the measured phase")
        lat = r["latencies"]
        ok = r["delivered"]
        stored = maildir_count(root, users)
        sample = check_one(root, users[-1], messages[(len(users) - 1) % len(messages)])
        result.update({
            "messages": ok, "cut_off": r["cut_off"], "wall_s": round(r["wall_s"], 3),
            "messages_per_s": ok / r["wall_s"] if r["wall_s"] > 0 else None,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else None,
            "server_cpu_ms_per_message": (cpu1 - cpu0) / ok if ok else None,
            "client_cpu_pct_of_wall": 100.0 * ((me1.user + me1.system) - (me0.user + me0.system))
            / r["wall_s"] if r["wall_s"] > 0 else None,
            "errors": r["errors"][:5], "hung_threads": r["hung"],
            "files_stored": stored, "files_expected": len(warm) + ok,
            "check": sample or "ok",
        })
        if stored != len(warm) + ok:
            result["check"] = f"{stored} files stored, {len(warm) + ok} expected"
    except Exception as e:  # noqa: BLE001 - recorded; the other runs go on
        result["error"] = f"{type(e).__name__}: {e}"[:400]
        log(f"{server.label} C={concurrency}: {result['error']}")
    finally:
        for s in sessions:
            s.close()
        server.stop()
        result["events"] = server.events
        if server.events or "error" in result:
            result["server_log_tail"] = server.stderr_tail()[-800:]
            try:
                with open(server.log_path, "rb") as f:
                    result["log_tail"] = f.read()[-1500:].decode("utf-8", "replace")
            except OSError:
                pass
    return result


# --- the disk's own bound ---------------------------------------------------------------------

def disk_bound(directory: str, threads: int, count: int, size: int) -> dict:
    """Durable Maildir-style writes from Python: write, fsync, rename into new/, fsync new/."""
    os.makedirs(directory, exist_ok=True)
    data = os.urandom(size)
    per = max(1, count // threads)

    def work(t: int) -> None:
        base = os.path.join(directory, f"t{t}")
        for sub in ("tmp", "new"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        dfd = os.open(os.path.join(base, "new"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(per):
                tmp = os.path.join(base, "tmp", f"{i}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, os.path.join(base, "new", f"{i}"))
                os.fsync(dfd)
        finally:
            os.close(dfd)

    os.sync()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    wall = time.monotonic() - t0
    return {"threads": threads, "writes": per * threads, "writes_per_s": per * threads / wall}


# --- report -----------------------------------------------------------------------------------

def summarize(results: list[dict], levels: list[int]) -> list[dict]:
    """One row per server and concurrency: medians over the runs that did not fail, and the
    ratio of pigeond's median messages/s to this row's."""
    rows = []
    for c in levels:
        names = list(dict.fromkeys(r["server"] for r in results if r["concurrency"] == c))
        for name in names:
            runs = [r for r in results if r["concurrency"] == c and r["server"] == name]
            good = [r for r in runs if "error" not in r and r.get("messages_per_s")]
            if not good:
                rows.append({"server": name, "concurrency": c, "failed_all": True,
                             "errors": [r.get("error") for r in runs][:2]})
                continue

            def med(key: str):
                values = [r[key] for r in good if r.get(key) is not None]
                return statistics.median(values) if values else None

            rate = [r["messages_per_s"] for r in good]
            bad = [r.get("error") or r.get("check") for r in runs
                   if "error" in r or r.get("check") != "ok" or r.get("errors") or r.get("cut_off")]
            rows.append({"server": name, "concurrency": c, "runs": len(good),
                         "messages_per_s": statistics.median(rate), "min": min(rate), "max": max(rate),
                         "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
                         "server_cpu_ms_per_message": med("server_cpu_ms_per_message"),
                         "client_cpu_pct_of_wall": med("client_cpu_pct_of_wall"),
                         "checks": "ok" if not bad else f"problems: {bad[:3]}"})
        ref = next((row for row in rows if row["concurrency"] == c and row["server"] == "pigeond"
                    and not row.get("failed_all")), None)
        for row in rows:
            if row["concurrency"] == c and not row.get("failed_all"):
                row["pigeond_over_this"] = (ref["messages_per_s"] / row["messages_per_s"]
                                            if ref else None)
    return rows


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pigeond", nargs="?", help="path to the pigeond binary (not needed with --servers dovecot)")
    ap.add_argument("--servers", default="pigeond,dovecot", help="comma-separated: pigeond, dovecot")
    ap.add_argument("--dovecot-fsync", default="optimized,always",
                    help="Dovecot's mail_fsync values to run (optimized,always)")
    ap.add_argument("--concurrency", default="1,8", help="concurrent LMTP sessions, comma-separated (1,8)")
    ap.add_argument("--messages", type=int, help="measured messages per run (2000; quick 300)")
    ap.add_argument("--rounds", type=int, help="runs of every server at every concurrency, "
                    "interleaved; the median is reported (3; quick 1)")
    ap.add_argument("--users", type=int, default=100, help="recipients, round robin (100)")
    ap.add_argument("--size", type=int, default=10_240, help="message size in octets (10240)")
    ap.add_argument("--seconds", type=float, help="time bound of each measured phase (120; quick 30)")
    ap.add_argument("--pigeond-worker-threads", type=int, default=0,
                    help="pigeond's [server] worker_threads (0: its default, one per CPU, at least 2)")
    ap.add_argument("--only-disk", action="store_true", help="measure only the disk's bound")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "build", "bench-data"),
                    help="where the Maildir roots are made (build/bench-data; must not be a tmpfs)")
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory (configs, logs, mail)")
    args = ap.parse_args()

    q = args.quick
    n = args.messages if args.messages is not None else (300 if q else 2000)
    seconds = args.seconds if args.seconds is not None else (30.0 if q else 120.0)
    rounds = args.rounds if args.rounds is not None else (1 if q else 3)
    servers = [w.strip() for w in args.servers.split(",") if w.strip()]
    fsyncs = [w.strip() for w in args.dovecot_fsync.split(",") if w.strip()]
    levels = [int(w) for w in args.concurrency.split(",") if w.strip()]
    if not (1 <= n <= 200_000 and 1 <= args.users <= 10_000 and 200 <= args.size <= 10_000_000
            and all(1 <= c <= 256 for c in levels) and 1 <= seconds <= 3600 and 1 <= rounds <= 20):
        ap.error("a count is out of range")
    for w in servers:
        if w not in ("pigeond", "dovecot"):
            ap.error(f"--servers: unknown server {w!r}")
    for w in fsyncs:
        if w not in ("optimized", "always", "never"):
            ap.error(f"--dovecot-fsync: {w!r} is not a mail_fsync value")
    if os.geteuid() != 0:
        ap.error("run as root (Dovecot's master, pigeond's privilege drop, chown of the mail root)")
    pigeond_bin = os.path.abspath(args.pigeond) if args.pigeond else ""
    if "pigeond" in servers and not args.only_disk and not os.access(pigeond_bin, os.X_OK):
        ap.error("the pigeond binary is needed (or --servers dovecot)")
    if "dovecot" in servers and not (shutil.which("dovecot") and os.path.exists("/usr/lib/dovecot/lmtp")):
        ap.error("dovecot or /usr/lib/dovecot/lmtp not found (dovecot-core, dovecot-lmtpd)")

    uid, gid = ensure_mail_user()
    base = os.path.join(args.data_dir, "lmtp-vs-dovecot")
    if os.path.exists(base):
        # Left by --keep or a killed run. Files created within about 30 s of thousands of
        # deletions are slow on ext4 (its inode allocator skips recently deleted inodes one by
        # one, see the fetch benchmark in docs/benchmarks.md): remove them, then wait that out.
        shutil.rmtree(base, ignore_errors=True)
        log(f"removed the previous run's {base}; waiting 35 s before measuring")
        time.sleep(35)
    os.makedirs(base)
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", base], capture_output=True,
                        text=True, timeout=30).stdout.strip()
    if fs.startswith("tmpfs"):
        ap.error(f"{base} is on a tmpfs ({fs}): fsync would cost nothing there; give --data-dir on a disk")
    meta = {
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(), "filesystem": fs,
        "data_dir": base, "messages": n, "rounds": rounds, "users": args.users, "size": args.size, "seconds": seconds,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    meta.update(tool_versions(pigeond_version=[pigeond_bin, "--version"] if pigeond_bin else ["true"],
                              dovecot_version=["dovecot", "--version"],
                              kernel=["uname", "-r"]))
    meta["pigeond_build_type"] = build_type(pigeond_bin) if pigeond_bin else None

    t_start = time.monotonic()
    disk: list[dict] = []

    def measure_disk(when: str) -> None:
        for c in levels:
            d = disk_bound(os.path.join(base, f"disk-{when}-{c}"), c, 400 if q else 2000, args.size)
            d["when"] = when
            disk.append(d)
            log(f"disk bound ({when}): {c} thread(s): {d['writes_per_s']:.0f} durable "
                f"{args.size}-octet writes/s")

    measure_disk("before")
    results: list[dict] = []
    if not args.only_disk:
        users = [f"u{i:05d}" for i in range(args.users)]
        messages = make_messages(50, args.size)
        meta["message_octets_mean"] = round(statistics.mean(len(m) for m in messages))
        peers: list[tuple[str, object]] = []
        if "pigeond" in servers:
            peers.append(("pigeond", None))
        if "dovecot" in servers:
            peers.extend(("dovecot", f) for f in fsyncs)
        for c, rnd in ((c, rnd) for c in levels for rnd in range(rounds)):
            # each round in another order: a slow moment of a shared machine hits every peer alike
            for kind, fsync in peers[rnd % len(peers):] + peers[:rnd % len(peers)]:
                run_dir = os.path.join(base, f"run-{kind}{'-' + fsync if fsync else ''}-c{c}-r{rnd + 1}")
                root = os.path.join(run_dir, "mail")
                os.makedirs(root)
                os.chmod(run_dir, 0o755)
                os.chown(root, uid, gid)
                passwd = os.path.join(run_dir, "users.passwd")
                write_passwd(passwd, users, "PLAIN", uid, gid, root)
                if kind == "pigeond":
                    def make(rd=run_dir, pw=passwd, rt=root):
                        return PigeondLmtp(pigeond_bin, os.path.join(rd, "server"), pw, rt,
                                           args.pigeond_worker_threads)
                else:
                    def make(rd=run_dir, pw=passwd, rt=root, fs_=fsync):
                        return DovecotLmtp(os.path.join(rd, "server"), pw, rt, fs_)
                os.makedirs(os.path.join(run_dir, "server"))
                os.chmod(os.path.join(run_dir, "server"), 0o755)
                log(f"{kind}{' (' + fsync + ')' if fsync else ''}: {c} session(s), {n} messages, "
                    f"round {rnd + 1}/{rounds}")
                r = run_once(make, lambda s: s.port, c, users, messages, n, seconds, root)
                r["round"] = rnd + 1
                results.append(r)
                if "error" not in r:
                    log(f"  {r['messages_per_s']:.0f} messages/s, p50 {r['p50_ms']:.1f} ms, "
                        f"p99 {r['p99_ms']:.1f} ms, check {r['check']}")
        measure_disk("after")
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    if args.keep:
        log(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    print()
    print(f"LMTP delivery of {args.size}-octet messages into Maildir, durable before 250 - "
          f"pigeond ({meta.get('pigeond_build_type')} build) vs Dovecot {meta.get('dovecot_version', '?')}, "
          f"{os.cpu_count()} CPUs, {fs}, load {meta['loadavg_before']} before, {meta['loadavg_after']} after")
    for d in disk:
        print(f"disk bound {d['when']:6s} (Python: write+fsync, rename, fsync new/): {d['threads']} thread(s) "
              f"{d['writes_per_s']:,.0f} writes/s")
    summary = summarize(results, levels)
    if summary:
        print(f"{'server':22s}{'sessions':>9s}{'runs':>5s}{'msg/s':>9s}{'(min-max)':>14s}{'p50 ms':>9s}"
              f"{'p99 ms':>9s}{'srv CPU ms/msg':>16s}{'client CPU %':>14s}{'pigeond/this':>14s}  checks")
        for row in summary:
            if row.get("failed_all"):
                print(f"{row['server']:22s}{row['concurrency']:>9d}  failed: {row['errors']}")
                continue
            print(f"{row['server']:22s}{row['concurrency']:>9d}{row['runs']:>5d}{fmt(row['messages_per_s']):>9s}"
                  f"{fmt(row['min']) + '-' + fmt(row['max']):>14s}{fmt(row['p50_ms']):>9s}{fmt(row['p99_ms']):>9s}"
                  f"{fmt(row['server_cpu_ms_per_message']):>16s}{fmt(row['client_cpu_pct_of_wall']):>14s}"
                  f"{fmt(row['pigeond_over_this'], 3):>14s}  {row['checks']}")
    print(json.dumps({"meta": meta, "disk": disk, "summary": summary, "results": results}, default=str))
    return 0 if all("error" not in r and r.get("check") == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
