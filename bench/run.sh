#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh: runs vccid's benchmarks (floor vs vccid APDU latency, card events, pkcs11-tool -L,
# pcscd memory, vpcd comparison), each against a private pcscd in its own mount namespace
# (tests/pcscd-ns.sh, shared with the integration tests and the demo).
#
# Usage: bench/run.sh BUILDDIR
#   Needs root (unshare --mount), pcscd, taskset, timeout; hyperfine, opensc-tool,
#   pkcs11-tool, certutil and vsmartcard-vpcd for the parts that use them (a part whose
#   tool is missing is recorded as skipped). Writes BUILDDIR/bench/results-<UTC time>.txt
#   (key=value lines; results-latest.txt points at it) and prints a summary table.
#
# Environment:
#   BENCH_PARTS          parts to run (default: "floor vccid events idle pkcs11 memory vpcd vscard
#                        tls")
#   BENCH_SERVER_CPU     CPU for pcscd and its threads (default 0)
#   BENCH_CLIENT_CPU     CPU for the clients (default: BENCH_SERVER_CPU)
#   BENCH_COUNT          timed APDUs per run (default 5000), BENCH_WARMUP (default 500)
#   BENCH_REPEAT         floor/vccid APDU runs, alternating (default 3)
#   BENCH_VS_REPEAT      VSCard listener/vpcd runs, alternating (default 5: vpcd's median
#                        moves by up to 10% from one pcscd to the next)
#   BENCH_EVENT_ROUNDS   remove+insert rounds (default 200)
#   BENCH_HYPERFINE_RUNS pkcs11-tool -L runs (default 20)
#   BENCH_NOQA_COUNT     APDUs through vpcd without QUICKACK, 44 ms each (default 50)
#   BENCH_EXT_COUNT      64 KiB extended APDUs per run in the vscard part (default 200)
#   BENCH_VSCARD_PORT    port of vccid's VSCard listener (default 35990; private loopback;
#                        its TLS endpoint in the tls part on the next port)
#   BENCH_TLS_HANDSHAKES TLS handshakes timed in the tls part (default 200)
#   BENCH_SERVER_TIMEOUT seconds any one pcscd may live (default 600)
#   VCCID_DRIVER         driver (default BUILDDIR/ifdhandler/.libs/libvccid.so)
#   VCCID_MKDB           NSS database maker (default SRCDIR/tools/vccid-mkdb)
#   PCSCD                pcscd binary; CC for building the helpers when BUILDDIR has none
#   BENCH_KEEP_TMP=1     keep the work directory (configs, NSS database, pcscd logs)
#   BENCH_SAMPLES_DIR    also write every APDU run's raw samples there (apdu-bench -s)

# Functions run inside the namespaces through export -f, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -u
set -o pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$SRCDIR/bench/lib.sh"
bench_args "$@"

PARTS=${BENCH_PARTS:-floor vccid events idle pkcs11 memory vpcd vscard tls}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-$SERVER_CPU}
COUNT=${BENCH_COUNT:-5000}
WARMUP=${BENCH_WARMUP:-500}
REPEAT=${BENCH_REPEAT:-3}
VS_REPEAT=${BENCH_VS_REPEAT:-5}
EVENT_ROUNDS=${BENCH_EVENT_ROUNDS:-200}
HF_RUNS=${BENCH_HYPERFINE_RUNS:-20}
NOQA_COUNT=${BENCH_NOQA_COUNT:-50}
EXT_COUNT=${BENCH_EXT_COUNT:-200}
TLS_HANDSHAKES=${BENCH_TLS_HANDSHAKES:-200}
VSCARD_PORT=${BENCH_VSCARD_PORT:-35990}
SERVER_TIMEOUT=${BENCH_SERVER_TIMEOUT:-600}
CLIENT_TIMEOUT=300
DRIVER=${VCCID_DRIVER:-$BUILDDIR/ifdhandler/.libs/libvccid.so}
MKDB=${VCCID_MKDB:-$SRCDIR/tools/vccid-mkdb}
VPCD_DRIVER=$(pkg-config --variable=usbdropdir libpcsclite 2>/dev/null || echo /usr/lib/pcsc/drivers)/serial/libifdvpcd.so
for n in COUNT WARMUP REPEAT VS_REPEAT EVENT_ROUNDS HF_RUNS NOQA_COUNT EXT_COUNT TLS_HANDSHAKES VSCARD_PORT SERVER_TIMEOUT SERVER_CPU CLIENT_CPU; do
	case ${!n} in '' | *[!0-9]*) die "$n must be a number, got '${!n}'" ;; esac
done
for t in unshare taskset timeout mount; do
	command -v "$t" >/dev/null || die "$t not found"
done

