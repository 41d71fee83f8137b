#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# share.sh: vccid-share built with ThreadSanitizer against a real pcscd with the plain vccid
# driver and its VSCard listener (tests/pcscd-ns.sh, private mount, pid and network
# namespaces): connect, APDUs from PC/SC, status, remove/insert from stdin and signals
# (also while APDUs run), the listener going away with pcscd and vccid-share reconnecting
# to the next one, SIGTERM. Fails when TSan reports anything or vccid-share does not exit 0.
#
# Usage: tests/tsan/share.sh BUILDDIR TSAN_BUILDDIR      (needs root)
#   BUILDDIR: a plain build (the driver, tests/integration/pcsc-wait, bench/apdu-bench if
#   built, else opensc-tool sends the APDUs). TSAN_BUILDDIR: configured with
#   ../configure CC=gcc CFLAGS="-fsanitize=thread -g -O1" LDFLAGS=-fsanitize=thread
#   and "make tools/vccid-share" done.
# Environment: TSAN_SHARE_APDUS (APDUs per burst, default 2000), TSAN_SHARE_TOGGLES
# (remove/insert pairs while APDUs run, default 20), TSAN_SHARE_KEEP=1 keeps the work dir.

# Functions run inside the namespace through export -f, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
prog=${0##*/}
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 2; }

