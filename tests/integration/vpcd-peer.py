#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vpcd-peer.py SCENARIO PORT READER [PORT READER]...: a scripted vpcd card emulator that
connects to vccid's vpcd ports and checks from the PC/SC side (pyscard) what vccid makes of it.
Scenarios:
  cards      a card on every PORT: each arrives in its READER, answers an APDU (echo + 90 00)
             and an extended one, and leaves when its connection closes
  garbage    unsolicited bytes from an idle card: vccid drops it (READER empties)
  stall      a card that does not answer an APDU: the transmit fails after timeout-ms and
             the card leaves its slot
  busy       a second connection to a port whose card is connected is closed at once
  hold       a card on PORT that answers until this process ends
  props      the reader of a vpcd card reports dwMaxAPDUDataSize 65526 (one frame) and
             takes a C-APDU of that size
Prints "ok - ..." / "not ok - ..." lines; exit 1 if a check failed."""

import socket
import struct
import sys
import time

from smartcard.System import readers
from smartcard.scard import (SCARD_STATE_EMPTY, SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE,
                             SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCardEstablishContext,
                             SCardGetStatusChange, SCardReleaseContext)
from smartcard.util import toHexString

ATR = bytes.fromhex("3B951381018073FF01000B")
failures = 0


def check(cond, desc, detail=""):
    global failures
    if cond:
        print("ok - " + desc)
    else:
        failures += 1
        print("not ok - " + desc)
        if detail:
            print("#   " + str(detail))


class Card:
    """One vpcd card: answers GET ATR with ATR and APDUs with their bytes and 90 00."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("vccid closed the connection")
            data += chunk
        return data

    def send(self, payload):
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)

    def serve_one(self):
        """Answers one message; returns its payload."""
        (n,) = struct.unpack(">H", self.recv_exact(2))
        payload = self.recv_exact(n)
        if payload == b"\x04":
            self.send(ATR)
        elif len(payload) > 1:
            self.send(payload + b"\x90\x00")
        return payload

    def close(self):
        # Shut down first: a thread blocked in recv keeps a plain close from ending it.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def wait_state(reader, present, timeout_ms=10000):
    """Waits with SCardGetStatusChange until READER holds a card (or is empty)."""
    hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    deadline = time.monotonic() + timeout_ms / 1000
    state = SCARD_STATE_UNAWARE
    try:
        while time.monotonic() < deadline:
            hr, states = SCardGetStatusChange(ctx, 200, [(reader, state)])
            if hr == SCARD_S_SUCCESS:
                state = states[0][1] & ~0x2   # drop SCARD_STATE_CHANGED
                if bool(state & SCARD_STATE_PRESENT) == present and \
                        (present or state & SCARD_STATE_EMPTY):
                    return True
        return False
    finally:
        SCardReleaseContext(ctx)


def connect(reader):
    r = [x for x in readers() if str(x) == reader][0]
    conn = r.createConnection()
    conn.connect()
    return conn


def serve_in_background(card, answer_apdus=True):
    """Answers in a thread; without answer_apdus, only the controls (a card that stalls)."""
    import threading

    card.powered = threading.Event()

    def loop():
        try:
            while True:
                (n,) = struct.unpack(">H", card.recv_exact(2))
                payload = card.recv_exact(n)
                if payload == b"\x04":
                    card.send(ATR)
                    card.powered.set()   # pcscd's power up at insertion is done
                elif len(payload) > 1 and answer_apdus:
                    card.send(payload + b"\x90\x00")
        except (EOFError, OSError):
            pass
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def scenario_cards(pairs):
    cards = []
    for port, reader in pairs:
        card = Card(port)
        check(card.serve_one() == b"\x04", "port %d: vccid asks for the ATR first" % port)
        serve_in_background(card)
        cards.append(card)
        check(wait_state(reader, True), "port %d: the card arrives in %r" % (port, reader))
    for (port, reader), card in zip(pairs, cards):
        conn = connect(reader)
        check(bytes(conn.getATR()) == ATR, "%r: the card's ATR" % reader,
              toHexString(conn.getATR()))
        data, sw1, sw2 = conn.transmit([0x00, 0xCA, 0x01, 0x01, 0x00])
        check((sw1, sw2) == (0x90, 0x00) and data == [0x00, 0xCA, 0x01, 0x01, 0x00],
              "%r: an APDU and its answer" % reader, (data, sw1, sw2))
        ext = [0x00, 0xD6, 0x00, 0x00, 0x00, 0x03, 0xE8] + [0x5A] * 1000
        data, sw1, sw2 = conn.transmit(ext)
        check((sw1, sw2) == (0x90, 0x00) and data == ext,
              "%r: an extended APDU of 1000 data bytes" % reader, (len(data), sw1, sw2))
        conn.disconnect()
    for (port, reader), card in zip(pairs, cards):
        card.close()
        check(wait_state(reader, False, 5000), "%r: empty once the card disconnects" % reader)