OUTDIR=$BUILDDIR/bench
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
RESULTS=$OUTDIR/results-$(date -u +%Y%m%dT%H%M%SZ).txt
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vccid-bench.XXXXXX") || die "mktemp failed"
cleanup() {
	if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then
		say "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# OpenSC's cache and other per-user state stay in the work directory.
mkdir -p "$WORK/home"
export HOME=$WORK/home XDG_CACHE_HOME=$WORK/home/.cache

# ---------------------------------------------------------------- helpers

# Built programs from BUILDDIR, or compiled here with cc + pkg-config.
find_or_build() { # VAR NAME SOURCE... (a NAME ending in .so builds a module)
	local var=$1 name=$2 p cflags libs
	shift 2
	for p in "$BUILDDIR/bench/$name" "$BUILDDIR/bench/.libs/$name" "$BUILDDIR/tests/integration/$name"; do
		if [ -x "$p" ] || { [ "${name%.so}" != "$name" ] && [ -f "$p" ]; }; then
			printf -v "$var" '%s' "$p"
			return 0
		fi
	done
	p=$WORK/bin/$name
	mkdir -p "$WORK/bin"
	if ! cflags=$(pkg-config --cflags libpcsclite) || ! libs=$(pkg-config --libs libpcsclite); then
		die "pkg-config libpcsclite failed"
	fi
	if [ "${name%.so}" != "$name" ]; then
		# shellcheck disable=SC2086
		"${CC:-cc}" -std=gnu99 -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden $cflags \
			-o "$p" "$@" || die "cannot build $name"
	else
		# shellcheck disable=SC2086
		"${CC:-cc}" -std=gnu99 -O2 -Wall -Wextra $cflags -o "$p" "$@" $libs ||
			die "cannot build $name"
	fi
	printf -v "$var" '%s' "$p"
}

B=$SRCDIR/bench
find_or_build APDU_BENCH apdu-bench "$B/apdu-bench.c" "$B/stats.c"
find_or_build EVENT_BENCH event-bench "$B/event-bench.c" "$B/stats.c" "$B/watch.c"
find_or_build VPCD_CARD vpcd-card "$B/vpcd-card.c" "$B/stats.c" "$B/tcp.c"
find_or_build FLOOR_DRIVER floor-driver.so "$B/floor-driver.c"
PCSC_WAIT=$(pcscd_ns_helper pcsc-wait "$BUILDDIR" "$SRCDIR" "$WORK/bin") || die "cannot build pcsc-wait"
# The VSCard clients use vccid's own codec.
VS=(-I"$SRCDIR" "$SRCDIR/backends/vscard/proto.c" "$B/vscard-wire.c" "$B/stats.c" "$B/tcp.c" -lpthread)
# vscard-card also speaks TLS (net/tls.c over GnuTLS).
find_or_build VSCARD_CARD vscard-card "$B/vscard-card.c" "$SRCDIR/net/tls.c" \
	"$SRCDIR/corelib/file.c" "$SRCDIR/corelib/clock.c" "${VS[@]}" -lgnutls
find_or_build VSCARD_EVENT vscard-event-bench "$B/vscard-event-bench.c" "$B/watch.c" "${VS[@]}"
VCCID_SHARE=${VCCID_SHARE:-$BUILDDIR/tools/vccid-share}

export APDU_BENCH EVENT_BENCH VPCD_CARD PCSC_WAIT PCSCD RESULTS WORK SERVER_CPU CLIENT_CPU
export VSCARD_CARD VSCARD_EVENT VCCID_SHARE VSCARD_PORT EXT_COUNT TLS_HANDSHAKES VS_REPEAT
export COUNT WARMUP EVENT_ROUNDS HF_RUNS NOQA_COUNT SERVER_TIMEOUT CLIENT_TIMEOUT

record() { printf '%s\n' "$*" >>"$RESULTS"; }
# field LINE KEY: the value of KEY=value in a result line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1" | head -n 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
FAILED=0
fail() { say "FAILED: $*"; record "error $*"; FAILED=1; }

# apdu_run TAG ARGS...: runs apdu-bench, records every line as "TAG line".
apdu_run() {
	local tag=$1 out rc samples=()
	shift
	[ -n "${BENCH_SAMPLES_DIR-}" ] && samples=(-s "$BENCH_SAMPLES_DIR/${tag//[^A-Za-z0-9.=_-]/_}.txt")
	out=$(client "$APDU_BENCH" -n "$COUNT" -w "$WARMUP" "${samples[@]}" "$@")
	rc=$?
	[ -n "$out" ] && while IFS= read -r l; do record "$tag $l"; done <<<"$out"
	return "$rc"
}

# memory TAG: pcscd's VmRSS and VmHWM.
memory() {
	local tag=$1 rss hwm
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PCSCD_PID/status")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PCSCD_PID/status")
	record "$tag vmrss_kb=$rss vmhwm_kb=$hwm"
}

# ---------------------------------------------------------------- bodies (in the namespace)

body_floor() {
	local run=$1
	apdu_run "apdu.floor run=$run" -r "floor 00 00" || return 1
	if [ "$run" = 1 ]; then
		memory "mem.floor phase=idle readers=4"
		apdu_run "conc.floor4" -r "floor 00 00" -r "floor 01 00" -r "floor 02 00" -r "floor 03 00"
	fi
}

body_vccid_apdu() {
	apdu_run "apdu.vccid run=$1" -r "vccid 00 00"
}

body_events() {
	local out rc
	out=$(client "$EVENT_BENCH" -r "vccid 00 00" -n "$EVENT_ROUNDS")
	rc=$?
	[ -n "$out" ] && record "event.vccid $out"
	return "$rc"
}

# pcscd's CPU use while nothing happens, before any client and after one has left
# (pcscd then asks the driver to stop its polling wait, to re-arm it with a new timeout).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$PCSCD_PID/stat"; }
body_idle() {
	local a b
	a=$(cpu_ms)
	sleep 2 # a fixed measuring window, not a wait for readiness
	b=$(cpu_ms)
	record "idle.vccid phase=before-any-client window_s=2 cpu_ms_per_s=$(((b - a) / 2))"
	client "$APDU_BENCH" -n 1 -w 0 -r "vccid 00 00" >/dev/null || return 1
	a=$(cpu_ms)
	sleep 2 # as above
	b=$(cpu_ms)
	record "idle.vccid phase=after-a-client-left window_s=2 cpu_ms_per_s=$(((b - a) / 2))"
}

