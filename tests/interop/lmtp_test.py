#!/usr/bin/env python3
"""Interop test: mail in over LMTP to a real pigeond, then out over POP3 with Python's poplib.

Starts pigeond (a passwd-file with per-user Dovecot quota rules, a Maildir per user, a POP3
listener and LMTP on a Unix socket and on TCP, all in one temporary directory on 127.0.0.1) and
speaks LMTP to it as an MTA does (a small client here: Python's smtplib.LMTP reads one reply after
DATA, where LMTP gives one per recipient):

  1. one message to alice, nobody (550 5.1.1 at RCPT) and bob+tag (bob): one 250 per accepted
     recipient after the dot; each maildrop holds the message with Return-Path: and
     Delivered-To: on top, byte for byte otherwise (8-bit text, a "." line, CRLF)
  2. the same message read back with poplib (USER/PASS, LIST, UIDL, RETR): identical octets
  3. quota: carol may hold 2 messages (userdb_quota_rule=*:messages=2): the third RCPT is 552 5.2.2;
     and carol can still log in over POP3, DELE one, QUIT; then a new message is accepted
  4. max_message_size (1 MB): a 2 MB message is 552 5.3.4 for each recipient, nothing stored,
     and the connection goes on
  5. BDAT chunks over TCP; a 900 KB message over the Unix socket: stored identical
  6. an LMTP client that disconnects mid-DATA: nothing delivered, nothing left in new/

Usage: lmtp_test.py --pigeond PATH [--keep]
Every process is bounded by a timeout and stopped by its PID; loopback and a Unix socket only.
"""

from __future__ import annotations

import argparse
import os
import poplib
import socket
import sys
import time
from pathlib import Path

from interop_lib import HOST, Failure, PigeondProcess, expect, free_ports, run_checks

START_TIMEOUT_S = 20
IO_TIMEOUT_S = 30
USERS = {"alice": "", "bob": "", "carol": "userdb_quota_rule=*:messages=2"}
PASSWORD = "secret"


class Lmtp:
    """A minimal LMTP client: lines out, replies in, every read bounded."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT_S)
        self.sock = sock
        self.file = sock.makefile("rb")
        greeting = self.reply()
        expect(greeting.startswith("220 "), f"LMTP greeting {greeting!r}")

    @classmethod
    def unix(cls, path: Path) -> "Lmtp":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        return cls(sock)

    @classmethod
    def tcp(cls, port: int) -> "Lmtp":
        return cls(socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S))

    def reply(self) -> str:
        """One reply (all lines of a multi-line one), as text."""
        lines = []
        while True:
            line = self.file.readline(4096)
            expect(line.endswith(b"\r\n"), f"a reply line cut short: {line!r}")
            lines.append(line.decode())
            if line[3:4] != b"-":
                return "".join(lines)

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def transaction(self, sender: str, recipients: list[str], message: bytes) -> tuple[list[str], list[str]]:
        """MAIL, RCPTs, DATA; returns the RCPT replies and the replies after the dot."""
        expect(self.command(f"MAIL FROM:<{sender}>").startswith("250 "), "MAIL refused")
        rcpt = [self.command(f"RCPT TO:<{r}>") for r in recipients]
        accepted = sum(r.startswith("250 ") for r in rcpt)
        if accepted == 0:
            expect(self.command("DATA").startswith("503 "), "DATA without recipients not refused")
            expect(self.command("RSET").startswith("250 "), "RSET refused")
            return rcpt, []
        expect(self.command("DATA").startswith("354 "), "DATA not answered 354")
        stuffed = b"".join(b"." + line if line.startswith(b".") else line
                           for line in message.splitlines(keepends=True))
        self.sock.sendall(stuffed + b".\r\n")
        return rcpt, [self.reply() for _ in range(accepted)]

    def close(self) -> None:
        try:
            self.command("QUIT")
        except (OSError, Failure):
            pass
        self.file.close()
        self.sock.close()


class Pigeond(PigeondProcess):
    def __init__(self, binary: str, work: Path) -> None:
        self.pop3_port, self.lmtp_port = free_ports(2)
        self.socket = work / "run" / "lmtp.sock"
        (work / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::{extra}\n"
                                            for u, extra in USERS.items()))
        super().__init__(binary, work, f"""\
[[listen]]
address = "{HOST}:{self.pop3_port}"
tls = "none"

[storage]
driver = "maildir"
location = "mail/%u"

[passdb]
driver = "passwd-file"
path = "users"

[auth]
plaintext = "always"

[lmtp]
listen = ["unix:{self.socket}", "{HOST}:{self.lmtp_port}"]
socket_mode = "0600"

[delivery]
max_message_size = "1M"

