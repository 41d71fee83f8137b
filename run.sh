#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One entry point for newcomers and CI: installs what vccid needs (Debian 12),
# builds it, and runs the demo or the whole test suite.
#   ./run.sh demo    set up, build, show OpenSC using vccid's virtual CAC cards
#   ./run.sh test    set up, build, run every test (plain, again from a deep build path
#                    for the socket tests, vccid-share under TSan, ASan+UBSan, distcheck)
#   ./run.sh deps    only install the Debian packages
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
# The test guest's kernel package is downloaded once for all build trees.
export VCCID_GUEST_DEBCACHE=${VCCID_GUEST_DEBCACHE:-$top/.guest-cache}

DEPS=(build-essential autoconf automake libtool pkg-config autoconf-archive
      pcscd libpcsclite-dev libcacard-dev libnss3-dev libnss3-tools libglib2.0-dev
      libcmocka-dev opensc pcsc-tools openssl valgrind util-linux procps file
      python3 python3-pyscard qemu-system-x86 iproute2 busybox-static cpio usbip libccid
      vsmartcard-vpicc python3-pycryptodome vsmartcard-vpcd libgnutls28-dev gnutls-bin)

say() { printf '\n=== %s\n' "$*"; }

install_deps() {
	local missing=()
	local pkg
	for pkg in "${DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "run.sh: these Debian packages are missing: ${missing[*]}" >&2
		echo "run.sh: run as root (sudo ./run.sh ...) to install them" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# build DIR [configure options...]
build() {
	local dir=$1
	shift
	[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
	mkdir -p "$dir"
	(cd "$dir" && "$top/configure" --enable-werror "$@" >/dev/null && make -j"$jobs" >/dev/null)
}

# Prints the closing "N passed, N failed" line from an automake test-suite.log.
summary() {
	local log=$1
	local pass fail skip
	pass=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
	echo "${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped ($log)"
}

# The tests that make unix sockets, once more with the build tree seen through a path of over
# 120 bytes (a symlink, so nothing is rebuilt): their socket paths must fit sun_path (107
# bytes) however deep the checkout is.
deep_path_tests() {
	local base deep t rc status=0
	base=$(mktemp -d /tmp/vccid-deep.XXXXXX)
	deep=$base/$(printf 'd%.0s' {1..100})/build
	mkdir -p "$(dirname "$deep")" && ln -s "$top/build" "$deep"
	for t in vscard-e2e vscard-conformance; do
		rc=0
		VCCID_BUILDDIR=$deep VCCID_SRCDIR=$top bash "$top/tests/integration/$t.test" \
			>"$top/build/deep-path-$t.log" 2>&1 || rc=$?
		case $rc in
		0) echo "$t from a ${#deep}-byte build path: ok" ;;
		77) echo "$t from a ${#deep}-byte build path: skipped ($top/build/deep-path-$t.log)" ;;
		*) echo "$t from a ${#deep}-byte build path: FAILED ($top/build/deep-path-$t.log)"
		   status=1 ;;
		esac
	done
	rm -rf "$base"
	return $status
}

run_tests() {
	local status=0
	local total_pass=0 total_fail=0 total_skip=0
	local dir

	say "build and test (warnings are errors)"
	build "$top/build"
	(cd "$top/build" && make -j"$jobs" check) || status=1
	summary "$top/build/test-suite.log"

	say "unix socket paths from a deep build path"
	deep_path_tests || status=1

	say "ThreadSanitizer: vccid-share against pcscd (tests/tsan/share.sh)"
	mkdir -p "$top/build-tsan"
	if (cd "$top/build-tsan" && "$top/configure" CC=gcc CFLAGS="-fsanitize=thread -g -O1" \
		LDFLAGS=-fsanitize=thread >/dev/null && make -j"$jobs" tools/vccid-share >/dev/null) &&
		(cd "$top/build" && make -j"$jobs" bench/apdu-bench >/dev/null); then
		if bash "$top/tests/tsan/share.sh" "$top/build" "$top/build-tsan" \
			>"$top/build-tsan/share.log" 2>&1; then
			tail -n 2 "$top/build-tsan/share.log"
		else
			tail -n 40 "$top/build-tsan/share.log"
			status=1
		fi
	else
		echo "tsan: cannot build vccid-share with -fsanitize=thread"
		status=1
	fi

	say "ASan + UBSan build and test"
	build "$top/build-asan" --enable-sanitizers
	(cd "$top/build-asan" && make -j"$jobs" check) || status=1
	summary "$top/build-asan/test-suite.log"

	say "distcheck (install into DESTDIR, out-of-tree build, tests)"
	(cd "$top/build" && make -j"$jobs" distcheck >/dev/null 2>"$top/build/distcheck.err") ||
		{ cat "$top/build/distcheck.err"; status=1; }
	[ $status -eq 0 ] && echo "distcheck: ok"

	for dir in build build-asan; do
		local p f s
		p=$(sed -n 's/^# PASS: *//p' "$top/$dir/test-suite.log" | head -1)
		f=$(sed -n 's/^# FAIL: *//p' "$top/$dir/test-suite.log" | head -1)
		s=$(sed -n 's/^# SKIP: *//p' "$top/$dir/test-suite.log" | head -1)
		total_pass=$((total_pass + ${p:-0}))
		total_fail=$((total_fail + ${f:-0}))
		total_skip=$((total_skip + ${s:-0}))
	done
	if [ $status -ne 0 ] && [ $total_fail -eq 0 ]; then
		total_fail=1
	fi
	echo
	echo "${total_pass} passed, ${total_fail} failed, ${total_skip} skipped"
	return $status
}

case "${1:-}" in
deps)
	install_deps
	;;
demo)
	install_deps
	say "building vccid"
	build "$top/build"
	VCCID_BUILDDIR="$top/build" VCCID_SRCDIR="$top" exec bash "$top/demo/demo.sh"
	;;
test)
	install_deps
	run_tests
	;;
*)
	sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