body_pkcs11() {
	local csv=$WORK/hyperfine-pkcs11.csv rc line
	# The first listing (OpenSC reads the card) is timed on its own, then hyperfine.
	line=$( { TIMEFORMAT=%R; time client pkcs11-tool -L >"$WORK/pkcs11-L.txt" 2>&1; } 2>&1)
	record "pkcs11.vccid.first wall_s=$line"
	client hyperfine -N --warmup 3 --runs "$HF_RUNS" --export-csv "$csv" "pkcs11-tool -L" \
		>"$WORK/hyperfine-pkcs11.txt" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		# command,mean,stddev,median,user,system,min,max (seconds)
		line=$(awk -F, 'NR == 2 {printf "runs='"$HF_RUNS"' mean_ms=%.2f stddev_ms=%.2f median_ms=%.2f min_ms=%.2f max_ms=%.2f", $2*1000, $3*1000, $4*1000, $7*1000, $8*1000}' "$csv")
		record "pkcs11.vccid $line slots=$(grep -c '^Slot' "$WORK/pkcs11-L.txt")"
	fi
	return "$rc"
}

body_memory() {
	local i rc=0
	memory "mem.vccid4 phase=idle cards=4"
	for i in 0 1 2 3; do
		client opensc-tool -r "$i" -n >>"$WORK/opensc-tool-n.txt" 2>&1 || rc=1
	done
	memory "mem.vccid4 phase=after-opensc-tool cards=4"
	apdu_run "conc.vccid4" -r "vccid 00 00" -r "vccid 00 01" -r "vccid 00 02" -r "vccid 00 03" || rc=1
	memory "mem.vccid4 phase=after-concurrent cards=4"
	return "$rc"
}

body_vpcd() {
	local mode=$1 count=$COUNT warm=$WARMUP cpid rc opt=
	if [ "$mode" = noquickack ]; then
		opt=--no-quickack count=$NOQA_COUNT warm=2
	fi
	# shellcheck disable=SC2086
	timeout -k 5 "$SERVER_TIMEOUT" taskset -c "$CLIENT_CPU" "$VPCD_CARD" $opt \
		2>>"$WORK/vpcd-card-$mode.log" &
	cpid=$!
	if "$PCSC_WAIT" -q -n 1 -c 1 -t 20000 -p "$cpid"; then
		COUNT=$count WARMUP=$warm apdu_run "apdu.vpcd mode=$mode" -r "Virtual PCD 00 00"
		rc=$?
	else
		echo "vpcd-card did not bring a card" >&2
		rc=1
	fi
	kill -TERM "$cpid" 2>/dev/null
	wait "$cpid"
	return "$rc"
}


# ---- vscard: vccid's VSCard listener against vpcd, both with a C card client on loopback

# body_vscard RUN MODE: vscard-card with four readers in the four empty slots of "vccid 00",
# one connection per reader (MODE per; as vpcd, which has one socket per slot) or all four
# on one connection (MODE one).
body_vscard() {
	local run=$1 mode=$2 opt=() rc=0
	local r2=(-r "vccid 00 00" -r "vccid 00 01") r4=(-r "vccid 00 00" -r "vccid 00 01" -r "vccid 00 02" -r "vccid 00 03")
	[ "$mode" = per ] && opt=(--conn-per-reader)
	card_start "vscard-card-$mode" "$VSCARD_CARD" -p "$VSCARD_PORT" -n 4 "${opt[@]}"
	if ! "$PCSC_WAIT" -q -n 4 -c 4 -t 20000 -p "$CARD_PID"; then
		echo "vscard-card did not bring four cards" >&2
		card_stop "$CARD_PID"
		return 1
	fi
	if [ "$mode" = per ]; then
		apdu_run "apdu.vscard run=$run" -r "vccid 00 00" || rc=1
		apdu_run "conc.vscard2 run=$run" "${r2[@]}" || rc=1
		apdu_run "conc.vscard2x2 run=$run" -t 4 "${r2[@]}" || rc=1
	else
		apdu_run "apdu.vscard1of4 run=$run" -r "vccid 00 00" || rc=1
	fi
	apdu_run "conc.vscard4 mode=$mode run=$run" "${r4[@]}" || rc=1
	card_stop "$CARD_PID"
	return "$rc"
}

# body_vpcd2 RUN: Debian's vpcd has two slots per reader.conf entry (VPCDSLOTS=2, ports
# 35963 and 35964) and keeps its sockets in a global array indexed by slot, so a second
# entry would take over the first one's slots: two readers is as many as it serves.
body_vpcd2() {
	local run=$1 c1 c2 rc=0
	card_start vpcd-card-a "$VPCD_CARD" -p 35963
	c1=$CARD_PID
	card_start vpcd-card-b "$VPCD_CARD" -p 35964
	c2=$CARD_PID
	if ! "$PCSC_WAIT" -q -n 2 -c 2 -t 20000 -p "$c1"; then
		echo "vpcd-card did not bring two cards" >&2
		card_stop "$c1" "$c2"
		return 1
	fi
	apdu_run "apdu.vpcdq run=$run" -r "Virtual PCD 00 00" || rc=1
	apdu_run "conc.vpcd2 run=$run" -r "Virtual PCD 00 00" -r "Virtual PCD 00 01" || rc=1
	apdu_run "conc.vpcd2x2 run=$run" -t 4 -r "Virtual PCD 00 00" -r "Virtual PCD 00 01" || rc=1
	card_stop "$c1" "$c2"
	return "$rc"
}

