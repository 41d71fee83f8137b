#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# demo.sh: a guided tour of vccid: two emulated CAC cards in a private pcscd, seen by OpenSC,
# removed and inserted with vccid-ctl, and a third card shared from "another machine" with
# vccid-share over VSCard. Needs root; the host's own pcscd is not touched.
#
# Usage: demo/demo.sh [--keep] [--log]
#   VCCID_BUILDDIR  build directory (default: the source tree, an in-tree build)
#   --keep          keep the work directory (NSS database, configs, pcscd log)
#   --log           print pcscd's log at the end

set -u

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=${VCCID_BUILDDIR:-$SRCDIR}
DRIVER=$BUILDDIR/ifdhandler/.libs/libvccid.so
CTL=$BUILDDIR/tools/vccid-ctl
SHARE=$BUILDDIR/tools/vccid-share
MKDB=$SRCDIR/tools/vccid-mkdb
PIN=77777777
PCSCD=$(PATH=$PATH:/usr/sbin:/sbin command -v pcscd || echo /usr/sbin/pcscd)
export LC_ALL=C
# The private pcscd, as the integration tests and benchmarks run it.
# shellcheck source=../tests/pcscd-ns.sh
. "$SRCDIR/tests/pcscd-ns.sh"

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' N=$'\e[0m'
else
	B= D= N=
fi

say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
note() { printf '%s    %s%s\n' "$D" "$*" "$N"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# show CMD...: print the command like a shell would, then run it (bounded).
show() {
	local a q= rc
	for a in "$@"; do
		a=${a#"$BUILDDIR"/}
		a=${a#"$SRCDIR"/}
		if [[ $a =~ ^[][A-Za-z0-9_./:=@%+,-]+$ ]]; then
			q+=" $a"
		else
			q+=" '${a//\'/\'\\\'\'}'"
		fi
	done
	printf '%s$%s%s\n' "$B" "$q" "$N"
	timeout 60 "$@" 2>&1 | sed 's/^/    /'
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || note "(exit status $rc)"
	return "$rc"
}

# ------------------------------------------------------------ inside the namespace
if [ "${1-}" = --inside ]; then
	WORK=$2
	say "Starting a private pcscd (its socket is in this namespace's own /run/pcscd)"
	show cat "$WORK/reader.conf.d/vccid.conf"
	# Ready when pcscd lists the three readers (slots) and the cards of alice and bob.
	PCSCD_NS_WAIT=$PCSC_WAIT PCSCD_NS_LIFETIME=600 PCSCD_NS_QUIET=1 PCSCD_NS_LOG_TAIL=30 \
		pcscd_ns_start "$WORK/reader.conf.d" "$WORK/pcscd.log" 3 2 -- \
		"$PCSCD" -f -d -c "$WORK/reader.conf.d" || die "pcscd did not come up with two cards"
	pcscd_pid=$PCSCD_NS_CHILD
	note "pcscd (pid $pcscd_pid) is up; its log: $WORK/pcscd.log"

	say "PC/SC readers: one per slot, named \"vccid 00 SS\""
	show opensc-tool -l

	say "The ATR of the card in slot 0 (libcacard's CAC ATR)"
	show opensc-tool -r "vccid 00 00" -a

	say "What OpenSC makes of each card"
	show opensc-tool -r "vccid 00 00" -n
	show opensc-tool -r "vccid 00 01" -n

	say "The PKCS#11 view: two tokens with their own serial numbers"
	show pkcs11-tool -L

	say "Objects on alice's card: 3 certificates and their keys"
	show pkcs11-tool --slot-description "vccid 00 00" -O

	say "Signing with alice's card (PIN $PIN = the NSS database password)"
	printf 'hello from vccid\n' >"$WORK/hello.txt"
	show pkcs11-tool --slot-description "vccid 00 00" --login --pin "$PIN" --sign \
		-m SHA256-RSA-PKCS -i "$WORK/hello.txt" -o "$WORK/hello.sig"
	note "signature: $(stat -c %s "$WORK/hello.sig" 2>/dev/null || echo 0) bytes in $WORK/hello.sig"

	if [ -x "$CTL" ]; then
		say "vccid-ctl: the slots and their cards"
		show "$CTL" list

		say "Pulling bob's card out"
		show "$CTL" remove bob
		show "$CTL" list
		show opensc-tool -l

		say "Putting it back"
		show "$CTL" insert bob
		show "$CTL" list
		show opensc-tool -r "vccid 00 01" -n
	else
		note "($CTL is not built: skipping the remove/insert round)"
	fi

	if [ -x "$SHARE" ]; then
		say "A remote card: carol shares hers with vccid-share (VSCard, as QEMU's ccid-card-passthru speaks it)"
		note "(her own NSS database, as on another machine; here over a unix socket)"
		"$SHARE" -d "sql:$WORK/caroldb" -c carol-id,carol-sign,carol-enc -n carols-laptop \
			--no-reconnect "unix:$WORK/vscard.sock" </dev/null >"$WORK/share.log" 2>&1 &
		share_pid=$!
		# Wait until her card is the third one pcscd sees.
		"$PCSC_WAIT" -q -n 3 -c 3 -t 10000 -p "$share_pid" ||
			note "(carol's card did not arrive; see $WORK/share.log)"
		show "$CTL" list
		show opensc-tool -r "vccid 00 02" -n
		show pkcs11-tool -L
		say "carol stops sharing (SIGTERM): the card leaves the slot"
		kill -TERM $share_pid
		wait $share_pid 2>/dev/null
		show "$CTL" list
	fi

	say "Stopping the private pcscd"
	PCSCD_NS_STOP_MS=5000 pcscd_ns_stop
	note "done"
	exit 0
fi

# ------------------------------------------------------------ outside
keep=0 showlog=0
for a in "$@"; do
	case $a in
	--keep) keep=1 ;;
	--log) showlog=1 ;;
	-h | --help) sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$a' (see --help)" ;;
	esac
done

[ "$(id -u)" -eq 0 ] || die "run me as root: I start a private pcscd in a mount namespace"
for t in unshare certutil opensc-tool pkcs11-tool; do
	command -v $t >/dev/null 2>&1 || die "$t is not installed"
done
[ -x "$PCSCD" ] || die "pcscd is not installed"
[ -f "$DRIVER" ] || die "the driver is not built: $DRIVER (set VCCID_BUILDDIR to your build directory)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vccid-demo.XXXXXX") || die "mktemp failed"
chmod 0755 "$WORK"
# pcsc-wait asks pcscd (SCardListReaders) until the readers and cards are there.
PCSC_WAIT=$(pcscd_ns_helper pcsc-wait "$BUILDDIR" "$SRCDIR" "$WORK/bin") ||
	die "cannot build tests/integration/pcsc-wait.c"
