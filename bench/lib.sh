# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# BUILDDIR, CARD_PID and the rest are for the scripts that source this.
# shellcheck disable=SC2034
# lib.sh: what the benchmark scripts (run.sh, soak.sh) share. Sourced by bash with SRCDIR
# set to the source tree.
#
#   die MSG, say MSG                     messages prefixed by the script's name
#   bench_args "$@"                      one argument BUILDDIR, root, PATH, LC_ALL, PCSCD,
#                                        the pcscd harness (tests/pcscd-ns.sh) detected
#   client CMD...                        a client: pinned to CLIENT_CPU, bounded by
#                                        CLIENT_TIMEOUT
#   card_start NAME CMD..., card_stop PID...
#                                        a card client on CLIENT_CPU bounded by
#                                        SERVER_TIMEOUT, output in WORK/NAME.{out,log}
#   session NAME CONFDIR NREADERS NCARDS BODY [ARG]...
#                                        BODY next to a private pcscd (PCSCD_PID) pinned
#                                        to SERVER_CPU, in a new mount namespace (and
#                                        network namespace with SESSION_NET=1)
# The functions run inside the namespaces: export them (export -f) before session.

prog=${0##*/}
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 2; }
say() { printf '%s\n' "$*" >&2; }

bench_args() {
	[ $# -eq 1 ] || die "usage: $prog BUILDDIR"
	[ "$(id -u)" -eq 0 ] || die "needs root for unshare --mount and mount -t tmpfs"
	BUILDDIR=$(cd "$1" 2>/dev/null && pwd) || die "no build directory $1"
	PATH=$PATH:/usr/sbin:/sbin
	export LC_ALL=C PATH
	if [ -z "${PCSCD-}" ]; then
		PCSCD=$(command -v pcscd) || die "pcscd not found"
	fi
	# shellcheck source=../tests/pcscd-ns.sh
	. "$SRCDIR/tests/pcscd-ns.sh"
	pcscd_ns_detect || die "cannot create a mount namespace with a tmpfs (unshare --mount failed)"
}

client() { timeout -k 5 "$CLIENT_TIMEOUT" taskset -c "$CLIENT_CPU" "$@"; }

card_start() {
	local name=$1
	shift
	timeout -k 5 "$SERVER_TIMEOUT" taskset -c "$CLIENT_CPU" "$@" >>"$WORK/$name.out" \
		2>>"$WORK/$name.log" </dev/null &
	CARD_PID=$!
}
card_stop() {
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
	for p in "$@"; do wait "$p"; done
}

# Inside the namespace: the private pcscd of tests/pcscd-ns.sh, pinned to the server CPU and
# awaited, BODY run, pcscd stopped. ns_session CONFDIR LOG NREADERS NCARDS BODY [ARG]...
ns_session() {
	local confdir=$1 log=$2 nreaders=$3 ncards=$4 rc
	shift 4
	: >"$log"
	PCSCD_NS_WAIT=$PCSC_WAIT PCSCD_NS_WAIT_MS=30000 PCSCD_NS_LIFETIME=$SERVER_TIMEOUT \
		PCSCD_NS_QUIET=1 pcscd_ns_start "$confdir" "$log" "$nreaders" "$ncards" -- \
		taskset -c "$SERVER_CPU" "$PCSCD" -f -c "$confdir" || return 1
	PCSCD_PID=$PCSCD_NS_CHILD
	export PCSCD_PID
	"$@"
	rc=$?
	pcscd_ns_stop
	return "$rc"
}

# SESSION_NET=1 adds a private network namespace (its own loopback, so a fixed TCP port
# cannot clash with another pcscd or benchmark on the machine). pcscd's log: WORK/pcscd-NAME.log.
session() {
	local name=$1 confdir=$2 net=()
	shift 2
	[ "${SESSION_NET:-0}" = 1 ] && net=(--net)
	# shellcheck disable=SC2016,SC2086
	$PCSCD_NS_UNSHARE "${net[@]}" \
		bash -c '[ "${SESSION_NET:-0}" = 1 ] && { ip link set lo up || exit 99; }
			ns_session "$@"' "bench-$name" "$confdir" "$WORK/pcscd-$name.log" "$@"
}
