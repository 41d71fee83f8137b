#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vscard-peer.py: a scripted VSCard client (libcacard's vscard_common.h wire format) and
conformance scenarios against vccid's listener inside a running pcscd.

Standard library only for the VSCard side; the PC/SC side of the scenarios uses pyscard
(smartcard.scard), so one process drives both ends and compares bytes directly.

    vscard-peer.py free-port
    vscard-peer.py hold ADDR NAME
    vscard-peer.py tls-probe ADDR DIR     (DIR: client credentials in QEMU's x509 layout)
    vscard-peer.py plain-probe ADDR
    vscard-peer.py [--addr 127.0.0.1:PORT] [--prefix "vccid 00"] [--slots N]
                   [--timeout-ms MS] [--handshake-ms MS] [--log PCSCD_LOG] SCENARIO...

Every scenario prints "ok - ..." / "not ok - ..." lines and leaves every slot empty;
the exit status is 1 if a check failed, 2 on usage errors.
"""

import argparse
import os
import queue
import random
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

# ---------------------------------------------------------------- wire format

INIT, ERROR, READER_ADD, READER_REMOVE, ATR, CARD_REMOVE, APDU, FLUSH, FLUSH_COMPLETE = range(1, 10)
TYPE_NAMES = {INIT: "Init", ERROR: "Error", READER_ADD: "ReaderAdd", READER_REMOVE: "ReaderRemove",
              ATR: "ATR", CARD_REMOVE: "CardRemove", APDU: "APDU", FLUSH: "Flush",
              FLUSH_COMPLETE: "FlushComplete"}
SUCCESS, GENERAL_ERROR, CANNOT_ADD_MORE_READERS, CARD_ALREADY_INSERTED = range(4)
UNDEFINED_ID = 0xFFFFFFFF
MAGIC = b"VSCD"
VERSION = 2
CAP_EXTENDED = 0x00010000
HEADER = struct.Struct(">III")
CAC_ATR = bytes.fromhex("3B 7A 18 00 00 73 66 74 65 20 63 64 31 34 34")


def header(mtype, rid, length):
    return HEADER.pack(mtype, rid, length)


def message(mtype, rid, payload=b""):
    return header(mtype, rid, len(payload)) + payload


def init_message(caps=(0,), rid=0, magic=MAGIC, version=VERSION):
    payload = magic + struct.pack(">I", version) + b"".join(struct.pack(">I", c) for c in caps)
    return message(INIT, rid, payload)


def error_payload(code):
    return struct.pack(">I", code)


class Msg:
    """One received message: type, reader id, payload and the raw bytes as they came."""

    def __init__(self, mtype, rid, payload, raw):
        self.type, self.rid, self.payload, self.raw = mtype, rid, payload, raw

    @property
    def code(self):
        return struct.unpack(">I", self.payload)[0] if len(self.payload) == 4 else None

    def __repr__(self):
        return "%s(id=%08X, %d bytes: %s)" % (TYPE_NAMES.get(self.type, "type %d" % self.type),
                                             self.rid, len(self.payload),
                                             self.payload[:16].hex())


class Closed(Exception):
    pass


class Peer:
    """A VSCard client connection. A reader thread queues every message; APDUs are
    answered by `handler(rid, apdu)` when one is set: it returns the response bytes,
    None (no answer), or the string "error" (an Error message instead)."""

    def __init__(self, addr, handler=None, nodelay=True, connect_timeout=5.0):
        if addr.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(connect_timeout)
            self.sock.connect(addr[5:])
            self.local = "unix"
        else:
            host, port = addr.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=connect_timeout)
            if nodelay:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.local = "%s:%d" % self.sock.getsockname()[:2]
        self.sock.settimeout(None)
        self.handler = handler
        self.apdus = []               # (rid, bytes) of every APDU received
        self.queue = queue.Queue()
        self.eof = threading.Event()
        self.eof_time = None
        self.write_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read_loop, daemon=True)
        self.thread.start()

    # -- reading
    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed()
            buf += chunk
        return buf

    def _read_loop(self):
        try:
            while True:
                raw = self._recv_exact(HEADER.size)
                mtype, rid, length = HEADER.unpack(raw)
                payload = self._recv_exact(length) if length else b""
                msg = Msg(mtype, rid, payload, raw + payload)
                if mtype == APDU:
                    self.apdus.append((rid, payload))
                    if self.handler is not None:
                        answer = self.handler(rid, payload)
                        if answer == "error":
                            self.send(ERROR, rid, struct.pack("=I", GENERAL_ERROR))
                        elif answer is not None:
                            self.send(APDU, rid, answer)
                        continue
                self.queue.put(msg)
        except (Closed, OSError):
            pass
        self.eof_time = time.monotonic()
        self.eof.set()

    def recv(self, timeout=5.0):
        """The next queued message; raises Closed on EOF, queue.Empty on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return self.queue.get(timeout=max(0.0, min(left, 0.05)))
            except queue.Empty:
                if self.eof.is_set() and self.queue.empty():
                    raise Closed()
                if left <= 0:
                    raise

    def wait_closed(self, timeout):
        """True if the host closes the connection within timeout seconds."""
        return self.eof.wait(timeout)

    # -- writing
    def send_raw(self, data):
        with self.write_lock:
            self.sock.sendall(data)

    def send(self, mtype, rid, payload=b""):
        self.send_raw(message(mtype, rid, payload))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.eof.wait(2)

    # -- the usual exchanges
    def handshake(self, caps=(0,)):
        self.send_raw(init_message(caps))
        return self.recv()

    def request(self, mtype, rid, payload=b""):
        """Sends a message the host answers with one Error; returns that answer."""
        self.send(mtype, rid, payload)
        return self.recv()

    def add_reader(self, name=b""):
        return self.request(READER_ADD, 0, name)

    def insert(self, rid, atr=CAC_ATR):
        return self.request(ATR, rid, atr)


def answer_ok(rid, apdu):
    return b"\x90\x00"


class TlsPeer:
    """A VSCard client over TLS (python's ssl module) driven from one thread: no reader
    thread, as one OpenSSL connection must not be read and written by two threads at once.
    DIR holds ca-cert.pem and, optionally, client-cert.pem + client-key.pem (QEMU's layout).
    Each send_records() part goes out as TLS records of its own."""

    def __init__(self, addr, tls_dir, server_name="localhost", timeout=5.0):
        host, port = addr.rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(os.path.join(tls_dir, "ca-cert.pem"))
        cert = os.path.join(tls_dir, "client-cert.pem")
        if os.path.exists(cert):
            ctx.load_cert_chain(cert, os.path.join(tls_dir, "client-key.pem"))
        raw = socket.create_connection((host, int(port)), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local = "%s:%d" % raw.getsockname()[:2]
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
        except (ssl.SSLError, OSError):
            raw.close()
            raise
        self.buf = b""
        self.apdus = []

    def send_records(self, *parts):
        for part in parts:
            self.sock.sendall(part)

    def send(self, mtype, rid, payload=b""):
        self.send_records(message(mtype, rid, payload))

    def recv(self, timeout=5.0):
        """The next message; raises Closed on EOF, queue.Empty on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= HEADER.size:
                mtype, rid, length = HEADER.unpack(self.buf[:HEADER.size])
                if len(self.buf) >= HEADER.size + length:
                    raw = self.buf[:HEADER.size + length]
                    self.buf = self.buf[HEADER.size + length:]
                    if mtype == APDU:
                        self.apdus.append((rid, raw[HEADER.size:]))
                    return Msg(mtype, rid, raw[HEADER.size:], raw)
            left = deadline - time.monotonic()
            if left <= 0:
                raise queue.Empty()
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise queue.Empty()
            except (ssl.SSLError, ConnectionError):
                raise Closed()
            if not chunk:
                raise Closed()
            self.buf += chunk

    def request(self, mtype, rid, payload=b""):
        self.send(mtype, rid, payload)
        return self.recv()

    def handshake(self, caps=(0,)):
        self.send_records(init_message(caps))
        return self.recv()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def probe(make_peer):
    """Connects, sends Init; prints "accepted" when the host answers with Init, else
    "refused: WHY". Exit status 0 or 1."""
    try:
        p = make_peer()
    except (ssl.SSLError, OSError) as e:
        print("refused: handshake: %s" % e)
        return 1
    try:
        m = p.handshake()
        ok = m.type == INIT
        print("accepted" if ok else "refused: answered %r" % m)
        return 0 if ok else 1
    except (Closed, queue.Empty, OSError) as e:
        print("refused: %s" % (type(e).__name__))
        return 1
    finally:
        p.close()


# ---------------------------------------------------------------- PC/SC side

from smartcard import scard as S  # noqa: E402  (pyscard; only the scenarios need it)


class PCSC:
    def __init__(self):
        hr, self.ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
        if hr != S.SCARD_S_SUCCESS:
            raise RuntimeError("SCardEstablishContext: " + S.SCardGetErrorMessage(hr))

    def readers(self):
        hr, readers = S.SCardListReaders(self.ctx, [])
        return hr, readers

    def state(self, reader):
        hr, states = S.SCardGetStatusChange(self.ctx, 0, [(reader, S.SCARD_STATE_UNAWARE)])
        if hr != S.SCARD_S_SUCCESS:
            return None
        return states[0][1]

    def present(self, reader):
        st = self.state(reader)
        return st is not None and bool(st & S.SCARD_STATE_PRESENT)

    def wait(self, reader, present, timeout):
        """Waits (SCardGetStatusChange) until reader holds a card or is empty; True if so."""
        deadline = time.monotonic() + timeout
        cur = S.SCARD_STATE_UNAWARE
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            hr, states = S.SCardGetStatusChange(self.ctx, max(left, 0), [(reader, cur)])
            if hr == S.SCARD_S_SUCCESS:
                cur = states[0][1] & ~S.SCARD_STATE_CHANGED
                if bool(cur & S.SCARD_STATE_PRESENT) == present and not (
                        cur & S.SCARD_STATE_UNKNOWN):
                    return True
            if left <= 0 or hr not in (S.SCARD_S_SUCCESS, S.SCARD_E_TIMEOUT):
                return False

    def transmit(self, reader, apdu):
        """Connects, sends one APDU, disconnects. Returns (hresult, response bytes, seconds)."""
        start = time.monotonic()
        hr, card, proto = S.SCardConnect(self.ctx, reader, S.SCARD_SHARE_SHARED,
                                         S.SCARD_PROTOCOL_T0 | S.SCARD_PROTOCOL_T1)
        if hr != S.SCARD_S_SUCCESS:
            return hr, b"", time.monotonic() - start
        pci = S.SCARD_PCI_T0 if proto == S.SCARD_PROTOCOL_T0 else S.SCARD_PCI_T1
        t0 = time.monotonic()
        hr, rsp = S.SCardTransmit(card, pci, list(apdu))
        elapsed = time.monotonic() - t0
        S.SCardDisconnect(card, S.SCARD_LEAVE_CARD)
        return hr, bytes(rsp) if hr == S.SCARD_S_SUCCESS else b"", elapsed


def hrs(hr):
    return "0x%08X %s" % (hr & 0xFFFFFFFF, S.SCardGetErrorMessage(hr).strip())


def transmit_in_thread(reader, apdu):
    """Runs PCSC().transmit in a thread (own context); returns (thread, result list)."""
    result = []

    def run():
        result.append(PCSC().transmit(reader, apdu))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


# ---------------------------------------------------------------- scenarios

class Ctx:
    def __init__(self, args):
        self.addr = args.addr
        self.prefix = args.prefix
        self.slots = args.slots
        self.timeout = args.timeout_ms / 1000.0
        self.handshake = args.handshake_ms / 1000.0
        self.log = args.log
        self.ctl = args.ctl
        self.tls = getattr(args, "tls", None)
        self.failures = 0
        self.scenario = ""
        self.pcsc = PCSC()
        self.peers = []

    def reader(self, slot):
        return "%s %02X" % (self.prefix, slot)

    def check(self, desc, cond, *details):
        if cond:
            print("ok - %s: %s" % (self.scenario, desc))
        else:
            print("not ok - %s: %s" % (self.scenario, desc))
            for d in details:
                for line in str(d).splitlines():
                    print("#   " + line)
            self.failures += 1
        sys.stdout.flush()
        return bool(cond)

    def peer(self, *a, **kw):
        p = Peer(self.addr, *a, **kw)
        self.peers.append(p)
        return p

    def ready_peer(self, name, handler=answer_ok, caps=(0,), atr=CAC_ATR):
        """Handshake, ReaderAdd, ATR; returns (peer, rid) or (None, None) on failure."""
        p = self.peer(handler=handler)
        init = p.handshake(caps)
        ok = init.type == INIT
        add = p.add_reader(name)
        ok = ok and add.type == ERROR and add.code == SUCCESS
        ins = p.insert(add.rid, atr) if ok else None
        ok = ok and ins.type == ERROR and ins.code == SUCCESS
        if not self.check("client '%s' is connected with a card in" % name.decode(), ok, init,
                          add, ins):
            return None, None
        return p, add.rid

    def slot_of(self, remote_name):
        """The slot whose vccid-ctl status says remote=NAME, or None."""
        for s in range(self.slots):
            st = self.ctl_status(self.reader(s))
            if st.get("remote") == remote_name:
                return s
        return None

    def ctl_status(self, reader):
        try:
            out = subprocess.run([self.ctl, "status", reader], capture_output=True, text=True,
                                 timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return {"error": str(e)}
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def log_has(self, pattern, timeout=2.0):
        """True if pcscd's log gets a line matching the regex within timeout seconds."""
        if not self.log:
            return True
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.log, errors="replace") as f:
                    if any(rx.search(line) for line in f):
                        return True
            except OSError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def finish(self):
        """Closes this scenario's peers; every slot must be empty again."""
        for p in self.peers:
            p.close()
        self.peers = []
        busy = [self.reader(s) for s in range(self.slots)
                if not self.pcsc.wait(self.reader(s), False, 3)]
        self.check("all slots empty after the scenario", not busy, "still present: %s" % busy)


def wait_apdu(peer, n, timeout):
    deadline = time.monotonic() + timeout
    while len(peer.apdus) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(peer.apdus) >= n


def sc_handshake(c):
    """vscclient's handshake, byte for byte."""
    p = c.peer()
    p.send_raw(bytes.fromhex("00000001 00000000 0000000C 56534344 00000002 00000000"
                             .replace(" ", "")))
    m = p.recv()
    c.check("host answers Init with 00000001 FFFFFFFF 0000000C 56534344 00000002 + caps",
            m.raw[:20] == bytes.fromhex("00000001FFFFFFFF0000000C5653434400000002"), m.raw.hex())
    c.check("host capabilities word is 00010000 (vccid extended APDUs)",
            m.raw[20:] == bytes.fromhex("00010000"), m.raw.hex())
    p.send_raw(bytes.fromhex("00000004 00000000 00000000".replace(" ", "")))
    m = p.recv()
    c.check("ReaderRemove(0) answered 00000002 00000000 00000004 00000000",
            m.raw == bytes.fromhex("00000002000000000000000400000000"), m.raw.hex())
    p.send_raw(bytes.fromhex("00000003 00000000 00000000".replace(" ", "")))
    m = p.recv()
    c.check("ReaderAdd with an empty name answered with id 0 and code 0 (00000002 00000000 "
            "00000004 00000000)", m.raw == bytes.fromhex("00000002000000000000000400000000"),
            m.raw.hex())
    st = c.ctl_status(c.reader(0))
    c.check("vccid-ctl status shows the unnamed remote reader in slot 0 (remote=(unnamed))",
            st.get("remote") == "(unnamed)" and st.get("peer") == p.local, st)
    p.send_raw(bytes.fromhex("00000005 00000000 0000000F") + CAC_ATR)
    m = p.recv()
    c.check("ATR of the CAC answered 00000002 00000000 00000004 00000000",
            m.raw == bytes.fromhex("00000002000000000000000400000000"), m.raw.hex())
    c.check("PC/SC sees a card in %r" % c.reader(0), c.pcsc.wait(c.reader(0), True, 3))
    st = c.pcsc.state(c.reader(0))
    hr, states = S.SCardGetStatusChange(c.pcsc.ctx, 0, [(c.reader(0), S.SCARD_STATE_UNAWARE)])
    atr = bytes(states[0][2]) if hr == S.SCARD_S_SUCCESS else b""
    c.check("PC/SC reports the CAC ATR", atr == CAC_ATR, atr.hex())
    c.finish()


def sc_apdu(c):
    """A PC/SC client's APDU reaches the client, whose answer reaches the PC/SC client."""
    answers = {bytes.fromhex("00A4040002 3F00".replace(" ", "")): b"\x6A\x82"}
    p, rid = c.ready_peer(b"apdu", handler=lambda r, a: answers.get(a, b"\x01\x02\x90\x00"))
    if p is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00A40400023F00"))
    c.check("SELECT 3F00 answered 6A 82 by the client (%.1f ms)" % (t * 1000),
            hr == S.SCARD_S_SUCCESS and rsp == b"\x6A\x82", hrs(hr), rsp.hex())
    c.check("the client got the APDU byte for byte with its reader id",
            p.apdus[-1:] == [(rid, bytes.fromhex("00A40400023F00"))], p.apdus)
    hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00CA010002"))
    c.check("GET DATA answered 01 02 90 00", rsp == b"\x01\x02\x90\x00", hrs(hr), rsp.hex())
    # opensc-tool as an independent PC/SC client.
    try:
        out = subprocess.run(["opensc-tool", "-r", R, "-s", "00 A4 04 00 02 3F 00"],
                             capture_output=True, text=True, timeout=30)
        txt = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        txt = str(e)
    c.check("opensc-tool -s gets the client's 6A 82", re.search(r"SW1=0x6a, SW2=0x82", txt, re.I),
            txt)
    # Flush is answered by FlushComplete.
    m = p.request(FLUSH, rid)
    c.check("Flush answered FlushComplete", m.type == FLUSH_COMPLETE and m.rid == rid and
            m.payload == b"", m)
    # Message answers of the state machine.
    m = p.request(READER_REMOVE, 7)
    c.check("ReaderRemove of an unknown id answered Error 0", m.type == ERROR and m.code == 0, m)
    m = p.insert(rid)
    c.check("a second ATR answered Error 3 (already inserted)", m.type == ERROR and
            m.code == CARD_ALREADY_INSERTED and m.rid == rid, m)
    m = p.insert(9)
    c.check("ATR for an unknown reader answered Error 1", m.type == ERROR and m.code == 1, m)
    m = p.request(CARD_REMOVE, 9)
    c.check("CardRemove for an unknown reader answered Error 1", m.type == ERROR and
            m.code == 1, m)
    m = p.request(CARD_REMOVE, rid)
    c.check("CardRemove answered Error 0", m.type == ERROR and m.code == 0, m)
    c.check("PC/SC sees the card removed", c.pcsc.wait(R, False, 3))
    m = p.insert(rid, b"\x00\x11\x22")
    c.check("an invalid ATR answered Error 1", m.type == ERROR and m.code == 1, m)
    c.check("the reader stays empty", not c.pcsc.present(R))
    m = p.insert(rid)
    c.check("the card goes in again (Error 0)", m.type == ERROR and m.code == 0, m)
    c.check("PC/SC sees it again", c.pcsc.wait(R, True, 3))
    hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00A40400023F00"))
    c.check("it answers again", rsp == b"\x6A\x82", hrs(hr), rsp.hex())
    m = p.request(READER_REMOVE, rid)
    c.check("ReaderRemove answered Error 0", m.type == ERROR and m.code == 0, m)
    c.check("PC/SC sees the card of the removed reader go", c.pcsc.wait(R, False, 3))
    st = c.ctl_status(R)
    c.check("the slot is no longer bound (remote=-)", st.get("remote") == "-", st)
    c.finish()


def sc_multi_reader(c):
    """Three readers on one connection: ids 0, 1, 2 in distinct slots, APDUs routed by id."""
    p = c.peer(handler=lambda r, a: bytes([r]) + b"\x90\x00")
    p.handshake()
    ids = []
    for i in range(3):
        m = p.add_reader(b"multi%d" % i)
        ids.append(m.rid if m.type == ERROR and m.code == 0 else None)
        p.insert(m.rid)
    c.check("ReaderAdd x3 gives ids 0, 1, 2", ids == [0, 1, 2], ids)
    slots = [c.slot_of("multi%d" % i) for i in range(3)]
    c.check("the three readers are in three distinct slots (%s)" % slots,
            None not in slots and len(set(slots)) == 3)
    for i, s in enumerate(slots):
        if s is None:
            continue
        c.pcsc.wait(c.reader(s), True, 3)
        hr, rsp, t = c.pcsc.transmit(c.reader(s), bytes.fromhex("00B0000004"))
        c.check("an APDU to %r reaches reader id %d" % (c.reader(s), i),
                rsp == bytes([i]) + b"\x90\x00", hrs(hr), rsp.hex())
    m = p.request(CARD_REMOVE, 1)
    c.check("CardRemove of id 1 empties only its slot", m.code == 0 and slots[1] is not None and
            c.pcsc.wait(c.reader(slots[1]), False, 3) and c.pcsc.present(c.reader(slots[0]))
            and c.pcsc.present(c.reader(slots[2])))
    c.finish()


def parallel_rounds(c, names, what, want, desc, rounds=5):
    """Checks that the remote readers NAMES are in distinct slots, then sends an APDU to
    all of them at once ROUNDS times, each expecting its WANT answer. Returns the slots,
    or None when they are not distinct."""
    slots = [c.slot_of(n) for n in names]
    if not c.check("%s in %d distinct slots (%s)" % (what, len(names), slots),
                   None not in slots and len(set(slots)) == len(names)):
        return None
    for s in slots:
        c.pcsc.wait(c.reader(s), True, 3)
    for rnd in range(rounds):
        runs = [transmit_in_thread(c.reader(s), bytes.fromhex("00B0000004")) for s in slots]
        for t, _ in runs:
            t.join(max(10, c.timeout * 2))
        got = [res[0][1] if res else None for _, res in runs]
        if not c.check("round %d: %s" % (rnd, desc), got == want,
                       [g.hex() if g else g for g in got]):
            break
    return slots


def sc_multi_client(c):
    """Several clients at once, APDUs in parallel."""
    peers = []
    for i in range(3):
        p, rid = c.ready_peer(b"client%d" % i, handler=lambda r, a, i=i: bytes([0xC0 + i, 0x90, 0x00]))
        peers.append(p)
    slots = parallel_rounds(c, ["client%d" % i for i in range(3)], "three clients",
                            [bytes([0xC0 + i, 0x90, 0x00]) for i in range(3)],
                            "each PC/SC client gets its own client's answer")
    if slots is None:
        return c.finish()
    peers[1].close()
    c.check("closing one client empties only its slot",
            c.pcsc.wait(c.reader(slots[1]), False, 3) and c.pcsc.present(c.reader(slots[0]))
            and c.pcsc.present(c.reader(slots[2])))
    c.finish()


def sc_exhaustion(c):
    """More readers than free slots: Error 2 with id FFFFFFFF."""
    p = c.peer()
    p.handshake()
    codes = [p.add_reader(b"fill%d" % i) for i in range(c.slots)]
    c.check("%d ReaderAdds fill the %d slots" % (c.slots, c.slots),
            all(m.type == ERROR and m.code == 0 for m in codes), codes)
    m = p.add_reader(b"onetoomany")
    c.check("one more ReaderAdd answered 00000002 FFFFFFFF 00000004 00000002",
            m.raw == bytes.fromhex("00000002FFFFFFFF0000000400000002"), m.raw.hex())
    q = c.peer()
    q.handshake()
    m = q.add_reader(b"other")
    c.check("another connection is refused the same way", m.raw == bytes.fromhex(
        "00000002FFFFFFFF0000000400000002"), m.raw.hex())
    c.check("a refused ReaderAdd does not close the connection",
            q.request(FLUSH, 0).type == FLUSH_COMPLETE)
    m = p.request(READER_REMOVE, 2)
    m2 = q.add_reader(b"other")
    c.check("after a ReaderRemove the freed slot is taken (id 0, code 0)",
            m.code == 0 and m2.type == ERROR and m2.code == 0 and m2.rid == 0, m, m2)
    c.check("log names the refusal", c.log_has(r"VSCard peer %s: ReaderAdd refused: no free slot"
                                               % re.escape(p.local)))
    c.finish()


def sc_disconnect(c, limit=0.6):
    """The client closes while an APDU is pending: the transmit fails at once, card gone."""
    p, rid = c.ready_peer(b"leaver", handler=lambda r, a: None)
    if p is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    t, res = transmit_in_thread(R, bytes.fromhex("00B0000004"))
    got = wait_apdu(p, 1, 3)
    c.check("the APDU reached the client", got)
    t0 = time.monotonic()
    p.close()
    t.join(10)
    dt = time.monotonic() - t0
    hr = res[0][0] if res else None
    c.check("the pending transmit fails (%s) %.0f ms after the disconnect (< %.0f ms)"
            % (hrs(hr) if hr is not None else "-", dt * 1000, limit * 1000),
            hr is not None and hr != S.SCARD_S_SUCCESS and dt < limit)
    c.check("PC/SC sees the card removed", c.pcsc.wait(R, False, 2))
    c.check("log says the peer closed", c.log_has(r"VSCard peer %s closed \(end of stream\)"
                                                  % re.escape(p.local)))
    c.finish()


def sc_stall(c):
    """A client that never answers an APDU, and one stalled in the middle of a message."""
    p, rid = c.ready_peer(b"staller", handler=lambda r, a: None)
    if p is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    hr, rsp, dt = c.pcsc.transmit(R, bytes.fromhex("00B0000004"))
    c.check("an unanswered transmit fails (%s) after timeout-ms (%.0f ms, expected %.0f..%.0f)"
            % (hrs(hr), dt * 1000, c.timeout * 900, c.timeout * 2000),
            hr != S.SCARD_S_SUCCESS and c.timeout * 0.9 <= dt <= c.timeout * 2)
    c.check("the stalled client is dropped", p.wait_closed(2))
    c.check("its card is removed", c.pcsc.wait(R, False, 2))
    c.check("log names the stall", c.log_has(r"VSCard peer %s: no answer to an APDU in time"
                                             % re.escape(p.local)))
    # Half a header after a complete handshake.
    q, rid = c.ready_peer(b"halfheader")
    if q is None:
        return c.finish()
    c.pcsc.wait(R, True, 3)
    t0 = time.monotonic()
    q.send_raw(header(APDU, rid, 2)[:6])
    closed = q.wait_closed(c.timeout * 3)
    dt = (q.eof_time or time.monotonic()) - t0
    c.check("a client stalled mid-header is dropped after timeout-ms (%.0f ms)" % (dt * 1000),
            closed and c.timeout * 0.9 <= dt <= c.timeout * 2.5)
    c.check("its card is removed", c.pcsc.wait(R, False, 2))
    c.check("log names the stall", c.log_has(r"VSCard peer %s dropped: stalled in the middle"
                                             % re.escape(q.local)))
    # Half a payload.
    q, rid = c.ready_peer(b"halfpayload")
    if q is None:
        return c.finish()
    t0 = time.monotonic()
    q.send_raw(header(ATR, rid, 15) + CAC_ATR[:5])
    closed = q.wait_closed(c.timeout * 3)
    dt = (q.eof_time or time.monotonic()) - t0
    c.check("a client stalled mid-payload is dropped after timeout-ms (%.0f ms)" % (dt * 1000),
            closed and c.timeout * 0.9 <= dt <= c.timeout * 2.5)
    c.finish()


GARBAGE = [
    # (description, needs handshake first, bytes, "drop" or an expected answer check)
    ("4 KiB of random bytes as the first message", False,
     b"\xA5" + random.Random(7).randbytes(4095), "drop"),
    ("an Init with a bad magic", False, init_message(magic=b"XSCD"), "drop"),
    ("an Init that is too short (8 bytes)", False, message(INIT, 0, MAGIC + b"\0\0\0\2"), "drop"),
    ("an Init whose length is not a multiple of 4", False,
     message(INIT, 0, MAGIC + b"\0\0\0\2\0\0\0\0\0"), "drop"),
    ("an Init announcing 0xFFFFFFF0 bytes", False, header(INIT, 0, 0xFFFFFFF0), "drop"),
    ("a ReaderAdd before Init", False, message(READER_ADD, 0, b"x"), "drop"),
    ("an APDU before Init", False, message(APDU, 0, b"\x90\x00"), "drop"),
    ("a header announcing 0xFFFFFFF0 bytes after Init", True, header(APDU, 0, 0xFFFFFFF0),
     "drop"),
    ("a header announcing 65 KiB + 100 bytes after Init", True,
     header(ATR, 0, 65536 + 2 + 100) + b"\0" * 64, "drop"),
    ("random bytes after Init", True, struct.pack(">III", 0x5A5A5A5A, 0, 0x7FFFFFFF) +
     random.Random(8).randbytes(500), "drop"),
]


def sc_garbage(c):
    """Garbage from several clients; a healthy client's card answers throughout."""
    healthy, rid = c.ready_peer(b"healthy", handler=lambda r, a: b"\x4B\x90\x00")
    if healthy is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)

    def healthy_ok(after):
        hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
        return c.check("the healthy client's card still answers after %s" % after,
                       rsp == b"\x4B\x90\x00" and not healthy.eof.is_set(), hrs(hr), rsp.hex())

    for desc, after_init, data, _ in GARBAGE:
        g = c.peer()
        if after_init:
            m = g.handshake()
            a = g.add_reader(b"garbage")
            g.insert(a.rid)
        t0 = time.monotonic()
        try:
            g.send_raw(data)
        except OSError:
            pass
        closed = g.wait_closed(c.handshake * 0.8 if not after_init else c.timeout * 0.8)
        dt = time.monotonic() - t0
        c.check("%s: connection dropped at once (%.0f ms)" % (desc, dt * 1000), closed)
        c.check("%s: the log names the peer" % desc,
                c.log_has(r"VSCard peer %s closed \(protocol error\)" % re.escape(g.local)))
        healthy_ok(desc)
    # Unknown type: Error 1, the connection stays.
    g = c.peer()
    g.handshake()
    m = g.request(0x42, 5, b"abc")
    c.check("an unknown type (0x42) is answered Error 1 (00000002 00000005 00000004 00000001)",
            m.raw == bytes.fromhex("00000002000000050000000400000001"), m.raw.hex())
    m = g.request(FLUSH, 0)
    c.check("the connection still works after the unknown type", m.type == FLUSH_COMPLETE, m)
    # An APDU answer nobody asked for, and a FlushComplete / Init after the handshake: ignored.
    g.send(APDU, 0, b"\x90\x00")
    g.send(FLUSH_COMPLETE, 0)
    g.send_raw(init_message())
    m = g.request(FLUSH, 0)
    c.check("unexpected APDU answer, FlushComplete and a second Init are ignored",
            m.type == FLUSH_COMPLETE and not g.eof.is_set(), m)
    g.close()
    healthy_ok("all of it")
    # Connect and drop at once, many times.
    for _ in range(20):
        host, port = c.addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    healthy_ok("20 connections reset at once")
    c.finish()


