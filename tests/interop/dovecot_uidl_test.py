#!/usr/bin/env python3
"""Interop test: Pigeon's POP3 listing of a Maildir must equal Dovecot 2.3's.

Users who move from Dovecot must re-download nothing, so for a Maildir that has a
dovecot-uidlist, Pigeon has to give every message the POP3 number, unique-id (UIDL) and
size (LIST) that Dovecot's POP3 gives with its default pop3_uidl_format "%08Xu%08Xv".
Despite the capital X, Dovecot 2.3 prints that hex in lower case (its %X modifier is printf's
"%llx"): UID 12 in UIDVALIDITY 0x6b0ae22a gives "0000000c6b0ae22a".

The test builds a realistic Maildir in a temporary directory, asks Dovecot's own pop3
binary for UIDL and LIST (on stdin/stdout: no master daemon, no network), changes the
Maildir the way mail clients and deliveries do, and compares Pigeon's listing with
Dovecot's after every step. Pigeon's listing comes from the dump tool given with
--pigeon-dump (the CMake target pigeon_maildrop_dump): run as `TOOL MAILDIR`, it prints one
line per message in POP3 order, "<number> <uidl> <octets>", and exits 0.

How Dovecot runs here:
    env -i USER=tester HOME=$T/home MAIL=maildir:$T/Maildir \
        /usr/lib/dovecot/pop3 -c $T/dovecot.conf  < commands
with the minimal config written by Dovecot.write_config below. As root, Dovecot refuses to
access mail as root ("Mail access not allowed for root"), so the config sets mail_uid and
mail_gid to nobody's ids and the test hands the temporary tree to that user before each run;
as any other user it runs as that user.

Only the Python standard library; every process it starts is bounded by a timeout and is
gone when the test ends; everything it writes is in one temporary directory.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import interop_lib

DEFAULT_DOVECOT_POP3 = "/usr/lib/dovecot/pop3"
PROCESS_TIMEOUT_S = 60
HOST = "mx.pigeon.test"


class TestFailure(Exception):
    """A check failed; the message says which and shows what was seen."""


# ----------------------------------------------------------------------------------------
# Processes


def run_bounded(argv: list[str], *, stdin: bytes, env: dict[str, str], cwd: Path,
                what: str) -> subprocess.CompletedProcess:
    """interop_lib.run_bounded, where a timeout (its process group killed) is a TestFailure."""
    cp = interop_lib.run_bounded(argv, timeout=PROCESS_TIMEOUT_S, stdin=stdin, env=env, cwd=cwd)
    if cp.returncode is None:
        raise TestFailure(f"{what} did not finish within {PROCESS_TIMEOUT_S} s: {argv}")
    return cp


# ----------------------------------------------------------------------------------------
# The Maildir


def vsize(data: bytes) -> int:
    """Size with every line end as CRLF: what POP3 LIST reports (no CRLF added at the end)."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


@dataclass
class Message:
    """One message file: key is a label for the test's own bookkeeping."""
    key: str
    base: str      # file name up to the ':' (unique part plus ",S=" / ",W=" fields)
    info: str      # ":2,<flags>" or "" (no info part at all)
    folder: str    # "new" or "cur"
    data: bytes

    @property
    def name(self) -> str:
        return self.base + self.info


