#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vpcd-apdus.py READER HEXAPDU...: sends the APDUs on one PC/SC connection and prints
the ATR, then one line per APDU: the answer in hex, or for GET CHALLENGE (random by
nature) only its length and SW, so two readers' outputs can be compared with diff."""

import sys

from smartcard.System import readers
from smartcard.util import toBytes, toHexString


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    matches = [r for r in readers() if str(r) == sys.argv[1]]
    if not matches:
        print("no reader %r in %s" % (sys.argv[1], [str(r) for r in readers()]),
              file=sys.stderr)
        return 1
    conn = matches[0].createConnection()
    conn.connect()
    print("ATR %s" % toHexString(conn.getATR()))
    for text in sys.argv[2:]:
        apdu = toBytes(text)
        data, sw1, sw2 = conn.transmit(apdu)
        if apdu[1] == 0x84:
            shown = "%d bytes" % len(data)
        else:
            shown = toHexString(data) or "-"
        print("%s -> %s %02X%02X" % (text, shown, sw1, sw2))
    conn.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