body_vscard_events() {
	local out rc
	out=$(client "$VSCARD_EVENT" -p "$VSCARD_PORT" -r "vccid 00 00" -n "$EVENT_ROUNDS")
	rc=$?
	[ -n "$out" ] && record "event.vscard $out"
	return "$rc"
}

# 64 KiB both ways with vscard-card --extended: an extended case-4 APDU (Lc 65535, Le
# 65536) and an extended case-2 READ BINARY (Le 65535).
body_vscard_ext() {
	local rc=0
	card_start vscard-card-ext "$VSCARD_CARD" -p "$VSCARD_PORT" -n 1 --extended
	if "$PCSC_WAIT" -q -n 4 -c 1 -t 20000 -p "$CARD_PID"; then
		COUNT=$EXT_COUNT WARMUP=5 apdu_run "apdu.vscard64k" -x 65535 -r "vccid 00 00" || rc=1
		COUNT=$EXT_COUNT WARMUP=5 apdu_run "apdu.vscard64kdown" \
			-a 00B0000000FFFF -r "vccid 00 00" || rc=1
	else
		echo "vscard-card --extended did not bring a card" >&2
		rc=1
	fi
	card_stop "$CARD_PID"
	return "$rc"
}

# vccid-share (libcacard CAC card from card1's certificates): the CAC SELECT, and the same
# 64 KiB command as above (libcacard answers it with a status word).
body_vscard_share() {
	local rc=0
	card_start vccid-share "$VCCID_SHARE" --no-reconnect -d "sql:$WORK/nssdb" \
		-c card1-id,card1-sign,card1-enc -n share "127.0.0.1:$VSCARD_PORT"
	if "$PCSC_WAIT" -q -n 4 -c 1 -t 20000 -p "$CARD_PID"; then
		apdu_run "apdu.share" -r "vccid 00 00" || rc=1
		COUNT=$EXT_COUNT WARMUP=5 apdu_run "apdu.share64k" -x 65535 -r "vccid 00 00" || rc=1
	else
		echo "vccid-share did not bring a card" >&2
		rc=1
	fi
	card_stop "$CARD_PID"
	return "$rc"
}

# ---- tls: the same VSCard listener in plaintext and over TLS (client certificates), same
# pcscd, alternating; then TLS handshakes one after another.

# tls_card_run RUN MODE: vscard-card with one reader over MODE (plain or tls), APDUs timed.
tls_card_run() {
	local run=$1 mode=$2 opt=(-p "$VSCARD_PORT")
	[ "$mode" = tls ] && opt=(-p $((VSCARD_PORT + 1)) --tls "$WORK/pki/client" --tls-name localhost)
	card_start "vscard-card-$mode" "$VSCARD_CARD" -n 1 "${opt[@]}"
	if ! "$PCSC_WAIT" -q -n 4 -c 1 -t 20000 -p "$CARD_PID"; then
		echo "vscard-card ($mode) did not bring a card" >&2
		card_stop "$CARD_PID"
		return 1
	fi
	apdu_run "apdu.vstls mode=$mode run=$run" -r "vccid 00 00"
	local rc=$?
	card_stop "$CARD_PID"
	return "$rc"
}

body_tls() {
	local r out rc=0
	for ((r = 1; r <= VS_REPEAT; r++)); do
		if ((r % 2)); then
			tls_card_run "$r" plain && tls_card_run "$r" tls || rc=1
		else
			tls_card_run "$r" tls && tls_card_run "$r" plain || rc=1
		fi
	done
	out=$(client "$VSCARD_CARD" -p $((VSCARD_PORT + 1)) --tls "$WORK/pki/client" \
		--tls-name localhost --handshakes "$TLS_HANDSHAKES")
	[ -n "$out" ] && record "tls.handshake $out" || rc=1
	return "$rc"
}

for f in $(declare -F | awk '{print $3}'); do
	export -f "${f?}"
done

# ---------------------------------------------------------------- configuration

record "meta date=$(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) cpus=$(nproc)" \
	"pcscd=$("$PCSCD" --version 2>/dev/null | sed -n 's/.*pcsc-lite version \([0-9.]*[0-9]\).*/\1/p' | head -n 1)" \
	"server_cpu=$SERVER_CPU client_cpu=$CLIENT_CPU count=$COUNT warmup=$WARMUP repeat=$REPEAT vs_repeat=$VS_REPEAT"
record "meta loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,) other_pcscd=$(pgrep -c -x pcscd)"
record "meta driver=$DRIVER floor=$FLOOR_DRIVER apdu_bench=$APDU_BENCH"

# The floor: four reader.conf entries for one stateless driver. pcscd refuses two entries
# with the same name and device, and wants the device to exist.
mkdir -p "$WORK/conf-floor" "$WORK/floor-dev"
for i in 0 1 2 3; do
	: >"$WORK/floor-dev/$i"
	cat >"$WORK/conf-floor/floor$i" <<EOF
FRIENDLYNAME "floor"
DEVICENAME $WORK/floor-dev/$i
LIBPATH $FLOOR_DRIVER
EOF
done