[limits]
shutdown_grace = "1s"
""")

    def wait_ready(self) -> None:
        self.start(lmtp_ports=[self.lmtp_port], unix_sockets=[self.socket],
                   timeout=START_TIMEOUT_S)

    def maildir(self, user: str) -> list[bytes]:
        """Every file in the user's new/ and cur/, dot files included (a stray one is a bug)."""
        base = self.work / "mail" / user
        return [p.read_bytes() for sub in ("new", "cur") if (base / sub).is_dir()
                for p in sorted((base / sub).iterdir())]


def message(subject: str, body: bytes = b"") -> bytes:
    return (f"From: sender@example.org\r\nTo: alice@pigeon.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n\r\n").encode() + body


def pop3_messages(port: int, user: str) -> list[tuple[str, bytes]]:
    """(UIDL, RETR octets with CRLF) of every message, through poplib."""
    pop = poplib.POP3(HOST, port, timeout=IO_TIMEOUT_S)
    try:
        pop.user(user)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        out = []
        for n in range(1, count + 1):
            uid = pop.uidl(n).split()[2].decode()
            _, lines, octets = pop.retr(n)
            data = b"".join(line + b"\r\n" for line in lines)
            expect(len(data) == octets, f"RETR {n}: {len(data)} octets, the reply said {octets}")
            out.append((uid, data))
        return out
    finally:
        pop.quit()


def trace_stripped(data: bytes, sender: str, address: str) -> bytes:
    """The message without the two trace fields pigeond adds (which must be there, in order)."""
    head = f"Return-Path: <{sender}>\r\nDelivered-To: {address}\r\n".encode()
    expect(data.startswith(head) or data.startswith(head.replace(b"\r\n", b"\n")),
           f"the stored message does not start with {head!r}: {data[:120]!r}")
    return data[len(head) if data.startswith(head) else len(head) - 2:]


def stored_as(messages: list[bytes], sender: str, address: str, body: bytes) -> bool:
    """Whether one of the stored messages is `body` with the two trace fields on top."""
    head = f"Return-Path: <{sender}>\r\nDelivered-To: {address}\r\n".encode()
    return any(m == head + body for m in messages)


