# SPDX-License-Identifier: LGPL-2.1-or-later
# lib.sh: helpers sourced by vccid's integration tests (bash): temp dirs, reader.conf,
# a private pcscd in its own mount (and pid) namespace, and pass/fail bookkeeping.
#
# A test does, in outline:
#   . "$(dirname "$0")/lib.sh"
#   vccid_require_namespace; vccid_require_build; vccid_require_tools opensc-tool
#   vccid_tmpdir                          # sets VCCID_TMP (do not call it in $(...))
#   vccid_mkdb "$VCCID_TMP/nssdb" -c alice
#   ... write "$VCCID_TMP/vccid.conf" ...
#   vccid_write_readerconf "$VCCID_TMP/conf.d" "$VCCID_TMP/vccid.conf"
#   body() { vccid_expect "lists readers" vccid_timeout opensc-tool -l; vccid_result; }
#   vccid_run_pcscd -n 4 "$VCCID_TMP/conf.d" -- body
#
# The command given to vccid_run_pcscd runs in a new bash inside the namespace. Every
# function defined so far is exported to it; variables it needs must be exported too.
#
# Exit codes (automake's test driver): 0 pass, 77 skip, 99 hard error, others fail.
#
# Environment: VCCID_SRCDIR, VCCID_BUILDDIR (default: two levels above this file),
# PCSCD (pcscd binary), VCCID_KEEP_TMP=1 (keep temp dirs), VCCID_PCSCD_PREFIX (command
# words put before pcscd, e.g. valgrind), VCCID_PCSCD_TIMEOUT (s, default 300),
# VCCID_WAIT_MS (readiness, default 20000), VCCID_STOP_MS (shutdown, default 10000),
# VCCID_CMD_TIMEOUT (s, per client command, default 60), VCCID_LOG_TAIL (lines, 80),
# VCCID_PCSCD_OK_STATUS (exit statuses of a stopped pcscd that count as clean, "0 143").

_vccid_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../pcscd-ns.sh
. "$_vccid_here/../pcscd-ns.sh"
VCCID_SRCDIR=${VCCID_SRCDIR:-$(cd "$_vccid_here/../.." && pwd)}
VCCID_BUILDDIR=${VCCID_BUILDDIR:-$VCCID_SRCDIR}
VCCID_DRIVER=${VCCID_DRIVER:-$VCCID_BUILDDIR/ifdhandler/.libs/libvccid.so}
VCCID_CTL=${VCCID_CTL:-$VCCID_BUILDDIR/tools/vccid-ctl}
VCCID_MKDB=${VCCID_MKDB:-$VCCID_SRCDIR/tools/vccid-mkdb}
VCCID_PIN=${VCCID_PIN:-77777777}
VCCID_CAC_ATR=3B:7A:18:00:00:73:66:74:65:20:63:64:31:34:34
if [ -z "${PCSCD-}" ]; then
	PCSCD=$(PATH=$PATH:/usr/sbin:/sbin command -v pcscd || echo /usr/sbin/pcscd)
fi
VCCID_TEST_NAME=${VCCID_TEST_NAME:-$(basename "$0" .test)}
VCCID_FAILURES=${VCCID_FAILURES:-0}
export VCCID_SRCDIR VCCID_BUILDDIR VCCID_DRIVER VCCID_CTL VCCID_MKDB VCCID_PIN VCCID_CAC_ATR

# A driver built with --enable-sanitizers brings the ASan runtime into pcscd when it is
# loaded. Preloading the runtime instead deadlocks glibc's gettext lock in pcscd 1.9.9, so
# the link-order check is turned off: inside pcscd ASan then checks the driver's stack and
# globals and UBSan everything, while heap errors there are valgrind.test's (plain build);
# the unit tests and fuzz replays run under full ASan. Leaks of pcscd itself are not ours.
if [ -z "${VCCID_SANITIZED-}" ]; then
	VCCID_SANITIZED=0
	if [ -f "$VCCID_DRIVER" ] && ldd "$VCCID_DRIVER" 2>/dev/null | grep -q 'libasan'; then
		VCCID_SANITIZED=1
	fi