def make_body(key: str, subject: str, lines: list[str], *, eol: bytes = b"\n",
              final_eol: bool = True) -> bytes:
    header = [
        f"Return-Path: <sender-{key}@example.org>",
        f"Received: from relay.example.org by {HOST} with ESMTP id {key.upper()}0001",
        f"From: Sender {key.upper()} <sender-{key}@example.org>",
        "To: tester@pigeon.test",
        f"Subject: {subject}",
        f"Message-ID: <{key}.1699990000@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    text = eol.join(s.encode() for s in header + [""] + lines)
    return text + (eol if final_eol else b"")


def base_name(secs: int, usecs: int, pid: int, *, s_field: bool, w_field: bool,
              data: bytes) -> str:
    name = f"{secs}.M{usecs}P{pid}.{HOST}"
    if s_field:
        name += f",S={len(data)}"
    if w_field:
        name += f",W={vsize(data)}"
    return name


def initial_messages() -> list[Message]:
    """Twelve messages: new/ and cur/, flags, with and without ,S= and ,W=, odd line ends."""
    def msg(key, secs, usecs, folder, info, data, *, s=False, w=False):
        return Message(key, base_name(secs, usecs, 4000 + len(key) * 7 + secs % 97,
                                      s_field=s, w_field=w, data=data),
                       info, folder, data)

    paragraph = [
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
        "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam,",
        "quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.",
    ]
    attachment = [("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5"
                   f"{i:08d}")[:76] for i in range(600)]
    mixed = (make_body("i", "mixed line ends", ["CRLF line"], eol=b"\r\n")
             + b"bare LF line\nline with a bare \r carriage return\r\nlast line\n")
    return [
        msg("a", 1699990001, 100, "cur", ":2,S",
            make_body("a", "short, both size fields", ["Hello."]), s=True, w=True),
        msg("b", 1699990002, 200, "cur", ":2,RS",
            make_body("b", "answered", paragraph * 4)),
        # Same second as "b" with fewer microseconds: Dovecot numbers it first.
        msg("c", 1699990002, 150, "cur", ":2,S",
            make_body("c", "physical size in the name", paragraph), s=True),
        msg("d", 1699990010, 5, "cur", ":2,",
            make_body("d", "CRLF line ends", paragraph * 2, eol=b"\r\n")),
        msg("e", 1699990020, 7, "cur", "",
            make_body("e", "in cur/ without an info part", ["No flags at all."])),
        msg("f", 1699990030, 8, "new", "",
            make_body("f", "lines starting with a dot",
                      [".", "..", ".signature follows", "-- ", ". end"]), s=True, w=True),
        msg("g", 1699990031, 9, "new", "",
            make_body("g", "no newline at the end", ["last line without LF"],
                      final_eol=False)),
        msg("h", 1699990040, 10, "new", "",
            make_body("h", "large, base64-like", attachment)),
        msg("i", 1699990050, 11, "cur", ":2,FS", mixed),
        msg("j", 1699990060, 12, "new", "",
            make_body("j", "physical size only, in new/", paragraph * 3), s=True),
        msg("k", 1699990070, 13, "cur", ":2,S",
            make_body("k", "virtual size only", paragraph), w=True),
        # Older than "d" although it sits in new/: numbering follows the name's time stamp.
        msg("l", 1699990005, 3, "new", "",
            make_body("l", "older time stamp, in new/", ["Delayed delivery."])),
    ]


def delivered_messages() -> list[Message]:
    """Two later deliveries in one second: M99999 sorts before M100000 (numerically)."""
    m = []
    for key, usecs in (("m", 100000), ("n", 99999)):
        data = make_body(key, f"delivered later ({usecs} us)", ["New mail."] * (3 + len(m)))
        m.append(Message(key, base_name(1699999000, usecs, 7000 + len(m), s_field=False,
                                        w_field=False, data=data), "", "new", data))
    return m


class Maildir:
    def __init__(self, path: Path):
        self.path = path
        self.messages: dict[str, Message] = {}

    def create(self) -> None:
        for sub in ("new", "cur", "tmp"):
            (self.path / sub).mkdir(parents=True)
        # Things a real Maildir has that are not INBOX messages.
        (self.path / "tmp" / f"1699990090.M15P99.{HOST}").write_bytes(
            make_body("t", "half-delivered, in tmp/", ["not a message yet"]))
        (self.path / "cur" / ".hidden-by-a-backup-tool").write_bytes(b"not a message\n")
        (self.path / "new" / ".nfs0000000000c0ffee00000001").write_bytes(b"not a message\n")
        sent = self.path / ".Sent"
        for sub in ("new", "cur", "tmp"):
            (sent / sub).mkdir(parents=True)
        (sent / "maildirfolder").write_bytes(b"")
        (sent / "cur" / f"1699990003.M1P5.{HOST}:2,S").write_bytes(
            make_body("s", "a message in the Sent folder", ["Not in INBOX."]))

    def add(self, message: Message) -> None:
        (self.path / message.folder / message.name).write_bytes(message.data)
        self.messages[message.key] = message

    def rename(self, key: str, folder: str, info: str) -> None:
        m = self.messages[key]
        src = self.path / m.folder / m.name
        m.folder, m.info = folder, info
        os.rename(src, self.path / m.folder / m.name)

    def refresh_names(self) -> None:
        """Follows Dovecot's own renames (new/ -> cur/, flags) by base name."""
        by_base = {m.base: m for m in self.messages.values()}
        for folder in ("new", "cur"):
            for name in os.listdir(self.path / folder):
                m = by_base.get(name.split(":", 1)[0])
                if m is not None:
                    m.folder, m.info = folder, name[len(m.base):]

    def uidlist_text(self) -> str:
        try:
            return (self.path / "dovecot-uidlist").read_text()
        except FileNotFoundError:
            return "(no dovecot-uidlist)"

    def layout(self) -> str:
        lines = []
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            for f in sorted(files):
                p = Path(root) / f
                lines.append(f"  {p.relative_to(self.path)} ({p.stat().st_size} bytes)")
        return "\n".join(lines)


@dataclass
class Uidlist:
    uidvalidity: int
    next_uid: int
    uid_by_base: dict[str, int]


def parse_uidlist(text: str) -> Uidlist:
    """Just enough of Dovecot's version 3 format for the test's own sanity checks."""
    lines = text.split("\n")
    header = lines[0].split(" ")
    if header[0] != "3":
        raise TestFailure(f"dovecot-uidlist is not version 3: {lines[0]!r}")
    fields = {f[0]: f[1:] for f in header[1:] if f}
    uid_by_base = {}
    for line in lines[1:]:
        if not line:
            continue
        uid, rest = line.split(" ", 1)
        name = rest[rest.index(":") + 1:] if rest.startswith(":") else rest.split(" :", 1)[1]
        uid_by_base[name] = int(uid)
    return Uidlist(int(fields["V"]), int(fields["N"]), uid_by_base)


# ----------------------------------------------------------------------------------------
# Dovecot


Listing = list[tuple[int, str, int]]   # (POP3 number, UIDL, octets)


def read_multiline(lines: list[bytes], pos: int) -> tuple[list[bytes], int]:
    body = []
    while True:
        if pos >= len(lines):
            raise TestFailure("POP3 multi-line response not terminated by '.'")
        line = lines[pos]
        pos += 1
        if line == b".":
            return body, pos
        body.append(line[1:] if line.startswith(b".") else line)


class Dovecot:
    """Dovecot's pop3 binary in pre-authenticated mode on one Maildir."""

    def __init__(self, pop3: str, root: Path, maildir: Path, verbose: bool):
        self.pop3 = pop3
        self.root = root
        self.maildir = maildir
        self.home = root / "home"
        self.base_dir = root / "dovecot-run"
        self.verbose = verbose
        self.run_as: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                nobody = pwd.getpwnam("nobody")
                self.run_as = (nobody.pw_uid, nobody.pw_gid)
            except KeyError:
                self.run_as = (65534, 65534)
        self.home.mkdir(exist_ok=True)
        self.base_dir.mkdir(exist_ok=True)

    def write_config(self, name: str, *, no_flag_updates: bool) -> Path:
        conf = self.root / f"dovecot-{name}.conf"
        lines = [
            "# Minimal standalone config: Dovecot's pop3 on stdin/stdout, no master, no network.",
            "ssl = no",
            "protocols = pop3",
            f"base_dir = {self.base_dir}",
            "log_path = /dev/stderr",
            "info_log_path = /dev/stderr",
            f"mail_location = maildir:{self.maildir}",
            "pop3_uidl_format = %08Xu%08Xv",
            # No new/ -> cur/ moves and no \\Seen on RETR when set (Dovecot's default is no).
            f"pop3_no_flag_updates = {'yes' if no_flag_updates else 'no'}",
            "first_valid_uid = 1",
            "first_valid_gid = 1",
        ]
        if self.run_as is not None:
            lines += [f"mail_uid = {self.run_as[0]}", f"mail_gid = {self.run_as[1]}"]
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _hand_over_tree(self) -> None:
        if self.run_as is None:
            return
        uid, gid = self.run_as
        os.chown(self.root, uid, gid)
        for root, dirs, files in os.walk(self.root):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), uid, gid)

    def session(self, name: str, commands: list[str], *,
                no_flag_updates: bool = False) -> list[tuple[bytes, list[bytes] | None]]:
        """Runs one POP3 session; returns (status line, multi-line body or None) per command."""
        conf = self.write_config(name, no_flag_updates=no_flag_updates)
        self._hand_over_tree()
        env = {"USER": "tester", "HOME": str(self.home), "MAIL": f"maildir:{self.maildir}"}
        script = "".join(c + "\r\n" for c in commands).encode()
        cp = run_bounded([self.pop3, "-c", str(conf)], stdin=script, env=env, cwd=self.root,
                         what=f"Dovecot pop3 ({name})")
        if self.verbose or cp.returncode != 0:
            print(f"--- Dovecot session {name}: exit {cp.returncode}\n"
                  f"{cp.stdout.decode(errors='replace')}{cp.stderr.decode(errors='replace')}")
        if cp.returncode != 0:
            raise TestFailure(f"Dovecot pop3 ({name}) exited with {cp.returncode}")
        # Pre-authenticated, Dovecot sends no greeting: the first line answers the first command.
        lines = cp.stdout.split(b"\r\n")
        pos, replies = 0, []
        for command in commands:
            if pos >= len(lines):
                raise TestFailure(f"Dovecot pop3 ({name}): no reply to {command}")
            status = lines[pos]
            pos += 1
            if not status.startswith(b"+OK"):
                raise TestFailure(f"Dovecot pop3 ({name}): {command} -> {status!r}")
            verb = command.split(" ")[0].upper()
            multiline = verb == "RETR" or (verb in ("UIDL", "LIST") and " " not in command)
            body = None
            if multiline:
                body, pos = read_multiline(lines, pos)
            replies.append((status, body))
        return replies

    def listing(self, name: str, extra: list[str] | None = None, *,
                no_flag_updates: bool = False) -> tuple[Listing, list]:
        commands = ["UIDL", "LIST"] + (extra or []) + ["QUIT"]
        replies = self.session(name, commands, no_flag_updates=no_flag_updates)
        return merge_uidl_list(replies[0][1], replies[1][1], f"Dovecot ({name})"), replies[2:-1]


