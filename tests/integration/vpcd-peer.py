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
  conformance  (PORT READER: the slot under test, with timeout-ms 700; the next pair: a
             witness card a thread keeps busy; the flood goes to every PORT) power cycles
             and their control bytes, lying lengths, mid-frame disconnect, 0-length and
             1-byte answers, bytes after an answer, garbage for an ATR, a 0xFFFF-byte frame
             and a connection flood; after each, the witness answered throughout and none
             of its APDUs failed ($VPCD_CONFORMANCE: only these, by name)
  props      the reader of a vpcd card reports dwMaxAPDUDataSize 65526 (one frame) and
             takes a C-APDU of that size
Prints "ok - ..." / "not ok - ..." lines; exit 1 if a check failed."""

import os
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

    opened = []   # every card made, so a failed scenario can close what it left

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        Card.opened.append(self)
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


def echo(card, payload):
    card.send(payload + b"\x90\x00")


def serve_in_background(card, answer=echo, atrs=None):
    """Answers in a thread: GET ATR with ATR (or the next of ATRS, the last one repeated),
    an APDU with answer(card, payload) (None: not at all, a card that stalls). The 1-byte
    controls it gets are in card.controls, in order."""
    import threading

    card.powered = threading.Event()
    card.controls = []
    atrs = list(atrs or [ATR])

    def loop():
        try:
            while True:
                (n,) = struct.unpack(">H", card.recv_exact(2))
                payload = card.recv_exact(n)
                if len(payload) == 1:
                    card.controls.append(payload[0])
                if payload == b"\x04":
                    card.send(atrs.pop(0) if len(atrs) > 1 else atrs[0])
                    card.powered.set()   # pcscd's power up at insertion is done
                elif len(payload) > 1 and answer is not None:
                    answer(card, payload)
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
    serve_in_background(card, answer=None)
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


# ---------------------------------------------------------------- conformance

# Another valid T=1 ATR (the last historical byte and TCK differ), answered after a reset.
ATR2 = bytes.fromhex("3B951381018073FF01010A")
GET_DATA = [0x00, 0xCA, 0x01, 0x01, 0x00]


class Witness:
    """A card in another slot that a thread keeps busy with APDUs: each scenario checks it
    answered meanwhile, and that none of its APDUs failed."""

    def __init__(self, port, reader):
        import threading

        self.reader = reader
        self.card = Card(port)
        self.card.serve_one()
        serve_in_background(self.card)
        check(wait_state(reader, True), "witness: a card arrives in %r" % reader)
        self.conn = connect(reader)
        self.count = 0
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                data, sw1, sw2 = self.conn.transmit(GET_DATA)
                if (sw1, sw2) != (0x90, 0x00) or data != GET_DATA:
                    self.errors.append("answer %r %02X%02X" % (data, sw1, sw2))
                self.count += 1
            except Exception as e:   # pyscard raises on a failed transmit
                self.errors.append("%s: %s" % (type(e).__name__, e))
                time.sleep(0.05)
            time.sleep(0.002)

    def check(self, name, since):
        """The witness answered APDUs since SINCE (a count), none failed, and one more now."""
        time.sleep(0.05)
        check(self.count > since and not self.errors,
              "%s: the card in %r answered %d APDUs meanwhile, none failed"
              % (name, self.reader, self.count - since), self.errors[:3])
        self.errors.clear()

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.conn.disconnect()
        self.card.close()


def transmit_fails(conn, apdu, within_s, desc):
    """The transmit of APDU fails, within WITHIN_S seconds; returns the time it took."""
    t0 = time.monotonic()
    try:
        data, sw1, sw2 = conn.transmit(apdu)
        check(False, desc, "answered %d bytes %02X%02X" % (len(data), sw1, sw2))
    except Exception as e:   # pyscard raises on the failed transmit
        took = time.monotonic() - t0
        check(took < within_s, "%s (%.2f s, %s)" % (desc, took, type(e).__name__))
        return took
    return None


def inserted_card(port, reader, answer=echo, atrs=None):
    """A card on PORT, in its slot, powered up by pcscd; returns (card, connection)."""
    card = Card(port)
    card.first = card.serve_one()
    serve_in_background(card, answer, atrs)
    check(wait_state(reader, True), "the card arrives in %r" % reader)
    check(card.powered.wait(5), "pcscd powered it up")
    return card, connect(reader)


def closed_by_vccid(card, within_s=5):
    """vccid closed the card's connection within WITHIN_S seconds."""
    card.sock.settimeout(within_s)
    try:
        while card.sock.recv(4096):
            pass
        return True
    except OSError:
        return False


