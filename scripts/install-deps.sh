#!/usr/bin/env bash
# Brings every Debian 12 package that Pigeon's build and test suite need.
# Idempotent: when everything is present it only asks dpkg and exits (well under a second).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang clang-format clang-tidy
  libclang-rt-14-dev   # libFuzzer and the sanitizer runtimes for clang 14
  git python3
  # libraries (shared/DESIGN.md: Debian's packages only)
  libexpected-dev libfmt-dev libspdlog-dev
  libgsasl-dev         # SCRAM-* (and their -PLUS variants) for SASL, server and client
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev       # the SQLite user database (src/auth/sqlite)
  # interop tests: Dovecot 2.3's pop3, run pre-authenticated on stdin (no daemon, no network),
  # is the reference for Maildir UIDLs and sizes (tests/interop/dovecot_uidl_test.py)
  dovecot-pop3d
  dovecot-core         # `doveadm pw`, the reference for password hashes (tests/interop/doveadm_pw_test.py)
  libargon2-dev        # ARGON2ID and ARGON2I password hashes (src/auth/password_scheme)
  libcli11-dev         # the `pigeon` command line (apps/pigeon)
  libasio-dev          # standalone Asio 1.22: pigeond's event loops and coroutines (src/net)
  libtomlplusplus-dev  # pigeond.toml (src/config)
  openssl curl         # certificates for the demo and tests; curl is a POP3 client under test
  fetchmail mpop getmail6   # real POP3 clients the tests run against pigeond (tests/interop)
  nlohmann-json3-dev    # JSON for OAuth bearer tokens: JWT headers, claims, JWK Sets (src/auth/jwt_validator)
  libcurl4-openssl-dev  # pigeon fetch's IMAP target: APPEND through libcurl (src/client/imap_sink)
  libgmime-3.0-dev      # pigeon ls / pigeon show: MIME and RFC 2047 (src/client/mail_reader)
  libseccomp-dev        # pigeond confines its system calls after start-up (src/server/sandbox)
  dovecot-imapd         # the IMAP server the IMAP target is tested against (tests/interop)
  postfix swaks         # Postfix in front of pigeond's LMTP and `pigeon deliver`; swaks sends over SMTP
                        # (tests/interop/postfix_e2e_test.py runs its own instance: no system service)
  dovecot-lmtpd         # Dovecot's LMTP, the peer of bench/lmtp_vs_dovecot.py
  valgrind              # memcheck over the client (scripts/valgrind-client)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# Postfix's postinst asks what kind of mail system to set up: "No configuration" writes no
# main.cf, so nothing is started and nothing binds port 25 (postfix.service has
# ConditionPathExists=/etc/postfix/main.cf); the tests run private instances with `postfix -c DIR`.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo_cmd[@]}" debconf-set-selections
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