# vccid: NSS database with four cards, one config with one card (the shipped example)
# and one with four.
have_vccid=0
if [ -f "$DRIVER" ]; then
	have_vccid=1
	# A private copy: a rebuild during the run cannot mix two drivers into one result.
	cp "$DRIVER" "$WORK/libvccid.so" || die "cannot copy $DRIVER"
	record "meta driver_sha256=$(sha256sum "$WORK/libvccid.so" | cut -c1-16) driver_mtime=$(date -u -r "$DRIVER" +%Y-%m-%dT%H:%M:%SZ)"
	DRIVER=$WORK/libvccid.so
	if [ -f "$MKDB" ]; then
		bash "$MKDB" -q -n 4 "$WORK/nssdb" >"$WORK/mkdb.log" 2>&1 ||
			{ cat "$WORK/mkdb.log" >&2; die "vccid-mkdb failed"; }
	else
		command -v certutil >/dev/null || die "neither $MKDB nor certutil found"
		mkdir -p "$WORK/nssdb"
		certutil -N -d "sql:$WORK/nssdb" --empty-password || die "certutil -N failed"
		head -c 2048 /dev/urandom >"$WORK/noise"
		serial=1
		for c in card1 card2 card3 card4; do
			for r in id sign enc; do
				certutil -S -d "sql:$WORK/nssdb" -n "$c-$r" -s "CN=$c $r,O=vccid bench" -x \
					-t "CT,C,C" -k rsa -g 2048 -m $((serial++)) -z "$WORK/noise" \
					>/dev/null 2>&1 || die "certutil -S $c-$r failed"
			done
		done
	fi
	# DIR/vccid.conf and DIR/readers/vccid (pcscd reads every file of the -c directory).
	vccid_conf() { # DIR NCARDS
		local dir=$1 n=$2 i
		mkdir -p "$dir/readers"
		{
			printf '[vccid]\nlog-level = error\nnss-database = sql:%s\n\n' "$WORK/nssdb"
			printf '[reader:default]\nslots = 4\n'
			for ((i = 1; i <= n; i++)); do
				printf '\n[card:card%d]\nslot = %d\ncertificates = card%d-id;card%d-sign;card%d-enc\n' \
					"$i" $((i - 1)) "$i" "$i" "$i"
			done
		} >"$dir/vccid.conf"
		printf 'FRIENDLYNAME "vccid"\nDEVICENAME %s\nLIBPATH %s\n' "$dir/vccid.conf" "$DRIVER" \
			>"$dir/readers/vccid"
	}
	vccid_conf "$WORK/conf-vccid1" 1
	vccid_conf "$WORK/conf-vccid4" 4
	# Four empty slots that take remote readers from the VSCard listener.
	mkdir -p "$WORK/conf-vscard/readers"
	printf '[vccid]\nlog-level = error\n\n[reader:default]\nslots = 4\n\n[vscard]\nlisten = 127.0.0.1:%s\ntimeout-ms = 10000\n' \
		"$VSCARD_PORT" >"$WORK/conf-vscard/vccid.conf"
	printf 'FRIENDLYNAME "vccid"\nDEVICENAME %s\nLIBPATH %s\n' "$WORK/conf-vscard/vccid.conf" \
		"$DRIVER" >"$WORK/conf-vscard/readers/vccid"
	# The same listener with a TLS endpoint beside the plaintext one (tests/mkpki.sh).
	if has_part tls && command -v certtool >/dev/null &&
		sh "$SRCDIR/tests/mkpki.sh" "$WORK/pki" >"$WORK/mkpki.log" 2>&1; then
		mkdir -p "$WORK/conf-vscardtls/readers"
		printf '[vccid]\nlog-level = error\n\n[reader:default]\nslots = 4\n\n[vscard]\nlisten = 127.0.0.1:%s\ntls-listen = 127.0.0.1:%s\ntls-dir = %s\ntimeout-ms = 10000\n' \
			"$VSCARD_PORT" $((VSCARD_PORT + 1)) "$WORK/pki/server" >"$WORK/conf-vscardtls/vccid.conf"
		printf 'FRIENDLYNAME "vccid"\nDEVICENAME %s\nLIBPATH %s\n' \
			"$WORK/conf-vscardtls/vccid.conf" "$DRIVER" >"$WORK/conf-vscardtls/readers/vccid"
	fi
else
	say "no driver at $DRIVER: vccid parts skipped"
	record "skipped vccid reason=no-driver"
fi

# ---------------------------------------------------------------- measurements

say "pinning: pcscd on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; results: $RESULTS"
for ((r = 1; r <= REPEAT; r++)); do
	if has_part floor; then
		say "floor APDU latency, run $r/$REPEAT"
		session floor-$r "$WORK/conf-floor" 4 4 body_floor "$r" || fail "floor run $r"
	fi
	if has_part vccid && [ $have_vccid = 1 ]; then
		say "vccid APDU latency, run $r/$REPEAT"
		session vccid-$r "$WORK/conf-vccid1/readers" 4 1 body_vccid_apdu "$r" ||
			fail "vccid run $r"
	fi
done
if has_part events && [ $have_vccid = 1 ]; then
	say "insertion/removal latency ($EVENT_ROUNDS rounds)"
	session events "$WORK/conf-vccid1/readers" 4 1 body_events || fail "events"
fi
if has_part idle && [ $have_vccid = 1 ]; then
	say "pcscd idle CPU use"
	session idle "$WORK/conf-vccid1/readers" 4 1 body_idle || fail "idle"
fi
if has_part pkcs11 && [ $have_vccid = 1 ]; then
	if command -v hyperfine >/dev/null && command -v pkcs11-tool >/dev/null; then
		say "pkcs11-tool -L ($HF_RUNS runs)"
		session pkcs11 "$WORK/conf-vccid1/readers" 4 1 body_pkcs11 || fail "pkcs11"
	else
		record "skipped pkcs11 reason=no-hyperfine-or-pkcs11-tool"
	fi
