#!/usr/bin/env python3
"""End to end: swaks -> Postfix (SMTP) -> pigeond (LMTP) or `pigeon deliver` -> pigeon fetch (POP3+STLS).

The test runs its own Postfix instance from a temporary directory (`postfix -c DIR`: a private
config_directory, queue_directory and data_directory, its log in a file through postlogd, every
daemon unchrooted, no DNS, nothing relayed off the machine), and a pigeond with LMTP on a Unix
socket and on TCP and POP3 with STLS (a self-signed certificate), all on 127.0.0.1:

  Postfix  127.0.0.1:SMTP     smtpd, accepts every recipient of its domains
           127.0.0.1:VERIFY   smtpd with reject_unverified_recipient: a recipient is checked by a
                              probe through the LMTP client before the RCPT is answered
           pigeon.test        virtual_transport = lmtp:unix:<dir>/run/lmtp.sock  (pigeond)
           tcp.pigeon.test    transport_maps: lmtp:inet:127.0.0.1:LMTP           (pigeond)
           local.pigeon.test  mydestination: local(8) runs
                              mailbox_command = pigeon deliver -c pigeond.toml -u "$USER" -f "$SENDER"
                              as the recipient, a system user the test creates (pigeonlda) and
                              another one that is not in pigeon's user database (pigeonnodb)

swaks sends each message with --no-data-fixup (the test dot-stuffs it and ends it itself, so what
was sent is exactly the file): plain text with dot lines and "From " lines, 8-bit UTF-8, a 4 MB
multipart message with a 998-octet line, one to bob+tag@pigeon.test, one over LMTP/TCP, one to a
known and an unknown recipient at once, and three through `pigeon deliver`. Checked:

  - the unknown recipient behind LMTP (nobody@pigeon.test) is refused by pigeond at RCPT with
    550 5.1.1: Postfix's log says so ("said: 550 5.1.1 ... (in reply to RCPT TO command)") and
    the sender (carol@pigeon.test) gets Postfix's bounce through pigeond; through the VERIFY
    port, swaks itself is refused at RCPT with 550 5.1.1 (Postfix's probe met pigeond's 550)
  - a system user missing from pigeon's user database makes `pigeon deliver` exit 67
    (EX_NOUSER), which Postfix bounces (5.1.1) to the sender, also through pigeond
  - Postfix's queue ends empty, nothing was deferred
  - `pigeon fetch --tls starttls --ca-file CERT` downloads every maildrop over POP3; each message
    is, after CRLF -> LF (pigeon fetch writes LF, pigeond keeps what LMTP gave it: CRLF), exactly
    what was sent below these trace fields, in this order and nothing else:
        Received:      pigeon fetch's own (4 lines)
        Return-Path:   <envelope sender>                     (pigeond, or Postfix's local(8))
        X-Original-To: <recipient>                           (local(8) only)
        Delivered-To:  the RCPT address                      (pigeond, or local(8))
        Received:      Postfix's smtpd ("... (Postfix) with ESMTP id ... for <recipient>")
    For `pigeon deliver`, local(8) writes Return-Path/X-Original-To/Delivered-To itself (and an
    mbox "From " line), and `pigeon deliver` must add neither twice.

Usage: postfix_e2e_test.py --pigeond PATH --pigeon PATH [--keep] [--verbose]
Needs root (Postfix's master, local(8) running the command as the recipient, useradd of the two
system users, which are left in place for the next run), postfix and swaks (scripts/install-deps.sh;
missing is a failure, not a skip). Every process is bounded by a timeout; Postfix is stopped with
`postfix -c DIR stop` and its master then by PID if still there, pigeond by PID; loopback only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from interop_lib import (HOST, Failure, PigeondProcess, describe, expect, first_difference,
                         free_ports, header_fields, maildir_files, make_cert, message_id,
                         run_bounded, tail, to_lf, wait_until)

PASSWORD = "secret"
VIRTUAL_USERS = ["alice", "bob", "carol"]
LDA_USER, NODB_USER = "pigeonlda", "pigeonnodb"  # system users for local(8)
DELIVERY_TIMEOUT_S = 90
POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"


# ----------------------------------------------------------------------------------------
# Messages


@dataclass
class Mail:
    key: str
    sender: str
    recipients: list[str]
    data: bytes                  # the message as sent (CRLF line ends)
    delivered_to: dict[str, str] = field(default_factory=dict)  # user -> RCPT address

    @property
    def mid(self) -> bytes:
        return f"{self.key}@e2e.pigeon.test".encode()


def build(key: str, to: str, subject: str, body: list[bytes], *, extra: list[str] = (),
          content_type: str = "text/plain; charset=us-ascii") -> bytes:
    head = [f"From: Sender {key} <{key}@example.org>", f"To: <{to}>", f"Subject: {subject}",
            f"Date: Sun, 29 Nov 2026 09:{int(key[1:]) % 60:02d}:00 +0000",
            f"Message-ID: <{key}@e2e.pigeon.test>", "MIME-Version: 1.0",
            f"Content-Type: {content_type}", *extra]
    return b"\r\n".join([h.encode() for h in head] + [b""] + body) + b"\r\n"


def messages() -> tuple[list[Mail], list[Mail], list[Mail]]:
    """(to pigeond over LMTP, through `pigeon deliver`, refused ones) - who gets what."""
    paragraph = [b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
                 b"tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam."]
    plain = [b"Hello Alice,", b"", *paragraph, b".a line starting with a dot", b"..two dots",
             b".", b"a '.' line above", b"From the start of a line, as mbox would quote it",
             b">From already quoted", b"trailing spaces   ", b"\ttab first", b"", b"-- ", b"Sender"]
    utf8 = ["Grüße aus Köln, naïve café, ½ €.", "日本語のテキスト。", "Emoji: 🐦📬",
            "Ünïcödé at the start of a line"]
    eight_bit = [line.encode() for line in utf8]
    rng = random.Random(2033)
    blob = base64.encodebytes(rng.randbytes(3_000_000)).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    big_body = [b"--b_big", b"Content-Type: text/plain; charset=us-ascii", b"",
                b"A long line follows (998 octets, SMTP's limit).", b"x" * 998, b"",
                b"--b_big", b'Content-Type: application/octet-stream; name="data.bin"',
                b"Content-Transfer-Encoding: base64", b"", blob, b"--b_big--"]
    mid_body = [(b"%05d " % i) + b" ".join(paragraph) for i in range(7000)]  # about 1 MB

    lmtp = [
        Mail("m01", "sender@example.org", ["alice@pigeon.test"],
             build("m01", "alice@pigeon.test", "plain text, dot lines, From lines", plain)),
        Mail("m02", "sender@example.org", ["alice@pigeon.test"],
             build("m02", "alice@pigeon.test", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= 8-bit", eight_bit,
                   extra=["Content-Transfer-Encoding: 8bit"],
                   content_type="text/plain; charset=utf-8")),
        Mail("m03", "sender@example.org", ["bob@pigeon.test"],
             build("m03", "bob@pigeon.test", "4 MB with an attachment", big_body,
                   content_type='multipart/mixed; boundary="b_big"')),
        Mail("m04", "sender@example.org", ["bob+tag@pigeon.test"],
             build("m04", "bob+tag@pigeon.test", "to a +tag address", [b"For bob, tagged."])),
        Mail("m05", "sender@example.org", ["carol@tcp.pigeon.test"],
             build("m05", "carol@tcp.pigeon.test", "over LMTP on TCP", [b"For carol, over TCP."])),
        # One transaction, a known and an unknown recipient: the unknown one is bounced to the
        # sender (carol, also behind pigeond).
        Mail("m06", "carol@pigeon.test", ["alice@pigeon.test", "nobody@pigeon.test"],
             build("m06", "alice@pigeon.test", "one known and one unknown recipient",
                   [b"alice gets this; nobody@pigeon.test is unknown."])),
    ]
    lda = [
        Mail("m07", "sender@example.org", [f"{LDA_USER}@local.pigeon.test"],
             build("m07", f"{LDA_USER}@local.pigeon.test", "local delivery, plain", plain)),
        Mail("m08", "sender@example.org", [f"{LDA_USER}+tag@local.pigeon.test"],
             build("m08", f"{LDA_USER}+tag@local.pigeon.test", "local delivery, 8-bit, +tag",
                   eight_bit, extra=["Content-Transfer-Encoding: 8bit"],
                   content_type="text/plain; charset=utf-8")),
        Mail("m09", "", [f"{LDA_USER}@local.pigeon.test"],
             build("m09", f"{LDA_USER}@local.pigeon.test", "local delivery, 1 MB, null sender",
                   mid_body)),
        Mail("m10", "carol@pigeon.test", [f"{NODB_USER}@local.pigeon.test"],
             build("m10", f"{NODB_USER}@local.pigeon.test", "a system user pigeon does not know",
                   [b"pigeon deliver exits 67 for this one."])),
    ]
    refused = [
        Mail("m11", "carol@pigeon.test", ["nobody@pigeon.test"],
             build("m11", "nobody@pigeon.test", "refused at RCPT by address verification",
                   [b"never stored"])),
    ]
    for m in lmtp + lda:
        for r in m.recipients:
            local, domain = r.split("@")
            user = local.split("+")[0]
            if user in VIRTUAL_USERS + [LDA_USER]:
                m.delivered_to[user] = r
    return lmtp, lda, refused


def stuffed(data: bytes) -> bytes:
    """What swaks --no-data-fixup must get: dot-stuffed CRLF lines and the final "." (swaks
    sends its CRLF)."""
    return b"".join(b"." + line if line.startswith(b".") else line
                    for line in data.splitlines(keepends=True)) + b"."


# ----------------------------------------------------------------------------------------
# Postfix


class Postfix:
    def __init__(self, root: Path, *, smtp_port: int, verify_port: int, lmtp_socket: Path,
                 lmtp_port: int, mailbox_command: str) -> None:
        self.etc, self.queue, self.data = root / "etc", root / "queue", root / "data"
        self.maillog = root / "maillog"
        self.smtp_port, self.verify_port = smtp_port, verify_port
        for d in (root, self.etc, self.queue):
            d.mkdir(mode=0o755, exist_ok=True)
            os.chmod(d, 0o755)
        self.data.mkdir(mode=0o700, exist_ok=True)
        postfix_pw = pwd.getpwnam("postfix")
        os.chown(self.data, postfix_pw.pw_uid, postfix_pw.pw_gid)
        (self.etc / "main.cf").write_text(f"""\
