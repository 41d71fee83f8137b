# SPDX-License-Identifier: LGPL-2.1-or-later
# opensc-cac.sh: sourced by a test's guest-cmd.sh in the test guest (busybox sh, cwd /host):
# waits for a USB CCID interface, starts the stock pcscd (PCSCD), and has OpenSC use the
# CAC card: reader listed, card named, objects listed, and the key whose certificate equals
# /host/alice-sign.der signs /host/data into /host/data.sig with the PIN in /host/pin.
# Lines "RESULT key=value" are for the host (lib.sh vccid_check_guest_cac reads them).
# Defines up() and log(); READER is the PC/SC reader's name. Leaves pcscd running; opensc_cac_stop stops it and copies its log
# to /host/pcscd.log.

up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "guest[$(up)]: $*"; }

# With no udevd, pcscd only finds the USB readers present at its start.
i=0
while [ $i -lt 200 ] && ! grep -qx 0b /sys/bus/usb/devices/*/bInterfaceClass 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
grep -qx 0b /sys/bus/usb/devices/*/bInterfaceClass 2>/dev/null || { log "no CCID interface on USB"; exit 10; }
echo "RESULT usb_device_s=$(up)"
for d in /sys/bus/usb/devices/*; do
	[ "$(cat "$d/bInterfaceClass" 2>/dev/null)" = 0b ] || continue
	d=${d%:*}
	echo "RESULT ccid_usb=$(basename "$d") $(cat "$d/idVendor"):$(cat "$d/idProduct") $(cat "$d/product" 2>/dev/null)"
	echo "RESULT ccid_descriptors=$(xxd -p "$d/descriptors" | tr -d '\n')"
done

pcscd -f -d >/tmp/pcscd.log 2>&1 &
PCSCD=$!
i=0
while [ $i -lt 300 ] && ! opensc-tool -l 2>/dev/null | grep -q '^[0-9]'; do
	sleep 0.1
	i=$((i + 1))
done
echo "RESULT reader_s=$(up)"
echo "=== opensc-tool -l"
opensc-tool -l
echo "RESULT list_rc=$?"
READER=$(opensc-tool -l 2>/dev/null | sed -nE 's/^[0-9]+ +(Yes|No) +(PIN pad +)?//p' | head -n 1)
echo "RESULT reader=$READER"
# The card may be a moment behind the reader.
i=0
while [ $i -lt 100 ] && ! opensc-tool -l 2>/dev/null | grep -q '^[0-9]* *Yes'; do
	sleep 0.1
	i=$((i + 1))
done
echo "=== opensc-tool -a"
opensc-tool -a
echo "=== opensc-tool -n"
opensc-tool -n >/tmp/name 2>&1
echo "RESULT name_rc=$?"
cat /tmp/name
echo "RESULT card_name=$(tail -n 1 /tmp/name)"

echo "=== pkcs11-tool -O"
pkcs11-tool -O >/tmp/objects 2>&1
echo "RESULT objects_rc=$?"
cat /tmp/objects
SIGN_ID=
for id in $(awk '/^Certificate Object/ { c = 1; next } /^[^ \t]/ { c = 0 } c && $1 == "ID:" { print $2 }' /tmp/objects); do
	pkcs11-tool --read-object --type cert --id "$id" -o /tmp/cert.der >/dev/null 2>&1 || continue
	if cmp -s /tmp/cert.der /host/alice-sign.der; then
		SIGN_ID=$id
		break
	fi
done
echo "RESULT sign_id=$SIGN_ID"
if [ -n "$SIGN_ID" ]; then
	s0=$(up)
	pkcs11-tool --login --pin "$(cat /host/pin)" --sign --id "$SIGN_ID" -m SHA256-RSA-PKCS \
		-i /host/data -o /host/data.sig
	echo "RESULT sign_rc=$?"
	echo "RESULT sign_s=$(awk -v a="$s0" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }')"
fi

opensc_cac_stop() {
	kill $PCSCD 2>/dev/null
	i=0
	while [ $i -lt 50 ] && kill -0 $PCSCD 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	cp /tmp/pcscd.log /host/pcscd.log
}