fi
if has_part memory && [ $have_vccid = 1 ]; then
	if command -v opensc-tool >/dev/null; then
		say "pcscd memory with four cards, then four readers concurrently"
		session memory "$WORK/conf-vccid4/readers" 4 4 body_memory || fail "memory"
	else
		record "skipped memory reason=no-opensc-tool"
	fi
fi
if has_part vpcd; then
	if [ ! -f "$VPCD_DRIVER" ]; then
		record "skipped vpcd reason=no-$VPCD_DRIVER"
	elif ! command -v ip >/dev/null; then
		record "skipped vpcd reason=no-ip-command-for-a-private-loopback"
	else
		mkdir -p "$WORK/conf-vpcd"
		printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH %s\nCHANNELID 0x8C7B\n' \
			"$VPCD_DRIVER" >"$WORK/conf-vpcd/vpcd"
		say "vpcd + C card client with TCP_QUICKACK"
		export SESSION_NET=1
		session vpcd "$WORK/conf-vpcd" 1 0 body_vpcd quickack || fail "vpcd quickack"
		say "vpcd + C card client without TCP_QUICKACK ($NOQA_COUNT APDUs)"
		session vpcd-noqa "$WORK/conf-vpcd" 1 0 body_vpcd noquickack || fail "vpcd noquickack"
		unset SESSION_NET
	fi
fi

if has_part vscard && [ $have_vccid = 1 ]; then
	if [ ! -f "$VPCD_DRIVER" ] || ! command -v ip >/dev/null; then
		record "skipped vscard reason=no-vpcd-or-ip"
	else
		mkdir -p "$WORK/conf-vpcd"
		printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x8C7B\nLIBPATH %s\nCHANNELID 0x8C7B\n' \
			"$VPCD_DRIVER" >"$WORK/conf-vpcd/vpcd"
		export SESSION_NET=1
		for ((r = 1; r <= VS_REPEAT; r++)); do
			say "VSCard listener vs vpcd, run $r/$VS_REPEAT"
			session vscard-$r "$WORK/conf-vscard/readers" 4 0 body_vscard "$r" one ||
				fail "vscard run $r"
			session vpcd2-$r "$WORK/conf-vpcd" 2 0 body_vpcd2 "$r" || fail "vpcd2 run $r"
			session vscard-per-$r "$WORK/conf-vscard/readers" 4 0 body_vscard "$r" per ||
				fail "vscard per-connection run $r"
		done
		say "VSCard insertion/removal latency ($EVENT_ROUNDS rounds)"
		session vscard-events "$WORK/conf-vscard/readers" 4 0 body_vscard_events ||
			fail "vscard events"
		say "VSCard extended APDUs (64 KiB) and vccid-share"
		session vscard-ext "$WORK/conf-vscard/readers" 4 0 body_vscard_ext || fail "vscard ext"
		if [ -x "$VCCID_SHARE" ]; then
			session vscard-share "$WORK/conf-vscard/readers" 4 0 body_vscard_share ||
				fail "vscard vccid-share"
		else
			record "skipped vscard.share reason=no-$VCCID_SHARE"
		fi
		unset SESSION_NET
	fi
fi

if has_part tls && [ $have_vccid = 1 ]; then
	if [ ! -d "$WORK/conf-vscardtls" ] || ! command -v ip >/dev/null; then
		record "skipped tls reason=no-certtool-or-ip"
	else
		say "VSCard over TLS vs plaintext, same listener, $VS_REPEAT alternating runs each"
		SESSION_NET=1 session vscard-tls "$WORK/conf-vscardtls/readers" 4 0 body_tls ||
			fail "vscard tls"
	fi
fi

# ---------------------------------------------------------------- summary

# median of the numbers on stdin
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) exit; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
totals() { grep "^$1 " "$RESULTS" | grep ' total '; } # PREFIX (regex)
runs_field() { totals "$1" | while IFS= read -r l; do field "$l" "$2"; done | median; }
# the runs' values, comma-separated, in run order
runs_list() { totals "$1" | while IFS= read -r l; do field "$l" "$2"; done | paste -sd, -; }

fm=$(runs_field 'apdu\.floor' median_us)
fp=$(runs_field 'apdu\.floor' p99_us)
vm=$(runs_field 'apdu\.vccid' median_us)
vp=$(runs_field 'apdu\.vccid' p99_us)
if [ -n "$fm" ] && [ -n "$vm" ]; then
	ratio=$(awk -v a="$vm" -v b="$fm" -v c="$vp" -v d="$fp" 'BEGIN {
		printf "median=%.3f p99=%.3f target_median=1.10 pass=%s", a / b, c / d, (a / b <= 1.10) ? "yes" : "no" }')
	record "ratio.vccid_floor $ratio"
