#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# soak.sh: a million APDUs through each card source, with the resident memory (VmRSS) and
# descriptor count of pcscd and of every daemon sampled as they go; fails when any of them
# grows after warm-up. Each pcscd is private (tests/pcscd-ns.sh) in its own mount and
# network namespace.
#
# Usage: bench/soak.sh BUILDDIR          (or: make soak; needs root)
#   Sources (SOAK_SOURCES, default "driver share vscard cycles usb"):
#   driver  a libcacard CAC card in the driver (NSS database from tools/vccid-mkdb),
#           apdu-bench in chunks of SOAK_EVERY APDUs; samples pcscd
#   share   the same card brought by vccid-share to vccid's VSCard listener; samples
#           pcscd and vccid-share
#   vscard  bench/vscard-card on the listener; samples pcscd and vscard-card
#   cycles  SOAK_CYCLES x (vscard-card connects, handshake, ReaderAdd, ATR,
#           SOAK_CYCLE_APDUS APDUs, close); samples pcscd every SOAK_CYCLES/20 cycles
#   usb     vccid-usb --usbip on 127.0.0.1 with the same card, bench/usbip-importer
#           (import, IccPowerOn, XfrBlock); samples vccid-usb
#   Verdict per process: the baseline is the first sample at or after SOAK_WARMUP_PCT
#   percent (default 10) of the run; the run fails when the last sample's VmRSS exceeds it
#   by more than SOAK_RSS_SLACK_KB (default 256) or its descriptor count exceeds it at all.
#
# Environment: SOAK_APDUS (default 1000000 per source), SOAK_EVERY (sample interval in
# APDUs, default 50000, at most 200000: apdu-bench's cap per run), SOAK_CYCLES (1000),
# SOAK_CYCLE_APDUS (100), SOAK_SERVER_CPU (0), SOAK_CLIENT_CPU (SOAK_SERVER_CPU),
# SOAK_SERVER_TIMEOUT (s any server may live, default 3600), SOAK_KEEP_TMP=1, PCSCD.
# Writes BUILDDIR/bench/soak-<UTC time>.txt (every sample and the verdicts).

# Functions run inside the namespaces through export -f, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$SRCDIR/bench/lib.sh"
bench_args "$@"

SOURCES=${SOAK_SOURCES:-driver share vscard cycles usb}
APDUS=${SOAK_APDUS:-1000000}
EVERY=${SOAK_EVERY:-50000}
CYCLES=${SOAK_CYCLES:-1000}
CYCLE_APDUS=${SOAK_CYCLE_APDUS:-100}
WARMUP_PCT=${SOAK_WARMUP_PCT:-10}
RSS_SLACK_KB=${SOAK_RSS_SLACK_KB:-256}
SERVER_CPU=${SOAK_SERVER_CPU:-0}
CLIENT_CPU=${SOAK_CLIENT_CPU:-$SERVER_CPU}
SERVER_TIMEOUT=${SOAK_SERVER_TIMEOUT:-3600}
CLIENT_TIMEOUT=$SERVER_TIMEOUT
VSCARD_PORT=35992
USBIP_PORT=35993
for n in APDUS EVERY CYCLES CYCLE_APDUS WARMUP_PCT RSS_SLACK_KB SERVER_CPU CLIENT_CPU SERVER_TIMEOUT; do
	case ${!n} in '' | *[!0-9]*) die "SOAK_$n must be a number, got '${!n}'" ;; esac
done
if [ "$EVERY" -lt 1 ] || [ "$EVERY" -gt 200000 ]; then die "SOAK_EVERY must be 1..200000"; fi
[ "$APDUS" -ge "$EVERY" ] || die "SOAK_APDUS must be at least SOAK_EVERY"
[ "$CYCLES" -ge 20 ] || die "SOAK_CYCLES must be at least 20"
for t in unshare taskset timeout mount ip; do
	command -v "$t" >/dev/null || die "$t not found"
done

# The programs of "make soak".
APDU_BENCH=$BUILDDIR/bench/apdu-bench
VSCARD_CARD=$BUILDDIR/bench/vscard-card
IMPORTER=$BUILDDIR/bench/usbip-importer
PCSC_WAIT=$BUILDDIR/tests/integration/pcsc-wait
VCCID_SHARE=$BUILDDIR/tools/vccid-share
VCCID_USB=$BUILDDIR/tools/vccid-usb
DRIVER=$BUILDDIR/ifdhandler/.libs/libvccid.so
for p in "$APDU_BENCH" "$VSCARD_CARD" "$IMPORTER" "$PCSC_WAIT" "$VCCID_SHARE" "$VCCID_USB"; do
	[ -x "$p" ] || die "$p is not built (make soak builds it)"