# written by tests/interop/postfix_e2e_test.py: a private instance on 127.0.0.1
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.maillog}
maillog_file_prefixes = {root}
myhostname = mx.pigeon.test
mydomain = pigeon.test
myorigin = $myhostname
mydestination = local.pigeon.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
# nothing leaves the machine: mail for any other domain fails at once
default_transport = error:this test sends nothing off the machine
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
append_dot_mydomain = no
# no header rewriting: what arrives is what was sent, plus Received:
local_header_rewrite_clients =
recipient_delimiter = +
message_size_limit = 20480000
virtual_mailbox_domains = pigeon.test, tcp.pigeon.test
virtual_transport = lmtp:unix:{lmtp_socket}
transport_maps = inline:{{ tcp.pigeon.test=lmtp:inet:{HOST}:{lmtp_port} }}
# recipients of pigeon.test are checked by pigeond at LMTP RCPT, not by Postfix
smtpd_reject_unlisted_recipient = no
address_verify_map =
local_recipient_maps = unix:passwd.byname
alias_maps =
alias_database =
mailbox_command = {mailbox_command}
""")
        (self.etc / "master.cf").write_text(f"""\
# written by tests/interop/postfix_e2e_test.py: no chroot, loopback listeners only
{HOST}:{smtp_port} inet n - n - - smtpd
{HOST}:{verify_port} inet n - n - - smtpd
  -o smtpd_recipient_restrictions=reject_unverified_recipient
  -o unverified_recipient_reject_code=550
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")
        self.started = False

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return run_bounded([POSTFIX, "-c", str(self.etc), *args], timeout=60)

    def start(self) -> None:
        check = self.postfix("check")
        expect(check.returncode == 0, "postfix check:\n" + describe(check))
        started = self.postfix("start")
        self.started = True
        expect(started.returncode == 0, "postfix start:\n" + describe(started) + self.log_tail())

        def greets() -> bool:
            try:
                with socket.create_connection((HOST, self.smtp_port), timeout=2) as s:
                    s.settimeout(5)
                    ok = s.makefile("rb").readline(512).startswith(b"220 ")
                    s.sendall(b"QUIT\r\n")
                    return ok
            except OSError:
                return False

        try:
            wait_until(greets, 30, "Postfix's smtpd to greet", 0.1)
        except Failure as failure:
            raise Failure(f"{failure}\n{self.log_tail()}") from None

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> str:
        """`postfix stop`, then the master by PID if it is still there. Returns a problem or ""."""
        if not self.started:
            return ""
        pid = self.master_pid()
        stopped = self.postfix("stop")
        problem = "" if stopped.returncode == 0 else "postfix stop:\n" + describe(stopped)
        if pid is not None:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"master" in cmdline:
                        os.kill(pid, 9)
                        problem += f"\nPostfix's master (pid {pid}) did not stop: killed"
                except OSError:
                    pass
        return problem

    def log(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\nPostfix's log (tail):\n" + tail(self.log(), lines)

    def queue_listing(self) -> str:
        listed = run_bounded([POSTQUEUE, "-c", str(self.etc), "-p"], timeout=30)
        return listed.stdout.decode(errors="replace").strip()


# ----------------------------------------------------------------------------------------
# The test


class Test:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.checks = 0
        self.env = {"HOME": str(work / "home"), "XDG_STATE_HOME": str(work / "home" / "state"),
                    "XDG_CONFIG_HOME": str(work / "home" / "config"),
                    "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
        (work / "home").mkdir()
        self.pigeond: PigeondProcess | None = None
        self.postfix: Postfix | None = None

    def ok(self, what: str) -> None:
        self.checks += 1
        print(f"ok {self.checks} - {what}", flush=True)

    def context(self) -> str:
        return ((self.pigeond.log_tail() if self.pigeond else "")
                + (self.postfix.log_tail() if self.postfix else ""))

    # ---- set-up

    def system_users(self) -> None:
        for user in (LDA_USER, NODB_USER):
            try:
                pwd.getpwnam(user)
            except KeyError:
                made = run_bounded(["useradd", "--system", "--no-create-home", "--home-dir",
                                    "/nonexistent", "--shell", "/usr/sbin/nologin",
                                    "--user-group", user], timeout=60)
                expect(made.returncode == 0, f"useradd {user}:\n" + describe(made))

    def run(self) -> None:
        w = self.work
        pop3_port, lmtp_port, smtp_port, verify_port = free_ports(4)
        self.lmtp_port = lmtp_port
        cert, key = make_cert(w)
        self.cert = cert
        self.system_users()
        lda = pwd.getpwnam(LDA_USER)
        (w / "run").mkdir(mode=0o755)
        (w / "mail").mkdir(mode=0o755)
        # pigeon deliver runs as the recipient: its maildrop (and nothing else) is its own.
        (w / "mail" / LDA_USER).mkdir(mode=0o700)
        os.chown(w / "mail" / LDA_USER, lda.pw_uid, lda.pw_gid)
        users = w / "users"
        users.write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n"
                                 for u in VIRTUAL_USERS + [LDA_USER]))
        os.chmod(users, 0o644)
        sock = w / "run" / "lmtp.sock"
        self.pigeond = PigeondProcess(self.args.pigeond, w, f"""\
# written by tests/interop/postfix_e2e_test.py
[[listen]]
address = "{HOST}:{pop3_port}"
tls = "starttls"

[tls]
certificate = "{cert}"
key = "{key}"

[storage]
driver = "maildir"
location = "{w}/mail/%u"

[passdb]
driver = "passwd-file"
path = "{users}"

[lmtp]
listen = ["unix:{sock}", "{HOST}:{lmtp_port}"]
socket_user = "postfix"
socket_group = "postfix"
socket_mode = "0600"
max_recipients = 100
timeout = "5m"

[delivery]
max_message_size = "64M"
recipient_delimiter = "+"

[quota]
default_storage = "1G"

[limits]
shutdown_grace = "1s"
""")
        os.chmod(self.pigeond.config, 0o644)
        self.pigeond.start(pop3_ports=[pop3_port], lmtp_ports=[lmtp_port], unix_sockets=[sock])
        st = sock.stat()
        expect(pwd.getpwuid(st.st_uid).pw_name == "postfix" and st.st_mode & 0o777 == 0o600,
               f"the LMTP socket is not postfix's with mode 0600: uid {st.st_uid} "
               f"mode {oct(st.st_mode)}")
        self.ok("pigeond: POP3 (STLS) and LMTP on a Unix socket (postfix's, 0600) and TCP")

        command = (f'{os.path.abspath(self.args.pigeon)} deliver -c {self.pigeond.config} '
                   f'-u "$USER" -f "$SENDER"')
        self.postfix = Postfix(w / "postfix", smtp_port=smtp_port, verify_port=verify_port,
                               lmtp_socket=sock, lmtp_port=lmtp_port, mailbox_command=command)
        self.postfix.start()
        self.ok(f"Postfix {postfix_version()} runs its own instance on {HOST}:{smtp_port} "
                f"and :{verify_port}")

        lmtp_mail, lda_mail, refused = messages()
        for m in lmtp_mail + lda_mail:
            self.swaks(m, smtp_port)
        self.ok(f"swaks: {len(lmtp_mail + lda_mail)} messages accepted by Postfix over SMTP "
                f"({sum(len(m.data) for m in lmtp_mail + lda_mail):,} octets)")
        for m in refused:
            self.swaks_refused(m, verify_port)

        expected_counts = {u: 0 for u in VIRTUAL_USERS + [LDA_USER]}
        for m in lmtp_mail + lda_mail:
            for user in m.delivered_to:
                expected_counts[user] += 1
        expected_counts["carol"] += 2  # the bounces for nobody@pigeon.test and pigeonnodb
        self.wait_delivered(expected_counts)
        self.check_log(lmtp_mail, lda_mail)

        all_sent = {m.mid: m for m in lmtp_mail + lda_mail}
        for user in VIRTUAL_USERS + [LDA_USER]:
            self.fetch_and_compare(user, pop3_port, all_sent, expected_counts[user])

    # ---- sending

    def swaks(self, m: Mail, port: int) -> None:
        path = self.work / f"{m.key}.eml"
        path.write_bytes(stuffed(m.data))
        argv = ["swaks", "--server", HOST, "--port", str(port), "--helo", "client.pigeon.test",
                "--from", m.sender or "<>", "--to", ",".join(m.recipients), "--no-data-fixup",
                "--data", f"@{path}", "--suppress-data", "--timeout", "60"]
        sent = run_bounded(argv, timeout=120)
        out = sent.stdout.decode(errors="replace")
        expect(sent.returncode == 0 and re.search(r"<-  250 2\.0\.0 Ok: queued", out) is not None,
               f"swaks {m.key}: not queued by Postfix:\n{describe(sent)}{self.context()}")

    def swaks_refused(self, m: Mail, port: int) -> None:
        """Through the verifying smtpd: RCPT refused with 550 5.1.1. Postfix answers 450 while
        its probe is under way (a first contact can take longer than smtpd's polls): then again,
        at most 5 times."""
        out = ""
        for attempt in range(5):
            sent = run_bounded(["swaks", "--server", HOST, "--port", str(port),
                                "--helo", "client.pigeon.test", "--from", m.sender,
                                "--to", m.recipients[0], "--timeout", "60"], timeout=120)
            out = sent.stdout.decode(errors="replace") + sent.stderr.decode(errors="replace")
            rcpt = re.search(r"<\*\* +(\d{3}[ -].*)", out)
            if rcpt and rcpt.group(1).startswith("450"):
                time.sleep(2)
                continue
            break
        rcpt = re.search(r"<\*\* +(\d{3}[ -].*)", out)
        expect(rcpt is not None and rcpt.group(1).startswith("550 5.1.1")
               and "in reply to RCPT TO command" in rcpt.group(1),
               f"swaks to {m.recipients[0]} through address verification: expected a 550 5.1.1 "
               f"at RCPT carrying pigeond's reply, got:\n{out[-2500:]}{self.context()}")
        self.ok(f"address verification: RCPT {m.recipients[0]} refused to swaks with "
                f"{rcpt.group(1).strip()[:160]!r}")

    # ---- waiting and Postfix's log

    def counts(self) -> dict[str, int]:
        return {u: len(maildir_files(self.work / "mail" / u)) for u in VIRTUAL_USERS + [LDA_USER]}

    def wait_delivered(self, expected: dict[str, int]) -> None:
        def done() -> bool:
            return self.counts() == expected and self.postfix.queue_listing().endswith(
                "Mail queue is empty")

        try:
            wait_until(done, DELIVERY_TIMEOUT_S, "every delivery and an empty Postfix queue", 0.25)
        except Failure as failure:
            raise Failure(f"{failure}: maildrops hold {self.counts()}, expected {expected}\n"
                          f"queue: {self.postfix.queue_listing()}{self.context()}") from None
        self.ok(f"every message delivered, Postfix's queue empty: {expected}")

    def check_log(self, lmtp_mail: list[Mail], lda_mail: list[Mail]) -> None:
        log = self.postfix.log()
        expect("status=deferred" not in log,
               "Postfix deferred a delivery:\n" + "\n".join(
                   line for line in log.splitlines() if "status=deferred" in line))
        sent = [line for line in log.splitlines() if "status=sent" in line]
        lmtp_sent = [line for line in sent if " postfix/lmtp[" in line]
        expect(any("to=<bob+tag@pigeon.test>" in line for line in lmtp_sent)
               and any("to=<carol@tcp.pigeon.test>" in line
                       and f"relay={HOST}[{HOST}]:{self.lmtp_port}," in line for line in lmtp_sent),
               "Postfix's log lacks LMTP deliveries to bob+tag and over TCP:\n" + "\n".join(sent))
        nobody = [line for line in log.splitlines()
                  if "to=<nobody@pigeon.test>" in line and "status=bounced" in line]
        expect(len(nobody) == 1 and "said: 550 5.1.1" in nobody[0]
               and "(in reply to RCPT TO command)" in nobody[0],
               "Postfix's log should show nobody@pigeon.test bounced by pigeond's "
               f"550 5.1.1 at RCPT:\n{nobody}{self.context()}")
        self.ok("nobody@pigeon.test: pigeond answered Postfix's LMTP RCPT with 550 5.1.1, "
                f"Postfix bounced it: {nobody[0].split('status=')[1][:150]!r}")
        nodb = [line for line in log.splitlines()
                if f"to=<{NODB_USER}@local.pigeon.test>" in line and "status=bounced" in line]
        expect(len(nodb) == 1 and "dsn=5.1.1" in nodb[0],
               f"Postfix's log should show {NODB_USER} bounced with dsn=5.1.1 after "
               f"pigeon deliver's exit 67:\n{nodb}{self.context()}")
        self.ok(f"{NODB_USER} (a system user unknown to pigeon): pigeon deliver's exit 67 "
                f"bounced as 5.1.1: {nodb[0].split('status=')[1][:150]!r}")
        lda_sent = [line for line in sent if " postfix/local[" in line
                    and f"@local.pigeon.test>" in line and "delivered to command" in line]
        expect(len(lda_sent) == 3, f"Postfix's log should show 3 deliveries to pigeon deliver: "
               f"{lda_sent}")

    # ---- fetching and comparing

    def fetch_and_compare(self, user: str, pop3_port: int, sent: dict[bytes, Mail],
                          count: int) -> None:
        target = self.work / "fetched" / user
        argv = [os.path.abspath(self.args.pigeon), "fetch", "--host", HOST, "--port",
                str(pop3_port), "--tls", "starttls", "--ca-file", str(self.cert), "--user", user,
                "--password-command", f"echo {PASSWORD}", "--deliver-to", f"maildir:{target}",
                "--state-file", str(self.work / "fetched" / f"{user}.state"), "--json"]
        proc = run_bounded(argv, env=self.env, timeout=120)
        try:
            report = json.loads(proc.stdout)[0]
        except (ValueError, IndexError, KeyError):
            raise Failure(f"pigeon fetch {user}: no JSON summary\n{describe(proc)}"
                          f"{self.context()}") from None
        expect(proc.returncode == 0 and report.get("stored") == count
               and str(report.get("tls", {}).get("protocol", "")).startswith("TLSv1."),
               f"pigeon fetch {user}: expected exit 0, {count} stored over TLS:\n"
               f"{describe(proc)}{self.context()}")
        fetched = list(maildir_files(target).values())
        expect(len(fetched) == count, f"{user}: {len(fetched)} messages in the fetched Maildir")
        problems, bounces, matched = [], [], []
        for data in fetched:
            lf = to_lf(data)
            mid = message_id(lf.split(b"\n\n", 1)[0])
            m = sent.get(mid) if mid else None
            if m is None or user not in m.delivered_to:
                bounces.append(lf)
                continue
            matched.append(m.key)
            problem = self.compare(user, m, lf)
            if problem:
                problems.append(problem)
        expect(not problems, f"{user}: messages differ from what was sent:\n" + "\n".join(problems))
        expected_keys = sorted(m.key for m in sent.values() if user in m.delivered_to)
        expect(sorted(matched) == expected_keys,
               f"{user}: fetched {sorted(matched)}, expected {expected_keys}")
        if user == "carol":
            self.check_bounces(bounces)
        else:
            expect(not bounces, f"{user}: unexpected messages: {[b[:300] for b in bounces]}")
        self.ok(f"pigeon fetch {user} over STLS: {count} messages ({report.get('stored_octets')} "
                f"octets), each identical to what swaks sent below the trace fields"
                + (" (and the 2 bounces)" if user == "carol" else ""))

    def compare(self, user: str, m: Mail, lf: bytes) -> str:
        """'' when lf is m.data (LF) under exactly the expected trace fields, else why not."""
        address = m.delivered_to[user]
        lda = address.endswith("@local.pigeon.test")
        names = (["received", "return-path", "x-original-to", "delivered-to", "received"] if lda
                 else ["received", "return-path", "delivered-to", "received"])
        fields = header_fields(lf)
        got_names = [n for n, _ in fields[:len(names)]]
        if got_names != names:
            return (f"{m.key}: trace fields {got_names}, expected {names}:\n"
                    + lf[:600].decode(errors="replace"))
        values = {i: raw.decode(errors="replace") for i, (_, raw) in enumerate(fields[:len(names)])}
        fetch_received, postfix_received = values[0], values[len(names) - 1]
        problems = []
        if not fetch_received.startswith("Received: from ") or "POP3" not in fetch_received.upper():
            problems.append(f"not pigeon fetch's Received: {fetch_received!r}")
        if values[1].strip() != f"Return-Path: <{m.sender}>":
            problems.append(f"Return-Path {values[1].strip()!r}, sender was <{m.sender}>")
        delivered = values[len(names) - 2].strip()
        if delivered != f"Delivered-To: {address}":
            problems.append(f"{delivered!r}, RCPT was {address}")
        if lda and values[2].strip() != f"X-Original-To: {address}":
            problems.append(f"{values[2].strip()!r}, RCPT was {address}")
        # smtpd names the recipient ("for <...>") only when the message has a single one
        if "(Postfix) with ESMTP id " not in postfix_received or (
                len(m.recipients) == 1 and f"for <{address}>;" not in postfix_received):
            problems.append(f"not Postfix's Received: for <{address}>: {postfix_received!r}")
        head = sum(len(raw) for _, raw in fields[:len(names)])
        body = lf[head:]
        want = to_lf(m.data)
        if body != want:
            problems.append("the message differs: " + first_difference(want, body))
        return f"{m.key} ({address}): " + "; ".join(problems) if problems else ""

    def check_bounces(self, bounces: list[bytes]) -> None:
        expect(len(bounces) == 2, f"carol: {len(bounces)} bounces, expected 2")
        text = [b.decode(errors="replace") for b in bounces]
        for t in text:
            expect(re.search(r"^From: .*<MAILER-DAEMON@mx\.pigeon\.test>$", t, re.MULTILINE) is not None
                   and t.startswith("Received: from ") and "\nReturn-Path: <>\n" in t
                   and "\nDelivered-To: carol@pigeon.test\n" in t,
                   f"carol: a bounce without Postfix's From or pigeond's trace fields:\n{t[:800]}")
        lmtp = [t for t in text if "nobody@pigeon.test" in t]
        lda = [t for t in text if f"{NODB_USER}@local.pigeon.test" in t]
        expect(len(lmtp) == 1 and "550 5.1.1" in lmtp[0],
               f"carol: no bounce for nobody@pigeon.test with pigeond's 550 5.1.1:\n{text}")
        expect(len(lda) == 1 and re.search(r"Status: 5\.1\.1", lda[0]) is not None,
               f"carol: no bounce for {NODB_USER} with Status: 5.1.1:\n{text}")