fi
if [ "$VCCID_SANITIZED" = 1 ] && [ -z "${VCCID_PCSCD_PREFIX+x}" ]; then
	VCCID_PCSCD_PREFIX="env ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
	export VCCID_PCSCD_PREFIX
fi
export VCCID_SANITIZED
export PCSCD VCCID_TEST_NAME
PATH=$PATH:/usr/sbin:/sbin
export PATH
# Tool output in the C locale, so the tests can parse it.
export LC_ALL=C

# ---------------------------------------------------------------- reporting

vccid_log() { printf '# %s\n' "$*"; }

vccid_skip() {
	printf 'SKIP: %s: %s\n' "$VCCID_TEST_NAME" "$*"
	exit 77
}

vccid_error() {
	printf 'ERROR: %s: %s\n' "$VCCID_TEST_NAME" "$*" >&2
	exit 99
}

vccid_ok() { printf 'ok - %s\n' "$*"; }

vccid_not_ok() {
	local desc=$1
	shift
	printf 'not ok - %s\n' "$desc"
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" | sed 's/^/#   /'
	fi
	VCCID_FAILURES=$((VCCID_FAILURES + 1))
}

# vccid_check DESC CONDITION-COMMAND...: ok if the command succeeds.
vccid_check() {
	local desc=$1
	shift
	if "$@"; then
		vccid_ok "$desc"
	else
		vccid_not_ok "$desc" "failed: $*"
		return 1
	fi
}

# vccid_expect DESC CMD...: runs CMD, keeps its output in $VCCID_OUT (stdout and stderr),
# ok if it exits 0; otherwise prints the output.
vccid_expect() {
	local desc=$1 rc
	shift
	VCCID_OUT=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		vccid_ok "$desc"
		return 0
	fi
	vccid_not_ok "$desc" "command: $*" "exit status: $rc" "$VCCID_OUT"
	return 1
}

# vccid_expect_fail DESC CMD...: like vccid_expect, but CMD must fail (exit 1..125, not a
# crash or a timeout) and say something.
vccid_expect_fail() {
	local desc=$1 rc
	shift
	VCCID_OUT=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [ -n "$VCCID_OUT" ]; then
		vccid_ok "$desc (exit $rc: $(head -n 1 <<<"$VCCID_OUT"))"
		return 0
	fi
	vccid_not_ok "$desc" "command: $*" "exit status: $rc (wanted a failure with a message)" \
		"$VCCID_OUT"
	return 1
}

# vccid_grep DESC PATTERN: ok if $VCCID_OUT matches the (extended, case-insensitive) regex.
vccid_grep() {
	if grep -Eqi -- "$2" <<<"$VCCID_OUT"; then
		vccid_ok "$1"
	else
		vccid_not_ok "$1" "no match for /$2/ in:" "$VCCID_OUT"
		return 1
	fi
}

# vccid_result: the status for the end of a test body: 0 if nothing failed.
vccid_result() {
	if [ "$VCCID_FAILURES" -ne 0 ]; then
		printf '# %s: %d check(s) failed\n' "$VCCID_TEST_NAME" "$VCCID_FAILURES"
		return 1
	fi
	return 0
}

# vccid_timeout CMD...: runs a client command with a bound (VCCID_CMD_TIMEOUT seconds).
vccid_timeout() {
	timeout -k 5 "${VCCID_CMD_TIMEOUT:-60}" "$@"
}

# ---------------------------------------------------------------- processes and waiting

# vccid_kill_ours: SIGTERM to the children this shell started and has not reaped (jobs -p),
# then reaps them. Only our own PIDs: for EXIT traps.
vccid_kill_ours() {
	local p
	for p in $(jobs -p); do
		kill -TERM "$p" 2>/dev/null
	done
	wait 2>/dev/null
}

