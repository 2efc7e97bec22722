#!/usr/bin/env python3
"""Fault injection: a full disk under pigeond's maildrops, during delivery and during the index
and deletion commit of a POP3 session.

The mail root is a 3 MB tmpfs the test mounts (root only). pigeond serves POP3 and LMTP from it:

  1. LMTP deliveries of 150 KB messages until the disk is full: every reply is 250 or a
     temporary 4xx (never a 5xx, never a dropped connection); no file is left in tmp/; every
     message in new/ is complete and identical to what was sent (trace fields aside)
  2. `pigeon deliver` on the full disk: exit 75 (EX_TEMPFAIL), nothing left behind
  3. POP3 on the full disk (a filler file takes the last free blocks): login, LIST, UIDL and RETR
     of every message work, identical; DELE 1 and QUIT answer +OK or -ERR [SYS/TEMP]: with +OK
     the message is gone and the others intact, with -ERR nothing changed; UIDLs stay the same
  4. space comes back (filler removed): LMTP and `pigeon deliver` deliver again, POP3 lists them
  5. a 6,000-message maildrop (a second tmpfs) whose index must be rewritten on a full disk, at a
     login after mail came in behind pigeond's back and at a deletion's commit: both work, the
     unique-ids stay the same, no half-written index is left; with space back it is rewritten

Usage: full_disk_test.py --pigeond PATH --pigeon PATH [--keep]
Needs root (mount). Every process bounded in time and stopped by its PID; the tmpfs is unmounted
at the end whatever happens.
"""

from __future__ import annotations

import argparse
import os
import poplib
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_lib import (HOST, Failure, PigeondProcess, expect, free_ports,  # noqa: E402
                         plain_config, run_bounded, run_checks)

IO_TIMEOUT_S = 30
TMPFS_SIZE = "3m"
MESSAGE_OCTETS = 150 * 1024
LARGE_TMPFS_SIZE = "40m"  # 6,000 small files take a 4 KiB page each
LARGE_COUNT = 6000


def mount_tmpfs(path: Path, size: str) -> None:
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, timeout=30)
    expect(proc.returncode == 0, f"cannot mount a tmpfs (root needed): {proc.stderr!r}")


def unmount(path: Path) -> None:
    for _ in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.1)  # a process may still hold a file open for a moment; bounded


def lmtp_session(port: int) -> tuple[socket.socket, "object"]:
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
    f = sock.makefile("rb")
    expect(f.readline().startswith(b"220 "), "no LMTP greeting")
    sock.sendall(b"LHLO test\r\n")
    while True:
        line = f.readline()
        expect(line[:3] == b"250", f"LHLO answered {line!r}")
        if line[3:4] == b" ":
            break
    return sock, f