def sc_reconnect(c):
    """A client that went away comes back and gets its slot again."""
    first, _ = c.ready_peer(b"first")
    p, rid = c.ready_peer(b"comeback")
    s = c.slot_of("comeback")
    c.check("the second client is in slot 1", s == 1, s)
    p.close()
    c.check("its slot empties", c.pcsc.wait(c.reader(1), False, 3))
    for n in range(3):
        p, rid = c.ready_peer(b"comeback", handler=lambda r, a: b"\x90\x00")
        c.check("reconnect %d: id 0, slot 1 again" % n, rid == 0 and c.slot_of("comeback") == 1)
        c.pcsc.wait(c.reader(1), True, 3)
        hr, rsp, t = c.pcsc.transmit(c.reader(1), bytes.fromhex("00B0000001"))
        c.check("reconnect %d: the card answers" % n, rsp == b"\x90\x00", hrs(hr))
        p.close()
        c.pcsc.wait(c.reader(1), False, 3)
    c.finish()


def sc_handshake_timeout(c):
    """A connection without Init is closed after handshake-timeout-ms."""
    p = c.peer()
    t0 = time.monotonic()
    closed = p.wait_closed(c.handshake * 3)
    dt = (p.eof_time or time.monotonic()) - t0
    c.check("silent connection closed after handshake-timeout-ms (%.0f ms, expected ~%.0f)"
            % (dt * 1000, c.handshake * 1000),
            closed and c.handshake * 0.9 <= dt <= c.handshake * 2)
    c.check("log: dropped, no Init in time",
            c.log_has(r"VSCard peer %s dropped: no Init in time" % re.escape(p.local)))
    q = c.peer()
    q.send_raw(init_message()[:10])
    t0 = time.monotonic()
    closed = q.wait_closed(c.handshake * 3)
    dt = (q.eof_time or time.monotonic()) - t0
    c.check("half an Init is closed after handshake-timeout-ms too (%.0f ms)" % (dt * 1000),
            closed and dt <= c.handshake * 2)
    c.finish()