# vccid_wait_for FILE REGEX SECONDS: until FILE matches REGEX (extended), polled, bounded.
vccid_wait_for() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# vccid_wait_count FILE FIXED-STRING N SECONDS: until FILE has N lines with the string.
vccid_wait_count() {
	local i
	for ((i = 0; i < $4 * 20; i++)); do
		[ "$(grep -cF -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

# vccid_wait_pid PID SECONDS: waits for our child to end, bounded; its status in
# VCCID_WAIT_RC (999: still running).
vccid_wait_pid() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1"
			VCCID_WAIT_RC=$?
			return 0
		fi
		sleep 0.05
	done
	VCCID_WAIT_RC=999
	return 1
}

# vccid_free_port: a TCP port free on 127.0.0.1 just now (a caller retries if it is taken).
vccid_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
		2>/dev/null || echo $((20000 + ($$ * 7 + RANDOM) % 20000))
}

# vccid_tcp_listening PORT: something listens on 127.0.0.1:PORT (ss, else a probe connect).
vccid_tcp_listening() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# vccid_qemu_passthru PREFIX CHARDEV [QEMU-ARG]...: starts QEMU paused and without a guest,
# with usb-ccid and ccid-card-passthru on "-chardev socket,id=vsc,CHARDEV" (QEMU-ARGs, such
# as a -object tls-creds-x509, come before it); debug output in PREFIX.out, errors in
# PREFIX.err; it ends itself after 180 s. Its PID in VCCID_QEMU_PID.
vccid_qemu_passthru() {
	local prefix=$1 chardev=$2
	shift 2
	timeout -k 5 180 "${QEMU:-qemu-system-x86_64}" -machine q35 -nodefaults -nographic -S \
		-display none -monitor none -serial none "$@" \
		-device qemu-xhci -device usb-ccid,debug=1 \
		-chardev "socket,id=vsc,$chardev" -device ccid-card-passthru,chardev=vsc,debug=4 \
		>"$prefix.out" 2>"$prefix.err" &
	VCCID_QEMU_PID=$!
}

# vccid_qemu_stop PID: ends a QEMU of ours (SIGTERM) and reaps it, bounded.
vccid_qemu_stop() {
	kill -TERM "$1" 2>/dev/null
	vccid_wait_pid "$1" 10
}

# vccid_share_accepted SHARE-LOG QEMU-PREFIX N DESC: ok when vccid-share's log (-v) shows
# its Nth ATR accepted by the host and QEMU (vccid_qemu_passthru's PREFIX.out) checked it.
vccid_share_accepted() {
	if vccid_wait_count "$1" 'the host accepted the ATR' "$3" 30 &&
		vccid_wait_for "$2.out" 'atr passes check: 15 total length' 10; then
		vccid_ok "$4: handshake complete, ATR accepted and checked by QEMU"
	else
		vccid_not_ok "$4: handshake complete, ATR accepted and checked by QEMU" \
			"$(cat "$1" "$2.out" "$2.err")"
	fi
}

# ---------------------------------------------------------------- the test guest

# vccid_guest_cac_prepare SHAREDIR DB: what tests/guest/opensc-cac.sh needs in the guest's
# /host (alice-sign.der, data, pin, opensc-cac.sh itself), and SHAREDIR/../alice-sign.pub
# for vccid_check_guest_cac. DB holds alice's certificates (vccid_mkdb -c alice).
vccid_guest_cac_prepare() {
	local share=$1 db=$2
	vccid_nss_cert_der "sql:$db" alice-sign "$share/alice-sign.der" ||
		vccid_error "cannot export alice-sign from $db"
	openssl x509 -inform DER -in "$share/alice-sign.der" -pubkey -noout \
		>"$share/../alice-sign.pub" || vccid_error "openssl cannot read alice-sign's certificate"
	head -c 517 /dev/urandom >"$share/data"
	echo "$VCCID_PIN" >"$share/pin"
	cp "$VCCID_SRCDIR/tests/guest/opensc-cac.sh" "$share/opensc-cac.sh"
}