def merge_uidl_list(uidl: list[bytes], lst: list[bytes], who: str) -> Listing:
    uids = [line.decode().split(" ") for line in uidl]
    sizes = [line.decode().split(" ") for line in lst]
    if [u[0] for u in uids] != [s[0] for s in sizes]:
        raise TestFailure(f"{who}: UIDL and LIST number messages differently")
    return [(int(u[0]), u[1], int(s[1])) for u, s in zip(uids, sizes)]


# ----------------------------------------------------------------------------------------
# Pigeon


def pigeon_listing(tool: str, maildir: Path, cwd: Path) -> Listing:
    before = (maildir / "dovecot-uidlist").read_bytes()
    cp = run_bounded([tool, str(maildir)], stdin=b"", env=dict(os.environ), cwd=cwd,
                     what="Pigeon's dump tool")
    if cp.returncode != 0:
        raise TestFailure(f"Pigeon's dump tool exited with {cp.returncode}:\n"
                          f"{cp.stderr.decode(errors='replace')}")
    if (maildir / "dovecot-uidlist").read_bytes() != before:
        raise TestFailure("Pigeon's dump tool changed dovecot-uidlist (Dovecot owns it)")
    listing = []
    for raw in cp.stdout.decode(errors="replace").splitlines():
        if not raw.strip():
            continue
        fields = raw.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit():
            raise TestFailure(f"Pigeon's dump tool printed a malformed line: {raw!r}")
        listing.append((int(fields[0]), fields[1], int(fields[2])))
    return listing


