#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# build-guest.sh OUTDIR: builds (or reuses, if its inputs have not changed) a small QEMU test
# guest for USB CCID end-to-end tests from Debian packages only: Debian's kernel (downloaded
# with apt-get download, never installed) and a gzip'ed cpio initramfs that holds busybox,
# the USB/9p/virtio modules and the host's pcscd, stock libccid, OpenSC tools, usbip and
# openssl with their shared libraries. Run the result with run-guest.sh.
#
# OUTDIR gets: vmlinuz, initrd.gz, guest.env (KVER=..., KERNEL_DEB=...), inputs.txt (what
# the cached image was built from), debs/ (the kernel .deb, kept so rebuilds need no network).
#
# Environment:
#   VCCID_GUEST_KERNEL_PKG   kernel package (default: what linux-image-amd64 depends on, its
#                            -unsigned variant if apt knows one)
#   VCCID_GUEST_DEBCACHE     where kernel .debs are kept (default OUTDIR/debs); point several
#                            build trees at one directory to download once
#   VCCID_GUEST_FORCE=1      rebuild even if the inputs are unchanged
#
# Exit status: 0 ok, 77 a package cannot be had (message on stderr), 1 other errors.
set -euo pipefail

usage() { sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }
[ $# -eq 1 ] || usage

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
debdir=${VCCID_GUEST_DEBCACHE:-$out/debs}
mkdir -p "$debdir"
debdir=$(cd "$debdir" && pwd)
PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C

say() { echo "build-guest: $*" >&2; }
skip() { echo "SKIP: build-guest: $*" >&2; exit 77; }
die() { echo "ERROR: build-guest: $*" >&2; exit 1; }

# ------------------------------------------------------------------ what goes in

# Modules copied into the image (with their dependencies). Those in LOAD_MODULES are
# loaded by /init; the rest are there for modprobe (e.g. dummy_hcd with parameters).
COPY_MODULES="usb-common usbcore xhci-hcd xhci-pci ehci-hcd ehci-pci ohci-hcd ohci-pci
	uhci-hcd udc-core dummy_hcd libcomposite configfs usb_f_fs gadgetfs vhci-hcd
	usbip-core usbip-host usbmon 9p 9pnet 9pnet_virtio netfs fscache virtio virtio_ring
	virtio_pci virtio_net e1000"
LOAD_MODULES="usb-common usbcore xhci-hcd xhci-pci ehci-hcd ehci-pci ohci-hcd ohci-pci
	uhci-hcd udc-core libcomposite configfs usb_f_fs vhci-hcd usbip-core 9p 9pnet
	9pnet_virtio virtio_pci virtio_net e1000"

# Host programs: required ones fail the build when missing, optional ones only warn.
REQUIRED_PROGS="pcscd opensc-tool pkcs11-tool"
OPTIONAL_PROGS="usbip usbipd pcsc_scan openssl"
# Files that are dlopen'ed (ldd does not list them). Directories are copied whole.
LIBDIR=/usr/lib/x86_64-linux-gnu
REQUIRED_FILES="$LIBDIR/libgcc_s.so.1 $LIBDIR/libpcsclite.so.1
	/usr/lib/pcsc/drivers/ifd-ccid.bundle $LIBDIR/opensc-pkcs11.so"
OPTIONAL_FILES="/etc/opensc/opensc.conf /etc/opensc.conf /usr/lib/ssl/openssl.cnf
	/etc/ssl/openssl.cnf /usr/share/pcsc/smartcard_list.txt /usr/share/hwdata/usb.ids
	$LIBDIR/pkcs11/opensc-pkcs11.so"

command -v cpio >/dev/null || skip "cpio not installed (apt-get install cpio)"
command -v gzip >/dev/null || skip "gzip not installed"
command -v dpkg-deb >/dev/null || skip "dpkg-deb not found (not a Debian system?)"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox not installed (apt-get install busybox-static)"
for p in $REQUIRED_PROGS; do
	command -v "$p" >/dev/null || skip "$p not installed (needs pcscd, opensc)"
done
[ -f /usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so ] ||
	skip "libccid not installed (apt-get install libccid)"

# ------------------------------------------------------------------ the kernel .deb

apt_updated=0
apt_update() {
	[ $apt_updated = 0 ] || return 1
	apt_updated=1
	[ "$(id -u)" -eq 0 ] || return 1
	say "running apt-get update (no package lists, or the kernel is not in them)"
	apt-get update -q >&2 || return 1
}

# Prints the kernel package to use.
kernel_pkg() {
	local k
	if [ -n "${VCCID_GUEST_KERNEL_PKG-}" ]; then
		echo "$VCCID_GUEST_KERNEL_PKG"
		return 0
	fi
	k=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	[ -n "$k" ] || return 1
	if apt-cache show --no-all-versions "$k-unsigned" >/dev/null 2>&1; then
		echo "$k-unsigned"
	else
		echo "$k"
	fi
}

# Prints the .deb file of package $1's candidate version in $debdir, downloading it if
# needed. Offline, an already cached .deb of the package is used.
kernel_deb() {
	local pkg=$1 ver f
	ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
	if [ -n "$ver" ]; then
		f=$debdir/${pkg}_${ver//:/%3a}_amd64.deb
		if [ ! -s "$f" ]; then
			say "downloading $pkg $ver"
			(cd "$debdir" && apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver" >&2) ||
				return 1
		fi
		[ -s "$f" ] && { echo "$f"; return 0; }
	fi
	# Not known to apt (or the download failed): the newest cached one.
	f=$(ls -1 "$debdir/${pkg}_"*_amd64.deb 2>/dev/null | sort -V | tail -n 1) || true
	[ -n "$f" ] && [ -s "$f" ] && { echo "$f"; return 0; }
	return 1
}

cached_kernel_deb() {
	{ ls -1 "$debdir"/linux-image-*-amd64*.deb 2>/dev/null || true; } | sort -V | tail -n 1
}

kpkg=$(kernel_pkg) || { apt_update && kpkg=$(kernel_pkg); } || kpkg=
if [ -z "$kpkg" ]; then
	deb=$(cached_kernel_deb)
	[ -n "$deb" ] || skip "no Debian kernel package known to apt (run apt-get update) and none cached in $debdir"
	say "apt knows no kernel package: using the cached $(basename "$deb")"
else
	deb=$(kernel_deb "$kpkg") || { apt_update && deb=$(kernel_deb "$kpkg"); } || deb=
	[ -n "$deb" ] || deb=$(cached_kernel_deb)
	[ -n "$deb" ] || skip "cannot download the kernel package $kpkg (apt-get download failed)"
fi

# ------------------------------------------------------------------ host files

# Prints FILE and the shared libraries it needs (ldd), one absolute path a line.
with_libs() {
	local f=$1
	echo "$f"
	{ ldd "$f" 2>/dev/null || true; } | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }'
}

host_files() {
	local p f
	for p in $REQUIRED_PROGS; do
		with_libs "$(command -v "$p")"
	done
	for p in $OPTIONAL_PROGS; do
		if f=$(command -v "$p"); then
			with_libs "$f"
		else
			say "warning: $p is not installed: the guest will not have it"
		fi
	done
	with_libs "$BUSYBOX"
	for f in $REQUIRED_FILES; do
		[ -e "$f" ] || skip "$f missing (packages pcscd, libccid, opensc, libgcc-s1)"
	done
	for f in $REQUIRED_FILES $OPTIONAL_FILES; do
		[ -e "$f" ] || continue
		if [ -d "$f" ]; then
			find -L "$f" -type f
		else
			with_libs "$f"
		fi
	done | while read -r f; do
		# A library of a directory copied whole brings its own libraries.
		case $f in
		*.so | *.so.*) with_libs "$f" ;;
		*) echo "$f" ;;
		esac
	done
}