def sc_limits(c):
    """max-pending and max-connections: over the limit, closed at once and logged.
    Run with max-pending = 1, max-connections = 2 and a long handshake timeout.
    (A pending connection older than 500 ms, or one without a reader, would make
    room for the newcomer instead: test-vscard-host covers that.)"""
    a = c.peer()                     # pending (no Init)
    time.sleep(0.1)                  # let the listener accept it first
    b = c.peer()
    t0 = time.monotonic()
    closed = b.wait_closed(1.0)
    c.check("with one handshake pending, a second pending connection is closed at once "
            "(%.0f ms)" % ((time.monotonic() - t0) * 1000), closed)
    c.check("log: refused, naming the peer and max-pending",
            c.log_has(r"VSCard peer %s refused: max-pending handshakes reached"
                      % re.escape(b.local)))
    c.check("the pending one is still open", not a.eof.is_set())
    m = a.handshake()
    c.check("the pending one completes its handshake", m.type == INIT, m)
    a.add_reader(b"limits-a")        # connections that hold a reader are never evicted
    b = c.peer()
    m = b.handshake()
    c.check("a second connection is accepted once the first finished its Init",
            m.type == INIT, m)
    b.add_reader(b"limits-b")
    d = c.peer()
    t0 = time.monotonic()
    closed = d.wait_closed(1.0)
    c.check("a third connection is closed at once with max-connections = 2 (%.0f ms)"
            % ((time.monotonic() - t0) * 1000), closed)
    c.check("log: refused, naming the peer and max-connections",
            c.log_has(r"VSCard peer %s refused: max-connections reached" % re.escape(d.local)))
    c.check("the two accepted connections still work",
            a.request(FLUSH, 0).type == FLUSH_COMPLETE and
            b.request(FLUSH, 0).type == FLUSH_COMPLETE)
    b_local = b.local
    b.close()
    # The connection's place is free once the listener has seen the close.
    c.check("the listener sees the closed connection go",
            c.log_has(r"VSCard peer %s closed" % re.escape(b_local)))
    e = c.peer()
    m = e.handshake()
    c.check("after one closes, a new connection is accepted", m.type == INIT, m)
    c.finish()