def postfix_version() -> str:
    got = run_bounded(["postconf", "-d", "-h", "mail_version"], timeout=30)
    return got.stdout.decode().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pigeond", required=True)
    parser.add_argument("--pigeon", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--verbose", action="store_true", help="print the logs at the end")
    args = parser.parse_args()
    args.pigeond, args.pigeon = os.path.abspath(args.pigeond), os.path.abspath(args.pigeon)
    missing = [t for t in ("swaks", "openssl", "postconf") if shutil.which(t) is None]
    missing += [p for p in (POSTFIX, POSTQUEUE) if not os.access(p, os.X_OK)]
    if missing:
        print(f"FAIL: missing {', '.join(missing)} (scripts/install-deps.sh installs postfix and swaks)")
        return 1
    if os.geteuid() != 0:
        print("FAIL: must run as root (Postfix's master, local(8) as the recipient, useradd)")
        return 1
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        print("FAIL: no postfix user (the postfix package creates it)")
        return 1

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pigeon-postfix-"))
    os.chmod(work, 0o755)  # postfix (LMTP client) and pigeonlda (pigeon deliver) traverse it
    test = Test(args, work)
    failure = None
    try:
        test.run()
    except Failure as error:
        failure = str(error)
    except Exception as error:  # noqa: BLE001 - reported with the logs, then everything stopped
        failure = f"unexpected {type(error).__name__}: {error}\n{test.context()}"
    finally:
        problems = []
        if test.postfix is not None:
            problem = test.postfix.stop()
            if problem:
                problems.append(problem)
        if test.pigeond is not None:
            code = test.pigeond.stop()
            if code not in (0, None):
                problems.append(f"pigeond exited with {code} after SIGTERM")
        if args.verbose:
            print(test.context())
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failure is None and problems:
        failure = "\n".join(problems)
    if failure is not None:
        print("FAIL: " + failure.replace("\n", "\n    "))
        return 1
    print(f"PASS: interop.postfix_e2e ({test.checks} checks, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
