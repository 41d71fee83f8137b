/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host side of VSCard without sockets: connections as bytes in and messages out, remote readers bound to slots. */
#ifndef VCCID_VSCARD_HOST_H
#define VCCID_VSCARD_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "corelib/slot.h"

#define VCCID_VSCARD_MAX_READERS_PER_CONN 16
#define VCCID_VSCARD_NAME_MAX 63
/* Room for a peer as connections name it: an address, and a TLS client's subject
 * ("1.2.3.4:5 (CN=alice,O=Example)"). */
#define VCCID_VSCARD_PEER_MAX 320

typedef struct vccid_vscard_conn vccid_vscard_conn;

/**
 * How a connection reaches its peer. Every byte the host sends or receives
 * goes through these calls: the socket listener (listener.c) implements them,
 * and so can a TLS transport or an in-memory one in tests. The host itself
 * makes no system call on the connection.
 */
struct vccid_vscard_io {
	/**
	 * Writes what it can of @p buf, waiting for room until @p deadline_ms
	 * (vccid_now_ms() time); a deadline <= 0 takes only what fits now.
	 * Returns the count (> 0), VCCID_ETIMEDOUT when nothing fit in time, or
	 * VCCID_EIO. The host writes whole messages under its own lock.
	 */
	ssize_t (*write)(void *io, const uint8_t *buf, size_t len, long long deadline_ms);
	/**
	 * Waits until the peer's bytes arrive or @p deadline_ms (vccid_now_ms()
	 * time) passes, and reads what is there into @p iov; a deadline <= 0
	 * takes only what is there now. Returns the count (> 0), 0 at end of
	 * stream, VCCID_ETIMEDOUT when nothing came, or VCCID_EIO.
	 */
	ssize_t (*read)(void *io, const struct iovec *iov, size_t iovcnt, long long deadline_ms);
	/** True: a transmit reads its answer itself (from its own thread, while the
	 *  transport's thread leaves the connection alone), saving a hand-off per
	 *  APDU. False: every byte is read by vccid_vscard_conn_serve(). */
	bool transmit_reads;
	/** Asks the transport to look at this connection (it became dead, or a
	 *  transmit hands reading back). */
	void (*wake)(void *io);
	void *io;
};

/** Offers @p slot (index @p index of reader @p reader) to remote readers. */
void vccid_vscard_host_offer_slot(vccid_slot *slot, const char *reader, unsigned index);
/** Takes @p slot back: a remote card in it is removed and its reader orphaned. */
void vccid_vscard_host_withdraw_slot(vccid_slot *slot);
/** True when a remote reader holds @p slot (then only its client may fill it). */
bool vccid_vscard_host_slot_bound(vccid_slot *slot);
/** Copies the remote reader name and peer of @p slot; false if not bound. */
bool vccid_vscard_host_slot_remote(vccid_slot *slot, char *name, size_t name_size,
			     char *peer, size_t peer_size);

/** Creates a connection in its handshake state. @p peer is copied for logs. */
vccid_vscard_conn *vccid_vscard_conn_new(const struct vccid_vscard_io *io, const char *peer,
			     unsigned timeout_ms);
/**
 * Feeds bytes the peer sent (tests and fuzzers; transports call
 * vccid_vscard_conn_serve()). Returns 0, or a negative vccid_error when the
 * connection must be closed (protocol violation; logged with the peer).
 */
int vccid_vscard_conn_input(vccid_vscard_conn *conn, const uint8_t *data, size_t len);
/**
 * For the transport's thread when the peer may have sent something: parses
 * what a transmit stashed, then reads through io->read without waiting (a
 * bounded number of reads, so a fast peer cannot keep the thread from the
 * others). Call it between vccid_vscard_conn_read_begin() and _read_end(). Returns
 * NULL, or why the connection must be closed.
 */
const char *vccid_vscard_conn_serve(vccid_vscard_conn *conn);
bool vccid_vscard_conn_handshake_done(vccid_vscard_conn *conn);
/** Since when (vccid_now_ms()) a handshaken connection holds no reader; 0 while it
 *  holds one or is still in its handshake. */
long long vccid_vscard_conn_idle_since(vccid_vscard_conn *conn);
/** True when the connection failed (stalled, write error) and must be closed. */
bool vccid_vscard_conn_dead(vccid_vscard_conn *conn);
/** True while a message is partly received (a stalled peer shows here). */
bool vccid_vscard_conn_mid_message(vccid_vscard_conn *conn);
/**
 * The transport reads a connection only between these two calls.
 * vccid_vscard_conn_read_begin() returns false while a transmit reads the socket
 * itself (to save the hand-off to another thread per APDU).
 */
bool vccid_vscard_conn_read_begin(vccid_vscard_conn *conn);
void vccid_vscard_conn_read_end(vccid_vscard_conn *conn);
/**
 * Whether the transport should read the connection now. When not (a transmit
 * reads it, or did a moment ago and may again, or a transmit is writing to
 * it), *recheck_ms says when to ask again; a transmit that hands reading back
 * or ends its write calls the wake callback.
 */
bool vccid_vscard_conn_watch(vccid_vscard_conn *conn, long long now_ms, long long *recheck_ms);
/**
 * True when answers wait for room in the transport (a slow reader): the
 * transport watches for room and then calls vccid_vscard_conn_writable().
 */
bool vccid_vscard_conn_wants_write(vccid_vscard_conn *conn);
/** Writes what waits in the outbox as far as the transport takes it; never waits. */
void vccid_vscard_conn_writable(vccid_vscard_conn *conn);
/**
 * True when a transmit took bytes that were not its answer: the transport
 * must call vccid_vscard_conn_serve() without waiting for the peer to send more.
 */
bool vccid_vscard_conn_stashed(vccid_vscard_conn *conn);
/** Removes the connection's cards (pcscd sees removal), releases its slots, frees it. */
void vccid_vscard_conn_close(vccid_vscard_conn *conn, const char *reason);
const char *vccid_vscard_conn_peer(const vccid_vscard_conn *conn);

#endif
