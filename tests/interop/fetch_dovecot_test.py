#!/usr/bin/env python3
"""Interop test: `pigeon fetch` downloads from a real Dovecot 2.3 POP3 server.

Starts a POP3-only Dovecot (`dovecot -F`) on 127.0.0.1 with a plain listener offering STLS and
an implicit-TLS (pop3s) listener, a self-signed certificate for localhost, a passwd-file user
alice:{PLAIN}secret and a Maildir of 20 messages (LF line ends, "From " and "." lines, one of
about 200 KB), then runs `pigeon fetch --json` without an accounts file:

  1. keep mode over STLS: 20 stored, each identical to the server's file once Pigeon's
     Received: field is removed, the server keeps all 20; a second run finds nothing new (exit 1)
  2. implicit TLS with the certificate's SHA-256 pinned: 20 stored; a wrong pin is exit 79
  3. no --ca-file (the system store does not trust the certificate), and 127.0.0.1 as the host
     name (the certificate is for localhost): exit 79, nothing stored
  4. --auth SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN, USER and APOP each log in and
     fetch; auto picks SCRAM-SHA-256 (Dovecot 2.3 offers no -PLUS mechanism)
  5. a wrong password (auto and USER): exit 77, Dovecot's -ERR [AUTH] in the error
  6. mpop and fetchmail download the mailbox; after --import-mpop / --import-fetchmail of
     their files, pigeon fetch finds nothing new
  7. --daemon: its first fetch stores 20; SIGTERM ends it with exit 0
  8. delete mode: 20 stored, identical, and the server's Maildir is empty afterwards
  9. --serverinfo: the capabilities before and after STLS and the certificate's SHA-256
 10. an imap: target (Dovecot's IMAP on imaps, user bob): 20 APPENDed, identical once CRLF and
     the Received: field are taken off, not \Seen; a second run adds nothing; a wrong IMAP
     password is exit 77 before anything is downloaded
 11. the imap: target with the client killed (SIGKILL, tests/tools/fetch_crasher) at every point
     between its effects, one message per group: afterwards every message is in the mailbox
     exactly once (a killed run's APPEND is found again by Message-ID and size)
 12. an imap: target logging in with XOAUTH2 (a 3,000-character token) to a small IMAP server
     of this script's own, which checks the SASL string and takes the APPENDs

Usage: fetch_dovecot_test.py --pigeon PATH --crasher PATH [--keep]
Only the standard library, openssl and Dovecot. Every process is bounded by a timeout; Dovecot
is stopped by its pid at the end; everything is written in one temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import interop_lib
from interop_lib import (HOST, Failure, describe, first_difference, free_ports, maildir_files,
                         make_cert, message_id, stop_process, wait_for_greeting)

PROCESS_TIMEOUT_S = 60
START_TIMEOUT_S = 20
USER, PASSWORD = "alice", "secret"
IMAP_USER, IMAP_PASSWORD = "bob", "hunter2"
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN", "USER", "APOP"]


# ----------------------------------------------------------------------------------------
# The mailbox


def mailbox() -> dict[str, bytes]:
    """Twenty messages as Maildir files with LF line ends, by Message-ID."""
    paragraph = ["Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
                 "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam,",
                 "quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo."]
    attachment = base64.encodebytes(random.Random(2023).randbytes(150_000)).decode()
    bodies: dict[int, tuple[str, list[str], list[str]]] = {
        1: ("with trace fields on top", ["Hello Alice,", "", "the first message."], []),
        2: ("'From ' lines in the body", ["From the desk of the sender:", "",
                                          "From me to you, a line an mbox would quote.",
                                          ">From an already quoted line", "From "], []),
        3: ("lines starting with dots", [".", "..", "...", ".signature", ". a space after",
                                         "middle . dot", ".", "end"], []),
        4: ("200 KB attachment", [
            "--b1_mixed", "Content-Type: text/plain; charset=us-ascii", "",
            "The nightly build passed; its log is attached.", "",
            "--b1_mixed", 'Content-Type: application/gzip; name="build.log.gz"',
            'Content-Disposition: attachment; filename="build.log.gz"',
            "Content-Transfer-Encoding: base64", "",
            *attachment.rstrip("\n").split("\n"), "--b1_mixed--"],
            ['Content-Type: multipart/mixed; boundary="b1_mixed"']),
        5: ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", ["Grüße aus Köln, naïve café, ½ €.", "日本語のテキスト。"],
            ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]),
        6: ("headers only, empty body", [], []),
        7: ("folded header fields", ["Folded fields above."],
            ["References: <a1@example.org>", " <a2@example.org>", "\t<a3@example.org>"]),
        8: ("a 998-character line", ["x" * 998, "short line after it"], []),
        9: ("multipart/alternative", [
            "--b2_alt", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable", "",
            "Caf=C3=A9 on Friday at five?", "=2E this line began with a dot", ".",
            "--b2_alt", "Content-Type: text/html; charset=utf-8", "",
            "<p>Caf&eacute; on <b>Friday</b>?</p>", "..", "--b2_alt--"],
            ['Content-Type: multipart/alternative; boundary="b2_alt"']),
        10: ("From and dots together", ["From here on:", ".", "From there", "..From"], []),
        11: ("blank lines at the end", ["Three blank lines follow.", "", "", ""], []),
        12: ("a long message with '.' paragraphs", (paragraph + ["."]) * 150 + ["The end."], []),
    }
    mails = {}
    for i in range(1, 21):
        key = f"m{i:02d}"
        subject, body, extra = bodies.get(i, (f"note {i}", paragraph[: 1 + i % 3]
                                              + (["", "From the archive, item " + str(i)]
                                                 if i % 4 == 0 else []), []))
        top = (["Return-Path: <m01@example.org>",
                "Received: from mx.example.org (mx.example.org [192.0.2.25])",
                "\tby mail.pigeon.test (Postfix) with ESMTPS id 4F1A2B3C4D",
                "\tfor <alice@pigeon.test>; Sat, 28 Nov 2026 09:12:03 +0000 (UTC)"]
               if i == 1 else [])
        head = top + [f"From: Sender {i} <{key}@example.org>", "To: Alice <alice@pigeon.test>",
                      f"Subject: {subject}", f"Date: Sat, 28 Nov 2026 09:{i:02d}:00 +0000",
                      f"Message-ID: <{key}@pigeon.test>", "MIME-Version: 1.0"]
        if not any(e.startswith("Content-Type:") for e in extra):
            head.append("Content-Type: text/plain; charset=us-ascii")
        lines = head + extra + [""] + body
        mails[f"{key}@pigeon.test"] = ("\n".join(lines) + "\n").encode()
    return mails


def message_id_text(data: bytes) -> str | None:
    """The Message-ID (without <>) as text, as the mailbox is keyed."""
    mid = message_id(data)
    return mid.decode() if mid is not None else None


def strip_received(data: bytes) -> bytes:
    """The message without the 4-line Received: field `pigeon fetch` puts on top."""
    lines = data.split(b"\n", 4)
    if (len(lines) < 5 or not lines[0].startswith(b"Received: from ")
            or not all(line.startswith(b"\t") for line in lines[1:4])):
        raise Failure(f"a delivered message does not start with Pigeon's 4-line Received: field: "
                      f"{data[:300]!r}")
    return lines[4]


def check_delivered(target: Path, mails: dict[str, bytes]) -> None:
    """Every message delivered to target exactly once, identical after its Received: field."""
    seen: dict[str, int] = {}
    for data in maildir_files(target).values():
        body = strip_received(data)
        mid = message_id_text(body)
        if mid not in mails:
            raise Failure(f"a delivered message with an unknown Message-ID {mid!r}: {body[:200]!r}")
        if body != mails[mid]:
            raise Failure(f"{mid} differs from the server's file: "
                          + first_difference(mails[mid], body))
        seen[mid] = seen.get(mid, 0) + 1
    wrong = {mid: seen.get(mid, 0) for mid in mails if seen.get(mid, 0) != 1}
    if wrong:
        raise Failure(f"messages not delivered exactly once (Message-ID: times): {wrong}")


def wire_octets(data: bytes) -> int:
    """The size Dovecot's LIST gives a file with LF line ends: every LF counts as CRLF."""
    return len(data) + data.count(b"\n")


