#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-guest.sh GUESTDIR HOSTDIR [QEMU-ARG...]: boots the test guest that build-guest.sh made
# in GUESTDIR under qemu-system-x86_64 (TCG unless asked for KVM), with HOSTDIR
# shared over 9p (tag "host", mounted at /host in the guest). The guest runs
# HOSTDIR/guest-cmd.sh (sh, cwd /host; output on the console and in
# HOSTDIR/guest-output.txt) and powers off. The console goes to stdout.
#
# Exit status: the guest command's, read from the "VCCID-GUEST-EXIT <status>" line (or the
# HOSTDIR/guest-exit-status file); 124 if QEMU hit the timeout, 125 if the guest never
# reported a status, 77 (with a SKIP line) if QEMU or the guest image is missing.
#
# Environment:
#   VCCID_GUEST_TIMEOUT   seconds for the whole run (default 300)
#   VCCID_GUEST_ACCEL     tcg (default), kvm, or auto (kvm if QEMU can open it). TCG is the
#                         default: on a nested-virtualisation host whose /dev/kvm opens, the
#                         guest kernel hung silently under KVM, and TCG timings are comparable
#                         across machines.
#   VCCID_GUEST_NET=1     add "-nic user,model=virtio-net-pci" (the guest is 10.0.2.15,
#                         the host 10.0.2.2); pass your own -nic among QEMU-ARGs instead to
#                         add hostfwd/guestfwd rules
#   VCCID_GUEST_APPEND    extra kernel command line words (e.g. vccid.modules=dummy_hcd)
#   VCCID_GUEST_MEM       MiB of memory (default 1024)
#   VCCID_GUEST_LOG       also copy the console to this file
#   QEMU                  the QEMU binary (default qemu-system-x86_64)
set -uo pipefail

if [ $# -lt 2 ]; then
	sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
guest=$1
hostdir=$2
shift 2

skip() {
	echo "SKIP: run-guest: $*"
	exit 77
}

QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null 2>&1 || skip "$QEMU not installed (apt-get install qemu-system-x86)"
command -v timeout >/dev/null 2>&1 || skip "timeout (coreutils) not found"
[ -s "$guest/vmlinuz" ] && [ -s "$guest/initrd.gz" ] ||
	skip "no guest in $guest (run tests/guest/build-guest.sh $guest)"
[ -d "$hostdir" ] || { echo "run-guest: $hostdir is not a directory" >&2; exit 2; }
hostdir=$(cd "$hostdir" && pwd)
case $hostdir in
*,*) echo "run-guest: QEMU cannot share a path with a comma: $hostdir" >&2; exit 2 ;;
esac

# KVM only on request, and only if QEMU can create a VM with it.
accel=${VCCID_GUEST_ACCEL:-tcg}
if [ "$accel" = auto ]; then
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
		echo quit | timeout 20 "$QEMU" -accel kvm -machine q35 -nodefaults -display none \
			-monitor stdio -S >/dev/null 2>&1; then
		accel=kvm
	fi
fi
case $accel in
kvm) accel_args=(-accel kvm -cpu host) ;;
*) accel_args=(-accel tcg) ;;
esac

net_args=()
[ "${VCCID_GUEST_NET-}" = 1 ] && net_args=(-nic "user,model=virtio-net-pci")

rm -f "$hostdir/guest-exit-status" "$hostdir/guest-output.txt"
console=$(mktemp "${TMPDIR:-/tmp}/vccid-guest-console.XXXXXX") || exit 99
trap 'rm -f "$console"' EXIT

start=$(date +%s.%N)
timeout -k 10 "${VCCID_GUEST_TIMEOUT:-300}" "$QEMU" "${accel_args[@]}" \
	-machine q35 -m "${VCCID_GUEST_MEM:-1024}" -smp 1 \
	-nographic -no-reboot -nodefaults -serial stdio -monitor none \
	-kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 ${VCCID_GUEST_APPEND-}" \
	-virtfs "local,path=$hostdir,mount_tag=host,security_model=none,id=host" \
	"${net_args[@]}" "$@" </dev/null 2>&1 | tee "$console" ${VCCID_GUEST_LOG:+"$VCCID_GUEST_LOG"}
qrc=${PIPESTATUS[0]}
end=$(date +%s.%N)
echo "run-guest: QEMU ($accel) ran $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s, exit $qrc"

status=$(tr -d '\r' <"$console" | sed -n 's/^VCCID-GUEST-EXIT \([0-9][0-9]*\)$/\1/p' | tail -n 1)
[ -n "$status" ] || status=$(cat "$hostdir/guest-exit-status" 2>/dev/null)
if [ -n "$status" ]; then
	exit "$status"
fi
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	echo "run-guest: the guest did not finish within ${VCCID_GUEST_TIMEOUT:-300} s"
	exit 124
fi
echo "run-guest: the guest reported no exit status (QEMU exit $qrc)"
exit 125