def run(pigeond_binary: str, work: Path) -> list[str]:
    done = []
    pigeond = Pigeond(pigeond_binary, work)
    try:
        pigeond.wait_ready()
        lmtp = Lmtp.unix(pigeond.socket)
        lhlo = lmtp.command("LHLO mta.pigeon.test")
        for ext in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE 1048576", "CHUNKING"):
            expect(ext in lhlo, f"LHLO reply lacks {ext}: {lhlo!r}")

        # 1. per-recipient replies, trace headers, bytes as sent
        first = message("first", "Grüße aus Köln\r\n.a dot line\r\nend\r\n".encode())
        rcpt, after = lmtp.transaction("sender@example.org",
                                       ["alice@pigeon.test", "nobody@pigeon.test", "bob+tag@pigeon.test"], first)
        expect(rcpt[0].startswith("250 2.1.5") and rcpt[1].startswith("550 5.1.1")
               and rcpt[2].startswith("250 2.1.5"), f"RCPT replies {rcpt}")
        expect(len(after) == 2 and all(r.startswith("250 2.0.0") for r in after), f"DATA replies {after}")
        for user, address in (("alice", "alice@pigeon.test"), ("bob", "bob+tag@pigeon.test")):
            stored = pigeond.maildir(user)
            expect(len(stored) == 1, f"{user}'s Maildir holds {len(stored)} messages")
            body = trace_stripped(stored[0], "sender@example.org", address)
            expect(body.replace(b"\r\n", b"\n") == first.replace(b"\r\n", b"\n"),
                   f"{user}'s message differs: {body[:200]!r}")
        done.append("one message, 3 RCPTs (550 5.1.1 for the unknown one), one 250 per recipient, "
                    "trace headers, 8-bit and dot lines intact")

        # 2. read back over POP3
        alice = pop3_messages(pigeond.pop3_port, "alice")
        expect(len(alice) == 1, f"POP3: alice has {len(alice)} messages")
        expect(trace_stripped(alice[0][1], "sender@example.org", "alice@pigeon.test") == first,
               f"POP3 RETR differs from what was sent: {alice[0][1][:200]!r}")
        again = pop3_messages(pigeond.pop3_port, "alice")
        expect(again[0][0] == alice[0][0], "UIDL changed between sessions")
        done.append("poplib RETR gives the octets sent (CRLF), UIDL stable")

        # 3. quota (messages=2)
        for i in range(2):
            _, after = lmtp.transaction("s@example.org", ["carol@pigeon.test"], message(f"carol {i}"))
            expect(after and after[0].startswith("250 "), f"carol's message {i}: {after}")
        rcpt, _ = lmtp.transaction("s@example.org", ["carol@pigeon.test"], message("carol full"))
        expect(rcpt[0].startswith("552 5.2.2"), f"carol over quota: RCPT answered {rcpt}")
        pop = poplib.POP3(HOST, pigeond.pop3_port, timeout=IO_TIMEOUT_S)
        pop.user("carol")
        pop.pass_(PASSWORD)
        expect(pop.stat()[0] == 2, "carol's maildrop does not hold 2 messages")
        pop.dele(1)
        pop.quit()
        rcpt, after = lmtp.transaction("s@example.org", ["carol@pigeon.test"], message("carol again"))
        expect(rcpt[0].startswith("250 ") and after[0].startswith("250 "), f"after a DELE: {rcpt} {after}")
        expect(len(pigeond.maildir("carol")) == 2, "carol's Maildir does not hold 2 messages")
        done.append("quota messages=2: third RCPT 552 5.2.2; carol logs in, DELEs, then mail is accepted")

        # 4. size bound
        big = message("too big", b"x" * 998 + b"\r\n") + b"y" * 998 * 2100 + b"\r\n"
        rcpt, after = lmtp.transaction("s@example.org", ["alice@pigeon.test", "bob@pigeon.test"], big)
        expect(all(r.startswith("552 5.3.4") for r in after) and len(after) == 2,
               f"a 2 MB message: {after}")
        expect(len(pigeond.maildir("alice")) == 1 and len(pigeond.maildir("bob")) == 1,
               "part of the 2 MB message was stored")
        expect(lmtp.command("NOOP").startswith("250 "), "the connection did not go on after 552")
        lmtp.close()
        done.append("2 MB over max_message_size 1 MB: 552 5.3.4 per recipient, nothing stored, session goes on")

        # 5. BDAT over TCP, and a message near the bound over the Unix socket
        tcp = Lmtp.tcp(pigeond.lmtp_port)
        tcp.command("LHLO mta.pigeon.test")
        expect(tcp.command("MAIL FROM:<>").startswith("250 "), "MAIL FROM:<> refused")
        expect(tcp.command("RCPT TO:<bob@pigeon.test>").startswith("250 "), "RCPT bob refused")
        chunked = message("chunks", b".not stuffed\r\n")
        tcp.sock.sendall(f"BDAT {len(chunked) - 5}\r\n".encode() + chunked[:-5])
        expect(tcp.reply().startswith("250 "), "first BDAT chunk refused")
        tcp.sock.sendall(b"BDAT 5 LAST\r\n" + chunked[-5:])
        expect(tcp.reply().startswith("250 2.0.0"), "BDAT LAST refused")
        tcp.close()
        stored = sorted(pigeond.maildir("bob"), key=len)
        expect(stored_as(stored, "", "bob@pigeon.test", chunked), "the BDAT message is not stored as sent")
        near = message("near the bound", b"z" * 900 * 1024 + b"\r\n")
        lmtp = Lmtp.unix(pigeond.socket)
        lmtp.command("LHLO mta.pigeon.test")
        _, after = lmtp.transaction("s@example.org", ["alice@pigeon.test"], near)
        expect(after and after[0].startswith("250 "), f"900 KB message: {after}")
        expect(stored_as(pigeond.maildir("alice"), "s@example.org", "alice@pigeon.test", near),
               "the 900 KB message differs")
        done.append("BDAT chunks over TCP stored as sent; a 900 KB message over the Unix socket identical")

        # 6. cut mid-DATA
        before = len(pigeond.maildir("alice"))
        lost = pigeond.log_path.read_bytes().count(b"disconnected (")
        expect(lmtp.command("MAIL FROM:<s@example.org>").startswith("250 "), "MAIL refused")
        expect(lmtp.command("RCPT TO:<alice@pigeon.test>").startswith("250 "), "RCPT refused")
        expect(lmtp.command("DATA").startswith("354 "), "DATA refused")
        lmtp.sock.sendall(message("cut") + b"half a line")
        lmtp.sock.shutdown(socket.SHUT_RDWR)  # makefile() keeps the descriptor: close() alone would not
        lmtp.file.close()
        lmtp.sock.close()
        deadline = time.monotonic() + 10
        while pigeond.log_path.read_bytes().count(b"disconnected (") == lost and time.monotonic() < deadline:
            time.sleep(0.02)  # waits for pigeond to log the lost connection, bounded
        expect(len(pigeond.maildir("alice")) == before, "a message cut mid-DATA was delivered")
        leftovers = list((work / "mail" / "alice" / "tmp").iterdir())
        expect(not leftovers, f"files left in tmp/: {leftovers}")
        done.append("client gone mid-DATA: nothing delivered, nothing left in tmp/")
    except (Failure, OSError, poplib.error_proto) as error:
        raise Failure(f"{error}\n{pigeond.log_tail()}") from None
    finally:
        pigeond.stop()
    expect(not pigeond.socket.exists(), "the LMTP socket file is still there after stop")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pigeond", required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    return run_checks("interop.lmtp", "pigeon-lmtp-", args.keep,
                      lambda work: run(os.path.abspath(args.pigeond), work))

if __name__ == "__main__":
    sys.exit(main())
