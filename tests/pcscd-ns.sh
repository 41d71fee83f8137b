# SPDX-License-Identifier: LGPL-2.1-or-later
# pcscd-ns.sh: a private pcscd in its own mount namespace, for the integration tests
# (tests/integration/lib.sh), the benchmarks (bench/run.sh) and the demo (demo/demo.sh).
# Sourced by bash. The host's pcscd is never touched: the namespace gets its own tmpfs on
# /run/pcscd, where pcscd puts its socket.
#
#   pcscd_ns_detect                     PCSCD_NS_UNSHARE: the unshare words, or return 1
#   pcscd_ns_helper NAME BUILDDIR SRCDIR BINDIR
#                                       prints the path of a C helper (pcsc-wait, ...)
#   (inside the namespace)
#   pcscd_ns_start CONFDIR LOG NREADERS NCARDS -- CMD...
#                                       starts CMD (a pcscd command line) and waits for it
#   pcscd_ns_stop                       stops it (status in PCSCD_NS_STATUS)
#
# Environment: PCSCD_NS_WAIT (pcsc-wait, required by pcscd_ns_start), PCSCD_NS_WAIT_MS
# (readiness, default 20000), PCSCD_NS_LIFETIME (s pcscd may live, default 300),
# PCSCD_NS_STOP_MS (shutdown, default 10000), PCSCD_NS_LOG_TAIL (log lines shown when pcscd
# does not get ready, default 20), PCSCD_NS_QUIET=1 (pcsc-wait prints nothing).

# pcscd_ns_detect: picks the unshare command for a mount namespace with a tmpfs, and a pid
# namespace too where the kernel allows it (nothing then outlives the namespace).
pcscd_ns_detect() {
	command -v unshare >/dev/null 2>&1 || return 1
	if unshare --mount --pid --fork --mount-proc --propagation private \
		sh -c 'mount -t tmpfs tmpfs /mnt' >/dev/null 2>&1; then
		PCSCD_NS_UNSHARE="unshare --mount --pid --fork --mount-proc --propagation private"
	elif unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /mnt' >/dev/null 2>&1; then
		PCSCD_NS_UNSHARE="unshare --mount --propagation private"
	else
		return 1
	fi
	export PCSCD_NS_UNSHARE
}

# pcscd_ns_helper NAME BUILDDIR SRCDIR BINDIR: prints where the C helper
# tests/integration/NAME.c is built, or builds it into BINDIR with cc and pkg-config.
pcscd_ns_helper() {
	local name=$1 builddir=$2 srcdir=$3 bindir=$4 cflags libs
	if [ -x "$builddir/tests/integration/$name" ]; then
		printf '%s\n' "$builddir/tests/integration/$name"
		return 0
	fi
	mkdir -p "$bindir" || return 1
	cflags=$(pkg-config --cflags libpcsclite) && libs=$(pkg-config --libs libpcsclite) || {
		echo "pkg-config libpcsclite failed: cannot build $name" >&2
		return 1
	}
	# shellcheck disable=SC2086
	"${CC:-cc}" -std=gnu11 -O1 -Wall -o "$bindir/$name" "$srcdir/tests/integration/$name.c" \
		$cflags $libs || return 1
	printf '%s\n' "$bindir/$name"
}

# pcscd_ns_start CONFDIR LOG NREADERS NCARDS -- CMD...: inside a namespace from
# PCSCD_NS_UNSHARE, mounts the private /run/pcscd, runs CMD (pcscd and its options, with
# any prefix words such as taskset) bounded by PCSCD_NS_LIFETIME, output appended to LOG,
# and waits with pcsc-wait (SCardListReaders) until pcscd lists NREADERS readers of which
# NCARDS hold a card. PCSCD_NS_PID is the bounding timeout process; PCSCD_NS_CHILD is
# pcscd itself once ready. Returns 1, pcscd stopped again, if it did not get ready.
pcscd_ns_start() {
	local confdir=$1 log=$2 nreaders=$3 ncards=$4 quiet=()
	shift 4
	[ "${1-}" = -- ] && shift
	[ -n "${PCSCD_NS_WAIT-}" ] || { echo "pcscd_ns_start: PCSCD_NS_WAIT is not set" >&2; return 99; }
	[ -d "$confdir" ] || { echo "pcscd_ns_start: no reader.conf directory $confdir" >&2; return 99; }
	mkdir -p /run/pcscd
	mount -t tmpfs -o mode=0755 tmpfs /run/pcscd || {
		echo "pcscd_ns_start: cannot mount a tmpfs on /run/pcscd" >&2
		return 99
	}
	[ "${PCSCD_NS_QUIET:-0}" = 1 ] && quiet=(-q)
	timeout -k 10 "${PCSCD_NS_LIFETIME:-300}" "$@" >>"$log" 2>&1 </dev/null &
	PCSCD_NS_PID=$!
	export PCSCD_NS_PID
	if ! "$PCSCD_NS_WAIT" "${quiet[@]}" -n "$nreaders" -c "$ncards" \
		-t "${PCSCD_NS_WAIT_MS:-20000}" -p "$PCSCD_NS_PID"; then
		echo "# pcscd did not list $nreaders reader(s) with $ncards card(s); the end of $log:" >&2
		tail -n "${PCSCD_NS_LOG_TAIL:-20}" "$log" | sed 's/^/# pcscd| /' >&2
		pcscd_ns_stop >/dev/null 2>&1
		return 1
	fi
	# timeout's only child is pcscd (prefix words such as taskset exec it).
	PCSCD_NS_CHILD=$(cat "/proc/$PCSCD_NS_PID/task/$PCSCD_NS_PID/children" 2>/dev/null)
	PCSCD_NS_CHILD=${PCSCD_NS_CHILD%% *}
	export PCSCD_NS_CHILD
}

# pcscd_ns_stop: SIGTERM to the pcscd of pcscd_ns_start, SIGKILL (to pcscd too) if it has
# not exited within PCSCD_NS_STOP_MS. Returns 0 if it exited on SIGTERM in time, 1 if it had
# exited before, 2 if it had to be killed; its exit status is in PCSCD_NS_STATUS.
pcscd_ns_stop() {
	local pid=$PCSCD_NS_PID i children
	local max=$(( (${PCSCD_NS_STOP_MS:-10000} + 19) / 20 ))
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		PCSCD_NS_STATUS=$?
		return 1
	fi
	kill -TERM "$pid"
	for ((i = 0; i < max; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02 # a bounded poll for the exit, not a readiness wait
	done
	if kill -0 "$pid" 2>/dev/null; then
		children=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
		# shellcheck disable=SC2086
		kill -KILL $children "$pid" 2>/dev/null
		wait "$pid"
		PCSCD_NS_STATUS=$?
		return 2
	fi
	wait "$pid"
	PCSCD_NS_STATUS=$?
	return 0
}
