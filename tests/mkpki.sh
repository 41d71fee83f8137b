#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Makes throw-away x509 credentials for the TLS tests in DIR (certtool), in QEMU's folder
# layout: never committed, made anew by each test run.
#   DIR/server/        ca-cert.pem server-cert.pem server-key.pem  (CN=localhost, DNS localhost,
#                      IP 127.0.0.1, signed by CA "vccid test CA")
#   DIR/client/        ca-cert.pem client-cert.pem client-key.pem  (CN=alice,O=vccid test)
#   DIR/client-bob/    the same CA, CN=bob,O=vccid test
#   DIR/client-noclient/ ca-cert.pem only (a client without a certificate)
#   DIR/client-otherca/  client set whose certificate the second CA signed (ca-cert.pem is the
#                      first CA's, so the client still trusts the server)
#   DIR/client-expired/  CN=expired, valid 2020-01-01 .. 2021-01-01
#   DIR/client-notyet/   CN=notyet, valid from 2099-01-01
#   DIR/server-otherca/  a server set signed by the second CA (clients must refuse it)
#   DIR/ca/ and DIR/ca2/ the CAs (ca-cert.pem, ca-key.pem)
# Usage: tests/mkpki.sh DIR   (DIR is created; existing files are replaced)
set -eu
dir=${1:?usage: mkpki.sh DIR}
command -v certtool >/dev/null || { echo "mkpki.sh: certtool (gnutls-bin) is missing" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077

key() { certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$1" 2>/dev/null; }

# ca NAME CN
ca() {
	mkdir -p "$1"
	key "$1/ca-key.pem"
	cat >"$1/ca.tmpl" <<T
cn = "$2"
ca
cert_signing_key
crl_signing_key
expiration_days = 30
T
	certtool --generate-self-signed --load-privkey "$1/ca-key.pem" --template "$1/ca.tmpl" \
		--outfile "$1/ca-cert.pem" 2>/dev/null
}

# leaf CA DIR ROLE(server|client) TEMPLATE-LINES
leaf() {
	cadir=$1 out=$2 role=$3
	shift 3
	mkdir -p "$out"
	key "$out/$role-key.pem"
	printf '%s\n' "$@" >"$out/$role.tmpl"
	certtool --generate-certificate --load-privkey "$out/$role-key.pem" \
		--load-ca-certificate "$cadir/ca-cert.pem" --load-ca-privkey "$cadir/ca-key.pem" \
		--template "$out/$role.tmpl" --outfile "$out/$role-cert.pem" 2>/dev/null
	rm -f "$out/$role.tmpl"
}

ca ca "vccid test CA"
ca ca2 "vccid other CA"
srv='cn = "localhost"'
leaf ca server server "$srv" 'dns_name = "localhost"' 'ip_address = "127.0.0.1"' \
	tls_www_server signing_key encryption_key 'expiration_days = 30'
leaf ca2 server-otherca server "$srv" 'dns_name = "localhost"' 'ip_address = "127.0.0.1"' \
	tls_www_server signing_key encryption_key 'expiration_days = 30'
leaf ca client client 'cn = "alice"' 'organization = "vccid test"' tls_www_client signing_key \
	'expiration_days = 30'
leaf ca client-bob client 'cn = "bob"' 'organization = "vccid test"' tls_www_client signing_key \
	'expiration_days = 30'
leaf ca2 client-otherca client 'cn = "mallory"' 'organization = "vccid test"' tls_www_client \
	signing_key 'expiration_days = 30'
leaf ca client-expired client 'cn = "expired"' tls_www_client signing_key \
	'activation_date = "2020-01-01 00:00:00"' 'expiration_date = "2021-01-01 00:00:00"'
leaf ca client-notyet client 'cn = "notyet"' tls_www_client signing_key \
	'activation_date = "2099-01-01 00:00:00"' 'expiration_date = "2100-01-01 00:00:00"'
mkdir -p client-noclient
for d in server client client-bob client-noclient client-otherca client-expired client-notyet; do
	cp ca/ca-cert.pem "$d/ca-cert.pem"
done
cp ca2/ca-cert.pem server-otherca/ca-cert.pem
rm -f ca/ca.tmpl ca2/ca.tmpl
