#!/usr/bin/env python3
"""Interop test: Pigeon's password hashes and Dovecot 2.3's `doveadm pw` read each other's.

An operator moving from Dovecot keeps their passwd-file, and one filling a passwd-file with
`pigeon hash` may still point Dovecot at it, so for every scheme Pigeon writes:

  * a hash made by `pigeon hash -s SCHEME --stdin` verifies in `doveadm pw -t HASH -p PASSWORD`,
    and a wrong password does not;
  * a hash made by `doveadm pw -s SCHEME -p PASSWORD` verifies in `pigeon hash -t HASH --stdin`
    (exit 0), and a wrong password does not (exit 1);
  * the unsalted schemes (PLAIN, CRAM-MD5) give the same bytes in both.

It also checks the command line's promises: the password is never taken from the arguments,
it is read from the terminal without echo (twice when hashing), and the documented exit codes
(0 match, 1 mismatch, 2 usage, 75 temporary failure) come out.

How doveadm runs here: `doveadm -c /dev/null pw ...` (no configuration, no daemon, no network;
`pw` needs neither). doveadm itself exits 75 for a mismatch; only its 0 is relied on.

Only the Python standard library; every process is bounded by a timeout and is gone when the
test ends; nothing is written outside one temporary directory.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import shutil
import subprocess
import sys
import termios
import time

PROCESS_TIMEOUT_S = 120
EXPECTED_SCHEMES = [
    "ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT", "PLAIN",
    "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
]
# UTF-8, spaces, the passwd-file separator, shell metacharacters, and one longer than the
# HMAC-MD5 block (64 octets, hashed first) and than bcrypt's 72 octets.
PASSWORDS = [
    "secret",
    "pässwörd with spaces:$x",
    "q'uo\"te\\back`tick",
    "L" + "o" * 98 + "ng",
]

EXIT_MATCH, EXIT_MISMATCH, EXIT_USAGE, EXIT_TEMPORARY = 0, 1, 2, 75


class TestFailure(Exception):
    """A check failed; the message says which and shows what was seen."""


def wrong(password: str) -> str:
    # Changed in its first character: bcrypt ignores everything after octet 72.
    return ("X" if password[0] != "X" else "Y") + password[1:]


def run(argv: list[str], *, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=PROCESS_TIMEOUT_S, start_new_session=True, check=False)


class Tools:
    def __init__(self, pigeon: str, doveadm: str) -> None:
        self.pigeon = pigeon
        self.doveadm = doveadm

    def pigeon_hash(self, scheme: str, password: str) -> str:
        done = run([self.pigeon, "hash", "-s", scheme, "--stdin"], stdin=password.encode() + b"\n")
        if done.returncode != EXIT_MATCH:
            raise TestFailure(f"pigeon hash -s {scheme} exited {done.returncode}: "
                              f"{done.stderr.decode(errors='replace')}")
        lines = done.stdout.decode().splitlines()
        if len(lines) != 1 or not lines[0].startswith("{" + scheme + "}"):
            raise TestFailure(f"pigeon hash -s {scheme} printed {done.stdout!r}")
        return lines[0]

    def pigeon_test(self, stored: str, password: str) -> subprocess.CompletedProcess:
        return run([self.pigeon, "hash", "-t", stored, "--stdin"], stdin=password.encode() + b"\n")

    def doveadm_hash(self, scheme: str, password: str) -> str:
        done = run([self.doveadm, "-c", "/dev/null", "pw", "-s", scheme, "-p", password])
        if done.returncode != 0:
            raise TestFailure(f"doveadm pw -s {scheme} exited {done.returncode}: "
                              f"{done.stderr.decode(errors='replace')}")
        return done.stdout.decode().strip()

    def doveadm_verifies(self, stored: str, password: str) -> bool:
        done = run([self.doveadm, "-c", "/dev/null", "pw", "-t", stored, "-p", password])
        return done.returncode == 0 and b"(verified)" in done.stdout


def check_schemes_listed(tools: Tools) -> list[str]:
    done = run([tools.pigeon, "hash", "--list"])
    listed = done.stdout.decode().split()
    if done.returncode != EXIT_MATCH or listed != EXPECTED_SCHEMES:
        raise TestFailure(f"pigeon hash --list gave {done.returncode} {listed}")
    known = run([tools.doveadm, "-c", "/dev/null", "pw", "-l"]).stdout.decode().split()
    missing = [scheme for scheme in listed if scheme not in known]
    if missing:
        raise TestFailure(f"doveadm pw -l lacks {missing}")
    return listed


def check_pigeon_to_doveadm(tools: Tools, scheme: str, password: str) -> None:
    stored = tools.pigeon_hash(scheme, password)
    if not tools.doveadm_verifies(stored, password):
        raise TestFailure(f"doveadm rejects Pigeon's {stored} for {password!r}")
    if tools.doveadm_verifies(stored, wrong(password)):
        raise TestFailure(f"doveadm accepts a wrong password for Pigeon's {stored}")


def check_doveadm_to_pigeon(tools: Tools, scheme: str, password: str) -> None:
    stored = tools.doveadm_hash(scheme, password)
    good = tools.pigeon_test(stored, password)
    if good.returncode != EXIT_MATCH or good.stdout.decode().strip() != stored + " (verified)":
        raise TestFailure(f"pigeon hash -t rejects doveadm's {stored} for {password!r}: "
                          f"exit {good.returncode}, {good.stderr.decode(errors='replace')}")
    bad = tools.pigeon_test(stored, wrong(password))
    if bad.returncode != EXIT_MISMATCH:
        raise TestFailure(f"pigeon hash -t exits {bad.returncode} for a wrong password on {stored}")


def check_unsalted_identical(tools: Tools, password: str) -> None:
    for scheme in ("PLAIN", "CRAM-MD5"):
        ours, theirs = tools.pigeon_hash(scheme, password), tools.doveadm_hash(scheme, password)
        if ours != theirs:
            raise TestFailure(f"{scheme} of {password!r}: Pigeon {ours}, doveadm {theirs}")


def check_exit_codes(tools: Tools) -> None:
    def expect(argv: list[str], stdin: bytes, code: int, why: str) -> None:
        done = run([tools.pigeon, *argv], stdin=stdin)
        if done.returncode != code:
            raise TestFailure(f"{why}: pigeon {' '.join(argv)} exited {done.returncode}, "
                              f"expected {code}: {done.stderr.decode(errors='replace')}")

    expect(["hash", "-p", "secret"], b"", EXIT_USAGE, "a password in the arguments is refused")
    expect(["hash", "--stdin", "-s", "NO-SUCH-SCHEME"], b"secret\n", EXIT_USAGE, "unknown scheme")
    expect(["hash", "--stdin"], b"\n", EXIT_USAGE, "empty password")
    expect(["hash", "--stdin"], b"", EXIT_USAGE, "no input at all")
    # Without --stdin and without a controlling terminal (a new session has none) there is
    # nowhere to read a password from without echo.
    expect(["hash"], b"secret\n", EXIT_USAGE, "no terminal")
    expect(["hash", "-t", "{NO-SUCH-SCHEME}x", "--stdin"], b"secret\n", EXIT_TEMPORARY,
           "unreadable hash")
    expect(["hash", "-t", "{SHA512-CRYPT}$6$", "--stdin"], b"secret\n", EXIT_MISMATCH,
           "a crypt string that matches nothing")
    expect([], b"", EXIT_USAGE, "no sub-command")
    help_text = run([tools.pigeon, "hash", "--help"])
    if help_text.returncode != EXIT_MATCH or b"Exit codes" not in help_text.stdout:
        raise TestFailure("pigeon hash --help does not document the exit codes")


def read_until(master: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TestFailure(f"waited for {wanted!r} on the terminal, saw {bytes(seen)!r}")
        ready, _, _ = select.select([master], [], [], remaining)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the program closed the terminal
                chunk = b""
            if not chunk:
                raise TestFailure(f"terminal closed before {wanted!r}; saw {bytes(seen)!r}")
            seen += chunk


def hash_on_terminal(tools: Tools, first: str, second: str) -> tuple[int, str, bytes]:
    """Runs `pigeon hash -s SHA256-CRYPT` on a pseudo-terminal that is its controlling terminal,
    types the two entries after their prompts, and returns (exit code, stdout, terminal output)."""
    master, slave = os.openpty()

    def become_terminal_owner() -> None:  # runs in the child, after setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([tools.pigeon, "hash", "-s", "SHA256-CRYPT"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=become_terminal_owner)
    os.close(slave)
    seen = bytearray()
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        read_until(master, b"Password: ", seen, deadline)
        os.write(master, first.encode() + b"\n")
        read_until(master, b"Retype password: ", seen, deadline)
        os.write(master, second.encode() + b"\n")
        stdout, _ = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        # Whatever the program wrote to the terminal after the second prompt.
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return proc.returncode, stdout.decode().strip(), bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def check_terminal(tools: Tools) -> None:
    password = "typed on a terminal"
    code, stored, screen = hash_on_terminal(tools, password, password)
    if code != EXIT_MATCH or not stored.startswith("{SHA256-CRYPT}$5$"):
        raise TestFailure(f"terminal entry: exit {code}, printed {stored!r}")
    if password.encode() in screen:
        raise TestFailure(f"the password was echoed on the terminal: {screen!r}")
    if not tools.doveadm_verifies(stored, password):
        raise TestFailure(f"doveadm rejects the hash of a terminal entry: {stored}")
    code, stored, _ = hash_on_terminal(tools, password, password + "!")
    if code != EXIT_MISMATCH or stored:
        raise TestFailure(f"two different entries gave exit {code} and {stored!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pigeon", required=True, help="the pigeon command-line tool")
    parser.add_argument("--doveadm", default=shutil.which("doveadm") or "/usr/bin/doveadm")
    args = parser.parse_args()
    tools = Tools(args.pigeon, args.doveadm)
    checks = 0
    try:
        schemes = check_schemes_listed(tools)
        for scheme in schemes:
            for password in PASSWORDS:
                check_pigeon_to_doveadm(tools, scheme, password)
                check_doveadm_to_pigeon(tools, scheme, password)
                checks += 2
            print(f"ok {scheme}: {len(PASSWORDS)} passwords, both ways")
        for password in PASSWORDS:
            check_unsalted_identical(tools, password)
            checks += 1
        print("ok PLAIN and CRAM-MD5 are byte-identical to doveadm's")
        check_exit_codes(tools)
        print("ok exit codes")
        check_terminal(tools)
        print("ok terminal entry without echo")
    except (TestFailure, subprocess.TimeoutExpired, OSError) as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    print(f"doveadm_pw_test: all {checks} interop checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