export PCSC_WAIT
cleanup() {
	if [ $showlog -eq 1 ] && [ -f "$WORK/pcscd.log" ]; then
		say "pcscd's log"
		sed 's/^/    /' "$WORK/pcscd.log"
	fi
	if [ $keep -eq 1 ]; then
		printf '\nKept %s\n' "$WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

say "vccid demo: driver $DRIVER"

say "Creating an NSS database with a test CA and two cards, alice and bob"
note "(each card: 3 RSA-2048 certificates NAME-id, NAME-sign, NAME-enc, keys in the database)"
show "$MKDB" -q -p "$PIN" -c alice -c bob "$WORK/nssdb" || die "vccid-mkdb failed"
show certutil -L -d "sql:$WORK/nssdb"
"$MKDB" -q -p "$PIN" -c carol "$WORK/caroldb" >/dev/null || die "vccid-mkdb failed"

say "Writing vccid.conf: one reader with 3 slots, alice in slot 0, bob in slot 1, slot 2 for a remote card"
cat >"$WORK/vccid.conf" <<EOF
[vccid]
log-level = info
nss-database = sql:$WORK/nssdb

[reader:default]
slots = 3

# Remote cards (VSCard clients) take the slots that have no configured card.
[vscard]
listen = none
unix-socket = $WORK/vscard.sock

[card:alice]
slot = 0
certificates = alice-id;alice-sign;alice-enc

[card:bob]
slot = 1
certificates = bob-id;bob-sign;bob-enc
EOF
show cat "$WORK/vccid.conf"

mkdir -p "$WORK/reader.conf.d"
cat >"$WORK/reader.conf.d/vccid.conf" <<EOF
FRIENDLYNAME "vccid"
DEVICENAME $WORK/vccid.conf:default
LIBPATH $DRIVER
EOF

# Everything that talks to pcscd runs in a new mount namespace (and pid namespace, so
# nothing outlives the demo).
pcscd_ns_detect || die "cannot create a mount namespace with a tmpfs (unshare --mount failed)"
# shellcheck disable=SC2086
$PCSCD_NS_UNSHARE bash "$SRCDIR/demo/demo.sh" --inside "$WORK"