fi
# vccid's listener against vpcd (both with a C card client): target <= 0.80 at median and p99.
vs_ratio() { # KEY VSCARD_PREFIX VPCD_PREFIX
	local a b c d
	a=$(runs_field "$2" median_us)
	b=$(runs_field "$3" median_us)
	c=$(runs_field "$2" p99_us)
	d=$(runs_field "$3" p99_us)
	[ -n "$a" ] && [ -n "$b" ] && record "ratio.$1 vscard_median_us=$a vpcd_median_us=$b vscard_p99_us=$c vpcd_p99_us=$d vscard_runs=$(runs_list "$2" median_us) vpcd_runs=$(runs_list "$3" median_us) $(awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN {
		printf "median=%.3f p99=%.3f target=0.80 pass=%s", a / b, c / d, (a / b <= 0.80 && c / d <= 0.80) ? "yes" : "no" }')"
}
vs_ratio vscard_vpcd_1 'apdu\.vscard run=[0-9]*' 'apdu\.vpcdq run=[0-9]*'
vs_ratio vscard_vpcd_2 'conc\.vscard2 run=[0-9]*' 'conc\.vpcd2 run=[0-9]*'
vs_ratio vscard_vpcd_2x2 'conc\.vscard2x2 run=[0-9]*' 'conc\.vpcd2x2 run=[0-9]*'
vs_ratio vscard4_vpcd_2x2 'conc\.vscard4 mode=per run=[0-9]*' 'conc\.vpcd2x2 run=[0-9]*'
# TLS against plaintext through the same listener: target <= 1.30 at the median.
tm=$(runs_field 'apdu\.vstls mode=tls run=[0-9]*' median_us)
pm=$(runs_field 'apdu\.vstls mode=plain run=[0-9]*' median_us)
if [ -n "$tm" ] && [ -n "$pm" ]; then
	# Each run's TLS median over the plaintext one of the same run (they alternate), and
	# the median of those: less moved by load that drifts between runs.
	pr=$(paste -d' ' <(runs_list 'apdu\.vstls mode=tls run=[0-9]*' median_us | tr , '\n') \
		<(runs_list 'apdu\.vstls mode=plain run=[0-9]*' median_us | tr , '\n') |
		awk 'NF == 2 && $2 > 0 { print $1 / $2 }' | median)
	record "ratio.tls_plain pair_median=${pr:-?} tls_median_us=$tm plain_median_us=$pm tls_p99_us=$(runs_field 'apdu\.vstls mode=tls run=[0-9]*' p99_us) plain_p99_us=$(runs_field 'apdu\.vstls mode=plain run=[0-9]*' p99_us) tls_runs=$(runs_list 'apdu\.vstls mode=tls run=[0-9]*' median_us) plain_runs=$(runs_list 'apdu\.vstls mode=plain run=[0-9]*' median_us) $(awk -v a="$tm" -v b="$pm" 'BEGIN {
		printf "median=%.3f target=1.30 pass=%s", a / b, (a / b <= 1.30) ? "yes" : "no" }')"
fi
evs=$(grep '^event\.vscard ' "$RESULTS" | tail -n 1)
if [ -n "$evs" ]; then
	record "target.vscard_events insert_p99_us=$(field "$evs" insert_p99_us) remove_p99_us=$(field "$evs" remove_p99_us) target_p99_us=1000 pass=$(awk -v a="$(field "$evs" insert_p99_us)" -v b="$(field "$evs" remove_p99_us)" 'BEGIN {print (a < 1000 && b < 1000) ? "yes" : "no"}')"
fi
record "meta end loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,) other_pcscd=$(pgrep -c -x pcscd)"
ev=$(grep '^event\.vccid ' "$RESULTS" | tail -n 1)
if [ -n "$ev" ]; then
	record "target.events insert_p99_us=$(field "$ev" insert_p99_us) remove_p99_us=$(field "$ev" remove_p99_us) target_p99_us=1000 pass=$(awk -v a="$(field "$ev" insert_p99_us)" -v b="$(field "$ev" remove_p99_us)" 'BEGIN {print (a < 1000 && b < 1000) ? "yes" : "no"}')"
fi
ln -sf "$(basename "$RESULTS")" "$OUTDIR/results-latest.txt"