# vccid_check_guest_cac SHAREDIR: the checks of opensc-cac.sh's RESULT lines (in
# SHAREDIR/guest-output.txt): a reader in the guest's pcscd, OpenSC names a CAC card,
# alice-sign's certificate and key on it, and the guest's signature verifies here.
vccid_check_guest_cac() {
	local share=$1 out
	_vccid_guest_r() {
		sed -n "s/^RESULT $1=//p" "$share/guest-output.txt" 2>/dev/null | tr -d '\r' | head -n 1
	}
	_vccid_guest_ok() { # DESC COND-STRING: a check of two conditions (vccid_check takes one)
		if eval "$2"; then vccid_ok "$1"; else vccid_not_ok "$1" "failed: $2"; fi
	}
	vccid_check "the guest sees a USB CCID reader ($(_vccid_guest_r ccid_usb))" \
		[ -n "$(_vccid_guest_r ccid_usb)" ]
	_vccid_guest_ok "the guest's stock pcscd + libccid list the reader ($(_vccid_guest_r reader))" \
		'[ "$(_vccid_guest_r list_rc)" = 0 ] && [ -n "$(_vccid_guest_r reader)" ]'
	_vccid_guest_ok "the guest's OpenSC names a CAC card ($(_vccid_guest_r card_name))" \
		'[ "$(_vccid_guest_r name_rc)" = 0 ] && [[ "$(_vccid_guest_r card_name)" == *CAC* ]]'
	_vccid_guest_ok "the guest's pkcs11-tool finds alice-sign's certificate (ID $(_vccid_guest_r sign_id))" \
		'[ "$(_vccid_guest_r objects_rc)" = 0 ] && [ -n "$(_vccid_guest_r sign_id)" ]'
	vccid_check "the guest's pkcs11-tool --sign succeeds ($(_vccid_guest_r sign_s) s)" \
		[ "$(_vccid_guest_r sign_rc)" = 0 ]
	if out=$(openssl dgst -sha256 -verify "$share/../alice-sign.pub" -signature "$share/data.sig" \
		"$share/data" 2>&1); then
		vccid_ok "the guest's signature verifies with openssl against alice-sign"
	else
		vccid_not_ok "the guest's signature verifies with openssl against alice-sign" "$out"
	fi
}

# ---------------------------------------------------------------- requirements

# vccid_require_namespace: skip unless we may make a mount namespace with a tmpfs.
vccid_require_namespace() {
	[ "$(id -u)" -eq 0 ] || vccid_skip "needs root (a private pcscd in a mount namespace)"
	command -v unshare >/dev/null 2>&1 || vccid_skip "unshare (util-linux) not found"
	pcscd_ns_detect ||
		vccid_skip "cannot create a mount namespace with a tmpfs here (unshare --mount failed)"
	VCCID_UNSHARE=$PCSCD_NS_UNSHARE
	export VCCID_UNSHARE
	[ -x "$PCSCD" ] || vccid_skip "pcscd not found (PCSCD=$PCSCD)"
}

# vccid_require_build: the driver (and vccid-ctl) must be built: a hard error if not.
vccid_require_build() {
	[ -f "$VCCID_DRIVER" ] || vccid_error "driver not built: $VCCID_DRIVER missing (VCCID_BUILDDIR=$VCCID_BUILDDIR)"
	case $VCCID_DRIVER$VCCID_BUILDDIR in
	*[[:space:]]*) vccid_skip "reader.conf cannot hold paths with white space: $VCCID_BUILDDIR" ;;
	esac
}

vccid_require_ctl() {
	[ -x "$VCCID_CTL" ] || vccid_error "vccid-ctl not built: $VCCID_CTL missing"
}

# vccid_require_tools TOOL...: skip if a client tool is not installed.
vccid_require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || vccid_skip "$t not installed"
	done
}

# ---------------------------------------------------------------- files

_vccid_cleanup() {
	local rc=$?
	if [ -n "${VCCID_TMP-}" ] && [ -d "$VCCID_TMP" ]; then
		if [ "${VCCID_KEEP_TMP-}" = 1 ]; then
			printf '# kept %s\n' "$VCCID_TMP"
		else
			rm -rf "$VCCID_TMP"
		fi
	fi
	exit $rc
}

