#!/usr/bin/env python3
"""Interop test: Pigeon's client-side SASL mechanisms against Dovecot 2.3's SASL.

Starts a POP3-only Dovecot (`dovecot -F`) on a free 127.0.0.1 port with a passwd-file of one
user stored as {PLAIN} (every mechanism can use it) and one stored as {SCRAM-SHA-256} made by
`doveadm pw` (only PLAIN, LOGIN and SCRAM-SHA-256 can), then logs in with the sasl_probe tool
(tests/interop/sasl_probe.cpp, Pigeon's mechanisms on a socket) by PLAIN, LOGIN, CRAM-MD5,
SCRAM-SHA-1, SCRAM-SHA-256 and APOP, each with the right password (must succeed, and STAT
after it) and a wrong one (must fail). Dovecot 2.3 has no -PLUS mechanisms; channel binding is
tested between Pigeon's own server and client.

Only the standard library; Dovecot is stopped by its process id at the end; everything it
writes is in one temporary directory.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from interop_lib import free_port, stop_process, wait_for_greeting

TIMEOUT_S = 30


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", required=True)
    args = parser.parse_args()
    probe = os.path.abspath(args.probe)
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"

    work = Path(tempfile.mkdtemp(prefix="pigeon-dovecot-sasl-"))
    os.chmod(work, 0o755)
    owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    proc = None
    failures = []
    try:
        scram = subprocess.run([doveadm, "pw", "-s", "SCRAM-SHA-256", "-p", "hunter2"], capture_output=True,
                               text=True, timeout=TIMEOUT_S, check=True).stdout.strip()
        (work / "users").write_text(f"alice:{{PLAIN}}secret::::\nbob:{scram}::::\n")
        for user in ("alice", "bob"):
            for sub in ("new", "cur", "tmp"):
                (work / "mail" / user / sub).mkdir(parents=True)
        for path in [work / "mail", *(work / "mail").rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        port = free_port()
        conf = work / "dovecot.conf"
        conf.write_text(f"""base_dir = {work}/run
state_dir = {work}/state
protocols = pop3
listen = 127.0.0.1
log_path = {work}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{work}/mail/%u
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
    address = 127.0.0.1
    port = {port}
  }}
}}
""")
        proc = subprocess.Popen([dovecot, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not wait_for_greeting(port, proc, 20):
            print("FAIL Dovecot did not start:", (work / "dovecot.log").read_text() if (work / "dovecot.log").exists()
                  else proc.stderr.read().decode() if proc.poll() is not None else "(no greeting)")
            return 1

        def login(mechanism: str, user: str, password: str) -> subprocess.CompletedProcess:
            return subprocess.run([probe, str(port), mechanism, user, password], capture_output=True, text=True,
                                  timeout=TIMEOUT_S)

        cases = [(m, "alice", "secret") for m in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "APOP")]
        cases += [(m, "bob", "hunter2") for m in ("PLAIN", "LOGIN", "SCRAM-SHA-256")]
        for mechanism, user, password in cases:
            good = login(mechanism, user, password)
            bad = login(mechanism, user, password + "x")
            ok = good.returncode == 0 and bad.returncode == 1
            print(f"{'ok  ' if ok else 'FAIL'} {mechanism} as {user}: right password rc={good.returncode}, "
                  f"wrong password rc={bad.returncode}")
            if not ok:
                failures.append(mechanism)
                print(good.stdout + good.stderr + bad.stdout + bad.stderr)
    finally:
        if proc is not None:
            stop_process(proc, TIMEOUT_S)
        if failures and (work / "dovecot.log").exists():
            print((work / "dovecot.log").read_text()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("all passed" if not failures else f"failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