def sc_extended(c):
    """Short-only peers never see APDUs over 261 bytes; extended peers get 64 KiB intact."""
    p, rid = c.ready_peer(b"short", handler=lambda r, a: b"\x90\x00")
    if p is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    big = bytes.fromhex("00D60000") + b"\x00" + struct.pack(">H", 300) + bytes(range(256)) + \
        bytes(44)
    hr, rsp, t = c.pcsc.transmit(R, big)
    c.check("a %d-byte APDU to a short-only client is answered 67 00" % len(big),
            rsp == b"\x67\x00", hrs(hr), rsp.hex())
    time.sleep(0.2)
    c.check("it never reached the client", p.apdus == [], p.apdus)
    limit = bytes.fromhex("00D60000FF") + bytes(255) + b"\x00"
    hr, rsp, t = c.pcsc.transmit(R, limit)
    c.check("a 261-byte APDU (the largest short one) reaches it", rsp == b"\x90\x00" and
            len(p.apdus) == 1 and p.apdus[0][1] == limit, hrs(hr), rsp.hex())
    p.close()
    c.pcsc.wait(R, False, 3)

    big_rsp = bytes((i * 7) & 0xFF for i in range(65536)) + b"\x90\x00"

    def ext_handler(r, a):
        return big_rsp if a[:2] == b"\x00\xB0" else b"\x90\x00"
    q, rid = c.ready_peer(b"extended", handler=ext_handler, caps=(CAP_EXTENDED,))
    if q is None:
        return c.finish()
    c.pcsc.wait(R, True, 3)
    data = bytes(random.Random(3).randbytes(65535))
    apdu = bytes.fromhex("00D6000000FFFF") + data
    hr, rsp, t = c.pcsc.transmit(R, apdu)
    c.check("a %d-byte extended APDU is answered 90 00 (%.1f ms)" % (len(apdu), t * 1000),
            rsp == b"\x90\x00", hrs(hr), rsp.hex())
    c.check("it reached the extended client intact",
            len(q.apdus) == 1 and q.apdus[0][1] == apdu,
            [len(a) for _, a in q.apdus])
    apdu = bytes.fromhex("00B00000000000")
    hr, rsp, t = c.pcsc.transmit(R, apdu)
    c.check("a 65538-byte response reaches the PC/SC client intact (%d bytes)" % len(rsp),
            rsp == big_rsp, hrs(hr))
    c.finish()