def conf_power(port, reader):
    card, conn = inserted_card(port, reader, atrs=[ATR, ATR2])
    check(card.first == b"\x04" and card.controls[:2] == [1, 4],
          "insertion: GET ATR, then pcscd's power up: 01 04 (%r, %s)"
          % (card.first, card.controls[:2]))
    del card.controls[:]
    from smartcard.scard import SCARD_LEAVE_CARD, SCARD_RESET_CARD, SCARD_UNPOWER_CARD

    conn.reconnect(disposition=SCARD_UNPOWER_CARD)
    check(card.controls == [0, 1, 4],
          "SCardReconnect(SCARD_UNPOWER_CARD): power off, power on, GET ATR: 00 01 04 (%s)"
          % card.controls)
    del card.controls[:]
    conn.reconnect(disposition=SCARD_RESET_CARD)
    check(card.controls == [2, 4], "SCardReconnect(SCARD_RESET_CARD): reset, GET ATR: 02 04 (%s)"
          % card.controls)
    check(bytes(conn.getATR()) == ATR2, "the ATR after the reset is the one the card gave then",
          toHexString(conn.getATR()))
    del card.controls[:]
    conn.reconnect(disposition=SCARD_LEAVE_CARD)
    check(card.controls == [], "SCardReconnect(SCARD_LEAVE_CARD): no control (%s)" % card.controls)
    data, sw1, sw2 = conn.transmit(GET_DATA)
    check((sw1, sw2) == (0x90, 0x00) and data == GET_DATA, "an APDU after the power cycles")
    conn.disconnect()
    card.close()
    check(wait_state(reader, False, 5000), "the card leaves when it disconnects")


def conf_dropped_on_answer(port, reader, answer, desc, within_s=2):
    """A card whose answer to an APDU is ANSWER: the transmit fails, the card leaves its
    slot, vccid closes the connection."""
    card, conn = inserted_card(port, reader, answer=answer)
    took = transmit_fails(conn, GET_DATA, within_s, desc + ": the transmit fails")
    check(wait_state(reader, False, 5000), desc + ": the card leaves its slot")
    if card.sock.fileno() != -1:   # the card did not close it itself
        check(closed_by_vccid(card), desc + ": vccid closed the connection")
    try:
        conn.disconnect()
    except Exception:
        pass
    card.close()
    return took


def lie_close(card, payload):
    card.sock.sendall(struct.pack(">H", 256) + payload)   # 256 bytes said, fewer sent
    card.close()


def lie_stall(card, payload):
    card.sock.sendall(struct.pack(">H", 256) + payload)   # 256 bytes said, the rest never


def mid_header(card, payload):
    card.sock.sendall(b"\x00")   # half a length
    card.close()


def zero_answer(card, payload):
    card.send(b"")


def one_byte(card, payload):
    card.send(b"\x90")


def trailing_garbage(card, payload):
    card.sock.sendall(struct.pack(">H", 2) + b"\x90\x00" + b"\xde\xad")


def conf_lie_close(port, reader):
    conf_dropped_on_answer(port, reader, lie_close, "a length over what came, then close")


def conf_lie_stall(port, reader):
    took = conf_dropped_on_answer(port, reader, lie_stall,
                                  "a length over what came, then a stall", 5)
    check(took is not None and took >= 0.5, "the stalled answer is waited for timeout-ms (%s s)"
          % (None if took is None else "%.2f" % took))


def conf_mid_frame(port, reader):
    conf_dropped_on_answer(port, reader, mid_header, "half a length header, then close")


def conf_zero(port, reader):
    conf_dropped_on_answer(port, reader, zero_answer, "a 0-length answer (card gone)")
    card = Card(port)
    card.serve_one()
    card.send(b"")   # an empty ATR: no card
    check(closed_by_vccid(card), "an empty ATR: vccid closes the connection")
    check(wait_state(reader, False, 500), "and the slot stays empty")
    card.close()


def conf_one_byte(port, reader):
    conf_dropped_on_answer(port, reader, one_byte, "a 1-byte answer (no SW1 SW2)")


def conf_trailing(port, reader):
    conf_dropped_on_answer(port, reader, trailing_garbage, "bytes after an answer")


def conf_bad_atr(port, reader):
    card = Card(port)
    card.serve_one()
    card.send(b"GARBAGE, NOT AN ATR")
    check(closed_by_vccid(card), "garbage for an ATR: vccid closes the connection")
    check(wait_state(reader, False, 500), "and the slot stays empty")
    card.close()


def conf_ffff(port, reader):
    def big(card, payload):
        if payload[:2] == b"\x00\xB0":
            card.send(bytes(range(256)) * 255 + bytes(253) + b"\x90\x00")   # 65535 bytes
        else:
            echo(card, payload)

    card, conn = inserted_card(port, reader, answer=big)
    data, sw1, sw2 = conn.transmit([0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00])
    want = list(bytes(range(256)) * 255 + bytes(253))
    check((sw1, sw2) == (0x90, 0x00) and data == want,
          "an answer in a 0xFFFF-byte frame: 65533 data bytes and 90 00 (%d)" % len(data))
    data, sw1, sw2 = conn.transmit(GET_DATA)
    check((sw1, sw2) == (0x90, 0x00), "an APDU after it")
    conn.disconnect()
    card.close()
    check(wait_state(reader, False, 5000), "the card leaves when it disconnects")