# vccid_tmpdir: makes a private temp dir, removed on exit, in $VCCID_TMP (exported).
# Call it directly, not in $(...), so the cleanup trap holds. It is under /tmp, not the
# build tree: tests put unix sockets there, whose paths must fit sun_path (107 bytes)
# however deep the checkout is. Mode 0755: pcscd runs as root, clients may not.
vccid_tmpdir() {
	VCCID_TMP=$(mktemp -d "/tmp/vccid-$VCCID_TEST_NAME.XXXXXX") || vccid_error "mktemp failed in /tmp"
	chmod 0755 "$VCCID_TMP"
	export VCCID_TMP
	trap _vccid_cleanup EXIT
	trap 'exit 130' INT TERM HUP
	# OpenSC's file cache and anything else per-user stays in the test's dir.
	mkdir -p "$VCCID_TMP/home"
	export HOME=$VCCID_TMP/home XDG_CACHE_HOME=$VCCID_TMP/home/.cache
	vccid_helpers
}

# vccid_helpers: locates (or builds into $VCCID_TMP/bin) the C helpers pcsc-wait and
# pcsc-events; sets VCCID_PCSC_WAIT and VCCID_PCSC_EVENTS.
vccid_helpers() {
	local h var path
	for h in pcsc-wait pcsc-events; do
		var=VCCID_$(tr 'a-z-' 'A-Z_' <<<"$h")
		path=$(pcscd_ns_helper "$h" "$VCCID_BUILDDIR" "$VCCID_SRCDIR" "$VCCID_TMP/bin") ||
			vccid_error "cannot build $h"
		printf -v "$var" '%s' "$path"
		export "${var?}"
	done
}

# vccid_mkdb DIR ARGS...: a fresh NSS database with PIN $VCCID_PIN (see tools/vccid-mkdb).
vccid_mkdb() {
	local dir=$1 out
	shift
	out=$(bash "$VCCID_MKDB" -q -p "$VCCID_PIN" "$@" "$dir" 2>&1) ||
		vccid_error "vccid-mkdb $* $dir failed: $out"
}

# vccid_write_readerconf CONFDIR CONF [READER] [FRIENDLY]: adds one reader.conf entry for
# the built driver to CONFDIR (one file per FRIENDLY name and READER, FRIENDLY defaults to
# "vccid"). pcscd names the PC/SC readers "FRIENDLY NN SS": NN counts the entries that
# share FRIENDLY (in pcscd's directory order), SS is the slot.
vccid_write_readerconf() {
	local confdir=$1 conf=$2 reader=${3-} friendly=${4:-vccid} dev
	dev=$conf${reader:+:$reader}
	mkdir -p "$confdir" || vccid_error "cannot create $confdir"
	cat >"$confdir/$friendly${reader:+-$reader}.conf" <<EOF
# written by $VCCID_TEST_NAME
FRIENDLYNAME "$friendly"
DEVICENAME $dev
LIBPATH $VCCID_DRIVER
EOF
}

# ---------------------------------------------------------------- pcscd

# vccid_run_pcscd [-n NREADERS] [-c NCARDS] CONFDIR -- CMD [ARG]...
# Runs CMD inside a new mount namespace (and pid namespace where possible) whose
# /run/pcscd is a private tmpfs, with "timeout 300 pcscd -f -a -d -c CONFDIR" running.
# CMD starts once pcscd lists NREADERS readers (default 1) of which NCARDS hold a card
# (default 0). pcscd's log goes to $VCCID_PCSCD_LOG (default: CONFDIR/../pcscd.log), its
# PID is in $VCCID_PCSCD_PID for CMD. Afterwards pcscd gets SIGTERM, then SIGKILL if it
# has not exited within VCCID_STOP_MS. Returns CMD's status; a failed start, an early
# death or a failed/slow stop of pcscd fails too. On failure the log tail is printed.
vccid_run_pcscd() {
	local nreaders=1 ncards=0 confdir f
	while [ $# -gt 0 ]; do
		case $1 in
		-n) nreaders=$2; shift 2 ;;
		-c) ncards=$2; shift 2 ;;
		*) break ;;
		esac
	done
	confdir=$1
	shift
	[ "${1-}" = -- ] && shift
	[ $# -gt 0 ] || vccid_error "vccid_run_pcscd: no command"
	[ -d "$confdir" ] || vccid_error "vccid_run_pcscd: no reader.conf dir $confdir"
	[ -n "${VCCID_UNSHARE-}" ] || vccid_require_namespace
	[ -n "${VCCID_PCSC_WAIT-}" ] || vccid_error "vccid_run_pcscd: call vccid_tmpdir first"
	for f in $(declare -F | awk '{print $3}'); do
		export -f "${f?}"
	done
	export VCCID_FAILURES
	mkdir -p /run/pcscd
	# shellcheck disable=SC2086
	$VCCID_UNSHARE bash -c '_vccid_ns_main "$@"' vccid-ns "$confdir" "$nreaders" "$ncards" "$@"
}