def scenario_garbage(port, reader):
    card = Card(port)
    card.serve_one()
    thread = serve_in_background(card)
    check(wait_state(reader, True), "the card arrives")
    # pcscd powers a card up on insertion (01, then GET ATR): then the card is idle.
    check(card.powered.wait(5), "pcscd powered it up")
    card.sock.sendall(b"\x00\x02\x90\x00")
    check(wait_state(reader, False, 5000), "unsolicited bytes: the card leaves its slot")
    thread.join(5)
    check(not thread.is_alive(), "and vccid closed the connection")
    card.close()


def scenario_stall(port, reader):
    card = Card(port)
    card.serve_one()
    serve_in_background(card, answer_apdus=False)
    check(wait_state(reader, True), "the card arrives")
    conn = connect(reader)
    t0 = time.monotonic()
    try:
        conn.transmit([0x00, 0xCA, 0x01, 0x01, 0x00])
        check(False, "a transmit the card never answers fails")
    except Exception as e:   # pyscard raises on the failed transmit
        check(True, "a transmit the card never answers fails after %.1f s (%s)"
              % (time.monotonic() - t0, type(e).__name__))
    check(wait_state(reader, False, 5000), "and the stalled card leaves its slot")
    card.close()


def scenario_busy(port, reader):
    card = Card(port)
    card.serve_one()
    serve_in_background(card)
    check(wait_state(reader, True), "the first card arrives")
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        got = second.recv(16)
        check(got == b"", "a second connection to the port is closed at once", got)
    except OSError as e:
        check(True, "a second connection to the port is closed at once (%s)" % e)
    second.close()
    check(wait_state(reader, True, 1000), "the first card stays")
    card.close()
    check(wait_state(reader, False, 5000), "and leaves when it disconnects")


def scenario_props(port, reader):
    from smartcard.pcsc.PCSCPart10 import getTlvProperties

    card = Card(port)
    card.serve_one()
    serve_in_background(card)
    check(wait_state(reader, True), "the card arrives")
    conn = connect(reader)
    props = getTlvProperties(conn)
    size = props.get("PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize")
    check(size == 65526, "dwMaxAPDUDataSize is 65526 (65535 less header, Lc and Le)", props)
    apdu = [0x00, 0xD6, 0x00, 0x00, 0x00, 0xFF, 0xF6] + [0xA5] * 65526
    data, sw1, sw2 = conn.transmit(apdu)
    check((sw1, sw2) == (0x90, 0x00) and len(data) == len(apdu),
          "a C-APDU with 65526 data bytes goes through", (len(data), sw1, sw2))
    conn.disconnect()
    card.close()
    check(wait_state(reader, False, 5000), "and the card leaves when it disconnects")


def scenario_hold(port, reader):
    card = Card(port)
    card.serve_one()
    serve_in_background(card).join(600)


def main():
    if len(sys.argv) < 4 or len(sys.argv) % 2 != 0:
        print(__doc__, file=sys.stderr)
        return 2
    pairs = [(int(sys.argv[i]), sys.argv[i + 1]) for i in range(2, len(sys.argv), 2)]
    name = sys.argv[1]
    if name == "cards":
        scenario_cards(pairs)
    elif name in ("garbage", "stall", "busy", "hold", "props"):
        globals()["scenario_" + name](*pairs[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