# ----------------------------------------------------------------------------------------
# Processes


def run_bounded(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """interop_lib.run_bounded with stdin on /dev/null and this test's bound; returncode None
    after a timeout."""
    return interop_lib.run_bounded(argv, timeout=PROCESS_TIMEOUT_S, stdin=None, env=env)


class Dovecot:
    def __init__(self, work: Path, cert: Path, key: Path, mails: dict[str, bytes]) -> None:
        self.work = work
        self.maildir = work / "mail" / USER
        self.log = work / "dovecot.log"
        self.port, self.tls_port, self.imaps_port = free_ports(3)
        owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        (work / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::\n"
                                    f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}::::\n")
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        for i, data in enumerate(mails.values(), start=1):
            (self.maildir / "new" / f"{1764300000 + i * 60}.M{1000 + i}P{2000 + i}.mx.pigeon.test"
             ).write_bytes(data)
        for path in [work / "mail", *(work / "mail").rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.conf = work / "dovecot.conf"
        self.conf.write_text(f"""base_dir = {work}/run
state_dir = {work}/state
protocols = pop3 imap
listen = {HOST}
log_path = {self.log}
auth_verbose = yes
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{work}/mail/%u
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = {work}/users
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={work}/mail/%u
}}
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
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
""")
        dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
        with open(work / "dovecot.stderr", "wb") as stderr:
            self.proc = subprocess.Popen([dovecot, "-F", "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=stderr)

    def started(self) -> bool:
        return (wait_for_greeting(self.port, self.proc, START_TIMEOUT_S)
                and wait_for_greeting(self.tls_port, self.proc, START_TIMEOUT_S, tls=True)
                and wait_for_greeting(self.imaps_port, self.proc, START_TIMEOUT_S, tls=True,
                                      greeting=b"* OK"))

    def messages(self) -> list[bytes]:
        return list(maildir_files(self.maildir).values())

    def log_tail(self, lines: int = 30) -> str:
        text = "".join(p.read_text(errors="replace") for p in (self.log, self.work / "dovecot.stderr")
                       if p.exists())
        return "\n".join(text.rstrip("\n").split("\n")[-lines:])

    def stop(self) -> None:
        stop_process(self.proc, PROCESS_TIMEOUT_S)



class FakeXoauthImap:
    """A small IMAP server for one login method: AUTHENTICATE XOAUTH2 with the initial response
    (what libcurl sends when given a bearer token), then SELECT, NOOP, STATUS, APPEND, UID
    STORE, LOGOUT. It checks the SASL string and keeps the APPENDed messages."""

    def __init__(self, user: str, token: str) -> None:
        self.expected = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        self.messages: list[bytes] = []
        self.logins: list[bool] = []
        self.server = socket.create_server((HOST, 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(PROCESS_TIMEOUT_S)
                try:
                    self.session(conn.makefile("rwb"))
                except (OSError, ValueError):
                    pass

    def session(self, f) -> None:
        def send(line: str) -> None:
            f.write(line.encode() + b"\r\n")
            f.flush()
        send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] fake ready")
        authed = False
        while True:
            line = f.readline(1 << 16)
            if not line:
                return
            words = line.rstrip(b"\r\n").decode(errors="replace").split(" ")
            tag, verb = words[0], (words[1].upper() if len(words) > 1 else "")
            if verb == "CAPABILITY":
                send("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2")
                send(f"{tag} OK done")
            elif verb == "AUTHENTICATE" and len(words) == 4 and words[2].upper() == "XOAUTH2":
                authed = base64.b64decode(words[3]) == self.expected
                self.logins.append(authed)
                send(f"{tag} OK logged in" if authed else f"{tag} NO [AUTHENTICATIONFAILED] no")
            elif not authed and verb != "LOGOUT":
                send(f"{tag} NO log in first")
            elif verb in ("SELECT", "EXAMINE"):
                send(f"* {len(self.messages)} EXISTS")
                send(f"{tag} OK [READ-WRITE] selected")
            elif verb == "STATUS":
                send(f"* STATUS INBOX (UIDNEXT {len(self.messages) + 1})")
                send(f"{tag} OK done")
            elif verb == "APPEND":
                size = int(words[-1].strip("{}+"))
                send("+ go ahead")
                self.messages.append(f.read(size))
                f.readline(16)
                send(f"{tag} OK [APPENDUID 1 {len(self.messages)}] appended")
            elif verb in ("NOOP", "UID"):
                send(f"{tag} OK done")
            elif verb == "LOGOUT":
                send("* BYE")
                send(f"{tag} OK bye")
                return
            else:
                send(f"{tag} BAD unknown")

    def stop(self) -> None:
        self.stopping.set()
        self.server.close()
        self.thread.join(timeout=PROCESS_TIMEOUT_S)


# ----------------------------------------------------------------------------------------
# The test


class Test:
    def __init__(self, pigeon: str, crasher: str, work: Path, cert: Path, fingerprint: str,
                 dovecot: Dovecot, mails: dict[str, bytes]) -> None:
        self.pigeon = pigeon
        self.crasher = crasher
        self.work = work
        self.cert = cert
        self.fingerprint = fingerprint
        self.dovecot = dovecot
        self.mails = mails
        self.runs = 0
        self.env = {"HOME": str(work / "home"), "XDG_STATE_HOME": str(work / "home" / "state"),
                    "XDG_CONFIG_HOME": str(work / "home" / "config"),
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        (work / "home").mkdir()

    def fresh(self, name: str) -> tuple[Path, Path]:
        """A new (state file, target Maildir) pair for one run."""
        self.runs += 1
        d = self.work / "runs" / f"{self.runs:02d}-{name}"
        d.mkdir(parents=True)
        return d / "state", d / "maildir"

    def fetch(self, state: Path, target: Path, *, tls: str = "starttls", host: str = "localhost",
              ca_file: bool = True, password: str = PASSWORD, options: list[str] | None = None,
              json_out: bool = True, deliver_to: str | None = None
              ) -> tuple[subprocess.CompletedProcess, dict]:
        port = self.dovecot.port if tls == "starttls" else self.dovecot.tls_port
        argv = [self.pigeon, "fetch", "--host", host, "--port", str(port), "--user", USER,
                "--tls", tls, "--password-command", f"echo {password}",
                "--deliver-to", deliver_to or f"maildir:{target}", "--state-file", str(state)]
        argv += ["--ca-file", str(self.cert)] if ca_file else []
        argv += (["--json"] if json_out else []) + (options or [])
        proc = run_bounded(argv, env=self.env)
        report: dict = {}
        if json_out:
            try:
                summary = json.loads(proc.stdout)
                if not isinstance(summary, list) or len(summary) != 1:
                    raise ValueError("not an array of one account")
                report = summary[0]
            except ValueError as error:
                raise Failure(f"`{' '.join(argv)}`: no JSON summary on stdout ({error})\n"
                              + describe(proc)) from None
        return proc, report

    def expect(self, ok: bool, what: str, proc: subprocess.CompletedProcess | None = None) -> None:
        if not ok:
            raise Failure(what + ("\n" + describe(proc) if proc is not None else ""))

    def expect_fetched(self, what: str, proc: subprocess.CompletedProcess, report: dict,
                       target: Path, mechanism: str | None = None) -> None:
        """Exit 0, 20 new and stored, the right octet count, and every message identical."""
        total = sum(wire_octets(m) for m in self.mails.values())
        self.expect(proc.returncode == 0 and report.get("outcome") == "fetched"
                    and report.get("exit_code") == 0 and report.get("on_server") == 20
                    and report.get("new") == 20 and report.get("stored") == 20
                    and report.get("stored_octets") == total and "error" not in report,
                    f"{what}: expected exit 0 with 20 new and stored ({total} octets)", proc)
        self.expect(str(report.get("tls", {}).get("protocol", "")).startswith("TLSv1."),
                    f"{what}: the JSON summary has no TLS protocol", proc)
        if mechanism is not None:
            self.expect(report.get("mechanism") == mechanism,
                        f"{what}: mechanism {report.get('mechanism')!r}, expected {mechanism!r}", proc)
        try:
            check_delivered(target, self.mails)
        except Failure as failure:
            raise Failure(f"{what}: {failure}\n{describe(proc)}") from None

    def expect_refused(self, what: str, proc: subprocess.CompletedProcess, report: dict,
                       target: Path, code: int, outcome: str) -> None:
        self.expect(proc.returncode == code and report.get("exit_code") == code
                    and report.get("outcome") == outcome and report.get("stored") == 0
                    and report.get("error"),
                    f"{what}: expected exit {code} ({outcome}) with an error", proc)
        self.expect(not maildir_files(target), f"{what}: a message was delivered", proc)

    def server_keeps_all(self, what: str) -> None:
        on_server = sorted(self.dovecot.messages())
        if on_server != sorted(self.mails.values()):
            raise Failure(f"{what}: Dovecot's Maildir holds {len(on_server)} messages, not the "
                          "20 originals unchanged")

    # ---- the cases

    def stls_keep(self) -> str:
        state, target = self.fresh("keep")
        proc, report = self.fetch(state, target)
        self.expect_fetched("STLS keep mode, first run", proc, report, target)
        self.server_keeps_all("after STLS keep mode")
        proc, report = self.fetch(state, target)
        self.expect(proc.returncode == 1 and report.get("outcome") == "nothing-new"
                    and report.get("on_server") == 20 and report.get("new") == 0
                    and report.get("stored") == 0,
                    "STLS keep mode, second run with the same state: expected exit 1, 0 stored", proc)
        self.expect(len(maildir_files(target)) == 20,
                    "STLS keep mode, second run: the target no longer holds exactly 20 messages")
        self.server_keeps_all("after the second keep run")
        return "keep mode over STLS: 20 stored byte for byte, server keeps 20; second run exit 1"

    def implicit_pinned(self) -> str:
        state, target = self.fresh("pinned")
        proc, report = self.fetch(state, target, tls="implicit",
                                  options=["--fingerprint", self.fingerprint])
        self.expect_fetched("implicit TLS, pinned fingerprint", proc, report, target)
        state, target = self.fresh("wrong-pin")
        proc, report = self.fetch(state, target, tls="implicit", options=["--fingerprint", "a" * 64])
        self.expect_refused("implicit TLS, wrong fingerprint", proc, report, target, 79, "tls-failure")
        return "implicit TLS with the SHA-256 pinned: 20 stored; a wrong pin: exit 79"

    def tls_verification(self) -> str:
        state, target = self.fresh("no-ca")
        proc, report = self.fetch(state, target, ca_file=False)
        self.expect_refused("STLS without --ca-file (self-signed, system store)", proc, report,
                            target, 79, "tls-failure")
        state, target = self.fresh("ip-host")
        proc, report = self.fetch(state, target, host=HOST)
        self.expect_refused("STLS to 127.0.0.1 with a certificate for localhost", proc, report,
                            target, 79, "tls-failure")
        state, target = self.fresh("ip-host-implicit")
        proc, report = self.fetch(state, target, tls="implicit", host=HOST)
        self.expect_refused("implicit TLS to 127.0.0.1 with a certificate for localhost", proc,
                            report, target, 79, "tls-failure")
        return "untrusted certificate, and a name mismatch (STLS, implicit): exit 79"

    def mechanisms(self) -> str:
        for mechanism in MECHANISMS:
            state, target = self.fresh(mechanism)
            proc, report = self.fetch(state, target, options=["--auth", mechanism])
            self.expect_fetched(f"--auth {mechanism} over STLS", proc, report, target, mechanism)
        state, target = self.fresh("auto")
        proc, report = self.fetch(state, target)
        self.expect_fetched("--auth auto over STLS", proc, report, target, "SCRAM-SHA-256")
        return f"--auth {', '.join(MECHANISMS)} each fetch 20; auto picks SCRAM-SHA-256"

    def wrong_password(self) -> str:
        for options in ([], ["--auth", "USER"]):
            state, target = self.fresh("wrong-password")
            proc, report = self.fetch(state, target, password="wrong", options=options)
            what = f"wrong password ({' '.join(options) or 'auto'})"
            self.expect_refused(what, proc, report, target, 77, "auth-failure")
            # Dovecot refuses the credentials with "-ERR [AUTH] Authentication failed."
            self.expect("[AUTH]" in str(report.get("error")),
                        f"{what}: the error is not Dovecot's [AUTH] refusal", proc)
        self.server_keeps_all("after the wrong passwords")
        return "wrong password (auto, USER): exit 77"

    def delete_mode(self) -> str:
        state, target = self.fresh("delete")
        proc, report = self.fetch(state, target, options=["--delete"])
        self.expect_fetched("--delete over STLS", proc, report, target)
        self.expect(report.get("deleted") == 20, f"--delete: {report.get('deleted')} deleted, not 20",
                    proc)
        left = self.dovecot.messages()
        self.expect(not left, f"--delete: Dovecot's Maildir still holds {len(left)} messages", proc)
        return "delete mode: 20 stored byte for byte, Dovecot's Maildir empty"

    def imports(self) -> str:
        """mpop and fetchmail download the mailbox first; after importing their lists, pigeon
        fetch finds nothing new."""
        work = self.work / "imports"
        work.mkdir()
        (work / "home").mkdir()
        env = {"HOME": str(work / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        mpop_dest = work / "mpop-Maildir"
        for sub in ("new", "cur", "tmp"):
            (mpop_dest / sub).mkdir(parents=True)
        rc = work / "mpoprc"
        rc.write_text("\n".join(["account default", "host localhost", f"port {self.dovecot.port}", f"user {USER}",
                                 f"password {PASSWORD}", "tls on", "tls_starttls on", f"tls_trust_file {self.cert}",
                                 "auth plain", "keep on", f"uidls_file {work / 'mpop.uidls'}",
                                 f"delivery maildir {mpop_dest}"]) + "\n")
        os.chmod(rc, 0o600)
        proc = run_bounded(["mpop", "-C", str(rc), "-q"], env=env)
        self.expect(proc.returncode == 0, "mpop itself must download the mailbox first", proc)
        fm_rc = work / "fetchmailrc"
        fm_rc.write_text(f'poll localhost port {self.dovecot.port} proto pop3 uidl\n'
                         f'    user "{USER}" password "{PASSWORD}"\n')
        os.chmod(fm_rc, 0o600)
        mda = work / "mda.sh"
        mda.write_text('#!/bin/sh\ncat > /dev/null\n')
        os.chmod(mda, 0o755)
        proc = run_bounded(["fetchmail", "-f", str(fm_rc), "--nodetach", "--nosyslog", "--keep",
                            "--pidfile", str(work / "fetchmail.pid"), "--idfile", str(work / "fetchmail.ids"),
                            "--sslcertck", "--sslcertfile", str(self.cert), "--sslproto", "TLS1.2+",
                            "--mda", str(mda)], env=env)
        self.expect(proc.returncode == 0, "fetchmail itself must download the mailbox first", proc)
        for kind, path in (("mpop", work / "mpop.uidls"), ("fetchmail", work / "fetchmail.ids")):
            state, target = self.fresh(f"import-{kind}")
            proc, _ = self.fetch(state, target, json_out=False, options=[f"--import-{kind}", str(path)])
            self.expect(proc.returncode == 0 and b"20 unique-ids imported" in proc.stderr,
                        f"--import-{kind}: 20 unique-ids imported", proc)
            proc, report = self.fetch(state, target)
            self.expect(proc.returncode == 1 and report.get("stored") == 0,
                        f"after --import-{kind}: nothing new (exit 1)", proc)
        return "--import-mpop, --import-fetchmail: after mpop's and fetchmail's own runs, nothing new"

    def daemon(self) -> str:
        """--daemon fetches at once, then waits; SIGTERM ends it with exit 0."""
        state, target = self.fresh("daemon")
        argv = [self.pigeon, "fetch", "--host", "localhost", "--port", str(self.dovecot.port), "--user", USER,
                "--tls", "starttls", "--password-command", f"echo {PASSWORD}", "--ca-file", str(self.cert),
                "--deliver-to", f"maildir:{target}", "--state-file", str(state), "--daemon", "--interval", "1h"]
        proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            count = 0
            while time.monotonic() < deadline and proc.poll() is None:
                count = len(list((target / "new").glob("*"))) if (target / "new").is_dir() else 0
                if count == 20 and state.exists():
                    break
                time.sleep(0.05)  # polls the target directory; the bound is the deadline
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            self.expect(count == 20, f"--daemon: 20 messages stored by its first fetch (found {count})",
                        subprocess.CompletedProcess(argv, proc.returncode, out, err))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        completed = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        self.expect(proc.returncode == 0 and b"stopping" in err, "--daemon: SIGTERM ends it with exit 0", completed)
        return "--daemon: the first fetch stores 20, SIGTERM ends it (exit 0)"

    def serverinfo(self) -> str:
        state, target = self.fresh("serverinfo")
        proc, _ = self.fetch(state, target, json_out=False, options=["--serverinfo"])
        out = proc.stdout.decode(errors="replace")
        self.expect(proc.returncode == 0, "--serverinfo: expected exit 0 (the server was described)", proc)
        for needed in ("Capabilities before STLS:", "Capabilities:", "STLS", "SHA-256",
                       self.fingerprint, "SASL", "PIPELINING", "UIDL"):
            self.expect(needed in out, f"--serverinfo: {needed!r} missing from its output", proc)
        self.expect(not (state.exists() or target.exists()),
                    "--serverinfo: a state file or the target was created", proc)
        return "--serverinfo: capabilities before/after STLS and the certificate's SHA-256"


    # ---- the IMAP target

    def imap_url(self, mailbox: str = "INBOX") -> str:
        return f"imap:imaps://localhost:{self.dovecot.imaps_port}/{mailbox}"

    def imap_options(self, password: str = IMAP_PASSWORD) -> list[str]:
        return ["--imap-user", IMAP_USER, "--imap-password-command", f"echo {password}",
                "--imap-ca-file", str(self.cert)]

    def imap_mailbox(self, mailbox: str) -> list[tuple[bytes, bytes]]:
        """(flags, message) of every message in bob's mailbox, read with Python's imaplib."""
        context = ssl.create_default_context(cafile=str(self.cert))
        with imaplib.IMAP4_SSL("localhost", self.dovecot.imaps_port, ssl_context=context,
                               timeout=PROCESS_TIMEOUT_S) as imap:
            imap.login(IMAP_USER, IMAP_PASSWORD)
            status, _ = imap.select(mailbox)
            self.expect(status == "OK", f"imaplib: cannot select {mailbox}")
            status, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])") if int(
                imap.select(mailbox)[1][0]) > 0 else ("OK", [])
            found = []
            for item in data:
                if isinstance(item, tuple):
                    found.append((item[0], item[1]))
            return found

    def check_imap(self, what: str, mailbox: str, proc: subprocess.CompletedProcess | None,
                   unseen: bool) -> None:
        """Every message of the server exactly once in the IMAP mailbox, identical after CRLF
        and the Received: field."""
        seen: dict[str, int] = {}
        for flags, data in self.imap_mailbox(mailbox):
            self.expect(b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""),
                        f"{what}: an APPENDed message is not in CRLF form", proc)
            body = strip_received(data.replace(b"\r\n", b"\n"))
            mid = message_id_text(body)
            self.expect(mid in self.mails, f"{what}: unknown Message-ID {mid!r}", proc)
            if body != self.mails[mid]:
                raise Failure(f"{what}: {mid} differs: " + first_difference(self.mails[mid], body))
            if unseen:
                self.expect(b"\\Seen" not in flags, f"{what}: {mid} is \\Seen ({flags!r})", proc)
            seen[mid] = seen.get(mid, 0) + 1
        wrong = {mid: seen.get(mid, 0) for mid in self.mails if seen.get(mid, 0) != 1}
        self.expect(not wrong, f"{what}: not in the mailbox exactly once (Message-ID: times): {wrong}",
                    proc)

    def imap_target(self) -> str:
        state, _ = self.fresh("imap")
        proc, report = self.fetch(state, Path("/nonexistent"), deliver_to=self.imap_url(),
                                  options=self.imap_options("wrong"))
        self.expect(proc.returncode == 77 and report.get("outcome") == "auth-failure"
                    and report.get("stored") == 0 and "imap" in str(report.get("error", "")).lower(),
                    "imap: target, wrong IMAP password: expected exit 77 naming the IMAP target", proc)
        proc, report = self.fetch(state, Path("/nonexistent"), deliver_to=self.imap_url(),
                                  options=self.imap_options())
        total = sum(wire_octets(m) for m in self.mails.values())
        self.expect(proc.returncode == 0 and report.get("stored") == 20
                    and report.get("stored_octets") == total,
                    "imap: target: expected exit 0 with 20 stored", proc)
        self.check_imap("imap: target", "INBOX", proc, unseen=True)
        proc, report = self.fetch(state, Path("/nonexistent"), deliver_to=self.imap_url(),
                                  options=self.imap_options())
        self.expect(proc.returncode == 1 and report.get("stored") == 0,
                    "imap: target, second run: expected exit 1, nothing stored", proc)
        self.check_imap("imap: target, second run", "INBOX", proc, unseen=True)
        self.server_keeps_all("after the imap: target runs")
        return "imap: target: wrong IMAP password exit 77; 20 APPENDed identical and unseen; second run exit 1"

    def imap_crashes(self) -> str:
        context = ssl.create_default_context(cafile=str(self.cert))
        with imaplib.IMAP4_SSL("localhost", self.dovecot.imaps_port, ssl_context=context,
                               timeout=PROCESS_TIMEOUT_S) as imap:
            imap.login(IMAP_USER, IMAP_PASSWORD)
            self.expect(imap.create("Crash")[0] == "OK", "imaplib: cannot create the Crash mailbox")
            # Two messages appended and expunged first: in the mailbox, UIDs and message
            # sequence numbers then differ, as in any mailbox with a history.
            for i in range(2):
                imap.append("Crash", None, None, f"Subject: gone {i}\r\n\r\nx\r\n".encode())
            imap.select("Crash")
            imap.store("1:*", "+FLAGS", "\\Deleted")
            self.expect(imap.expunge()[0] == "OK", "imaplib: cannot expunge the Crash mailbox")
        state, _ = self.fresh("imap-crash")
        config = state.parent / "fetch.toml"
        config.write_text(f"""[account.crash]
host = "localhost"
port = {self.dovecot.port}
tls = "starttls"
ca_file = "{self.cert}"
user = "{USER}"
password_command = "echo {PASSWORD}"
deliver_to = "{self.imap_url('Crash')}"
imap_user = "{IMAP_USER}"
imap_password_command = "echo {IMAP_PASSWORD}"
imap_ca_file = "{self.cert}"
state_file = "{state}"
""")
        # Each run takes up where the last one was killed and is killed again 1 to 3 points
        # later (a point: synced, journalled, APPENDed, recorded), until one runs to its end.
        runs = 0
        while True:
            crash_at = 1 + runs % 3
            proc = run_bounded([self.crasher, "--config", str(config), "crash", "1", str(crash_at)],
                               env=self.env)
            runs += 1
            if proc.returncode == 0:
                break
            self.expect(proc.returncode == -signal.SIGKILL and runs < 400,
                        f"fetch_crasher run {runs}: not killed at point {crash_at} as planned", proc)
        proc, report = self.fetch(state, Path("/nonexistent"), deliver_to=self.imap_url("Crash"),
                                  options=self.imap_options())
        self.expect(proc.returncode == 1 and report.get("stored") == 0,
                    "imap: target after the crashes: the last run still found something new", proc)
        self.check_imap("imap: target after the crashes", "Crash", proc, unseen=False)
        self.expect(runs > 50, f"only {runs - 1} kill runs")
        return f"imap: target killed in {runs - 1} runs: every message in the mailbox exactly once"

    def imap_xoauth2(self) -> str:
        token = "ya29." + "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789-_")
                                  for _ in range(3000))
        (self.work / "token").write_text(token + "\n")
        fake = FakeXoauthImap(IMAP_USER, token)
        try:
            state, _ = self.fresh("imap-xoauth2")
            proc, report = self.fetch(
                state, Path("/nonexistent"), deliver_to=f"imap:imap://127.0.0.1:{fake.port}/INBOX",
                options=["--imap-user", IMAP_USER,
                "--imap-oauth-token-command", f"cat {self.work / 'token'}", "--imap-allow-plaintext"])
        finally:
            fake.stop()
        self.expect(proc.returncode == 0 and report.get("stored") == 20,
                    "imap: target with XOAUTH2: expected exit 0 with 20 stored", proc)
        self.expect(bool(fake.logins) and all(fake.logins),
                    f"XOAUTH2: the fake server saw logins {fake.logins}", proc)
        got = sorted(strip_received(m.replace(b"\r\n", b"\n")) for m in fake.messages)
        self.expect(got == sorted(self.mails.values()),
                    f"XOAUTH2: the fake server holds {len(got)} messages, not the 20 originals", proc)
        return "imap: target with XOAUTH2 (3,005-character token): 20 APPENDed"

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pigeon", required=True, help="the pigeon binary (CMake target pigeon)")
    parser.add_argument("--crasher", required=True,
                        help="tests/tools/fetch_crasher (CMake target fetch_crasher)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory and print its path")
    args = parser.parse_args()
    pigeon = os.path.abspath(args.pigeon)
    if not (os.path.isfile(pigeon) and os.access(pigeon, os.X_OK)):
        print(f"FAIL: pigeon {args.pigeon!r} is missing or not executable")
        return 1
    missing = [tool for tool in ("dovecot", "openssl")
               if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        print(f"FAIL: missing {', '.join(missing)} (scripts/install-deps.sh installs them)")
        return 1

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pigeon-fetch-dovecot-"))
    os.chmod(work, 0o755)   # Dovecot's mail processes run as the Maildir's owner
    dovecot = None
    passed = 0
    try:
        try:
            cert, key = make_cert(work, "cert", cn="localhost", ip=None)
        except Failure as failure:
            print(f"FAIL: {failure}")
            return 1
        printed = run_bounded(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)])
        if printed.returncode != 0:
            print(f"FAIL: openssl: {printed.stderr.decode(errors='replace')}")
            return 1
        fingerprint = printed.stdout.decode().strip().split("=", 1)[1].upper()
        mails = mailbox()
        dovecot = Dovecot(work, cert, key, mails)
        if not dovecot.started():
            print(f"FAIL: Dovecot did not start on ports {dovecot.port} and {dovecot.tls_port}:\n"
                  + dovecot.log_tail())
            return 1
        test = Test(pigeon, os.path.abspath(args.crasher), work, cert, fingerprint, dovecot, mails)
        cases = [test.stls_keep, test.implicit_pinned, test.tls_verification, test.mechanisms,
                 test.wrong_password, test.imports, test.daemon, test.serverinfo, test.imap_target,
                 test.imap_crashes, test.imap_xoauth2, test.delete_mode]
        for number, case in enumerate(cases, start=1):
            try:
                what = case()
            except Failure as failure:
                print(f"not ok {number} - {case.__name__}")
                print("FAIL: " + str(failure).replace("\n", "\n    "))
                print("Dovecot's log:\n    " + dovecot.log_tail().replace("\n", "\n    "))
                return 1
            passed += 1
            print(f"ok {number} - {what}", flush=True)
    finally:
        if dovecot is not None:
            dovecot.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"PASS: interop.fetch_dovecot ({passed} cases, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
