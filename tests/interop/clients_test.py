#!/usr/bin/env python3
"""Interop test: real POP3 clients from Debian download a whole mailbox from pigeond intact.

pigeond runs as a process on 127.0.0.1 (a plain listener offering STLS and an implicit-TLS
listener, a self-signed certificate, a passwd-file user alice:{PLAIN}secret, a Maildir of 20
messages of awkward shapes), once per group of checks, and these clients talk to it:

  curl      LIST, RETR, TOP, UIDL and DELE (`-X DELE -I`), over STLS (`pop3://` with
            --ssl-reqd) and implicit TLS (`pop3s://`); a wrong password is refused.
  poplib    Python's own client: USER/PASS, APOP (pigeond's [auth] apop = true with a {PLAIN}
            password), STLS, POP3_SSL; RETR, TOP, UIDL, DELE, RSET, QUIT and a session that
            ends without QUIT.
  fetchmail keep mode over STLS (USER/PASS), a second keep run that must find nothing new (its
            UIDL bookkeeping), then delete mode (--all) over implicit TLS; each message goes to
            an MDA script that writes it to its own file.
  mpop      the same three runs: keep over STLS with `auth user`, again (nothing new), then
            delete with `only_new off` over implicit TLS with `auth plain`; delivery to a Maildir.
  getmail6  the same three runs: keep over plain POP3 (SimplePOP3Retriever; pigeond allows
            plaintext logins on loopback), again (nothing new), then delete over implicit TLS
            (SimplePOP3SSLRetriever; getmail6 has no STLS for POP3); delivery to a Maildir.

Every downloaded message must equal the one in pigeond's Maildir after turning CRLF into LF
(and adding the final newline pigeond sends for a file without one), except for the header
fields the client inserts. Those are dropped by name only, and only where they are not the
message's own next field (walking both header sections in order):
  fetchmail  Received:   its own "from 127.0.0.1 ... by <host> with POP3 (fetchmail-...)": on
             top, or right after the message's own leading Return-Path:, which it keeps first
  mpop       Received:   "by <host> (mpop-...) with POP3", on top (its received_header default)
  getmail6   Return-Path:, Delivered-To:, Received:  on top. getmail also deletes the
             message's own Return-Path: fields, so they are dropped from the expected text too.
             getmail re-serialises the header through Python's email package, which refolds a
             field line longer than 78 characters and writes "Name: " for an empty field; the
             mailbox has neither (those are getmail's changes, not the server's).
Nothing else may differ. After a keep run pigeond's Maildir must hold every message, byte for
byte; after a delete run it must hold none. curl and poplib compare the exact bytes on the wire
(CRLF, dot-unstuffed by the client) and check that each LIST size is the number of octets RETR
sends (Pigeon counts the CRLF it adds to a file without a final newline; Dovecot does not).

Certificates are not verified (self-signed): curl -k, poplib with an unverified context,
fetchmail --nosslcertck, mpop tls_certcheck off, getmail6 without ca_certs (its POP3 SSL
retriever only verifies when ca_certs is set). As root, getmail6 refuses to deliver to a
Maildir unless its destination names a `user`, so the destination is given to nobody.

Usage: clients_test.py [--pigeond] PATH [--keep] [--verbose]
Only the Python standard library, openssl, and the clients (scripts/install-deps.sh installs
them; a missing one is a failure, not a skip). Every process is bounded by a timeout; pigeond
is stopped by its pid in a finally block; everything is written in one temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import os
import poplib
import pwd
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from interop_lib import (HOST, Failure, PigeondProcess, first_difference, free_ports,
                         header_fields, make_cert, maildir_files, message_id, run_bounded, tail,
                         unverified_tls)

PROCESS_TIMEOUT_S = 60   # also interop_lib.run_bounded's default bound
START_TIMEOUT_S = 15
USER, PASSWORD = "alice", "secret"
CLIENTS = ["curl", "fetchmail", "mpop", "getmail", "openssl"]


class GroupAbort(Exception):
    """A step a group cannot go on without failed (already reported as a failed check)."""


# ----------------------------------------------------------------------------------------
# Reporting


class Report:
    def __init__(self) -> None:
        self.checks = 0
        self.failed: list[str] = []

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        self.checks += 1
        if ok:
            print(f"ok {self.checks} - {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"not ok {self.checks} - {what}", flush=True)
            if detail:
                print("    " + detail.rstrip("\n").replace("\n", "\n    "), flush=True)
        return ok

    def require(self, ok: bool, what: str, detail: str = "") -> None:
        if not self.check(ok, what, detail):
            raise GroupAbort(what)


# ----------------------------------------------------------------------------------------
# The mailbox


@dataclass
class Mail:
    key: str
    base: str      # Maildir file name up to the ':'
    folder: str    # "new" or "cur"
    info: str      # "" or ":2,<flags>"
    data: bytes    # the file's bytes

    @property
    def message_id(self) -> bytes:
        return f"{self.key}@pigeon.test".encode()

    def wire(self) -> bytes:
        """What RETR must send (before dot-stuffing): every line end CRLF, and a final CRLF
        added when the file does not end with a newline."""
        crlf = re.sub(rb"(?<!\r)\n", b"\r\n", self.data)
        return crlf if crlf.endswith(b"\r\n") else crlf + b"\r\n"

    def lf(self) -> bytes:
        """The message as a client writes it to a local file: LF line ends, final LF."""
        text = self.data.replace(b"\r\n", b"\n")
        return text if text.endswith(b"\n") else text + b"\n"

    def octets(self) -> int:
        """LIST's size: what RETR sends before dot-stuffing, the added final CRLF included
        (Pigeon's rule: LIST equals what RETR delivers). Dovecot leaves that CRLF out of its
        size; Pigeon agrees with it only where it takes Dovecot's own W= size."""
        return len(self.wire())


def headers(key: str, subject: str, extra: list[str] | None = None,
            content_type: str = "text/plain; charset=us-ascii") -> list[str]:
    return [
        f"From: Sender {key} <{key}@example.org>",
        "To: Alice <alice@pigeon.test>",
        f"Subject: {subject}",
        f"Date: Sat, 28 Nov 2026 09:{int(key[1:]) % 60:02d}:00 +0000",
        f"Message-ID: <{key}@pigeon.test>",
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
    ] + (extra or [])


def text(key: str, subject: str, body: list[str], *, extra: list[str] | None = None,
         content_type: str = "text/plain; charset=us-ascii", eol: bytes = b"\n",
         final_eol: bool = True, top: list[str] | None = None) -> bytes:
    lines = (top or []) + headers(key, subject, extra, content_type) + [""] + body
    data = eol.join(line.encode() for line in lines)
    return data + (eol if final_eol else b"")


def mailbox() -> list[Mail]:
    """Twenty messages of the shapes that break POP3 servers and clients."""
    paragraph = ["Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
                 "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam,",
                 "quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo."]
    trace = ["Return-Path: <m01@example.org>",
             "Received: from mx.example.org (mx.example.org [192.0.2.25])",
             "\tby mail.pigeon.test (Postfix) with ESMTPS id 4F1A2B3C4D",
             "\tfor <alice@pigeon.test>; Sat, 28 Nov 2026 09:12:03 +0000 (UTC)"]
    attachment = base64.encodebytes(random.Random(1939).randbytes(225_000)).decode()
    mixed = ("--b1_mixed\nContent-Type: text/plain; charset=us-ascii\n\n"
             "The nightly build passed; its log is attached.\n\n"
             "--b1_mixed\nContent-Type: application/octet-stream; name=\"build.log.gz\"\n"
             "Content-Disposition: attachment; filename=\"build.log.gz\"\n"
             "Content-Transfer-Encoding: base64\n\n" + attachment + "--b1_mixed--\n")
    alternative = ("--b2_alt\nContent-Type: text/plain; charset=utf-8\n"
                   "Content-Transfer-Encoding: quoted-printable\n\n"
                   "Caf=C3=A9 on Friday at five?\n=2E this line began with a dot\n.\n"
                   "--b2_alt\nContent-Type: text/html; charset=utf-8\n"
                   "Content-Transfer-Encoding: quoted-printable\n\n"
                   "<p>Caf=C3=A9 on <b>Friday</b>?</p>\n..\n--b2_alt--\n")
    # Over pigeond's 64 KiB output buffer, every line dot-stuffed on the wire.
    dots = [f".line {i:05d} starts with a dot" + ("." * (i % 7)) for i in range(4000)]

    subjects = [
        "plain, with trace fields on top",
        "stored with CRLF line ends",
        "lines starting with dots",
        "a '.' line last, no final newline",
        "8-bit UTF-8 body",
        "300 KB base64 attachment",
        "no final newline",
        "'From ' lines in the body",
        "headers only, empty body",
        "a 998-character line",
        "folded header fields",
        "multipart/alternative, quoted-printable, dot lines",
        "blank lines at the end",
        "4000 dot-stuffed lines, over 64 KiB",
        "whitespace-only lines",
        "tiny",
        "mixed CRLF and LF line ends",
        "CRLF with '.' and '..' lines",
        "8-bit Latin-1 (not UTF-8) body",
        "a line of '.' between paragraphs, long message",
    ]
    data: dict[int, bytes] = {}
    k = lambda i: f"m{i:02d}"  # noqa: E731
    data[1] = text(k(1), subjects[0], ["Hello Alice,", "", "the first message."], top=trace)
    data[2] = text(k(2), subjects[1], paragraph * 3 + ["", "-- ", "Sender"], eol=b"\r\n")
    data[3] = text(k(3), subjects[2], [".", "..", "...", ".signature", ". a space after",
                                        "..double", "middle . dot", ".", "end"])
    data[4] = text(k(4), subjects[3], ["The last line is a single dot:", "."],
                   final_eol=False)
    data[5] = text(k(5), "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
                   ["Grüße aus Köln, naïve café, ½ €.", "日本語のテキスト。", "Emoji: 🐦📬",
                    "Ünïcödé at the start of a line"],
                   extra=["Content-Transfer-Encoding: 8bit"],
                   content_type="text/plain; charset=utf-8")
    data[6] = text(k(6), subjects[5], mixed.rstrip("\n").split("\n"),
                   content_type='multipart/mixed; boundary="b1_mixed"')
    data[7] = text(k(7), subjects[6], ["first line", "last line without a newline"],
                   final_eol=False)
    data[8] = text(k(8), subjects[7], ["From the desk of the sender:", "",
                                        "From me to you, a line an mbox would quote.",
                                        ">From an already quoted line", "From: not a header",
                                        "From "])
    data[9] = text(k(9), subjects[8], [])
    data[10] = text(k(10), subjects[9], ["x" * 998, "short line after it"])
    data[11] = text(k(11), subjects[10], ["Folded fields above."],
                    extra=["References: <a1@example.org>", " <a2@example.org>",
                           "\t<a3@example.org>",
                           "X-Long: " + " ".join(f"word{i}" for i in range(10)),
                           "  " + " ".join(f"word{i}" for i in range(10, 20)),
                           "  continued with two spaces"])
    data[12] = text(k(12), subjects[11], alternative.rstrip("\n").split("\n"),
                    content_type='multipart/alternative; boundary="b2_alt"')
    data[13] = text(k(13), subjects[12], ["Three blank lines follow.", "", "", ""])
    data[14] = text(k(14), subjects[13], dots)
    data[15] = text(k(15), subjects[14], ["   ", "\t", "trailing spaces   ", " \t ", ""])
    data[16] = (f"From: {k(16)}@example.org\nSubject: tiny\nMessage-ID: <{k(16)}@pigeon.test>\n"
                "\nx\n").encode()
    data[17] = (text(k(17), subjects[16], ["a CRLF line"], eol=b"\r\n")
                + b"an LF line\nanother CRLF line\r\nlast LF line\n")
    data[18] = text(k(18), subjects[17], ["before", ".", "..", ".x", "after"], eol=b"\r\n")
    data[19] = (text(k(19), subjects[18], ["Latin-1 bytes follow:"],
                     extra=["Content-Transfer-Encoding: 8bit"],
                     content_type="text/plain; charset=iso-8859-1")
                + "Grüße, café, naïve, £5\n".encode("latin-1"))
    data[20] = text(k(20), subjects[19], (paragraph + ["."]) * 200 + ["The end."])

    mails = []
    for i in range(1, 21):
        base = f"{1764300000 + i * 60}.M{1000 + i}P{2000 + i}.mx.pigeon.test"
        folder, info = ("cur", ":2,S") if i % 3 == 0 else ("new", "")
        mails.append(Mail(k(i), base, folder, info, data[i]))
    return mails


def install(maildir: Path, mails: list[Mail]) -> None:
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for m in mails:
        (maildir / m.folder / (m.base + m.info)).write_bytes(m.data)


def drop_fields(data: bytes, names: set[str]) -> bytes:
    """data without the header fields of those names (anywhere in the header section)."""
    fields = header_fields(data)
    head = sum(len(raw) for _, raw in fields)
    return b"".join(raw for name, raw in fields if name not in names) + data[head:]


def strip_added(delivered: bytes, expected: bytes, added: set[str]) -> tuple[bytes, set[str]]:
    """delivered without the header fields a client inserted: walking both header sections in
    order, a delivered field that is not the next expected one (byte for byte) is dropped if its
    name is in `added`. Returns the result and the names dropped."""
    want = header_fields(expected)
    kept, dropped, i = [], set(), 0
    fields = header_fields(delivered)
    for name, raw in fields:
        if i < len(want) and raw == want[i][1]:
            kept.append(raw)
            i += 1
        elif name in added:
            dropped.add(name)
        else:
            kept.append(raw)
    head = sum(len(raw) for _, raw in fields)
    return b"".join(kept) + delivered[head:], dropped


def compare_deliveries(delivered: list[bytes], mails: list[Mail], added: set[str],
                       removed: set[str]) -> tuple[bool, str, set[str]]:
    """Every message exactly once, equal to the original (LF form) once the header fields the
    client inserted (names in `added`) are dropped and, from the original, the fields the
    client deletes (names in `removed`)."""
    by_id = {m.message_id: m for m in mails}
    seen: dict[bytes, int] = {}
    problems, dropped_names = [], set()
    for data in delivered:
        lf = data.replace(b"\r\n", b"\n")
        mid = message_id(lf)
        m = by_id.get(mid)
        if m is None:
            problems.append(f"a delivered message with no known Message-ID ({mid!r}): "
                            f"{lf[:200]!r}")
            continue
        seen[mid] = seen.get(mid, 0) + 1
        expected = drop_fields(m.lf(), removed) if removed else m.lf()
        got, dropped = strip_added(lf, expected, added)
        dropped_names |= dropped
        if got != expected:
            problems.append(f"{m.key} ({subject_of(m)}) differs: "
                            + first_difference(expected, got))
    for m in mails:
        n = seen.get(m.message_id, 0)
        if n != 1:
            problems.append(f"{m.key} ({subject_of(m)}) delivered {n} times")
    return not problems, "\n".join(problems), dropped_names


def subject_of(m: Mail) -> str:
    found = re.search(rb"^Subject: (.*)$", m.data, re.MULTILINE)
    return found.group(1).decode(errors="replace").rstrip("\r") if found else "?"


# ----------------------------------------------------------------------------------------
# Processes


class Pigeond(PigeondProcess):
    """One pigeond process on its own directory: config, passwd-file, Maildir, log."""

    def __init__(self, binary: str, work: Path, cert: Path, key: Path, mails: list[Mail],
                 *, apop: bool = False):
        self.maildir = work / "mail" / USER
        self.port, self.tls_port = free_ports(2)
        work.mkdir(parents=True)
        (work / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::\n")
        install(self.maildir, mails)
        super().__init__(binary, work, f"""\
[[listen]]
address = "{HOST}:{self.port}"
tls = "starttls"

[[listen]]
address = "{HOST}:{self.tls_port}"
tls = "implicit"

[tls]
certificate = "{cert}"
key = "{key}"

[storage]
driver = "maildir"
location = "mail/%u"

[passdb]
driver = "passwd-file"
path = "users"

[auth]
mechanisms = ["PLAIN", "LOGIN"]
plaintext = "loopback"
apop = {"true" if apop else "false"}

[limits]
shutdown_grace = "1s"

[log]
level = "info"
destination = "stderr"
""")

    def start_checked(self) -> str:
        """Starts pigeond and waits until both listeners greet; returns "" or what failed."""
        try:
            self.start(pop3_ports=[self.port], pop3s_ports=[self.tls_port],
                       timeout=START_TIMEOUT_S)
        except Failure as failure:
            return str(failure)
        return ""

    def messages(self) -> dict[str, bytes]:
        """The Maildir's messages by base name (file name up to ':'); new/ and cur/ must be
        there (a missing one is an error, not an empty Maildir)."""
        for sub in ("new", "cur"):
            if not (self.maildir / sub).is_dir():
                raise FileNotFoundError(f"no directory {self.maildir / sub}")
        return {name.split(":", 1)[0]: data for name, data in maildir_files(self.maildir).items()}


# ----------------------------------------------------------------------------------------
# The groups


class Test:
    def __init__(self, args: argparse.Namespace, root: Path, cert: Path, key: Path) -> None:
        self.args = args
        self.root = root
        self.cert = cert
        self.key = key
        self.report = Report()
        self.mails = mailbox()
        self.by_id = {m.message_id: m for m in self.mails}
        self.by_base = {m.base: m for m in self.mails}
        self.server: Pigeond | None = None
        self.is_root = os.geteuid() == 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        return self.report.check(ok, what, detail)

    def client_failure(self, proc: subprocess.CompletedProcess) -> str:
        """What to print when a client failed: its output and pigeond's log."""
        return (f"command: {' '.join(proc.args)}\nexit: {proc.returncode}\n"
                f"stderr (tail):\n{tail(proc.stderr, 30)}\nstdout (tail):\n{tail(proc.stdout, 15)}\n"
                + (self.server.log_tail() if self.server else ""))

    def group(self, name: str, body, *, apop: bool = False) -> None:
        print(f"# {name}", flush=True)
        work = self.root / name
        self.server = Pigeond(self.args.pigeond, work, self.cert, self.key, self.mails, apop=apop)
        try:
            failure = self.server.start_checked()
            self.report.require(not failure, f"{name}: pigeond starts and greets on both ports",
                                failure)
            body(work)
        except GroupAbort as abort:
            print(f"# {name}: stopped after the failed check: {abort}", flush=True)
        except Exception as error:  # a client's surprise must not hide the other groups
            self.check(False, f"{name}: unexpected {type(error).__name__}: {error}",
                       self.server.log_tail())
        finally:
            self.server.stop()
            if self.args.verbose:
                print(self.server.log_tail(200))
            self.server = None

    def server_keeps_all(self, what: str) -> None:
        present = self.server.messages()
        problems = [f"{m.key} missing" for m in self.mails if m.base not in present]
        problems += [f"{m.key} changed" for m in self.mails
                     if m.base in present and present[m.base] != m.data]
        problems += [f"unexpected file {b}" for b in present if b not in self.by_base]
        self.check(not problems, f"{what}: pigeond's Maildir still holds all 20 messages, unchanged",
                   "\n".join(problems) + "\n" + self.server.log_tail())

    def server_empty(self, what: str) -> None:
        present = self.server.messages()
        self.check(not present, f"{what}: pigeond's Maildir is empty (new/ and cur/)",
                   f"left: {sorted(present)}\n" + self.server.log_tail())

    # ---- curl

    def curl(self, url: str, *extra: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
        return run_bounded(["curl", "-sS", "-k", "--max-time", str(PROCESS_TIMEOUT_S - 5),
                            "-u", f"{USER}:{password}", *extra, url])

    def curl_group(self, work: Path) -> None:
        s = self.server
        stls = f"pop3://{HOST}:{s.port}"
        tls = f"pop3s://{HOST}:{s.tls_port}"

        out = self.curl(stls + "/", "--ssl-reqd")
        listing = [tuple(int(x) for x in line.split()) for line in out.stdout.decode().splitlines()
                   if line.strip()]
        self.report.require(out.returncode == 0 and len(listing) == 20,
                            "curl LIST over STLS (pop3:// --ssl-reqd): 20 messages",
                            self.client_failure(out))
        out = self.curl(tls + "/", "-X", "UIDL")
        uidls = [line.split()[1] for line in out.stdout.decode().splitlines() if line.strip()]
        self.check(out.returncode == 0 and len(uidls) == 20 and len(set(uidls)) == 20,
                   "curl UIDL over implicit TLS (pop3s://): 20 distinct UIDLs",
                   self.client_failure(out))

        # RETR every message, alternating STLS and implicit TLS: exact wire bytes.
        number_to_mail: dict[int, Mail] = {}
        bad = []
        for n, size in listing:
            url, extra = (stls, ["--ssl-reqd"]) if n % 2 else (tls, [])
            out = self.curl(f"{url}/{n}", *extra)
            m = self.by_id.get(message_id(out.stdout))
            if out.returncode != 0 or m is None:
                bad.append(f"RETR {n}: " + self.client_failure(out))
                continue
            number_to_mail[n] = m
            if out.stdout != m.wire():
                bad.append(f"RETR {n} = {m.key} ({subject_of(m)}): "
                           + first_difference(m.wire(), out.stdout))
            if size != m.octets():
                bad.append(f"LIST {n} = {size}, but RETR of {m.key} sends {m.octets()} octets")
        self.check(not bad and len({m.key for m in number_to_mail.values()}) == 20,
                   "curl RETR of each message: exact bytes (CRLF, dots unstuffed); each LIST size "
                   "is what RETR sent", "\n".join(bad))

        n_top = next((n for n, m in number_to_mail.items() if m.key == "m11"), 1)
        out = self.curl(f"{tls}/", "-X", f"TOP {n_top} 0")
        m = number_to_mail.get(n_top)
        expected_top = m.wire().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if m else b""
        self.check(out.returncode == 0 and out.stdout == expected_top,
                   "curl -X 'TOP n 0': the header and the blank line, nothing else",
                   first_difference(expected_top, out.stdout) + "\n" + self.client_failure(out))

        # DELE over STLS, then over implicit TLS; the numbering of the next session follows.
        by_uidl = {uidls[n - 1]: m for n, m in number_to_mail.items() if n <= len(uidls)}
        deleted = 0
        for url, extra, what in ((stls, ["--ssl-reqd"], "STLS"), (tls, [], "implicit TLS")):
            out = self.curl(tls + "/", "-X", "UIDL")
            before = [line.split() for line in out.stdout.decode().splitlines() if line.strip()]
            n = 3 if not deleted else len(before)   # one in the middle, then the last
            target = by_uidl.get(before[n - 1][1]) if len(before) >= n else None
            out = self.curl(f"{url}/{n}", *extra, "-X", "DELE", "-I")
            deleted += 1
            present = s.messages()
            out2 = self.curl(tls + "/", "-X", "UIDL")
            after = [line.split() for line in out2.stdout.decode().splitlines() if line.strip()]
            expected_after = [[str(i), u] for i, (_, u) in
                              enumerate((x for x in before if x != before[n - 1]), start=1)]
            self.check(out.returncode == 0 and target is not None and target.base not in present
                       and len(present) == 20 - deleted and after == expected_after,
                       f"curl -X DELE -I over {what}: message {n} ({target.key if target else '?'}) "
                       "is gone from the Maildir; the others keep their order and UIDLs",
                       self.client_failure(out) + f"\nUIDL before {before}\nUIDL after {after}")

        out = self.curl(stls + "/", "--ssl-reqd", password="wrong")
        self.check(out.returncode == 67,
                   "curl with a wrong password: login denied (curl exit 67)",
                   self.client_failure(out))

    # ---- poplib

    def poplib_group(self, work: Path) -> None:
        s = self.server
        total = sum(m.octets() for m in self.mails)

        p = poplib.POP3(HOST, s.port, timeout=PROCESS_TIMEOUT_S)
        try:
            greeting = p.getwelcome()
            self.check(re.search(rb"<[^<>@\s]+@[^<>@\s]+>", greeting) is not None,
                       "poplib: the greeting carries an APOP timestamp <...@...> (apop = true)",
                       repr(greeting))
            capa = p.capa()
            self.check(all(c in capa for c in ("STLS", "USER", "UIDL", "TOP", "SASL")),
                       "poplib CAPA before login: STLS, USER, UIDL, TOP, SASL", repr(capa))
            p.user(USER)
            p.pass_(PASSWORD)
            stat = p.stat()
            self.check(stat == (20, total), "poplib USER/PASS on the plain port, STAT",
                       f"{stat} != {(20, total)}")
            sizes = [tuple(int(x) for x in line.split()) for line in p.list()[1]]
            uidls = [line.split()[1] for line in p.uidl()[1]]
            bad = []
            number_to_mail = {}
            for n, size in sizes:
                resp, lines, _ = p.retr(n)
                got = b"\r\n".join(lines) + b"\r\n"
                m = self.by_id.get(message_id(got))
                if m is None:
                    bad.append(f"RETR {n}: no known Message-ID in {got[:200]!r}")
                    continue
                number_to_mail[n] = m
                if got != m.wire():
                    bad.append(f"RETR {n} = {m.key}: " + first_difference(m.wire(), got))
                if size != m.octets() or resp != f"+OK {size} octets".encode():
                    bad.append(f"RETR {n} = {m.key}: LIST {size}, {resp!r}, sent {m.octets()}")
            self.check(not bad and len({m.key for m in number_to_mail.values()}) == 20,
                       "poplib LIST, RETR of all 20: exact lines, sizes, '+OK <size> octets'",
                       "\n".join(bad))
            self.check(len(set(uidls)) == 20, "poplib UIDL: 20 distinct", repr(uidls))
            n14 = next(n for n, m in number_to_mail.items() if m.key == "m14")
            lines = p.top(n14, 5)[1]
            m14 = number_to_mail[n14]
            head, body = m14.wire().split(b"\r\n\r\n", 1)
            expected = head.split(b"\r\n") + [b""] + body.split(b"\r\n")[:5]
            self.check(lines == expected, "poplib TOP n 5 of dot-stuffed lines: header, blank "
                       "line, 5 body lines", f"{lines[-6:]!r} != {expected[-6:]!r}")
            p.quit()
        finally:
            p.close()
        self.server_keeps_all("poplib RETR then QUIT")

        p = poplib.POP3(HOST, s.port, timeout=PROCESS_TIMEOUT_S)
        try:
            resp = p.apop(USER, PASSWORD)
            self.check(resp.startswith(b"+OK") and p.stat() == (20, total),
                       "poplib APOP with the right digest logs in", repr(resp))
            self.check([line.split()[1] for line in p.uidl()[1]] == uidls,
                       "poplib: the UIDLs are the same in the next session")
            p.quit()
        finally:
            p.close()

        p = poplib.POP3(HOST, s.port, timeout=PROCESS_TIMEOUT_S)
        try:
            p.stls(unverified_tls())
            capa = p.capa()
            self.check("STLS" not in capa, "poplib STLS: no STLS in CAPA once in TLS", repr(capa))
            p.user(USER)
            p.pass_(PASSWORD)
            n6 = next(n for n, m in number_to_mail.items() if m.key == "m06")
            got = b"\r\n".join(p.retr(n6)[1]) + b"\r\n"
            self.check(got == number_to_mail[n6].wire(),
                       "poplib STLS, USER/PASS, RETR of the 300 KB attachment: exact",
                       first_difference(number_to_mail[n6].wire(), got))
            p.quit()
        finally:
            p.close()

        # POP3_SSL: DELE then RSET commits nothing; DELE without QUIT commits nothing;
        # DELE then QUIT removes the files.
        doomed = [n for n, m in number_to_mail.items() if m.key in ("m04", "m07")]
        p = poplib.POP3_SSL(HOST, s.tls_port, context=unverified_tls(), timeout=PROCESS_TIMEOUT_S)
        try:
            p.user(USER)
            p.pass_(PASSWORD)
            for n in doomed:
                p.dele(n)
            p.rset()
            p.quit()
        finally:
            p.close()
        self.server_keeps_all("poplib POP3_SSL DELE, RSET, QUIT")
        p = poplib.POP3_SSL(HOST, s.tls_port, context=unverified_tls(), timeout=PROCESS_TIMEOUT_S)
        try:
            p.user(USER)
            p.pass_(PASSWORD)
            for n in doomed:
                p.dele(n)
            p.stat()
        finally:
            p.close()   # no QUIT: RFC 1939 §6, nothing may be removed
        time.sleep(0.3)
        self.server_keeps_all("poplib POP3_SSL DELE, then the connection closes without QUIT")
        p = poplib.POP3_SSL(HOST, s.tls_port, context=unverified_tls(), timeout=PROCESS_TIMEOUT_S)
        try:
            p.user(USER)
            p.pass_(PASSWORD)
            for n in doomed:
                p.dele(n)
            stat = p.stat()
            resp = p.quit()
        finally:
            p.close()
        present = s.messages()
        gone = {number_to_mail[n].base for n in doomed}
        self.check(stat[0] == 18 and resp.startswith(b"+OK") and not gone & set(present)
                   and len(present) == 18,
                   "poplib POP3_SSL DELE of two messages, QUIT: their files are gone, 18 remain",
                   f"STAT {stat}, QUIT {resp!r}, left {len(present)}\n" + s.log_tail())

        p = poplib.POP3(HOST, s.port, timeout=PROCESS_TIMEOUT_S)
        try:
            try:
                p.apop(USER, "wrong")
                refused = False
            except poplib.error_proto as error:
                refused = str(error).startswith("b'-ERR")
            self.check(refused, "poplib APOP with a wrong password is refused (-ERR)")
        finally:
            p.close()

    # ---- fetchmail

    def fetchmail(self, work: Path, run: str, port: int, options: list[str]
                  ) -> tuple[subprocess.CompletedProcess, list[bytes]]:
        out_dir = work / f"fetchmail-{run}"
        out_dir.mkdir()
        rc = work / f"fetchmailrc-{run}"
        rc.write_text(f'poll {HOST} port {port} proto pop3\n'
                      f'    user "{USER}" password "{PASSWORD}"\n')
        os.chmod(rc, 0o600)   # fetchmail refuses an rc file with a password others can read
        env = {"HOME": str(work / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LC_ALL": "C"}
        proc = run_bounded(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog",
                            "--pidfile", str(work / "fetchmail.pid"),
                            "--idfile", str(work / "fetchmail.ids"),
                            "--norewrite", "--nosslcertck", "-v",
                            "--mda", f"{work / 'mda.sh'} {out_dir}", *options],
                           env=env, cwd=work)
        return proc, [p.read_bytes() for p in sorted(out_dir.iterdir())]

    def fetchmail_group(self, work: Path) -> None:
        (work / "home").mkdir()
        mda = work / "mda.sh"
        # One file per message; fetchmail reads the MDA's exit status.
        mda.write_text('#!/bin/sh\nset -e\nf=$(mktemp "$1/msg.XXXXXXXX")\ncat > "$f"\n')
        os.chmod(mda, 0o755)
        s = self.server

        proc, got = self.fetchmail(work, "keep", s.port, ["--keep", "--sslproto", "TLS1.2+"])
        self.client_check("fetchmail", "keep mode over STLS", proc, got, {"received"}, set(),
                          [b"POP3> STLS", b"upgrade to TLS succeeded"])
        self.server_keeps_all("fetchmail keep mode")

        proc, got = self.fetchmail(work, "again", s.port, ["--keep", "--sslproto", "TLS1.2+"])
        self.check(proc.returncode == 1 and not got,
                   "fetchmail keep mode again: nothing new (exit 1, its UIDL list matches)",
                   f"{len(got)} delivered\n" + self.client_failure(proc))

        proc, got = self.fetchmail(work, "delete", s.tls_port, ["--nokeep", "--all", "--ssl"])
        self.client_check("fetchmail", "delete mode (--all) over implicit TLS", proc, got,
                          {"received"}, set(), [])
        self.server_empty("fetchmail delete mode")

    def client_check(self, client: str, what: str, proc: subprocess.CompletedProcess,
                     got: list[bytes], added: set[str], removed: set[str],
                     must_say: list[bytes]) -> None:
        ran = proc.returncode == 0 and all(w in proc.stdout + proc.stderr for w in must_say)
        self.report.require(ran, f"{client} {what}: exits 0"
                            + (f" (its log shows {', '.join(w.decode() for w in must_say)})"
                               if must_say else ""),
                            self.client_failure(proc))
        ok, detail, stripped = compare_deliveries(got, self.mails, added, removed)
        note = (f" (once the {', '.join(sorted(stripped))} fields it inserted are dropped)"
                if stripped else "")
        self.check(ok, f"{client} {what}: 20 messages, each exactly once and identical{note}",
                   detail + "\n" + self.client_failure(proc))

    # ---- mpop

    def mpop(self, work: Path, run: str, lines: list[str]
             ) -> tuple[subprocess.CompletedProcess, list[bytes]]:
        dest = work / f"mpop-{run}"
        for sub in ("new", "cur", "tmp"):
            (dest / sub).mkdir(parents=True)
        rc = work / f"mpoprc-{run}"
        rc.write_text("\n".join(["account default", f"host {HOST}", f"user {USER}",
                                 f"password {PASSWORD}", "tls on", "tls_certcheck off",
                                 f"uidls_file {work / 'mpop.uidls'}", f"delivery maildir {dest}",
                                 *lines]) + "\n")
        os.chmod(rc, 0o600)
        env = {"HOME": str(work / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LC_ALL": "C"}
        proc = run_bounded(["mpop", "-C", str(rc), "--debug"], env=env, cwd=work)
        return proc, list(maildir_files(dest).values())

    def mpop_group(self, work: Path) -> None:
        (work / "home").mkdir()
        s = self.server
        proc, got = self.mpop(work, "keep", [f"port {s.port}", "tls_starttls on", "auth user",
                                             "keep on"])
        self.client_check("mpop", "keep mode over STLS, auth user", proc, got, {"received"},
                          set(), [b"--> STLS", b"--> USER"])
        self.server_keeps_all("mpop keep mode")

        proc, got = self.mpop(work, "again", [f"port {s.port}", "tls_starttls on", "auth user",
                                              "keep on"])
        self.check(proc.returncode == 0 and not got,
                   "mpop keep mode again: nothing new (its UIDL list matches)",
                   f"{len(got)} delivered\n" + self.client_failure(proc))

        proc, got = self.mpop(work, "delete", [f"port {s.tls_port}", "tls_starttls off",
                                               "auth plain", "keep off", "only_new off"])
        self.client_check("mpop", "delete mode (only_new off) over implicit TLS, auth plain",
                          proc, got, {"received"}, set(), [b"--> AUTH PLAIN"])
        self.server_empty("mpop delete mode")

    # ---- getmail6

    def getmail(self, work: Path, run: str, retriever: str, port: int, options: list[str]
                ) -> tuple[subprocess.CompletedProcess, list[bytes]]:
        dest = work / f"getmail-{run}"
        for sub in ("new", "cur", "tmp"):
            (dest / sub).mkdir(parents=True)
        destination = ["[destination]", "type = Maildir", f"path = {dest}/"]
        if self.is_root:
            # getmail6 will not deliver to a Maildir as root; it delivers as `user`.
            nobody = pwd.getpwnam("nobody")
            for p in [dest, *dest.rglob("*")]:
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            destination.append("user = nobody")
        rc = work / f"getmailrc-{run}"
        rc.write_text("\n".join(["[retriever]", f"type = {retriever}", f"server = {HOST}",
                                 f"port = {port}", f"username = {USER}", f"password = {PASSWORD}",
                                 "", *destination, "", "[options]", "verbose = 2",
                                 f"message_log = {work / 'getmail.log'}", *options]) + "\n")
        os.chmod(rc, 0o600)
        env = {"HOME": str(work / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LC_ALL": "C"}
        proc = run_bounded(["getmail", "--getmaildir", str(work / "getmail-state"),
                            "--rcfile", str(rc)], env=env, cwd=work)
        return proc, list(maildir_files(dest).values())

    def getmail_group(self, work: Path) -> None:
        (work / "home").mkdir()
        (work / "getmail-state").mkdir()
        if self.is_root:
            for p in (self.root, work):   # the Maildir's path must be open to nobody
                os.chmod(p, 0o755)
        s = self.server
        proc, got = self.getmail(work, "keep", "SimplePOP3Retriever", s.port,
                                 ["read_all = false", "delete = false"])
        getmail_added = {"return-path", "delivered-to", "received"}
        self.client_check("getmail6", "keep mode over plain POP3 (SimplePOP3Retriever)", proc,
                          got, getmail_added, {"return-path"}, [b"20 messages"])
        self.server_keeps_all("getmail6 keep mode")

        proc, got = self.getmail(work, "again", "SimplePOP3Retriever", s.port,
                                 ["read_all = false", "delete = false"])
        self.check(proc.returncode == 0 and not got,
                   "getmail6 keep mode again (read_all = false): nothing new (its oldmail file)",
                   f"{len(got)} delivered\n" + self.client_failure(proc))

        proc, got = self.getmail(work, "delete", "SimplePOP3SSLRetriever", s.tls_port,
                                 ["read_all = true", "delete = true"])
        self.client_check("getmail6", "delete mode over implicit TLS (SimplePOP3SSLRetriever)",
                          proc, got, getmail_added, {"return-path"}, [b"20 messages"])
        self.server_empty("getmail6 delete mode")

    def main(self) -> None:
        self.group("curl", self.curl_group)
        self.group("poplib", self.poplib_group, apop=True)
        self.group("fetchmail", self.fetchmail_group)
        self.group("mpop", self.mpop_group)
        self.group("getmail6", self.getmail_group)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pigeond_path", nargs="?", help="pigeond (CMake target pigeond)")
    parser.add_argument("--pigeond", help="pigeond (the same, as an option)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory and print its path")
    parser.add_argument("--verbose", action="store_true", help="print pigeond's logs")
    args = parser.parse_args()
    args.pigeond = args.pigeond or args.pigeond_path
    if not args.pigeond or not (os.path.isfile(args.pigeond) and os.access(args.pigeond, os.X_OK)):
        print(f"FAIL: pigeond {args.pigeond!r} is missing or not executable", file=sys.stderr)
        return 1
    args.pigeond = os.path.abspath(args.pigeond)
    missing = [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        print(f"FAIL: missing {', '.join(missing)}: scripts/install-deps.sh installs them "
              "(Debian packages curl, fetchmail, mpop, getmail6, openssl)", file=sys.stderr)
        return 1

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="pigeon-clients-"))
    try:
        try:
            cert, key = make_cert(root, "cert", cn="localhost", ip=None)
        except Failure as failure:
            print(f"FAIL: {failure}")
            return 1
        test = Test(args, root, cert, key)
        test.main()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    r = test.report
    took = time.monotonic() - started
    if r.failed:
        print(f"FAIL: interop.clients ({len(r.failed)} of {r.checks} checks failed, {took:.1f} s):")
        for what in r.failed:
            print(f"  {what}")
        return 1
    print(f"PASS: interop.clients ({r.checks} checks, {took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