def sc_client_error(c):
    """A client Error in answer to an APDU fails that transmit (only that one)."""
    mode = {"error": True}
    p, rid = c.ready_peer(b"erring", handler=lambda r, a: "error" if mode["error"] else b"\x90\x00")
    if p is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
    c.check("the transmit answered by an Error fails (%s) quickly (%.0f ms)"
            % (hrs(hr), t * 1000), hr != S.SCARD_S_SUCCESS and t < c.timeout * 0.8)
    c.check("the client stays connected", not p.eof.is_set())
    mode["error"] = False
    hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
    c.check("the next APDU works", rsp == b"\x90\x00", hrs(hr), rsp.hex())
    c.check("log names the failed APDU", c.log_has(r"VSCard peer %s: reader 0 failed an APDU"
                                                   % re.escape(p.local)))
    c.finish()


def sc_ctl(c):
    """vccid-ctl status shows remote=NAME peer=ADDR of a named remote reader."""
    first, _ = c.ready_peer(b"ctl-a")
    p, rid = c.ready_peer(b"ctl-b")
    st = c.ctl_status(c.reader(1))
    c.check("vccid-ctl status %r: state=present remote=ctl-b peer=%s backend=vscard"
            % (c.reader(1), p.local if p else "?"),
            p is not None and st.get("state") == "present" and st.get("remote") == "ctl-b"
            and st.get("peer") == p.local and st.get("backend") == "vscard", st)
    c.check("peer is 127.0.0.1:PORT", re.fullmatch(r"127\.0\.0\.1:\d+", st.get("peer", "")), st)
    try:
        out = subprocess.run([c.ctl, "list"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        out = str(e)
    line = [x for x in out.splitlines() if x.startswith(c.reader(1) + "\t")]
    c.check("vccid-ctl list shows %r present" % c.reader(1),
            line and line[0].split("\t")[1] == "present", out)
    c.finish()


def sc_noread(c):
    """A client that sends but never reads: dropped, and nobody else waits for it."""
    healthy, rid = c.ready_peer(b"healthy", handler=lambda r, a: b"\x4B\x90\x00")
    if healthy is None:
        return c.finish()
    R = c.reader(0)
    c.pcsc.wait(R, True, 3)
    host, port = c.addr.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((host, int(port)))
    local_port = s.getsockname()[1]
    s.sendall(init_message())
    s.recv(24)
    s.setblocking(False)
    results = []
    stop = threading.Event()

    def use_healthy():
        pc = PCSC()
        while not stop.is_set():
            results.append(pc.transmit(R, bytes.fromhex("00B0000001")))
    t = threading.Thread(target=use_healthy, daemon=True)
    t.start()
    flush = message(FLUSH, 0) * 1000
    sent = 0
    t0 = time.monotonic()
    dropped = False
    while time.monotonic() - t0 < c.timeout * 4:
        try:
            sent += s.send(flush)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            dropped = True
            break
    stop.set()
    t.join(10)
    s.close()
    c.check("a client that never reads its answers is dropped (%d bytes sent in %.1f s)"
            % (sent, time.monotonic() - t0), dropped)
    bad = [(hrs(hr), rsp.hex(), "%.0f ms" % (dt * 1000)) for hr, rsp, dt in results
           if rsp != b"\x4B\x90\x00"]
    slow = max((dt for _, _, dt in results), default=0)
    c.check("meanwhile %d APDUs to the healthy client all succeed" % len(results),
            results and not bad, bad[:5])
    c.check("and none waited long (slowest %.0f ms, < %.0f ms)" % (slow * 1000, c.timeout * 500),
            slow < c.timeout * 0.5)
    c.check("the healthy client is still connected", not healthy.eof.is_set())
    c.check("log names the peer that does not read",
            c.log_has(r"VSCard peer 127\.0\.0\.1:%d: it does not read" % local_port))
    c.finish()


def sc_pending(c):
    """The client takes its card or reader away, or answers badly, while an APDU waits."""
    R = c.reader(0)
    for what, msg_type in (("CardRemove", CARD_REMOVE), ("ReaderRemove", READER_REMOVE)):
        p, rid = c.ready_peer(what.lower().encode(), handler=lambda r, a: None)
        if p is None:
            return c.finish()
        c.pcsc.wait(R, True, 3)
        t, res = transmit_in_thread(R, bytes.fromhex("00B0000004"))
        wait_apdu(p, 1, 3)
        t0 = time.monotonic()
        m = p.request(msg_type, rid)
        t.join(10)
        dt = time.monotonic() - t0
        hr = res[0][0] if res else None
        c.check("%s while an APDU waits: answered Error 0, the transmit fails (%s) in %.0f ms"
                % (what, hrs(hr) if hr is not None else "-", dt * 1000),
                m.type == ERROR and m.code == 0 and hr not in (None, S.SCARD_S_SUCCESS) and
                dt < c.timeout * 0.8, m)
        c.check("%s: the reader is empty" % what, c.pcsc.wait(R, False, 2))
        c.check("%s: the client stays connected" % what, not p.eof.is_set() and
                p.request(FLUSH, 0).type == FLUSH_COMPLETE)
        p.close()
        c.pcsc.wait(R, False, 3)
    for desc, answer in (("a 1-byte answer", b"\x90"), ("an empty answer", b""),
                         ("an answer for another reader id (after timeout-ms)", None)):
        p, rid = c.ready_peer(b"badanswer", handler=lambda r, a, answer=answer: (
            answer if answer is not None else (p.send(APDU, 5, b"\x90\x00") or None)))
        if p is None:
            return c.finish()
        c.pcsc.wait(R, True, 3)
        hr, rsp, dt = c.pcsc.transmit(R, bytes.fromhex("00B0000004"))
        c.check("%s fails the transmit (%s, %.0f ms)" % (desc, hrs(hr), dt * 1000),
                hr != S.SCARD_S_SUCCESS, rsp.hex())
        p.close()
        c.pcsc.wait(R, False, 3)
    # vccid-ctl on a remote slot.
    p, rid = c.ready_peer(b"ctlremove", handler=answer_ok)
    c.pcsc.wait(R, True, 3)
    try:
        out = subprocess.run([c.ctl, "remove", R], capture_output=True, text=True, timeout=20)
        rc = out.returncode
    except (OSError, subprocess.TimeoutExpired):
        rc = None
    c.check("vccid-ctl remove takes a remote card out (exit %s)" % rc,
            rc == 0 and c.pcsc.wait(R, False, 3))
    st = c.ctl_status(R)
    c.check("the slot stays bound to its remote reader", st.get("remote") == "ctlremove", st)
    m = p.insert(rid)
    c.check("the client can put its card back (Error 0)", m.code == 0 and
            c.pcsc.wait(R, True, 3), m)
    hr, rsp, dt = c.pcsc.transmit(R, bytes.fromhex("00B0000004"))
    c.check("and it answers", rsp == b"\x90\x00", hrs(hr))
    c.finish()


def sc_alive(c):
    hr, readers = c.pcsc.readers()
    mine = [r for r in readers if r.startswith(c.prefix)] if hr == S.SCARD_S_SUCCESS else []
    c.check("pcscd answers SCardListReaders with the %d slots" % c.slots,
            hr == S.SCARD_S_SUCCESS and len(mine) == c.slots, hrs(hr), readers)
    p, rid = c.ready_peer(b"last")
    c.pcsc.wait(c.reader(0), True, 3)
    hr, rsp, t = c.pcsc.transmit(c.reader(0), bytes.fromhex("00B0000001"))
    c.check("a new client's card still works at the end", rsp == b"\x90\x00", hrs(hr))
    c.finish()


def sc_coalesced(c):
    """Messages glued to an answer or split around it, as a TCP stream may bring them: a
    transmit that reads its answer itself must keep what is not its answer for the others."""
    R = c.reader(0)
    state = {"mode": None}

    def handler(r, a):
        mode = state["mode"]
        ok = message(APDU, r, b"\x4F\x90\x00")
        if mode == "remove-after":
            p.send_raw(ok + message(CARD_REMOVE, r))
        elif mode == "flush-before":
            p.send_raw(message(FLUSH, 0) + ok)
        elif mode == "split-header":
            p.send_raw(ok[:5])
            time.sleep(0.05)
            p.send_raw(ok[5:])
        elif mode == "partial-after":
            nxt = message(CARD_REMOVE, r)
            p.send_raw(ok + nxt[:6])
            time.sleep(0.05)
            p.send_raw(nxt[6:])
        else:
            return b"\x4F\x90\x00"
        return None

    p, rid = c.ready_peer(b"coalesced", handler=handler)
    if p is None:
        return c.finish()
    c.pcsc.wait(R, True, 3)
    for mode, desc in (("remove-after", "an answer and a CardRemove in one write"),
                       ("partial-after", "an answer with half of a CardRemove after it")):
        state["mode"] = mode
        hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
        c.check("%s: the transmit gets its answer (%s)" % (desc, hrs(hr)),
                rsp == b"\x4F\x90\x00", rsp.hex())
        m = p.recv()
        c.check("%s: the CardRemove is answered Error 0" % desc,
                m.type == ERROR and m.code == 0, m)
        c.check("%s: PC/SC sees the card removed" % desc, c.pcsc.wait(R, False, 3))
        state["mode"] = None
        m = p.insert(rid)
        c.check("%s: the card goes back in" % desc, m.type == ERROR and m.code == 0 and
                c.pcsc.wait(R, True, 3), m)
    for mode, desc in (("flush-before", "a Flush and an answer in one write"),
                       ("split-header", "an answer whose header comes in two parts")):
        state["mode"] = mode
        hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
        c.check("%s: the transmit gets its answer (%s, %.1f ms)" % (desc, hrs(hr), t * 1000),
                rsp == b"\x4F\x90\x00" and t < c.timeout * 0.5, rsp.hex())
        if mode == "flush-before":
            m = p.recv()
            c.check("%s: the Flush is answered FlushComplete" % desc,
                    m.type == FLUSH_COMPLETE, m)
        state["mode"] = None
        hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
        c.check("%s: the next APDU works" % desc, rsp == b"\x4F\x90\x00", hrs(hr))
    c.check("nothing else came to the client", p.queue.empty(), list(p.queue.queue))
    # A CardRemove a moment after the last answer, with no APDU after it to read it: the
    # listener watches the socket again soon after a transmit left it (not only at the next one).
    state["mode"] = None
    for _ in range(50):   # a burst, so that the listener leaves the socket to transmits
        hr, rsp, t = c.pcsc.transmit(R, bytes.fromhex("00B0000001"))
    time.sleep(0.002)
    t0 = time.monotonic()
    p.send(CARD_REMOVE, rid)
    gone = c.pcsc.wait(R, False, 3)
    dt = time.monotonic() - t0
    limit = max(0.1, c.timeout * 0.05)   # 100 ms, more when the host runs slowly (valgrind)
    c.check("a CardRemove 2 ms after a burst of APDUs is seen in %.1f ms (< %.0f ms)"
            % (dt * 1000, limit * 1000), rsp == b"\x4F\x90\x00" and gone and dt < limit, hrs(hr))
    m = p.recv()
    c.check("and answered Error 0", m.type == ERROR and m.code == 0, m)
    p.close()
    c.pcsc.wait(R, False, 3)

    # Two readers on one connection, both answers in one write, the later APDU's first.
    pending = []
    lock = threading.Lock()

    def both(r, a):
        with lock:
            pending.append(r)
            if len(pending) < 2:
                return None
            out = b"".join(message(APDU, x, bytes([0x10 + x]) + b"\x90\x00")
                           for x in reversed(pending))
            del pending[:]
        p2.send_raw(out)
        return None

    p2 = c.peer(handler=both)
    p2.handshake()
    ids = []
    for i in range(2):
        m = p2.add_reader(b"pair%d" % i)
        ids.append(m.rid)
        p2.insert(m.rid)
    parallel_rounds(c, ["pair%d" % i for i in range(2)], "two readers of one connection",
                    [bytes([0x10 + i]) + b"\x90\x00" for i in ids],
                    "answers in one write, in reverse order, each reach their reader")
    c.finish()


def tls_answer(p, reader, apdu, parts, timeout=5.0):
    """A PC/SC transmit of apdu on reader, answered by TLS peer p with the message cut into
    parts (each its own TLS records). Returns (hresult, response) of the transmit."""
    t, result = transmit_in_thread(reader, apdu)
    m = p.recv(timeout)
    if m.type != APDU or m.payload != apdu:
        t.join(timeout)
        return None, m
    raw = message(APDU, m.rid, b"\x01\x02\x90\x00")
    cuts = [0] + list(parts) + [len(raw)]
    p.send_records(*[raw[a:b] for a, b in zip(cuts, cuts[1:]) if b > a])
    t.join(timeout)
    if not result:
        return None, "no result"
    return result[0][0], result[0][1]


def sc_tls_records(c):
    """The TLS record path: VSCard messages split across TLS records, several in one record,
    an answer cut byte by byte into records, and a connection cut short mid-APDU."""
    if not c.tls:
        return c.check("--tls DIR given", False)
    p = TlsPeer(c.addr, c.tls)
    c.peers.append(p)
    init = init_message()
    p.send_records(init[:5], init[5:13], init[13:])
    m = p.recv()
    c.check("an Init split across three TLS records is answered with Init", m.type == INIT, m)
    # ReaderRemove(0) and ReaderAdd coalesced in one record: two answers, in order.
    p.send_records(message(READER_REMOVE, 0) + message(READER_ADD, 0, b"tls"))
    m1, m2 = p.recv(), p.recv()
    c.check("ReaderRemove + ReaderAdd in one record: two answers, the add's code 0",
            m1.type == ERROR and m2.type == ERROR and m2.code == SUCCESS, m1, m2)
    rid = m2.rid
    atr = message(ATR, rid, CAC_ATR)
    p.send_records(atr[:12], atr[12:])
    m = p.recv()
    c.check("an ATR with header and payload in two records is taken", m.type == ERROR and
            m.code == SUCCESS, m)
    slot = c.slot_of("tls")
    R = c.reader(slot if slot is not None else 0)
    c.check("PC/SC sees the card of the TLS client in %r" % R, c.pcsc.wait(R, True, 3))
    apdu = bytes.fromhex("00CA010002")
    hr, rsp = tls_answer(p, R, apdu, ())
    c.check("an APDU answered in one record", rsp == b"\x01\x02\x90\x00", hr, rsp)
    hr, rsp = tls_answer(p, R, apdu, (5, 12, 13))
    c.check("an answer in four records (inside the header, at its end, mid-payload)",
            rsp == b"\x01\x02\x90\x00", hr, rsp)
    hr, rsp = tls_answer(p, R, apdu, range(1, 16))
    c.check("an answer one byte per record", rsp == b"\x01\x02\x90\x00", hr, rsp)
    ok = 0
    for i in range(50):
        hr, rsp = tls_answer(p, R, apdu, (i % 16,))
        ok += rsp == b"\x01\x02\x90\x00"
    c.check("50 APDUs with answers split at every offset (%d answered)" % ok, ok == 50)
    # An answer followed in the same record by a CardRemove: both seen.
    t, result = transmit_in_thread(R, apdu)
    m = p.recv()
    p.send_records(message(APDU, m.rid, b"\x90\x00") + message(CARD_REMOVE, rid))
    t.join(5)
    m = p.recv()
    c.check("an answer and a CardRemove coalesced in one record: the transmit gets its "
            "answer", result and result[0][1] == b"\x90\x00", result)
    c.check("... and the CardRemove is answered", m.type == ERROR and m.code == SUCCESS, m)
    c.check("... and PC/SC sees the card go", c.pcsc.wait(R, False, 3))
    p.send_records(message(ATR, rid, CAC_ATR))
    c.check("the card goes in again", p.recv().code == SUCCESS and c.pcsc.wait(R, True, 3))
    # Cut short mid-APDU: half an answer, then the connection ends without close_notify.
    t, result = transmit_in_thread(R, apdu)
    m = p.recv()
    raw = message(APDU, m.rid, b"\x01\x02\x90\x00")
    p.send_records(raw[:14])
    p.sock.shutdown(socket.SHUT_RDWR)
    p.close()
    t.join(c.timeout + 5)
    c.check("a transmit whose answer is cut short fails", result and
            result[0][0] != S.SCARD_S_SUCCESS, result)
    c.check("PC/SC sees the card of the cut connection go", c.pcsc.wait(R, False, 3))
    c.check("the log says the connection closed", c.log_has(r"VSCard peer 127\.0\.0\.1:\d+ "
            r"\(CN=alice,O=vccid test\) closed"))
    c.peers = []
    c.finish()


SCENARIOS = {
    "handshake": sc_handshake, "apdu": sc_apdu, "multi-reader": sc_multi_reader,
    "multi-client": sc_multi_client, "exhaustion": sc_exhaustion, "disconnect": sc_disconnect,
    "disconnect-2s": lambda c: sc_disconnect(c, limit=2.0),
    "stall": sc_stall, "garbage": sc_garbage, "reconnect": sc_reconnect,
    "handshake-timeout": sc_handshake_timeout, "limits": sc_limits, "extended": sc_extended,
    "client-error": sc_client_error, "ctl": sc_ctl, "alive": sc_alive,
    "no-read": sc_noread, "pending": sc_pending, "coalesced": sc_coalesced,
    "tls-records": sc_tls_records,
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hold(addr, name):
    """Connects, puts a card in, prints "ready" and answers APDUs 90 00 until the host closes
    the connection (exit 0) or 600 s pass (exit 1)."""
    p = Peer(addr, handler=answer_ok)
    if p.handshake().type != INIT or p.add_reader(name.encode()).code != SUCCESS or \
            p.insert(0).code != SUCCESS:
        return 1
    print("ready", flush=True)
    return 0 if p.wait_closed(600) else 1


def main():
    if sys.argv[1:2] == ["free-port"]:
        print(free_port())
        return 0
    if sys.argv[1:2] == ["hold"] and len(sys.argv) == 4:
        return hold(sys.argv[2], sys.argv[3])
    if sys.argv[1:2] == ["tls-probe"] and len(sys.argv) == 4:
        return probe(lambda: TlsPeer(sys.argv[2], sys.argv[3]))
    if sys.argv[1:2] == ["plain-probe"] and len(sys.argv) == 3:
        return probe(lambda: Peer(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--addr", default="127.0.0.1:35964")
    ap.add_argument("--prefix", default="vccid 00")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--timeout-ms", type=int, default=5000)
    ap.add_argument("--handshake-ms", type=int, default=5000)
    ap.add_argument("--log", default=os.environ.get("VCCID_PCSCD_LOG"))
    ap.add_argument("--ctl", default=os.environ.get("VCCID_CTL", "vccid-ctl"))
    ap.add_argument("--tls", help="client credentials (QEMU's layout) for the TLS scenarios")
    ap.add_argument("scenarios", nargs="+", choices=sorted(SCENARIOS))
    args = ap.parse_args()
    c = Ctx(args)
    for name in args.scenarios:
        c.scenario = name
        t0 = time.monotonic()
        try:
            SCENARIOS[name](c)
        except (Closed, queue.Empty, OSError) as e:
            c.check("scenario ran to its end", False, "%s: %r" % (type(e).__name__, e))
            c.finish()
        print("# %s: %.2f s" % (name, time.monotonic() - t0))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