done
[ -f "$DRIVER" ] || die "no driver at $DRIVER"

OUTDIR=$BUILDDIR/bench
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
RESULTS=$OUTDIR/soak-$(date -u +%Y%m%dT%H%M%SZ).txt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vccid-soak.XXXXXX") || die "mktemp failed"
cleanup() {
	if [ "${SOAK_KEEP_TMP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$WORK/home"
export HOME=$WORK/home
# A private copy: a rebuild during the run cannot change the driver under pcscd.
cp "$DRIVER" "$WORK/libvccid.so" || die "cannot copy $DRIVER"
DRIVER=$WORK/libvccid.so

export APDU_BENCH VSCARD_CARD IMPORTER PCSC_WAIT VCCID_SHARE VCCID_USB PCSCD WORK RESULTS
export APDUS EVERY CYCLES CYCLE_APDUS SERVER_CPU CLIENT_CPU SERVER_TIMEOUT CLIENT_TIMEOUT
export VSCARD_PORT USBIP_PORT

record() { printf '%s\n' "$*" >>"$RESULTS"; }

# ---------------------------------------------------------------- helpers (in the namespace)

# card_child: the program card_start started (timeout's one child: taskset has exec'ed
# it), in CARD_CHILD, empty if it did not start.
card_child() {
	local i
	CARD_CHILD=
	for ((i = 0; i < 500 && ${#CARD_CHILD} == 0; i++)); do
		CARD_CHILD=$(cat "/proc/$CARD_PID/task/$CARD_PID/children" 2>/dev/null)
		CARD_CHILD=${CARD_CHILD%% *}
		[ -n "$CARD_CHILD" ] || sleep 0.01 # bounded: timeout forks its child at once
	done
}

# sample SOURCE N NAME=PID...: one line per process, "sample SOURCE n=N proc=NAME rss_kb= fds=".
sample() {
	local src=$1 n=$2 np name pid rss fds
	shift 2
	for np in "$@"; do
		name=${np%%=*} pid=${np#*=}
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ -n "$rss" ] || { echo "sample: process $name ($pid) has gone" >&2; return 1; }
		record "sample $src n=$n proc=$name rss_kb=$rss fds=$fds"
	done
}

# apdu_chunks SOURCE READER NAME=PID...: APDUS APDUs in runs of EVERY, a sample after each.
apdu_chunks() {
	local src=$1 reader=$2 done=0 t0 out
	shift 2
	t0=$(date +%s.%N)
	sample "$src" 0 "$@" || return 1
	while [ "$done" -lt "$APDUS" ]; do
		out=$(client "$APDU_BENCH" -n "$EVERY" -w 0 -r "$reader" | grep '^total ') || {
			echo "apdu-bench failed after $done APDUs" >&2
			return 1
		}
		done=$((done + EVERY))
		sample "$src" "$done" "$@" || return 1
	done
	record "run $src apdus=$done wall_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') last=[$out]"
}

# ---------------------------------------------------------------- sources (in the namespace)

body_driver() {
	apdu_chunks driver "vccid 00 00" "pcscd=$PCSCD_PID"
}

# body_card SOURCE NAME CMD...: a card client or daemon that brings a card to the
# listener, then APDUs through it; samples pcscd and it.
body_card() {
	local src=$1 name=$2 rc=0
	shift 2
	card_start "$name" "$@"
	card_child
	if "$PCSC_WAIT" -q -n 1 -c 1 -t 20000 -p "$CARD_PID"; then
		apdu_chunks "$src" "vccid 00 00" "pcscd=$PCSCD_PID" "$name=$CARD_CHILD" || rc=1
	else
		echo "$name did not bring a card" >&2
		rc=1
	fi
	card_stop "$CARD_PID"
	return "$rc"
}

# One connection per cycle: connect, handshake, ReaderAdd, ATR, APDUs, close; the next
# cycle starts once pcscd has seen the card go.
body_cycles() {
	local c every=$((CYCLES / 20)) t0 i
	t0=$(date +%s.%N)
	sample cycles 0 "pcscd=$PCSCD_PID" || return 1
	for ((c = 1; c <= CYCLES; c++)); do
		card_start vscard-card-cycles "$VSCARD_CARD" -p "$VSCARD_PORT" -n 1
		if ! "$PCSC_WAIT" -q -n 1 -c 1 -t 20000 -p "$CARD_PID"; then
			echo "cycle $c: vscard-card did not bring a card" >&2
			card_stop "$CARD_PID"
			return 1
		fi
		if ! client "$APDU_BENCH" -n "$CYCLE_APDUS" -w 0 -r "vccid 00 00" >/dev/null; then
			echo "cycle $c: apdu-bench failed" >&2
			card_stop "$CARD_PID"
			return 1
		fi
		card_stop "$CARD_PID"
		# Bounded poll (5 ms per try inside pcsc-wait's own call) for the removal.
		for ((i = 0; i < 2000; i++)); do
			"$PCSC_WAIT" -q -n 1 -c 1 -t 0 2>/dev/null || break
		done
		[ "$i" -lt 2000 ] || { echo "cycle $c: the card did not go" >&2; return 1; }
		if ((c % every == 0)); then
			sample cycles "$c" "pcscd=$PCSCD_PID" || return 1
		fi
	done
	record "run cycles apdus=$((CYCLES * CYCLE_APDUS)) cycles=$CYCLES wall_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
}

# vccid-usb on loopback and the importer (a coprocess); a sample at every progress line,
# the last one with the device still imported (the importer holds it until told).
body_usb() {
	local rc=0 line n result='' status imp
	ip link set lo up || return 1
	card_start vccid-usb "$VCCID_USB" --usbip "127.0.0.1:$USBIP_PORT" "$WORK/conf-usb/vccid.conf"
	card_child
	[ -n "$CARD_CHILD" ] || { echo "vccid-usb did not start" >&2; return 1; }
	sample usb 0 "vccid-usb=$CARD_CHILD" || rc=1
	coproc IMP { client "$IMPORTER" -W -p "$USBIP_PORT" -n "$APDUS" -e "$EVERY" -T 20000 \
		2>>"$WORK/usbip-importer.log"; }
	imp=$IMP_PID # bash unsets IMP_PID once the coprocess is reaped
	while IFS= read -r line <&"${IMP[0]}"; do
		case $line in
		progress\ n=*)
			n=${line#progress n=}
			# The last progress line comes with the result: sampled there.
			[ "$n" -lt "$APDUS" ] && { sample usb "$n" "vccid-usb=$CARD_CHILD" || rc=1; }
			;;
		n=*)
			result=$line
			sample usb "$APDUS" "vccid-usb=$CARD_CHILD" || rc=1
			echo >&"${IMP[1]}"
			;;
		esac
	done
	wait "$imp"
	status=$?
	if [ "$status" != 0 ] || [ -z "$result" ]; then
		echo "usbip-importer failed (exit $status): $(tail -n 3 "$WORK/usbip-importer.log")" >&2
		rc=1
	fi
	record "run usb apdus=$APDUS $result"
	card_stop "$CARD_PID"
	return "$rc"
}

for f in $(declare -F | awk '{print $3}'); do
	export -f "${f?}"
done

# ---------------------------------------------------------------- configuration

bash "$SRCDIR/tools/vccid-mkdb" -q -n 1 "$WORK/nssdb" >"$WORK/mkdb.log" 2>&1 ||
	{ cat "$WORK/mkdb.log" >&2; die "vccid-mkdb failed"; }
conf() { # DIR CARD(0/1) VSCARD(0/1)
	mkdir -p "$1/readers"
	{
		printf '[vccid]\nlog-level = error\nnss-database = sql:%s\n\n[reader:default]\nslots = 1\n' "$WORK/nssdb"
		[ "$2" = 1 ] && printf '\n[card:card1]\nslot = 0\ncertificates = card1-id;card1-sign;card1-enc\n'
		[ "$3" = 1 ] && printf '\n[vscard]\nlisten = 127.0.0.1:%s\ntimeout-ms = 10000\n' "$VSCARD_PORT"
	} >"$1/vccid.conf"
	printf 'FRIENDLYNAME "vccid"\nDEVICENAME %s\nLIBPATH %s\n' "$1/vccid.conf" "$DRIVER" \
		>"$1/readers/vccid"
}
conf "$WORK/conf-cacard" 1 0
conf "$WORK/conf-vscard" 0 1
conf "$WORK/conf-usb" 1 0

record "meta date=$(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) cpus=$(nproc) apdus=$APDUS every=$EVERY cycles=$CYCLES cycle_apdus=$CYCLE_APDUS warmup_pct=$WARMUP_PCT rss_slack_kb=$RSS_SLACK_KB server_cpu=$SERVER_CPU client_cpu=$CLIENT_CPU loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,) nice=$(nice)"

# ---------------------------------------------------------------- runs

FAILED=0
has() { case " $SOURCES " in *" $1 "*) return 0 ;; esac; return 1; }
export SESSION_NET=1
run() { # NAME CONFDIR NCARDS BODY [ARG]...
	say "soak: $1 ($(date -u +%H:%M:%S))"
	if ! session "$1" "$2" 1 "${@:3}"; then
		say "FAILED: $1 (pcscd log: $WORK/pcscd-$1.log)"
		record "error $1"
		FAILED=1
	fi
}
has driver && run driver "$WORK/conf-cacard/readers" 1 body_driver
has share && run share "$WORK/conf-vscard/readers" 0 body_card share vccid-share \
	"$VCCID_SHARE" --no-reconnect -d "sql:$WORK/nssdb" -c card1-id,card1-sign,card1-enc \
	-n share "127.0.0.1:$VSCARD_PORT"
has vscard && run vscard "$WORK/conf-vscard/readers" 0 body_card vscard vscard-card \
	"$VSCARD_CARD" -p "$VSCARD_PORT" -n 1
has cycles && run cycles "$WORK/conf-vscard/readers" 0 body_cycles
if has usb; then
	say "soak: usb ($(date -u +%H:%M:%S))"
	# Its own network namespace: the port cannot clash with anything on the machine.
	if ! unshare --net bash -c body_usb; then
		say "FAILED: usb (log: $WORK/vccid-usb.log)"
		record "error usb"
		FAILED=1
	fi
fi

# ---------------------------------------------------------------- verdict

# Per source and process: the first sample at or after WARMUP_PCT of the run is the
# baseline, the last sample is the end.
verdict=$(awk -v pct="$WARMUP_PCT" -v slack="$RSS_SLACK_KB" '
	function val(s, k,   i, a) { i = index(s, " " k "="); if (!i) return ""; split(substr(s, i + length(k) + 2), a, " "); return a[1] }
	$1 == "sample" {
		key = $2 " " val($0, "proc"); n = val($0, "n") + 0
		if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
		N[key, ++cnt[key]] = n; R[key, cnt[key]] = val($0, "rss_kb"); F[key, cnt[key]] = val($0, "fds")
	}
	END {
		bad = 0
		for (k = 1; k <= nk; k++) {
			key = keys[k]; c = cnt[key]; last = N[key, c]; w = last * pct / 100
			for (b = 1; b < c && N[key, b] < w; b++) ;
			grow = (R[key, c] - R[key, b] > slack || F[key, c] > F[key, b]) ? "GROWS" : "ok"
			if (grow != "ok") bad = 1
			split(key, kk, " ")
			printf "verdict %s proc=%s samples=%d warmup_n=%d rss_kb_warm=%d rss_kb_end=%d rss_kb_first=%d fds_warm=%d fds_end=%d fds_first=%d result=%s\n",
				kk[1], kk[2], c, N[key, b], R[key, b], R[key, c], R[key, 1], F[key, b], F[key, c], F[key, 1], grow
		}
		exit bad
	}' "$RESULTS")
vrc=$?
[ -n "$verdict" ] && printf '%s\n' "$verdict" >>"$RESULTS"
[ "$vrc" -eq 0 ] || FAILED=1

{
	echo
	echo "vccid soak ($(date -u +%Y-%m-%dT%H:%M:%SZ), $APDUS APDUs per source, sample every $EVERY; warm-up $WARMUP_PCT%, RSS slack $RSS_SLACK_KB KiB, descriptors: none)"
	echo
	echo "samples (source n process rss_kb fds):"
	awk '$1 == "sample" { printf "  %-7s %9s %-12s %8s %4s\n", $2, substr($3, 3), substr($4, 6), substr($5, 8), substr($6, 5) }' "$RESULTS"
	echo
	grep '^run ' "$RESULTS" | sed 's/^/  /'
	echo
	printf '| %-7s | %-12s | %-9s | %-9s | %-9s | %-9s | %-4s | %-4s | %-6s |\n' source process "warm-up n" "RSS first" "RSS warm" "RSS end" "fd w" "fd e" result
	printf '%s\n' "$verdict" | awk 'NF { for (i = 2; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
		printf "| %-7s | %-12s | %9s | %9s | %9s | %9s | %4s | %4s | %-6s |\n", $2, v["proc"], v["warmup_n"], v["rss_kb_first"], v["rss_kb_warm"], v["rss_kb_end"], v["fds_warm"], v["fds_end"], v["result"] }'
	grep '^error ' "$RESULTS" | sed 's/^/note: /'
	echo
	echo "results: $RESULTS"
} | tee "$OUTDIR/soak-latest-summary.txt"
if [ "$FAILED" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
exit $FAILED