# Inside the namespace: start pcscd (tests/pcscd-ns.sh), wait, run, stop.
_vccid_ns_main() {
	local confdir=$1 nreaders=$2 ncards=$3 rc stop_rc
	shift 3
	VCCID_PCSCD_LOG=${VCCID_PCSCD_LOG:-$(cd "$confdir/.." && pwd)/pcscd.log}
	export VCCID_PCSCD_LOG
	: >"$VCCID_PCSCD_LOG"
	# shellcheck disable=SC2086
	PCSCD_NS_WAIT=$VCCID_PCSC_WAIT PCSCD_NS_WAIT_MS=${VCCID_WAIT_MS:-20000} \
		PCSCD_NS_LIFETIME=${VCCID_PCSCD_TIMEOUT:-300} PCSCD_NS_LOG_TAIL=${VCCID_LOG_TAIL:-80} \
		pcscd_ns_start "$confdir" "$VCCID_PCSCD_LOG" "$nreaders" "$ncards" -- \
		${VCCID_PCSCD_PREFIX-} "$PCSCD" -f -a -d -c "$confdir"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "not ok - pcscd ready with $nreaders reader(s) and $ncards card(s)"
		return "$rc"
	fi
	VCCID_PCSCD_PID=$PCSCD_NS_PID
	export VCCID_PCSCD_PID
	# A subshell: a bare "wait" in CMD must not wait for pcscd.
	("$@")
	rc=$?
	_vccid_stop_pcscd
	stop_rc=$?
	[ $rc -ne 0 ] || rc=$stop_rc
	if [ $rc -ne 0 ]; then
		vccid_pcscd_log_tail
	fi
	return $rc
}

# Stops pcscd. Returns 0 if it was still running and exited cleanly (a status in
# VCCID_PCSCD_OK_STATUS, default 0 or SIGTERM) within VCCID_STOP_MS.
_vccid_stop_pcscd() {
	PCSCD_NS_STOP_MS=${VCCID_STOP_MS:-10000} pcscd_ns_stop
	case $? in
	1)
		echo "not ok - pcscd was still running at the end (it exited early, status $PCSCD_NS_STATUS)"
		return 1
		;;
	2)
		echo "not ok - pcscd stops within ${VCCID_STOP_MS:-10000} ms of SIGTERM (killing it)"
		return 1
		;;
	esac
	case " ${VCCID_PCSCD_OK_STATUS:-0 143} " in
	*" $PCSCD_NS_STATUS "*) return 0 ;;
	esac
	echo "not ok - pcscd exits cleanly on SIGTERM (exit status $PCSCD_NS_STATUS)"
	return 1
}

# vccid_pcscd_log_tail [LINES]: the end of the current pcscd log, indented.
vccid_pcscd_log_tail() {
	local n=${1:-${VCCID_LOG_TAIL:-80}}
	[ -f "${VCCID_PCSCD_LOG-}" ] || return 0
	echo "# --- last $n lines of $VCCID_PCSCD_LOG"
	tail -n "$n" "$VCCID_PCSCD_LOG" | sed 's/^/# pcscd| /'
	echo "# ---"
}