def conf_close_after_apdu(port, reader, trials=5):
    """A card that closes right after an answer (a removal): PC/SC sees it at once, not after
    the listener's quiet time after an exchange (50 ms). Median of TRIALS."""
    took = []
    for _ in range(trials):
        card, conn = inserted_card(port, reader)
        conn.transmit(GET_DATA)
        hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
        hr, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)])
        state = states[0][1] & ~0x2
        t0 = time.monotonic()
        card.close()
        hr, states = SCardGetStatusChange(ctx, 5000, [(reader, state)])
        took.append(time.monotonic() - t0)
        SCardReleaseContext(ctx)
        check(wait_state(reader, False, 5000), "the card leaves its slot")
        try:
            conn.disconnect()
        except Exception:
            pass
    took.sort()
    check(took[len(took) // 2] < 0.030, "closed right after an answer: removal seen in %.1f ms "
          "(median of %d, < 30 ms)" % (took[len(took) // 2] * 1000, trials),
          ["%.1f" % (t * 1000) for t in took])


def conf_flood(port, reader, ports, count=300, at_once=40):
    """COUNT connections to PORTS (AT_ONCE open at most): closed at once, garbage, half a
    frame, or held without an answer for 0.3 s; then a card on PORT works."""
    import selectors

    t0 = time.monotonic()
    open_socks = []
    made = refused = 0
    for i in range(count):
        if time.monotonic() - t0 > 60:
            break
        try:
            sock = socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=2)
        except OSError:
            refused += 1
            continue
        made += 1
        kind = i % 4
        try:
            if kind == 1:
                sock.sendall(b"\xff\xff" + b"\x5a" * 100)
            elif kind == 2:
                sock.sendall(b"\x00\x10\x3b")
        except OSError:
            pass
        if kind == 0:
            sock.close()
        else:
            open_socks.append((time.monotonic(), sock))
        # Each held connection stays 0.3 s; AT_ONCE of them at most.
        while open_socks and (len(open_socks) >= at_once or
                              time.monotonic() - open_socks[0][0] > 0.3):
            time.sleep(max(0.0, open_socks[0][0] + 0.3 - time.monotonic()))
            open_socks.pop(0)[1].close()
    for _, sock in open_socks:
        sock.close()
    check(made + refused == count and made > 0,
          "%d connections in %.1f s (%d refused by the kernel)" % (made, time.monotonic() - t0,
                                                                   refused))
    card = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # the port may still hold a flooder until it is seen
        card = Card(port)
        card.sock.settimeout(1)
        try:
            card.serve_one()
            break
        except (EOFError, OSError):
            card.close()
            card = None
            time.sleep(0.1)
    check(card is not None, "after the flood, a card on port %d is asked for its ATR" % port)
    if card is None:
        return
    serve_in_background(card)
    check(wait_state(reader, True), "and arrives in %r" % reader)
    conn = connect(reader)
    data, sw1, sw2 = conn.transmit(GET_DATA)
    check((sw1, sw2) == (0x90, 0x00) and data == GET_DATA, "and answers")
    conn.disconnect()
    card.close()
    check(wait_state(reader, False, 5000), "and leaves when it disconnects")


CONFORMANCE = ["power", "close_after_apdu", "lie_close", "lie_stall", "mid_frame", "zero", "one_byte", "trailing",
               "bad_atr", "ffff", "flood"]


def scenario_conformance(pairs, only=None):
    """PAIRS[0]: the slot under test (timeout-ms 700); PAIRS[1]: the witness; the flood
    goes to every port."""
    (port, reader), (wport, wreader) = pairs[0], pairs[1]
    witness = Witness(wport, wreader)
    for name in only or CONFORMANCE:
        print("# --- %s" % name, flush=True)
        since = witness.count
        t0 = time.monotonic()
        try:
            if name == "flood":
                conf_flood(port, reader, [p for p, _ in pairs])
            else:
                globals()["conf_" + name](port, reader)
        except Exception as e:
            check(False, "%s ran to its end" % name, "%s: %s" % (type(e).__name__, e))
        for card in Card.opened:
            if card is not witness.card:
                card.close()
        Card.opened = [witness.card]
        check(wait_state(reader, False, 5000), "%s: %r is empty at the end" % (name, reader))
        witness.check(name, since)
        print("# %s: %.2f s" % (name, time.monotonic() - t0), flush=True)
    witness.close()
    check(wait_state(wreader, False, 5000), "the witness leaves when it disconnects")


def main():
    if len(sys.argv) < 4 or len(sys.argv) % 2 != 0:
        print(__doc__, file=sys.stderr)
        return 2
    pairs = [(int(sys.argv[i]), sys.argv[i + 1]) for i in range(2, len(sys.argv), 2)]
    name = sys.argv[1]
    if name == "cards":
        scenario_cards(pairs)
    elif name == "conformance":
        scenario_conformance(pairs, os.environ.get("VPCD_CONFORMANCE", "").split() or None)
    elif name in ("garbage", "stall", "busy", "hold", "props"):
        globals()["scenario_" + name](*pairs[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