def remove_pigeon_index(maildir: Path) -> list[str]:
    removed = []
    for entry in sorted(os.listdir(maildir)):
        if entry.startswith("pigeon-"):
            p = maildir / entry
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(entry)
    return removed


def format_listings(expected: Listing, actual: Listing, names=("Dovecot", "Pigeon")) -> str:
    rows = [f"    {'#':>3}  {names[0] + ' UIDL':<20} {'octets':>7}   |  "
            f"{names[1] + ' UIDL':<20} {'octets':>7}"]
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        a = actual[i] if i < len(actual) else None
        left = f"{e[0]:>3}  {e[1]:<20} {e[2]:>7}" if e else " " * 37
        right = f"{a[0]:>3}  {a[1]:<20} {a[2]:>7}" if a else ""
        mark = "   " if e == a else " ! "
        rows.append(f"{mark} {left}   |  {right}")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------
# The test


class Run:
    def __init__(self, args, root: Path):
        self.args = args
        self.root = root
        self.maildir = Maildir(root / "Maildir")
        self.dovecot = Dovecot(args.dovecot_pop3, root, self.maildir.path, args.verbose)
        self.checks = 0

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        self.checks += 1
        if not ok:
            raise TestFailure(what + ("\n" + detail if detail else ""))
        print(f"ok {self.checks} - {what}")

    def compare(self, expected: Listing, actual: Listing, what: str,
                maildir: Maildir | None = None) -> None:
        maildir = maildir or self.maildir
        self.check(actual == expected, f"Pigeon matches Dovecot: {what}",
                   "Dovecot (left) and Pigeon (right), '!' marks a difference:\n"
                   + format_listings(expected, actual)
                   + f"\n  dovecot-uidlist:\n{maildir.uidlist_text()}"
                   + f"\n  Maildir:\n{maildir.layout()}")

    def sanity(self, listing: Listing, what: str) -> None:
        """Dovecot's answer follows the rules Pigeon implements: messages by UID, UIDL =
        lower-case %08x of UID and UIDVALIDITY, size = the file's size with CRLF line ends."""
        ul = parse_uidlist(self.maildir.uidlist_text())
        self.maildir.refresh_names()
        present = sorted((ul.uid_by_base[m.base], m) for m in self.maildir.messages.values()
                         if m.base in ul.uid_by_base)
        expected = [(n, f"{uid:08x}{ul.uidvalidity:08x}", vsize(m.data))
                    for n, (uid, m) in enumerate(present, start=1)]
        self.check(len(present) == len(self.maildir.messages) and listing == expected,
                   f"Dovecot {what}: messages by UID, UIDL = %08x(uid) %08x(uidvalidity), "
                   "LIST = size with CRLF line ends",
                   "the rules (left) and Dovecot (right):\n"
                   + format_listings(expected, listing, ("rules", "Dovecot"))
                   + f"\n  dovecot-uidlist:\n{self.maildir.uidlist_text()}")

    def retr_check(self, listing: Listing, replies: list, keys: list[str]) -> None:
        ul = parse_uidlist(self.maildir.uidlist_text())
        for key, (status, body) in zip(keys, replies):
            m = self.maildir.messages[key]
            uidl = f"{ul.uid_by_base[m.base]:08x}{ul.uidvalidity:08x}"
            size = next(s for _, u, s in listing if u == uidl)
            sent = b"\r\n".join(body) + b"\r\n"
            crlf = re.sub(rb"(?<!\r)\n", b"\r\n", m.data)
            if not crlf.endswith(b"\r\n"):
                crlf += b"\r\n"
            self.check(status == f"+OK {size} octets".encode() and sent == crlf,
                       f"Dovecot RETR of message {key!r} sends the LIST size in CRLF form",
                       f"status {status!r}, sent {len(sent)} bytes, expected {len(crlf)}")

    def number_of(self, listing: Listing, key: str) -> int:
        ul = parse_uidlist(self.maildir.uidlist_text())
        uidl = f"{ul.uid_by_base[self.maildir.messages[key].base]:08x}{ul.uidvalidity:08x}"
        return next(n for n, u, _ in listing if u == uidl)

    def pigeon(self, maildir: Maildir | None = None) -> Listing:
        return pigeon_listing(self.args.pigeon_dump, (maildir or self.maildir).path, self.root)

    def main(self) -> None:
        self.maildir.create()
        for m in initial_messages():
            self.maildir.add(m)

        # 1. Dovecot's first look. With pop3_no_flag_updates it leaves new/ as it is (with the
        #    default it would move every new/ file to cur/), so the uidlist also has entries
        #    for files still in new/, as after a delivery by dovecot-lda.
        first, _ = self.dovecot.listing("first", no_flag_updates=True)
        print(f"dovecot-uidlist after Dovecot's first session:\n{self.maildir.uidlist_text()}")
        self.check(len(first) == 12 and os.listdir(self.maildir.path / "new") != [],
                   "Dovecot lists the 12 INBOX messages and left new/ alone")
        self.sanity(first, "first session")
        pigeon_first = self.pigeon()

        # 2. A mail client sets \Seen on two cur/ messages and moves one new/ message to cur/.
        self.maildir.rename("d", "cur", ":2,S")
        self.maildir.rename("e", "cur", ":2,S")
        self.maildir.rename("g", "cur", ":2,S")
        pigeon_after_mua = self.pigeon()

        # 3. Dovecot again, default settings: it keeps its UIDLs, moves new/ to cur/, and
        #    RETR sets \Seen (renames the file).
        retr_keys = ["a", "g", "d"]
        retr = [f"RETR {self.number_of(first, k)}" for k in retr_keys]
        second, retr_replies = self.dovecot.listing("second", retr)
        self.check(second == first, "Dovecot keeps its UIDLs and sizes across renames",
                   format_listings(first, second))
        self.sanity(second, "second session")
        self.retr_check(second, retr_replies, retr_keys)
        self.check(not any(n for n in os.listdir(self.maildir.path / "new")
                           if not n.startswith(".")),
                   "Dovecot's POP3 session moved every new/ message to cur/")

        self.compare(first, pigeon_first, "with messages in new/ that the uidlist knows")
        self.compare(second, pigeon_after_mua, "after a mail client renamed and moved files")
        self.compare(second, self.pigeon(), "after Dovecot moved new/ to cur/ and set flags")
        self.compare(second, self.pigeon(), "second run of the dump tool")
        removed = remove_pigeon_index(self.maildir.path)
        print(f"removed Pigeon's index files: {removed or 'none'}")
        self.compare(second, self.pigeon(), "after removing Pigeon's index files")

        # 4. Two deliveries; Dovecot gives them the next UIDs and appends them to the uidlist.
        next_uid = parse_uidlist(self.maildir.uidlist_text()).next_uid
        for m in delivered_messages():
            self.maildir.add(m)
        third, _ = self.dovecot.listing("third")
        print(f"dovecot-uidlist after the deliveries:\n{self.maildir.uidlist_text()}")
        ul = parse_uidlist(self.maildir.uidlist_text())
        n_uid = ul.uid_by_base[self.maildir.messages["n"].base]
        m_uid = ul.uid_by_base[self.maildir.messages["m"].base]
        self.check(third[:12] == first and len(third) == 14
                   and (n_uid, m_uid) == (next_uid, next_uid + 1),
                   "Dovecot appends deliveries with the next UIDs, in file-name time order",
                   format_listings(first, third))
        self.sanity(third, "after deliveries")
        self.compare(third, self.pigeon(), "after two deliveries")
        self.compare(third, self.pigeon(), "after two deliveries, second run")

        self.migrated()

    def migrated(self) -> None:
        """A uidlist as a migration leaves it (dsync, pop3-migration plugin): the old server's
        UIDLs in "P" fields ("P" alone: the base file name), its POP3 order in "O" fields,
        GUIDs in "G", sizes in "W" and "S", a record whose file is gone, and a file that the
        uidlist does not know yet."""
        md = Maildir(self.root / "Migrated")
        md.create()
        uidvalidity = 1234567890
        specs = [  # key, secs, folder, info, uid (None: not in the uidlist), extension fields
            ("p", 1500000001, "cur", ":2,S", 3, ["Pold-server-0003", "O3"]),
            ("q", 1500000002, "cur", ":2,S", 5, ["P", "O1", "G" + "5a" * 16]),
            ("r", 1500000003, "new", "", 7, ["O2", "W{w}"]),
            ("s", 1500000004, "cur", ":2,", 8, ["S{s}"]),
            ("u", 1500000005, "cur", ":2,RS", 12, ["PZz-0000abcd"]),
            ("v", 1500000006, "new", "", None, []),
        ]
        lines = [f"3 V{uidvalidity} N40 G{'0f' * 16}"]
        for key, secs, folder, info, uid, fields in specs:
            data = make_body(key, f"migrated message {key}",
                             ["From the old server."] * (1 + secs % 7))
            m = Message(key, f"{secs}.M{secs % 1000}P{secs % 89}.{HOST}", info, folder, data)
            md.add(m)
            if uid is not None:
                ext = [f.format(w=vsize(data), s=len(data)) for f in fields]
                lines.append(" ".join([str(uid)] + ext + [":" + m.base]))
            if uid == 8:
                lines.append(f"10 Pgone :1500000009.M9P9.{HOST}")   # its file is gone
        (md.path / "dovecot-uidlist").write_text("\n".join(lines) + "\n")

        dovecot = Dovecot(self.args.dovecot_pop3, self.root, md.path, self.args.verbose)
        listing, _ = dovecot.listing("migrated")
        print(f"dovecot-uidlist of the migrated Maildir after Dovecot:\n{md.uidlist_text()}")
        msgs = md.messages
        expected = [(1, msgs["q"].base, vsize(msgs["q"].data)),
                    (2, f"{7:08x}{uidvalidity:08x}", vsize(msgs["r"].data)),
                    (3, "old-server-0003", vsize(msgs["p"].data)),
                    (4, f"{8:08x}{uidvalidity:08x}", vsize(msgs["s"].data)),
                    (5, "Zz-0000abcd", vsize(msgs["u"].data)),
                    (6, f"{40:08x}{uidvalidity:08x}", vsize(msgs["v"].data))]
        self.check(listing == expected,
                   "Dovecot on a migrated uidlist: O order first, then UID; P as the UIDL",
                   "the rules (left) and Dovecot (right):\n"
                   + format_listings(expected, listing, ("rules", "Dovecot"))
                   + f"\n  dovecot-uidlist:\n{md.uidlist_text()}")
        self.compare(listing, self.pigeon(md), "on a migrated uidlist (P, O, G, W, S fields)",
                     md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pigeon-dump", required=True,
                        help="Pigeon's maildrop dump tool (CMake target pigeon_maildrop_dump)")
    parser.add_argument("--dovecot-pop3", default=DEFAULT_DOVECOT_POP3,
                        help=f"Dovecot's pop3 binary (default {DEFAULT_DOVECOT_POP3})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory and print its path")
    parser.add_argument("--verbose", action="store_true", help="print Dovecot's transcripts")
    args = parser.parse_args()

    # A missing tool is a failure, never a skip: the test exists to hold Pigeon to Dovecot.
    if not (os.path.isfile(args.pigeon_dump) and os.access(args.pigeon_dump, os.X_OK)):
        print(f"FAIL: Pigeon's dump tool {args.pigeon_dump!r} is missing or not executable "
              "(build the pigeon_maildrop_dump target)", file=sys.stderr)
        return 1
    if not (os.path.isfile(args.dovecot_pop3) and os.access(args.dovecot_pop3, os.X_OK)):
        print(f"FAIL: Dovecot's pop3 {args.dovecot_pop3!r} is missing: "
              "scripts/install-deps.sh installs it (Debian package dovecot-pop3d)",
              file=sys.stderr)
        return 1
    args.pigeon_dump = os.path.abspath(args.pigeon_dump)

    root = Path(tempfile.mkdtemp(prefix="pigeon-dovecot-uidl-"))
    run = Run(args, root)
    try:
        run.main()
    except TestFailure as failure:
        print(f"not ok {run.checks + 1} - {failure}", flush=True)
        print(f"FAIL: interop.dovecot_uidl ({run.checks} checks passed before this one)")
        return 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"PASS: interop.dovecot_uidl ({run.checks} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