# vccid_pkcs11_serials: prints the serial numbers of all tokens (pkcs11-tool -L).
vccid_pkcs11_serials() {
	vccid_timeout pkcs11-tool -L 2>/dev/null | awk -F: '/serial num/ { gsub(/[ \t]/, "", $2); print $2 }'
}

# ---------------------------------------------------------------- card checks

# vccid_p11 READER ARG...: pkcs11-tool (OpenSC's module) on the token in READER.
vccid_p11() {
	local reader=$1
	shift
	vccid_timeout pkcs11-tool --slot-description "$reader" "$@"
}

# vccid_card_cert_ids READER: prints the PKCS#11 IDs of the certificates on the card.
vccid_card_cert_ids() {
	vccid_p11 "$1" -O 2>/dev/null |
		awk '/^Certificate Object/ { c = 1; next } /^[^ \t]/ { c = 0 } c && $1 == "ID:" { print $2 }'
}

# vccid_card_cert_id READER DERFILE: prints the ID of the card's certificate that is
# byte-identical to DERFILE; fails if there is none.
vccid_card_cert_id() {
	local reader=$1 der=$2 id tmp
	tmp=$(mktemp "$VCCID_TMP/cert.XXXXXX") || return 1
	for id in $(vccid_card_cert_ids "$reader"); do
		vccid_p11 "$reader" --read-object --type cert --id "$id" -o "$tmp" >/dev/null 2>&1 || continue
		if cmp -s "$tmp" "$der"; then
			rm -f "$tmp"
			printf '%s\n' "$id"
			return 0
		fi
	done
	rm -f "$tmp"
	return 1
}

# vccid_nss_cert_der DB NICK FILE: the DER certificate NICK from the NSS database DB.
vccid_nss_cert_der() {
	certutil -L -d "$1" -n "$2" -r >"$3" 2>/dev/null && [ -s "$3" ]
}

# vccid_check_signature READER DB NICK: signs random data on the card in READER with the
# key of certificate NICK (PIN $VCCID_PIN, SHA256-RSA-PKCS) and verifies the signature
# with openssl against that certificate's public key. One ok/not ok line.
vccid_check_signature() {
	local reader=$1 db=$2 nick=$3 dir id out desc
	desc="signature by $nick on \"$reader\" verifies with openssl"
	dir=$(mktemp -d "$VCCID_TMP/sig.$nick.XXXXXX") || return 1
	if ! vccid_nss_cert_der "$db" "$nick" "$dir/cert.der"; then
		vccid_not_ok "$desc" "certutil cannot export $nick from $db"
		return 1
	fi
	openssl x509 -inform DER -in "$dir/cert.der" -pubkey -noout >"$dir/pub.pem" || {
		vccid_not_ok "$desc" "openssl cannot read the certificate $nick"
		return 1
	}
	if ! id=$(vccid_card_cert_id "$reader" "$dir/cert.der"); then
		vccid_not_ok "$desc" "no certificate on the card equals $nick" \
			"$(vccid_p11 "$reader" -O 2>&1)"
		return 1
	fi
	head -c 517 /dev/urandom >"$dir/data"
	if ! out=$(vccid_p11 "$reader" --login --pin "$VCCID_PIN" --sign --id "$id" \
		-m SHA256-RSA-PKCS -i "$dir/data" -o "$dir/sig" 2>&1); then
		vccid_not_ok "$desc" "pkcs11-tool --sign --id $id failed:" "$out"
		return 1
	fi
	if ! out=$(openssl dgst -sha256 -verify "$dir/pub.pem" -signature "$dir/sig" "$dir/data" 2>&1); then
		vccid_not_ok "$desc" "openssl dgst -verify: $out"
		return 1
	fi
	vccid_ok "$desc (key ID $id)"
	VCCID_SIG_DIR=$dir
}

# vccid_names_cac READER: opensc-tool -n on READER names a CAC card.
vccid_names_cac() {
	vccid_expect "opensc-tool -n names a card in \"$1\"" vccid_timeout opensc-tool -r "$1" -n &&
		vccid_grep "the card in \"$1\" is a CAC card ($(head -n 1 <<<"$VCCID_OUT"))" 'CAC'
}