[ $# -eq 2 ] || die "usage: $prog BUILDDIR TSAN_BUILDDIR"
[ "$(id -u)" -eq 0 ] || die "needs root for unshare --mount --net"
BUILDDIR=$(cd "$1" 2>/dev/null && pwd) || die "no build directory $1"
TSAN_BUILDDIR=$(cd "$2" 2>/dev/null && pwd) || die "no build directory $2"
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C PATH

DRIVER=$BUILDDIR/ifdhandler/.libs/libvccid.so
PCSC_WAIT=$BUILDDIR/tests/integration/pcsc-wait
APDU_BENCH=$BUILDDIR/bench/apdu-bench
SHARE=$TSAN_BUILDDIR/tools/vccid-share
APDUS=${TSAN_SHARE_APDUS:-2000}
TOGGLES=${TSAN_SHARE_TOGGLES:-20}
PORT=35994
[ -f "$DRIVER" ] || die "no driver at $DRIVER"
[ -x "$PCSC_WAIT" ] || die "$PCSC_WAIT is not built (make tests/integration/pcsc-wait)"
[ -x "$SHARE" ] || die "$SHARE is not built"
nm "$SHARE" 2>/dev/null | grep -q __tsan_init || die "$SHARE is not built with -fsanitize=thread"
if [ ! -x "$APDU_BENCH" ]; then
	command -v opensc-tool >/dev/null || die "neither $APDU_BENCH nor opensc-tool"
	APDU_BENCH=
fi
PCSCD=${PCSCD:-$(command -v pcscd)} || die "pcscd not found"
# shellcheck source=../pcscd-ns.sh
. "$SRCDIR/tests/pcscd-ns.sh"
pcscd_ns_detect || die "cannot create a mount namespace with a tmpfs"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vccid-tsan.XXXXXX") || die "mktemp failed"
trap '[ "${TSAN_SHARE_KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"' EXIT
export HOME=$WORK
bash "$SRCDIR/tools/vccid-mkdb" -q -n 1 "$WORK/db" >"$WORK/mkdb.log" 2>&1 ||
	{ cat "$WORK/mkdb.log" >&2; die "vccid-mkdb failed"; }
mkdir -p "$WORK/conf"
printf '[vccid]\nlog-level = error\n\n[reader:default]\nslots = 1\n\n[vscard]\nlisten = 127.0.0.1:%s\ntimeout-ms = 10000\n' \
	"$PORT" >"$WORK/vccid.conf"
printf 'FRIENDLYNAME "vccid"\nDEVICENAME %s\nLIBPATH %s\n' "$WORK/vccid.conf" "$DRIVER" >"$WORK/conf/vccid"
export WORK PCSC_WAIT APDU_BENCH SHARE APDUS TOGGLES PORT PCSCD

step() { printf '# %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }
# apdus N: N SELECTs of the CAC applet on "vccid 00 00".
apdus() {
	local i args=()
	if [ -n "$APDU_BENCH" ]; then
		timeout -k 5 60 "$APDU_BENCH" -n "$1" -w 0 -r "vccid 00 00" >>"$WORK/apdu.log" 2>&1
	else
		for ((i = 0; i < $1 && i < 200; i++)); do args+=(-s 00A404000007A0000000790100); done
		timeout -k 5 60 opensc-tool -r 0 "${args[@]}" >>"$WORK/apdu.log" 2>&1
	fi
}
pcscd_up() { # NCARDS
	PCSCD_NS_WAIT=$PCSC_WAIT PCSCD_NS_WAIT_MS=20000 PCSCD_NS_LIFETIME=120 PCSCD_NS_QUIET=1 \
		pcscd_ns_start "$WORK/conf" "$WORK/pcscd.log" 1 "$1" -- "$PCSCD" -f -c "$WORK/conf"
}
card_in() { "$PCSC_WAIT" -q -n 1 -c 1 -t 20000 -p "$SHARE_PID"; }
card_out() { # a bounded poll: each try is one pcsc-wait call
	local i
	for ((i = 0; i < 2000; i++)); do "$PCSC_WAIT" -q -n 1 -c 1 -t 0 2>/dev/null || return 0; done
	return 1
}

# Inside the namespace.
body() {
	local i rc child
	ip link set lo up || fail "loopback"
	pcscd_up 0 || fail "pcscd does not start"
	mkfifo "$WORK/cmd" && exec 3<>"$WORK/cmd"
	step "vccid-share (TSan) connects"
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 history_size=4" \
		timeout -k 5 120 "$SHARE" -d "sql:$WORK/db" -c card1-id,card1-sign,card1-enc -n tsan \
		--retry-max 1 "127.0.0.1:$PORT" <"$WORK/cmd" >"$WORK/share.out" 2>"$WORK/share.err" &
	SHARE_PID=$!
	card_in || fail "vccid-share did not bring its card"
	step "$APDUS APDUs"
	apdus "$APDUS" || fail "APDUs"
	step "status, remove, insert"
	echo status >&3
	echo remove >&3
	card_out || fail "the card did not go on remove"
	echo insert >&3
	card_in || fail "the card did not come back on insert"
	apdus "$APDUS" || fail "APDUs after insert"
	step "$TOGGLES remove/insert pairs while APDUs run (stdin and SIGUSR1/SIGUSR2 in turn)"
	child=$(cat "/proc/$SHARE_PID/task/$SHARE_PID/children")
	child=${child%% *}
	apdus $((APDUS * 5)) &
	for ((i = 0; i < TOGGLES; i++)); do
		if ((i % 2 == 0)); then echo remove >&3; else kill -USR1 "$child"; fi
		sleep 0.02 # spacing the commands, not a readiness wait
		if ((i % 2 == 0)); then echo insert >&3; else kill -USR2 "$child"; fi
		sleep 0.02 # as above
	done
	wait $! # the APDU run may fail when a removal hits it: only TSan's verdict counts here
	card_in || fail "the card is not back after the toggles"
	step "the listener goes away (pcscd stops) and comes back; vccid-share reconnects"
	pcscd_ns_stop
	pcscd_up 0 || fail "pcscd does not start again"
	card_in || fail "vccid-share did not reconnect"
	apdus "$APDUS" || fail "APDUs after the reconnect"
	step "SIGTERM"
	kill -TERM "$SHARE_PID"
	wait "$SHARE_PID"
	rc=$?
	exec 3>&-
	pcscd_ns_stop
	echo "share_exit=$rc"
}
export -f step fail apdus pcscd_up card_in card_out body pcscd_ns_start pcscd_ns_stop

# shellcheck disable=SC2086
$PCSCD_NS_UNSHARE --net bash -c body >"$WORK/run.log" 2>&1
cat "$WORK/run.log"
reports=$(grep -c 'WARNING: ThreadSanitizer' "$WORK/share.err")
rc=$(sed -n 's/^share_exit=//p' "$WORK/run.log")
echo "tsan_reports=$reports vccid-share exit=${rc:-none}"
if [ "$reports" -gt 0 ] || [ "${rc:-x}" != 0 ]; then
	sed 's/^/# share| /' "$WORK/share.err" | head -n 200
	echo "FAIL"
	exit 1
fi
echo "PASS"