files=$(host_files | sort -u)

# ------------------------------------------------------------------ cached?

inputs() {
	echo "kernel-deb $(basename "$deb") $(stat -c %s "$deb")"
	sha256sum "$here/build-guest.sh" "$here/init" | awk '{ print "script", $2, $1 }'
	echo "$files" | while read -r f; do
		stat -L -c 'file %n %s %Y' "$f"
	done
}

exec 9>"$out/.lock"
flock -w 600 9 || die "cannot lock $out/.lock"
new_inputs=$(inputs)
if [ "${VCCID_GUEST_FORCE-}" != 1 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ] &&
	[ -f "$out/inputs.txt" ] && [ "$(cat "$out/inputs.txt")" = "$new_inputs" ]; then
	say "up to date: $out ($(basename "$deb"))"
	exit 0
fi

# ------------------------------------------------------------------ build

say "building the guest in $out from $(basename "$deb")"
tmp=$(mktemp -d "$out/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/k" || die "cannot extract $deb"
kver=$(ls -1 "$tmp/k/lib/modules" | head -n 1)
[ -n "$kver" ] && [ -f "$tmp/k/boot/vmlinuz-$kver" ] || die "no kernel in $deb"
"$BUSYBOX" depmod -b "$tmp/k" "$kver" || die "depmod failed"
mdir=$tmp/k/lib/modules/$kver

# Module name -> path (relative to mdir) and its dependencies, from modules.dep.
declare -A mpath mdeps
while IFS= read -r line; do
	m=${line%%:*}
	n=$(basename "$m")
	n=${n%.ko*}
	n=${n//-/_}
	mpath[$n]=$m
	mdeps[$n]=${line#*:}
done <"$mdir/modules.dep"

# Dependency order: every module after the modules it needs.
declare -A seen
ORDER=()
visit() {
	local n=${1//-/_} d dn
	[ -z "${seen[$n]-}" ] || return 0
	seen[$n]=1
	[ -n "${mpath[$n]-}" ] || { say "warning: no module $1 in $kver"; return 0; }
	for d in ${mdeps[$n]}; do
		dn=$(basename "$d")
		dn=${dn%.ko*}
		visit "$dn"
	done
	ORDER+=("$n")
}
for m in $COPY_MODULES; do visit "$m"; done
copy_order=("${ORDER[@]}")
seen=()
ORDER=()
for m in $LOAD_MODULES; do visit "$m"; done
load_order=("${ORDER[@]}")

root=$tmp/root
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/vccid-guest,proc,sys,dev,run,tmp,host,root}
for d in bin sbin lib lib64; do
	ln -s "usr/$d" "$root/$d"
done
mkdir -p "$root/lib/modules/$kver"
for n in "${copy_order[@]}"; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "${mpath[$n]}")"
	cp "$mdir/${mpath[$n]}" "$root/lib/modules/$kver/${mpath[$n]}"
done
cp "$mdir"/modules.order "$mdir"/modules.builtin "$root/lib/modules/$kver/"
"$BUSYBOX" depmod -b "$root" "$kver" || die "depmod of the image failed"
for n in "${load_order[@]}"; do
	echo "${mpath[$n]}"
done >"$root/etc/vccid-guest/modules.load"

# Host files at their own paths (symlinks resolved: the loader asks for the name).
echo "$files" | while read -r f; do
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
# busybox applets, where the image has no real program of that name.
"$BUSYBOX" --list-full | while read -r a; do
	[ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s "$BUSYBOX" "$root/$a"
done
[ -e "$root/bin/sh" ] || die "busybox gave no /bin/sh"

cp "$here/init" "$root/init"
chmod 0755 "$root/init"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
pcscd:x:101:
nogroup:x:65534:
EOF
echo vccid-guest >"$root/etc/hostname"
cat >"$root/etc/vccid-guest/info" <<EOF
KVER=$kver
KERNEL_DEB=$(basename "$deb")
EOF
# The console before devtmpfs is mounted (needs root; /init copes without it).
mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
mknod -m 0666 "$root/dev/null" c 1 3 2>/dev/null || true

# Same inputs, same bytes: fixed times and order, no name or time in the gzip header.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . | sort | cpio -o -H newc -R 0:0 --reproducible --quiet | gzip -6 -n) \
	>"$tmp/initrd.gz" ||
	die "cpio failed"
cp "$tmp/k/boot/vmlinuz-$kver" "$tmp/vmlinuz"
printf 'KVER=%s\nKERNEL_DEB=%s\n' "$kver" "$(basename "$deb")" >"$tmp/guest.env"
rm -f "$out/inputs.txt"
mv -f "$tmp/vmlinuz" "$tmp/initrd.gz" "$tmp/guest.env" "$out/"
echo "$new_inputs" >"$out/inputs.txt"
say "done: $out/vmlinuz ($kver), $out/initrd.gz ($(du -k "$out/initrd.gz" | cut -f1) KiB)"