# vccid_ctl ARG...: the control tool, bounded.
vccid_ctl() {
	vccid_timeout "$VCCID_CTL" "$@"
}

# vccid_ctl_state READER: the STATE column of "vccid-ctl list" for READER.
vccid_ctl_state() {
	vccid_ctl list 2>/dev/null | awk -F '\t' -v r="$1" '$1 == r { print $2 }'
}

# vccid_check_idle [SECONDS]: with no client active, pcscd (and so the driver's polling)
# uses under 5% of one CPU over SECONDS (default 1).
vccid_check_idle() {
	local secs=${1:-1} pid t0 t1 hz used
	pid=$(cat "/proc/$VCCID_PCSCD_PID/task/$VCCID_PCSCD_PID/children" 2>/dev/null | awk '{print $1}')
	[ -n "$pid" ] || pid=$VCCID_PCSCD_PID
	hz=$(getconf CLK_TCK)
	# Fields 14 and 15 of /proc/PID/stat: user and system ticks of all threads.
	t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
	sleep "$secs"
	t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
	used=$(( (t1 - t0) * 100 / (hz * secs) ))
	vccid_check "pcscd idles: ${used}% CPU over ${secs} s without clients (< 5%)" [ "$used" -lt 5 ]
}

# vccid_free_ports N: prints the first of N consecutive TCP ports that are free on
# 127.0.0.1 now (20000-49999, at most 10 tries); fails if none were found.
vccid_free_ports() {
	local n=$1 b _
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		b=$((20000 + RANDOM % 30000))
		if "${VCCID_PYTHON:-python3}" -c "
import socket
for p in range($b, $b + $n):
    socket.socket().bind(('127.0.0.1', p))" 2>/dev/null; then
			echo "$b"
			return 0
		fi
	done
	return 1
}

# ---------------------------------------------------------------- vsmartcard's vicc

VCCID_VPCD_DRIVER=${VCCID_VPCD_DRIVER:-/usr/lib/pcsc/drivers/serial/libifdvpcd.so}
VCCID_VPCD_READERCONF=${VCCID_VPCD_READERCONF:-/etc/reader.conf.d/vpcd}
export VCCID_VPCD_DRIVER VCCID_VPCD_READERCONF

# vccid_require_vicc: skip unless Debian's vicc (vsmartcard-vpicc) can run: it needs
# Debian's python3 and pycryptodome under PyCrypto's name (a "Crypto" symlink in
# $VCCID_TMP/vicc-shim, see /work/shared/FACTS.md). Call after vccid_tmpdir.
vccid_require_vicc() {
	local crypto=/usr/lib/python3/dist-packages/Cryptodome
	[ -x /usr/bin/vicc ] || vccid_skip "vicc not installed (package vsmartcard-vpicc)"
	[ -d /usr/lib/python3/site-packages/virtualsmartcard ] ||
		vccid_skip "vicc's modules not found in /usr/lib/python3/site-packages"
	[ -d "$crypto" ] || vccid_skip "pycryptodome not installed (package python3-pycryptodome)"
	mkdir -p "$VCCID_TMP/vicc-shim"
	ln -sfn "$crypto" "$VCCID_TMP/vicc-shim/Crypto"
}

# vccid_start_vicc PORT LOG [ARGS...]: starts vicc's ISO 7816 card (under timeout) towards
# 127.0.0.1:PORT in the background; its PID in VCCID_VICC_PID.
vccid_start_vicc() {
	local port=$1 log=$2
	shift 2
	PYTHONPATH=/usr/lib/python3/site-packages/virtualsmartcard:$VCCID_TMP/vicc-shim \
		timeout -k 5 "${VCCID_CMD_TIMEOUT:-60}" /usr/bin/python3 /usr/bin/vicc -t iso7816 \
		-H 127.0.0.1 -P "$port" "$@" </dev/null >>"$log" 2>&1 &
	VCCID_VICC_PID=$!
}