row() { printf '%-50s %10s %10s  %s\n' "$@"; }
line_of() { grep "^$1" "$RESULTS" | tail -n 1; }
{
	echo
	echo "vccid benchmarks: $(sed -n 's/^meta date=\([^ ]*\).* pcscd=\([^ ]*\).*/\1, pcscd \2/p' "$RESULTS" | head -n 1)"
	echo "pinning: pcscd (all threads) on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU (taskset); $(nproc) CPUs online"
	echo "APDU runs: $COUNT timed after $WARMUP warm-up; floor/vccid: median over $REPEAT alternating runs;"
	echo "VSCard/vpcd: median over $VS_REPEAT alternating runs"
	echo
	row "measurement" "median us" "p99 us" "notes"
	row "--------------------------------------------------" "----------" "----------" "-----"
	[ -n "$fm" ] && row "floor driver, SELECT" "$fm" "$fp" "pcscd's own floor"
	[ -n "$vm" ] && row "vccid emulated CAC, SELECT" "$vm" "$vp" "sw=$(field "$(grep '^apdu\.vccid .* reader=' "$RESULTS" | tail -n 1)" sw) (floor: 9000)"
	l=$(line_of ratio.vccid_floor)
	[ -n "$l" ] && row "ratio vccid / floor" "$(field "$l" median)" "$(field "$l" p99)" "target median <= 1.10: $(field "$l" pass)"
	if [ -n "$ev" ]; then
		row "card insertion (SCardControl -> event)" "$(field "$ev" insert_median_us)" "$(field "$ev" insert_p99_us)" "max $(field "$ev" insert_max_us) us, n=$(field "$ev" insert_n), target p99 < 1000"
		row "card removal (SCardControl -> event)" "$(field "$ev" remove_median_us)" "$(field "$ev" remove_p99_us)" "max $(field "$ev" remove_max_us) us, n=$(field "$ev" remove_n), missed $(field "$ev" missed)"
	fi
	grep '^idle\.vccid ' "$RESULTS" | while IFS= read -r l; do
		row "pcscd idle CPU, $(field "$l" phase)" "" "" "$(field "$l" cpu_ms_per_s) ms CPU per s (target ~0)"
	done
	l=$(line_of 'pkcs11\.vccid ')
	[ -n "$l" ] && row "pkcs11-tool -L (hyperfine, 1 card)" "" "" "mean $(field "$l" mean_ms) ms +- $(field "$l" stddev_ms), min $(field "$l" min_ms), max $(field "$l" max_ms), $(field "$l" runs) runs"
	l=$(line_of 'pkcs11\.vccid\.first')
	[ -n "$l" ] && row "pkcs11-tool -L, first run" "" "" "$(field "$l" wall_s) s"
	l=$(line_of 'mem\.floor ')
	[ -n "$l" ] && row "pcscd memory, floor driver (4 readers)" "" "" "VmRSS $(field "$l" vmrss_kb) kB, VmHWM $(field "$l" vmhwm_kb) kB"
	grep '^mem\.vccid4 ' "$RESULTS" | while IFS= read -r l; do
		row "pcscd memory, vccid 4 cards ($(field "$l" phase))" "" "" "VmRSS $(field "$l" vmrss_kb) kB, VmHWM $(field "$l" vmhwm_kb) kB"
	done
	l=$(totals 'apdu\.vpcd mode=quickack' | tail -n 1)
	[ -n "$l" ] && row "vpcd + C client, TCP_QUICKACK" "$(field "$l" median_us)" "$(field "$l" p99_us)" "n=$(field "$l" n)"
	l=$(totals 'apdu\.vpcd mode=noquickack' | tail -n 1)
	[ -n "$l" ] && row "vpcd + C client, no QUICKACK (stock)" "$(field "$l" median_us)" "$(field "$l" p99_us)" "n=$(field "$l" n)"
	for k in vscard_vpcd_1 vscard_vpcd_2 vscard_vpcd_2x2 vscard4_vpcd_2x2; do
		l=$(line_of "ratio\.$k ")
		[ -n "$l" ] || continue
		row "VSCard $k: vccid listener" "$(field "$l" vscard_median_us)" "$(field "$l" vscard_p99_us)" "run medians $(field "$l" vscard_runs)"
		row "VSCard $k: vpcd" "$(field "$l" vpcd_median_us)" "$(field "$l" vpcd_p99_us)" "run medians $(field "$l" vpcd_runs)"
		row "VSCard $k: ratio" "$(field "$l" median)" "$(field "$l" p99)" "target <= 0.80: $(field "$l" pass)"
	done
	l=$(line_of 'ratio\.tls_plain ')
	if [ -n "$l" ]; then
		row "VSCard plaintext (same listener as TLS)" "$(field "$l" plain_median_us)" "$(field "$l" plain_p99_us)" "run medians $(field "$l" plain_runs)"
		row "VSCard over TLS (client certificate)" "$(field "$l" tls_median_us)" "$(field "$l" tls_p99_us)" "run medians $(field "$l" tls_runs)"
		row "ratio TLS / plaintext" "$(field "$l" median)" "" "target median <= 1.30: $(field "$l" pass); run by run: median $(field "$l" pair_median)"
	fi
	l=$(line_of 'tls\.handshake ')
	[ -n "$l" ] && row "TLS handshake (connect to done, client side)" "$(field "$l" median_us)" "$(field "$l" p90_us)" "p90 in the p99 column; n=$(field "$l" n)"
	l=$(totals 'conc\.vscard4 mode=one' | tail -n 1)
	[ -n "$l" ] && row "VSCard 4 readers on one connection" "$(field "$l" median_us)" "$(field "$l" p99_us)" "$(field "$l" apdus_per_s) APDUs/s total (last run)"
	l=$(totals 'apdu\.vscard1of4' | tail -n 1)
	[ -n "$l" ] && row "VSCard 1 reader of 4 on one connection" "$(field "$l" median_us)" "$(field "$l" p99_us)" "last run"
	if [ -n "$evs" ]; then
		row "VSCard insertion (ATR written -> event)" "$(field "$evs" insert_median_us)" "$(field "$evs" insert_p99_us)" "max $(field "$evs" insert_max_us) us, n=$(field "$evs" insert_n), target p99 < 1000"
		row "VSCard removal (CardRemove -> event)" "$(field "$evs" remove_median_us)" "$(field "$evs" remove_p99_us)" "max $(field "$evs" remove_max_us) us, n=$(field "$evs" remove_n), missed $(field "$evs" missed)"
	fi
	for t in vscard64k vscard64kdown share share64k; do
		l=$(grep "^apdu\.$t reader=" "$RESULTS" | tail -n 1)
		[ -n "$l" ] && row "VSCard $t (apdu_len=$(field "$l" apdu_len))" "$(field "$l" median_us)" "$(field "$l" p99_us)" "rx_len=$(field "$l" rx_len) sw=$(field "$l" sw) n=$(field "$l" n)"
	done
	for t in floor4 vccid4; do
		l=$(totals "conc\.$t" | tail -n 1)
		[ -n "$l" ] && row "4 readers concurrently, $t (all APDUs)" "$(field "$l" median_us)" "$(field "$l" p99_us)" "$(field "$l" apdus_per_s) APDUs/s total"
	done
	grep '^\(skipped\|error\) ' "$RESULTS" | sed 's/^/note: /'
	echo
	echo "results: $RESULTS"
} | tee "$OUTDIR/summary-latest.txt"
exit $FAILED
