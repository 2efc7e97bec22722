#!/usr/bin/env python3
"""Fault injection: pigeond killed (SIGKILL) at every crash point of a QUIT commit, of an LMTP
delivery and of the index writes, on Maildir and on mbox maildrops.

pigeond built with PIGEON_CRASH_POINTS dies at the N-th crash point it passes when started with
PIGEON_CRASH_AT=N (src/core/crash_point.hpp): before each unlink, write, fsync, rename and
directory fsync of a commit, a delivery or an index/quota-cache write, and after a commit whose
reply has not been sent. For N = 1, 2, ... until a run passes all of them without dying, each
scenario starts from the same maildrop (a pristine copy), runs, is killed at point N, and pigeond
is started again, normally, to check over POP3:

  QUIT commit (DELE 2, DELE 5, QUIT; the session first lists UIDL, so the unique-ids it saw are
  known): every message not marked deleted is there, byte-identical, with the same UIDL; no
  message appears twice; on mbox the deletions happen all or none (the journal), on Maildir each
  unlink is its own; after +OK to QUIT both are gone. The maildrop's index is stale at the start
  (a message added behind pigeond's back), so the login's index rewrite is crashed too.

  LMTP delivery (two messages, one of 200 KB, to two users): the messages already there are
  untouched with the same UIDL; a message answered 250 for a user is there exactly once for that
  user, any other at most once, and never partially; nothing of a crashed delivery is visible.

Usage: crash_test.py --pigeond PATH [--driver maildir|mbox ...] [--keep]
Every process bounded in time and stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import poplib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_lib import (HOST, Failure, PigeondProcess, expect, free_ports,  # noqa: E402
                         plain_config, run_checks)

IO_TIMEOUT_S = 20
MAX_POINTS = 400  # bound on the crash points one scenario may pass
USERS = ("alice", "bob")


def body(n: int, octets: int) -> bytes:
    line = (f"{n:04d} " + "y" * 70 + "\r\n").encode()
    return (f"From: sender@example.org\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@example.org>\r\n\r\n").encode() + line * max(1, octets // len(line))


def payload(data: bytes) -> bytes:
    """What the test sent: from "From: sender" on (pigeond adds Return-Path and Delivered-To)."""
    start = data.find(b"From: sender@example.org\r\n")
    expect(start >= 0, f"a message without its From: field (cut short?): {data[:120]!r}")
    return data[start:]


class Site:
    """One pigeond configuration (driver, ports) and the pristine maildrops it starts from."""

    def __init__(self, binary: str, work: Path, driver: str) -> None:
        self.binary = binary
        self.work = work
        self.driver = driver
        self.pop3_port, self.lmtp_port = free_ports(2)
        (work / "users").write_text("".join(f"{u}:{{PLAIN}}secret::::::\n" for u in USERS))
        storage = ('driver = "maildir"\nlocation = "mail/%u"' if driver == "maildir" else
                   'driver = "mbox"\nlocation = "mail/%u"\nindex_directory = "state/%u"')
        self.config = plain_config(self.pop3_port, lmtp_port=self.lmtp_port, storage=storage)
        self.pigeond: PigeondProcess | None = None

    # --- processes --------------------------------------------------------------------------

    def start(self, crash_at: int | None = None) -> None:
        env_before = os.environ.get("PIGEON_CRASH_AT")
        if crash_at is None:
            os.environ.pop("PIGEON_CRASH_AT", None)
        else:
            os.environ["PIGEON_CRASH_AT"] = str(crash_at)
        try:
            self.pigeond = PigeondProcess(self.binary, self.work, self.config)
            self.pigeond.start(pop3_ports=[self.pop3_port], lmtp_ports=[self.lmtp_port])
        finally:
            if env_before is None:
                os.environ.pop("PIGEON_CRASH_AT", None)
            else:
                os.environ["PIGEON_CRASH_AT"] = env_before

    def crashed(self) -> bool:
        """Whether pigeond died by SIGKILL (its crash point); waits for it briefly, as the
        point may come after the reply the test saw (a commit's last directory fsync)."""
        assert self.pigeond is not None and self.pigeond.proc is not None
        try:
            self.pigeond.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return False
        expect(self.pigeond.proc.returncode == -9,
               f"pigeond ended with {self.pigeond.proc.returncode}, not by its crash point\n"
               f"{self.pigeond.log_tail()}")
        self.pigeond.stop()
        return True

    def stop(self) -> None:
        if self.pigeond is not None:
            status = self.pigeond.stop()
            expect(status in (0, -9), f"pigeond stopped with {status}\n{self.pigeond.log_tail()}")
            self.pigeond = None

    # --- maildrops --------------------------------------------------------------------------

    def save(self, name: str) -> None:
        target = self.work / f"saved-{name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for sub in ("mail", "state"):
            if (self.work / sub).exists():
                shutil.copytree(self.work / sub, target / sub, symlinks=True)

    def restore(self, name: str) -> None:
        for sub in ("mail", "state"):
            shutil.rmtree(self.work / sub, ignore_errors=True)
            if (self.work / f"saved-{name}" / sub).exists():
                shutil.copytree(self.work / f"saved-{name}" / sub, self.work / sub, symlinks=True)

    def add_behind_back(self, user: str, n: int) -> None:
        """A message added as another program would (Maildir: a file in new/; mbox: appended),
        so pigeond's index is stale at the next login and gets rewritten."""
        data = body(n, 3000)
        if self.driver == "maildir":
            path = self.work / "mail" / user / "new" / f"1700000000.M1P1Q{n}.elsewhere"
            path.write_bytes(data)
        else:
            with open(self.work / "mail" / user, "ab") as mbox:
                mbox.write(b"From sender@example.org Thu Jan  1 00:00:00 2026\n"
                           + data.replace(b"\r\n", b"\n") + b"\n")

    # --- protocols --------------------------------------------------------------------------

    def login(self, user: str) -> poplib.POP3:
        pop = poplib.POP3(HOST, self.pop3_port, timeout=IO_TIMEOUT_S)
        pop.user(user)
        pop.pass_("secret")
        return pop

    def contents(self, user: str) -> list[tuple[bytes, bytes]]:
        """(UIDL, what the test sent) of every message, in order, over POP3."""
        pop = self.login(user)
        try:
            uidls = [line.split()[1] for line in pop.uidl()[1]]
            out = []
            for i, uidl in enumerate(uidls, start=1):
                data = b"".join(line + b"\r\n" for line in pop.retr(i)[1])
                out.append((uidl, payload(data)))
            pop.quit()
            return out
        finally:
            pop.close()

    def lmtp(self, messages: list[bytes]) -> list[list[bool]]:
        """One LMTP session delivering each message to every user; per message, per user,
        whether it was answered 250 (False for anything else, or for a connection lost)."""
        results = [[False] * len(USERS) for _ in messages]
        try:
            sock = socket.create_connection((HOST, self.lmtp_port), timeout=IO_TIMEOUT_S)
        except OSError:
            return results
        with sock:
            f = sock.makefile("rb")
            try:
                expect(f.readline().startswith(b"220 "), "no LMTP greeting")
                sock.sendall(b"LHLO test\r\n")
                while (line := f.readline())[3:4] == b"-":
                    pass
                expect(line.startswith(b"250 "), f"LHLO answered {line!r}")
                for m, message in enumerate(messages):
                    sock.sendall(b"MAIL FROM:<sender@example.org>\r\n")
                    if not f.readline().startswith(b"250"):
                        return results
                    accepted = []
                    for u, user in enumerate(USERS):
                        sock.sendall(f"RCPT TO:<{user}@pigeon.test>\r\n".encode())
                        if f.readline().startswith(b"250"):
                            accepted.append(u)
                    if not accepted:
                        return results
                    sock.sendall(b"DATA\r\n")
                    if not f.readline().startswith(b"354"):
                        return results
                    sock.sendall(message + b".\r\n")
                    for u in accepted:
                        reply = f.readline()
                        if not reply:
                            return results
                        results[m][u] = reply.startswith(b"250")
                sock.sendall(b"QUIT\r\n")
                f.readline()
            except OSError:
                pass
            return results


def check_unchanged(before: list[tuple[bytes, bytes]], after: list[tuple[bytes, bytes]],
                    may_go: set[bytes], what: str) -> None:
    after_by_uidl: dict[bytes, bytes] = {}
    for uidl, data in after:
        expect(uidl not in after_by_uidl, f"{what}: UIDL {uidl!r} twice after the restart")
        after_by_uidl[uidl] = data
    for uidl, data in before:
        if uidl in after_by_uidl:
            expect(after_by_uidl[uidl] == data, f"{what}: message {uidl!r} changed")
        else:
            expect(uidl in may_go, f"{what}: message {uidl!r} (not deleted) lost")
    payloads = [data for _, data in after]
    expect(len(set(payloads)) == len(payloads), f"{what}: a message is there twice")


def quit_scenario(site: Site) -> str:
    """Crash points of a login (index rewrite) and of a QUIT commit."""
    site.restore("base")
    site.add_behind_back("alice", 900)
    site.save("quit")
    site.start()
    reference = site.contents("alice")
    site.stop()
    expect(len(reference) == 7, f"{len(reference)} messages in the reference maildrop, 7 expected")
    deleted = {reference[1][0], reference[4][0]}
    crashes = 0
    for n in range(1, MAX_POINTS + 1):
        site.restore("quit")
        site.start(crash_at=n)
        seen: list[bytes] = []
        quit_ok = False
        try:
            pop = site.login("alice")
            seen = [line.split()[1] for line in pop.uidl()[1]]
            pop.dele(2)
            pop.dele(5)
            quit_ok = pop.quit().startswith(b"+OK")
        except (poplib.error_proto, OSError, EOFError):
            pass
        if not site.crashed():
            expect(quit_ok, f"point {n}: no crash, yet QUIT was not answered +OK")
            site.stop()
            site.start()  # without crash points: the next login passes some too
            after = site.contents("alice")
            site.stop()
            expect([u for u, _ in after] == [u for u, _ in reference if u not in deleted],
                   "the run without a crash did not delete exactly messages 2 and 5")
            return (f"{site.driver}: QUIT commit and index rewrite crashed at each of {crashes} "
                    f"points: nothing lost, changed or doubled, UIDLs kept, deletions "
                    f"{'all or none' if site.driver == 'mbox' else 'per message'}, "
                    "and done when QUIT was answered +OK")
        crashes += 1
        if seen:
            expect(seen == [u for u, _ in reference], f"point {n}: UIDLs seen before the crash "
                   f"{seen} differ from the reference")
        site.start()
        after = site.contents("alice")
        site.stop()
        check_unchanged(reference, after, deleted, f"{site.driver} QUIT crash point {n}")
        gone = deleted - {u for u, _ in after}
        if site.driver == "mbox":
            expect(gone in (set(), deleted), f"point {n}: mbox deletions half done: {gone}")
        if quit_ok:
            expect(gone == deleted, f"point {n}: +OK to QUIT but {deleted - gone} still there")
    raise Failure(f"{site.driver}: more than {MAX_POINTS} crash points in one QUIT")


def delivery_scenario(site: Site) -> str:
    """Crash points of LMTP deliveries (quota cache, file writes, fsyncs, renames, replies)."""
    site.restore("base")
    site.start()
    reference = {user: site.contents(user) for user in USERS}
    site.stop()
    messages = [body(500, 2500), body(501, 200_000)]
    crashes = 0
    for n in range(1, MAX_POINTS + 1):
        site.restore("base")
        site.start(crash_at=n)
        answered = site.lmtp(messages)
        if not site.crashed():
            expect(all(all(row) for row in answered), f"point {n}: no crash, yet not every "
                   f"delivery was answered 250: {answered}")
            site.stop()
            site.start()
            for user in USERS:
                after = site.contents(user)
                expect(len(after) == len(reference[user]) + 2,
                       f"the run without a crash: {user} has {len(after)} messages")
            site.stop()
            return (f"{site.driver}: LMTP delivery of 2 messages to 2 users crashed at each of "
                    f"{crashes} points: stored messages untouched with their UIDLs, every 250 "
                    "there exactly once, nothing partial or doubled")
        crashes += 1
        site.start()
        for u, user in enumerate(USERS):
            after = site.contents(user)
            old = {uidl for uidl, _ in reference[user]}
            check_unchanged(reference[user], after, set(), f"{site.driver} LMTP crash point {n}")
            new = [data for uidl, data in after if uidl not in old]
            for m, message in enumerate(messages):
                count = new.count(message)
                expect(count <= 1, f"point {n}: message {m} stored {count} times for {user}")
                if answered[m][u]:
                    expect(count == 1, f"point {n}: message {m} answered 250 for {user} "
                           "but not there after the restart")
            expect(all(data in messages for data in new),
                   f"point {n}: {user} has a message that is not one that was sent (partial?)")
        site.stop()
    raise Failure(f"{site.driver}: more than {MAX_POINTS} crash points in one delivery")


def run(binary: str, drivers: list[str], work: Path) -> list[str]:
    done = []
    for driver in drivers:
        site_dir = work / driver
        site_dir.mkdir()
        site = Site(binary, site_dir, driver)
        try:
            site.start()
            answered = site.lmtp([body(n, 1500 + 4000 * n) for n in range(1, 7)])
            expect(all(all(row) for row in answered), f"setting up: {answered}")
            site.stop()
            site.save("base")
            done.append(quit_scenario(site))
            done.append(delivery_scenario(site))
        finally:
            site.stop()
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pigeond", required=True)
    parser.add_argument("--driver", action="append", choices=["maildir", "mbox"])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    drivers = args.driver or ["maildir", "mbox"]
    return run_checks("crash", "pigeon-crash-", args.keep, lambda work: run(args.pigeond, drivers, work))


if __name__ == "__main__":
    sys.exit(main())