def deliver(sock: socket.socket, f, message: bytes) -> bytes:
    """One LMTP transaction for alice; the reply after the dot (or after a refused RCPT)."""
    sock.sendall(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@pigeon.test>\r\n")
    expect(f.readline().startswith(b"250 "), "MAIL refused")
    rcpt = f.readline()
    expect(rcpt != b"", "the connection closed at RCPT")
    if not rcpt.startswith(b"250 "):
        sock.sendall(b"RSET\r\n")
        expect(f.readline().startswith(b"250 "), "RSET refused")
        return rcpt
    sock.sendall(b"DATA\r\n")
    expect(f.readline().startswith(b"354 "), "DATA refused")
    sock.sendall(message + b".\r\n")
    reply = f.readline()
    expect(reply != b"", "the connection closed after DATA")
    return reply


def message(n: int) -> bytes:
    line = (f"{n:04d} " + "x" * 72 + "\r\n").encode()
    body = line * (MESSAGE_OCTETS // len(line))
    return f"Subject: fill {n}\r\nMessage-ID: <fill{n}@example.org>\r\n\r\n".encode() + body


def stored(mail: Path) -> dict[bytes, bytes]:
    """Message-ID → content (trace fields removed) of every file in new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = mail / "alice" / sub
        if d.is_dir():
            for p in d.iterdir():
                data = p.read_bytes()
                start = data.find(b"Subject: ")
                expect(start >= 0, f"{p.name} has no Subject (cut short?): {data[:100]!r}")
                mid = data[data.find(b"Message-ID: <"):].split(b"\r\n", 1)[0]
                out[mid] = data[start:]
    return out


def pop3(port: int) -> poplib.POP3:
    pop = poplib.POP3(HOST, port, timeout=IO_TIMEOUT_S)
    pop.user("alice")
    pop.pass_("secret")
    return pop


def fill(path: Path) -> None:
    """Takes every free block of the file system `path` is on."""
    with open(path, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass


def uidls(pop: poplib.POP3) -> list[bytes]:
    return [line.split()[1] for line in pop.uidl()[1]]


def run(pigeond_binary: str, pigeon_binary: str, work: Path) -> list[str]:
    done = []
    mail = work / "mail"
    mail.mkdir()
    mount_tmpfs(mail, TMPFS_SIZE)
    pigeond = None
    try:
        (work / "users").write_text("alice:{PLAIN}secret::::::\n")
        pop3_port, lmtp_port = free_ports(2)
        config = plain_config(pop3_port, lmtp_port=lmtp_port)
        pigeond = PigeondProcess(pigeond_binary, work, config)
        pigeond.start(pop3_ports=[pop3_port], lmtp_ports=[lmtp_port])

        # 1. fill the disk over LMTP
        sock, f = lmtp_session(lmtp_port)
        accepted, refused = [], []
        for n in range(60):
            reply = deliver(sock, f, message(n))
            if reply.startswith(b"250 "):
                accepted.append(n)
            else:
                expect(reply[:1] == b"4", f"message {n} on a full disk answered {reply!r}, not a 4xx")
                refused.append(n)
                if len(refused) >= 3:
                    break
        sock.sendall(b"QUIT\r\n")
        sock.close()
        expect(accepted and refused, f"the disk never filled ({len(accepted)} accepted)")
        leftovers = list((mail / "alice" / "tmp").iterdir())
        expect(not leftovers, f"files left in tmp/ after refusals: {[p.name for p in leftovers]}")
        have = stored(mail)
        expect(len(have) == len(accepted), f"{len(have)} messages stored, {len(accepted)} accepted")
        for n in accepted:
            mid = f"Message-ID: <fill{n}@example.org>".encode()
            expect(have.get(mid) == message(n), f"message {n} is not stored whole")
        done.append(f"LMTP until full: {len(accepted)} stored whole, then {len(refused)} refused "
                    "with a 4xx, nothing in tmp/")

        # 2. pigeon deliver on the full disk
        toml = work / "pigeond.toml"
        proc = run_bounded([pigeon_binary, "deliver", "--config", str(toml), "-u", "alice",
                            "-f", "s@example.org"], stdin=message(999), timeout=60)
        expect(proc.returncode == 75, f"pigeon deliver on a full disk exited {proc.returncode}: "
               f"{proc.stderr[-500:]!r}")
        expect(not list((mail / "alice" / "tmp").iterdir()), "pigeon deliver left a file in tmp/")
        done.append("pigeon deliver on the full disk: exit 75, nothing left behind")

        # 3. POP3 with no free block at all
        filler = mail / "filler"
        fill(filler)
        pop = pop3(pop3_port)
        count, _ = pop.stat()
        expect(count == len(accepted), f"POP3 lists {count} messages, {len(accepted)} were stored")
        before = uidls(pop)
        for i in range(1, count + 1):
            data = b"".join(line + b"\r\n" for line in pop.retr(i)[1])
            expect(data[data.find(b"Subject: "):] in [message(n) for n in accepted],
                   f"RETR {i} on the full disk is not a stored message")
        pop.dele(1)
        try:
            quit_reply = pop.quit()
            committed = quit_reply.startswith(b"+OK")
        except poplib.error_proto as error:
            expect(b"[SYS/TEMP]" in error.args[0], f"QUIT on the full disk: {error}")
            committed = False
        after = pop3(pop3_port)
        left = uidls(after)
        after.quit()
        if committed:
            expect(left == before[1:], f"after +OK to QUIT: UIDLs {left}, expected {before[1:]}")
        else:
            expect(left == before, f"after -ERR to QUIT: UIDLs {left}, expected {before}")
        done.append(f"POP3 on a disk with no free block: {count} RETR identical; DELE+QUIT "
                    f"{'committed' if committed else 'refused with [SYS/TEMP]'}, UIDLs consistent")

        # 4. space comes back
        filler.unlink()
        for path in sorted((mail / "alice" / "new").iterdir())[:len(refused) + 2]:
            path.unlink()  # room for the next messages whatever the commit above did
        sock, f = lmtp_session(lmtp_port)
        reply = deliver(sock, f, message(500))
        sock.sendall(b"QUIT\r\n")
        sock.close()
        expect(reply.startswith(b"250 "), f"after space came back LMTP answered {reply!r}")
        proc = run_bounded([pigeon_binary, "deliver", "--config", str(toml), "-u", "alice",
                            "-f", "s@example.org"], stdin=message(501), timeout=60)
        expect(proc.returncode == 0, f"pigeon deliver after space came back: exit {proc.returncode}")
        have = stored(mail)
        for n in (500, 501):
            mid = f"Message-ID: <fill{n}@example.org>".encode()
            expect(have.get(mid) == message(n), f"message {n} is not stored whole")
        listing = pop3(pop3_port)
        listed = listing.stat()[0]
        listing.quit()
        expect(listed == len(have), f"POP3 lists {listed} messages, the Maildir holds {len(have)}")
        done.append("space back: LMTP and pigeon deliver store again, POP3 lists them")
    finally:
        if pigeond is not None:
            pigeond.stop()
        unmount(mail)
    return done


def run_large_index(pigeond_binary: str, work: Path) -> list[str]:
    """5. A full disk when the index of a large maildrop (6,000 messages) must be rewritten:
    at a login after mail came in behind pigeond's back, and at the commit of a deletion."""
    done = []
    big = work / "big"
    big.mkdir()
    mount_tmpfs(big, LARGE_TMPFS_SIZE)
    pigeond = None
    try:
        maildir = big / "alice"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        for i in range(LARGE_COUNT):
            body = f"Subject: small {i}\r\n\r\nmessage {i}\r\n".encode()
            (maildir / "cur" / f"1700000000.M{i}P1Q{i}.host,S={len(body)}:2,S").write_bytes(body)
        (work / "users").write_text("alice:{PLAIN}secret::::::\n")
        (pop3_port,) = free_ports(1)
        pigeond = PigeondProcess(pigeond_binary, work, plain_config(pop3_port, storage='location = "big/%u"'))
        pigeond.start(pop3_ports=[pop3_port])
        pop = pop3(pop3_port)
        before = uidls(pop)
        pop.quit()
        expect(len(before) == LARGE_COUNT, f"{len(before)} messages listed, {LARGE_COUNT} written")
        index = maildir / "pigeon-index"
        expect(index.exists() and index.stat().st_size > 100_000, "no index written for the large maildrop")

        # Mail behind pigeond's back makes the index stale; then no free block is left.
        extra = b"Subject: late\r\n\r\nlate\r\n"
        (maildir / "new" / f"1700000001.M1P2Q1.host,S={len(extra)}").write_bytes(extra)
        written = index.stat().st_mtime_ns
        fill(big / "filler")
        pop = pop3(pop3_port)
        full = uidls(pop)
        expect(full[:LARGE_COUNT] == before and len(full) == LARGE_COUNT + 1,
               "on the full disk the login lists other unique-ids")
        data = b"".join(line + b"\r\n" for line in pop.retr(LARGE_COUNT + 1)[1])
        expect(data == extra, f"RETR of the new message on the full disk: {data!r}")
        pop.dele(1)
        quit_reply = pop.quit()
        expect(quit_reply.startswith(b"+OK"), f"QUIT on the full disk: {quit_reply!r}")
        expect(index.stat().st_mtime_ns == written, "the index was rewritten on a full disk: no fault injected")
        leftovers = [p.name for p in maildir.iterdir() if ".tmp." in p.name]
        expect(not leftovers, f"half-written index files left: {leftovers}")
        pop = pop3(pop3_port)
        after = uidls(pop)
        pop.quit()
        expect(after == full[1:], "after the commit on the full disk the unique-ids changed")
        done.append(f"full disk at the index rewrite of a {LARGE_COUNT:,}-message maildrop: login, RETR "
                    "and a deletion's commit work, unique-ids unchanged, no half-written index")

        # Space back: the next login writes the index again, and it vouches for the same list.
        (big / "filler").unlink()
        stamp = index.stat().st_mtime_ns if index.exists() else 0
        pop = pop3(pop3_port)
        again = uidls(pop)
        pop.quit()
        expect(again == after, "after space returned the unique-ids changed")
        expect(index.exists() and index.stat().st_mtime_ns != stamp, "the index was not rewritten")
        pop = pop3(pop3_port)
        warm = uidls(pop)
        pop.quit()
        expect(warm == after, "the rewritten index lists other unique-ids")
        done.append("space back: the index is rewritten and lists the same unique-ids")
    finally:
        if pigeond is not None:
            pigeond.stop()
        unmount(big)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pigeond", required=True)
    parser.add_argument("--pigeon", required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("FAIL: needs root (it mounts a tmpfs)")
        return 1
    return run_checks("interop.full_disk", "pigeon-full-disk-", args.keep,
                      lambda work: run(os.path.abspath(args.pigeond), os.path.abspath(args.pigeon), work)
                      + run_large_index(os.path.abspath(args.pigeond), work),
                      (Failure, OSError, poplib.error_proto))

if __name__ == "__main__":
    sys.exit(main())
