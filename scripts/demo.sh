#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine, installs what is missing, builds
# pigeond and pigeon (release preset), makes a demo in build/demo (a user "demo" with password
# "demo" in a SQLite user database, a Maildir with sample messages, a self-signed certificate, a
# configuration) and runs pigeond in the foreground on loopback: port 1110 (plain, with STLS) and
# port 1995 (implicit TLS). Ctrl-C stops it. Run it again at any time: the demo mail is put back.
#
#   scripts/demo.sh            build, set up and run
#   scripts/demo.sh --setup    build and set up only (used by the test suite)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target pigeond pigeon

demo="$root/build/demo"
bin="$root/build/release/apps"
mkdir -p "$demo"

# A self-signed certificate for localhost (RSA-2048, valid a year).
if [ ! -s "$demo/cert.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
  chmod 600 "$demo/key.pem"
fi

# The user database: demo / demo, hashed like `doveadm pw` would (SHA512-CRYPT).
rm -f "$demo/users.db"
printf 'demo\n' | "$bin/pigeon/pigeon" user add --db "$demo/users.db" --stdin demo

# Sample mail of realistic shape, delivered the Maildir way (tmp/ then new/).
maildir="$demo/mail/demo"
rm -rf "$maildir"
mkdir -p "$maildir"/{tmp,new,cur}
n=0
deliver() {
  n=$((n + 1))
  local name
  name="$(date +%s).M${n}P$$.demo"
  cat > "$maildir/tmp/$name"
  mv "$maildir/tmp/$name" "$maildir/new/$name"
}
deliver <<'MAIL'
Return-Path: <postmaster@example.org>
Delivered-To: demo@localhost
Received: from mx.example.org (mx.example.org [192.0.2.25])
	by localhost (Postfix) with ESMTPS id 4F1A2B3C4D
	for <demo@localhost>; Sat, 28 Nov 2026 09:12:03 +0000 (UTC)
From: Postmaster <postmaster@example.org>
To: Demo User <demo@localhost>
Subject: Welcome to Pigeon
Date: Sat, 28 Nov 2026 09:12:01 +0000
Message-ID: <welcome.20261128091201@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello,

this mailbox is served by pigeond over POP3. Try RETR, TOP, UIDL and DELE.
A line that starts with a dot follows, to show dot-stuffing on the wire:
.this line starts with a dot
Ünïcödé text travels as 8-bit bytes.

-- 
The Pigeon team
MAIL
deliver <<'MAIL'
Return-Path: <alice@example.net>
From: Alice Example <alice@example.net>
To: demo@localhost
Subject: =?UTF-8?Q?Caf=C3=A9_on_Friday=3F?=
Date: Fri, 27 Nov 2026 17:40:22 +0100
Message-ID: <c0ffee.1701@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1_alt"

--b1_alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 on Friday at five?

Alice
--b1_alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Caf=C3=A9 on <b>Friday</b> at five?</p><p>Alice</p></body></html>
--b1_alt--
MAIL
deliver <<MAIL
From: Build Robot <ci@example.com>
To: demo@localhost
Subject: Nightly report with attachment
Date: Sat, 28 Nov 2026 03:00:00 +0000
Message-ID: <nightly.20261128@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b2_mixed"

--b2_mixed
Content-Type: text/plain; charset=us-ascii

The nightly build passed. The log is attached.

--b2_mixed
Content-Type: application/octet-stream; name="build.log"
Content-Disposition: attachment; filename="build.log"
Content-Transfer-Encoding: base64

$(head -c 24000 /dev/urandom | base64 -w 76)
--b2_mixed--
MAIL
deliver <<'MAIL'
From: Bob <bob@example.org>
To: Demo User <demo@localhost>
Cc: Alice Example <alice@example.net>
Subject: Re: Re: Plans for the release
Date: Sat, 28 Nov 2026 10:05:44 +0000
Message-ID: <plans.3@example.org>
In-Reply-To: <plans.2@example.net>
References: <plans.1@example.org> <plans.2@example.net>
Content-Type: text/plain; charset=us-ascii

Agreed, Monday it is.

On Fri, 27 Nov 2026, Alice Example wrote:
> Could we move the release to Monday?
>
> On Thu, 26 Nov 2026, Bob wrote:
>> The release is planned for Friday.
MAIL

cat > "$demo/pigeond.toml" <<EOF_CONF
# The demo's configuration; docs/configuration.md explains every key.
[[listen]]
address = "127.0.0.1:1110"
tls = "starttls"

[[listen]]
address = "127.0.0.1:1995"
tls = "implicit"

[tls]
certificate = "cert.pem"
key = "key.pem"

[storage]
driver = "maildir"
location = "mail/%u"

[passdb]
driver = "sqlite"
path = "users.db"

[auth]
mechanisms = ["PLAIN", "LOGIN"]   # SCRAM needs users stored with SCRAM-SHA-256 hashes
plaintext = "loopback"

[lmtp]                            # mail in, as Postfix hands it over
listen = ["127.0.0.1:1024"]

[log]
level = "info"
destination = "stderr"
EOF_CONF

"$bin/pigeond/pigeond" --check-config --config "$demo/pigeond.toml"
if [ "${1:-}" = "--setup" ]; then
  exit 0
fi

cat <<EOF_HELP

Pigeon demo: user "demo", password "demo", $n messages in $maildir
Try it from another terminal:
  curl -k --ssl-reqd pop3://127.0.0.1:1110/ -u demo:demo          # LIST, after STLS
  curl -k pop3s://127.0.0.1:1995/1 -u demo:demo                   # RETR 1 over implicit TLS
  python3 -c "import poplib,ssl; p=poplib.POP3_SSL('127.0.0.1',1995,context=ssl._create_unverified_context()); p.user('demo'); p.pass_('demo'); print(p.stat()); print(p.uidl()); p.quit()"
  openssl s_client -quiet -connect 127.0.0.1:1995                 # type the commands yourself
  $bin/pigeon/pigeon fetch --host 127.0.0.1 --port 1995 --user demo --ca-file $demo/cert.pem \\
      --password-command 'echo demo' --deliver-to maildir:$demo/fetched --state-file $demo/fetch.state
                                                                  # download them all into a Maildir
  swaks --server 127.0.0.1:1024 --protocol LMTP --from me@example.org --to demo@localhost
                                                                  # deliver a new one over LMTP
Ctrl-C stops the server.

EOF_HELP
exec "$bin/pigeond/pigeond" --config "$demo/pigeond.toml"
