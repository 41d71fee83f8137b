/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VSCard host state machine: handshake, remote readers in offered slots, APDUs relayed with a timeout. */
#include "host.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corelib/atr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "proto.h"

#define HANDSHAKE_MAX_PAYLOAD 64              /* an Init with a few capabilities */
#define READY_MAX_PAYLOAD (65536 + 2 + 64)    /* the largest response, with room */
/* Answers (to Init, ReaderAdd, ATR, Flush, ...) are made on the transport's thread,
 * which serves every client and must never wait for one: they go to a per-connection
 * outbox that is written without waiting, and the rest later, when the socket takes
 * it. A client that lets this much pile up does not read, and is dropped. */
#define OUTBOX_SIZE 16384
/* After a transmit read its answer itself, the transport leaves the socket to
 * transmits this long: APDUs come in bursts, and each hand-back would cost a
 * wake-up of the transport thread (on a busy CPU, a delayed APDU). A client's
 * CardRemove or EOF right after an APDU waits at most this long. */
#define DIRECT_LINGER_MS 10
#define SMALL_APDU_BUFFER 512
/* Reads per vccid_vscard_conn_serve(): a fast peer cannot keep the transport from the others. */
#define SERVE_MAX_READS 64
#define VCCID_VSCARD_ERROR_MAX_PAYLOAD 64   /* an Error carries a 4-byte code */

/* Lock order (README, "Threads and locks"): host_lock, then a slot's locks, then
 * conn->write_lock, then conn->lock. The transport's thread only ever tries write_lock. */

struct host_slot {
	vccid_slot *slot;
	char reader[VCCID_VSCARD_NAME_MAX + 1];
	unsigned index;
	struct remote_reader *bound;   /* guarded by host_lock */
	struct host_slot *next;
};

struct remote_reader {
	vccid_vscard_conn *conn;
	uint32_t id;
	char name[VCCID_VSCARD_NAME_MAX + 1];
	struct host_slot *hslot;       /* guarded by host_lock; NULL when orphaned */
	/* The rest is guarded by conn->lock. */
	bool in_slot;                  /* from slot insert until the slot's release */
	bool removing;                 /* no new exchange may start */
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len;
	bool pending;                  /* an APDU waits for its answer */
	bool answered;
	int status;
	uint8_t *rsp;
	size_t rsp_cap;
	size_t rsp_len;
};

struct vccid_vscard_conn {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pthread_mutex_t write_lock;    /* one message at a time on the wire; outbox[0..] */
	struct vccid_vscard_io io;
	char peer[VCCID_VSCARD_PEER_MAX];
	unsigned timeout_ms;
	bool handshake_done;
	long long idle_since_ms;       /* host_lock; see vccid_vscard_conn_idle_since() */
	bool extended;                 /* the peer takes extended APDUs (vccid capability) */
	bool dead;                     /* guarded by lock */
	enum { OWNER_NONE, OWNER_TRANSPORT, OWNER_TRANSMIT } reader_owner;   /* lock */
	long long linger_until_ms;     /* lock; see DIRECT_LINGER_MS */
	uint8_t *stash;                /* lock; bytes a transmit read that the transport parses */
	size_t stash_len;
	uint8_t *outbox;               /* answers not written yet: appended under lock, */
	size_t outbox_len;             /* written and consumed under write_lock and lock */
	bool outbox_blocked;           /* lock; the transport last could not take it all */
	unsigned sending;              /* lock; transmits writing an APDU */
	bool skipped;                  /* lock; the transport skipped it for a sender */
	struct remote_reader *readers[VCCID_VSCARD_MAX_READERS_PER_CONN];   /* by id; host_lock */
	struct vccid_vscard_framer framer;
	uint8_t *buf;
};

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static struct host_slot *host_slots;

static const uint8_t sw_wrong_length[2] = { 0x67, 0x00 };

/* ---- slots offered by the readers ---- */

void vccid_vscard_host_offer_slot(vccid_slot *slot, const char *reader, unsigned index)
{
	struct host_slot *hslot = calloc(1, sizeof(*hslot));

	if (hslot == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "out of memory: slot %u of %s not offered", index, reader);
		return;
	}
	hslot->slot = slot;
	snprintf(hslot->reader, sizeof(hslot->reader), "%s", reader);
	hslot->index = index;
	pthread_mutex_lock(&host_lock);
	hslot->next = host_slots;
	host_slots = hslot;
	pthread_mutex_unlock(&host_lock);
}

static struct host_slot **find_hslot(vccid_slot *slot)
{
	struct host_slot **p;

	for (p = &host_slots; *p != NULL; p = &(*p)->next)
		if ((*p)->slot == slot)
			return p;
	return NULL;
}

bool vccid_vscard_host_slot_bound(vccid_slot *slot)
{
	struct host_slot **p;
	bool bound;

	pthread_mutex_lock(&host_lock);
	p = find_hslot(slot);
	bound = p != NULL && (*p)->bound != NULL;
	pthread_mutex_unlock(&host_lock);
	return bound;
}

bool vccid_vscard_host_slot_remote(vccid_slot *slot, char *name, size_t name_size,
			     char *peer, size_t peer_size)
{
	struct host_slot **p;
	bool bound = false;

	pthread_mutex_lock(&host_lock);
	p = find_hslot(slot);
	if (p != NULL && (*p)->bound != NULL) {
		snprintf(name, name_size, "%s", (*p)->bound->name);
		snprintf(peer, peer_size, "%s", (*p)->bound->conn->peer);
		bound = true;
	}
	pthread_mutex_unlock(&host_lock);
	return bound;
}

/* ---- the card operations of a remote card ---- */

/* Marks the connection failed; conn->lock held. The transport closes it. */
static bool conn_fail_locked(vccid_vscard_conn *conn, const char *why)
{
	if (conn->dead)
		return false;
	conn->dead = true;
	pthread_cond_broadcast(&conn->changed);
	VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: %s; dropping it", conn->peer, why);
	return true;
}

/* Writes all of @p buf through the transport before @p deadline_ms; write_lock held. */
static int write_all(vccid_vscard_conn *conn, const uint8_t *buf, size_t len, long long deadline_ms)
{
	while (len > 0) {
		ssize_t n = conn->io.write(conn->io.io, buf, len, deadline_ms);

		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return VCCID_OK;
}

/*
 * Writes the outbox; write_lock held. With @p deadline_ms <= 0 it takes only
 * what the transport takes now and returns VCCID_ETIMEDOUT for the rest.
 * Appenders write beyond outbox_len, and only the write_lock holder consumes,
 * so the bytes written need no lock.
 */
static int outbox_flush_locked(vccid_vscard_conn *conn, long long deadline_ms)
{
	for (;;) {
		size_t len;
		ssize_t n;

		pthread_mutex_lock(&conn->lock);
		len = conn->outbox_len;
		if (len == 0)
			conn->outbox_blocked = false;
		pthread_mutex_unlock(&conn->lock);
		if (len == 0)
			return VCCID_OK;
		n = conn->io.write(conn->io.io, conn->outbox, len, deadline_ms);
		if (n < 0)
			return (int)n;
		pthread_mutex_lock(&conn->lock);
		memmove(conn->outbox, conn->outbox + n, conn->outbox_len - (size_t)n);
		conn->outbox_len -= (size_t)n;
		pthread_mutex_unlock(&conn->lock);
	}
}

/* Fails the connection for @p rv from a write; wakes the transport to drop it. */
static void conn_write_failed(vccid_vscard_conn *conn, int rv)
{
	bool wake;

	pthread_mutex_lock(&conn->lock);
	wake = conn_fail_locked(conn, rv == VCCID_ETIMEDOUT ? "it does not read (write timed out)"
							    : "write failed");
	pthread_mutex_unlock(&conn->lock);
	if (wake && conn->io.wake)
		conn->io.wake(conn->io.io);
}

/*
 * Writes what the outbox holds without waiting, unless another thread holds
 * write_lock (it writes the outbox when it is done). What the transport does
 * not take now waits for vccid_vscard_conn_wants_write().
 */
static void outbox_flush(vccid_vscard_conn *conn)
{
	for (;;) {
		bool again, wake;
		int rv;

		if (pthread_mutex_trylock(&conn->write_lock) != 0)
			return;
		rv = outbox_flush_locked(conn, 0);
		pthread_mutex_unlock(&conn->write_lock);
		if (rv != VCCID_OK && rv != VCCID_ETIMEDOUT) {
			conn_write_failed(conn, rv);
			return;
		}
		pthread_mutex_lock(&conn->lock);
		wake = rv == VCCID_ETIMEDOUT && !conn->outbox_blocked;
		if (rv == VCCID_ETIMEDOUT)
			conn->outbox_blocked = true;
		/* Appended while we held write_lock, by a thread whose trylock failed. */
		again = rv == VCCID_OK && conn->outbox_len > 0 && !conn->dead;
		pthread_mutex_unlock(&conn->lock);
		if (wake && conn->io.wake)
			conn->io.wake(conn->io.io);   /* the transport now watches for room */
		if (!again)
			return;
	}
}

/* Queues an answer and writes what the transport takes now; never waits. */
static int conn_answer(vccid_vscard_conn *conn, const uint8_t *msg, size_t len)
{
	int rv = VCCID_OK;
	bool wake = false;

	pthread_mutex_lock(&conn->lock);
	if (conn->dead) {
		rv = VCCID_EIO;
	} else if (conn->outbox_len + len > OUTBOX_SIZE) {
		wake = conn_fail_locked(conn, "it does not read its answers (outbox full)");
		rv = VCCID_EIO;
	} else {
		memcpy(conn->outbox + conn->outbox_len, msg, len);
		conn->outbox_len += len;
	}
	pthread_mutex_unlock(&conn->lock);
	if (wake && conn->io.wake)
		conn->io.wake(conn->io.io);
	if (rv == VCCID_OK)
		outbox_flush(conn);
	return rv;
}

/*
 * A transmit writes its APDU, after any answers waiting in the outbox, waiting
 * up to @p deadline_ms. Meanwhile the transport's thread leaves the connection
 * alone (vccid_vscard_conn_watch), so it never waits on write_lock or on anything
 * this exchange holds.
 */
static int conn_send_apdu(vccid_vscard_conn *conn, const uint8_t *msg, size_t len, long long deadline_ms)
{
	bool wake;
	int rv;

	pthread_mutex_lock(&conn->lock);
	conn->sending++;
	pthread_mutex_unlock(&conn->lock);
	pthread_mutex_lock(&conn->write_lock);
	rv = outbox_flush_locked(conn, deadline_ms);
	if (rv == VCCID_OK)
		rv = write_all(conn, msg, len, deadline_ms);
	pthread_mutex_unlock(&conn->write_lock);
	pthread_mutex_lock(&conn->lock);
	conn->sending--;
	wake = conn->sending == 0 && conn->skipped;
	if (wake)
		conn->skipped = false;
	pthread_mutex_unlock(&conn->lock);
	if (rv != VCCID_OK)
		conn_write_failed(conn, rv);
	else
		outbox_flush(conn);   /* answers queued while we wrote */
	if (wake && conn->io.wake)
		conn->io.wake(conn->io.io);
	return rv;
}

static int remote_power(void *card, enum vccid_power_action action, uint8_t *atr,
			size_t *atr_len)
{
	struct remote_reader *reader = card;
	int rv = VCCID_OK;

	if (action == VCCID_POWER_DOWN)
		return VCCID_OK;   /* VSCard has no power messages: the card stays as it is */
	pthread_mutex_lock(&reader->conn->lock);
	if (reader->atr_len > *atr_len) {
		rv = VCCID_ENOSPC;
	} else {
		memcpy(atr, reader->atr, reader->atr_len);
		*atr_len = reader->atr_len;
	}
	pthread_mutex_unlock(&reader->conn->lock);
	return rv;
}

/* Reads exactly @p len bytes through the transport before @p deadline_ms; 0 or an error. */
static int read_exact(const struct vccid_vscard_io *io, uint8_t *buf, size_t len, long long deadline_ms)
{
	while (len > 0) {
		struct iovec iov = { buf, len };
		ssize_t n = io->read(io->io, &iov, 1, deadline_ms);

		if (n == 0)
			return VCCID_EIO;
		if (n < 0)
			return (int)n;
		buf += n;
		len -= (size_t)n;
	}
	return VCCID_OK;
}

/* DIRECT_ANSWERED_MORE: answered, and bytes after the answer were stashed. */
enum direct_result {
	DIRECT_ANSWERED,
	DIRECT_ANSWERED_MORE,
	DIRECT_HAND_BACK,
	DIRECT_TIMEOUT,
	DIRECT_BROKEN
};

/* Keeps bytes a transmit took from the socket that were not its answer, for the
 * transport to parse first (vccid_vscard_conn_serve); conn->lock held. */
static int stash_locked(vccid_vscard_conn *conn, const uint8_t *a, size_t a_len, const uint8_t *b,
			size_t b_len)
{
	uint8_t *stash = malloc(a_len + b_len);

	if (stash == NULL)
		return VCCID_ENOMEM;
	memcpy(stash, a, a_len);
	if (b_len > 0)
		memcpy(stash + a_len, b, b_len);
	conn->stash = stash;
	conn->stash_len = a_len + b_len;
	return VCCID_OK;
}

/*
 * The transmit reads its own answer, as vpcd does, saving the wake-up of the
 * transport's thread: one read takes the header into @p head and the rest into
 * the caller's response buffer. What is not this reader's answer (another
 * message, a partial header) is stashed for the transport, which parses it
 * before it reads again; EOF and errors stay with the transport to see.
 */
static enum direct_result read_own_answer(struct remote_reader *reader, long long deadline_ms)
{
	vccid_vscard_conn *conn = reader->conn;
	uint8_t head[VCCID_VSCARD_HEADER_SIZE];
	struct vccid_vscard_header header;
	const struct iovec iov[2] = { { head, sizeof(head) }, { reader->rsp, reader->rsp_cap } };
	size_t got, extra;
	ssize_t n;
	bool ours;
	int rv;

	n = conn->io.read(conn->io.io, iov, 2, deadline_ms);
	if (n == VCCID_ETIMEDOUT)
		return DIRECT_TIMEOUT;
	if (n <= 0)
		return DIRECT_HAND_BACK;   /* EOF or an error: the transport sees it too */
	got = (size_t)n;
	if (got >= sizeof(head))
		vccid_vscard_header_decode(head, &header);
	ours = got >= sizeof(head) && header.reader_id == reader->id &&
	       header.length <= reader->rsp_cap &&
	       ((header.type == VCCID_VSCARD_APDU && header.length >= 2) ||
		(header.type == VCCID_VSCARD_ERROR && header.length <= VCCID_VSCARD_ERROR_MAX_PAYLOAD));
	if (!ours) {
		pthread_mutex_lock(&conn->lock);
		rv = stash_locked(conn, head, got < sizeof(head) ? got : sizeof(head), reader->rsp,
				  got > sizeof(head) ? got - sizeof(head) : 0);
		pthread_mutex_unlock(&conn->lock);
		return rv == VCCID_OK ? DIRECT_HAND_BACK : DIRECT_BROKEN;
	}
	got -= sizeof(head);
	if (got < header.length &&
	    read_exact(&conn->io, reader->rsp + got, header.length - got, deadline_ms) != VCCID_OK)
		return DIRECT_BROKEN;
	extra = got > header.length ? got - header.length : 0;
	pthread_mutex_lock(&conn->lock);
	rv = extra > 0 ? stash_locked(conn, reader->rsp + header.length, extra, NULL, 0) : VCCID_OK;
	reader->status = header.type == VCCID_VSCARD_APDU ? VCCID_OK : VCCID_EIO;
	reader->rsp_len = header.type == VCCID_VSCARD_APDU ? header.length : 0;
	reader->answered = true;
	pthread_mutex_unlock(&conn->lock);
	if (header.type == VCCID_VSCARD_ERROR)
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: reader %u failed an APDU", conn->peer,
			  reader->id);
	return rv != VCCID_OK ? DIRECT_BROKEN : extra > 0 ? DIRECT_ANSWERED_MORE : DIRECT_ANSWERED;
}

static int send_apdu(struct remote_reader *reader, const uint8_t *cmd, size_t cmd_len,
		     long long deadline_ms)
{
	uint8_t small[VCCID_VSCARD_HEADER_SIZE + SMALL_APDU_BUFFER];
	size_t size = VCCID_VSCARD_HEADER_SIZE + cmd_len;
	uint8_t *msg = size <= sizeof(small) ? small : malloc(size);
	size_t msg_len;
	int rv;

	if (msg == NULL)
		return VCCID_ENOMEM;
	msg_len = vccid_vscard_message_encode(msg, size, VCCID_VSCARD_APDU, reader->id, cmd, cmd_len);
	rv = conn_send_apdu(reader->conn, msg, msg_len, deadline_ms);
	explicit_bzero(msg, size);   /* may hold a PIN */
	if (msg != small)
		free(msg);
	return rv;
}

static int remote_transmit(void *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			   size_t *rsp_len)
{
	struct remote_reader *reader = card;
	vccid_vscard_conn *conn = reader->conn;
	size_t limit;
	struct timespec deadline;
	long long deadline_ms;
	bool direct;
	bool wake = false;
	int rv;

	pthread_mutex_lock(&conn->lock);
	if (conn->dead || reader->removing || !reader->in_slot) {
		pthread_mutex_unlock(&conn->lock);
		return VCCID_EIO;
	}
	limit = conn->extended ? VCCID_VSCARD_EXT_MAX_APDU : VCCID_VSCARD_LEGACY_MAX_APDU;
	if (cmd_len > limit) {
		pthread_mutex_unlock(&conn->lock);
		/* Stock peers overflow a 270-byte buffer: answer as a card that cannot take it. */
		VCCID_LOG(VCCID_LOG_INFO, "APDU of %zu bytes is over what peer %s takes (%zu): "
			  "answered 67 00", cmd_len, conn->peer, limit);
		memcpy(rsp, sw_wrong_length, sizeof(sw_wrong_length));
		*rsp_len = sizeof(sw_wrong_length);
		return VCCID_OK;
	}
	/* Read the answer here unless the transport is busy with this socket. */
	direct = conn->io.transmit_reads && conn->reader_owner == OWNER_NONE && conn->stash == NULL &&
		 !vccid_vscard_conn_mid_message(conn);
	if (direct)
		conn->reader_owner = OWNER_TRANSMIT;
	reader->pending = true;
	reader->answered = false;
	reader->rsp = rsp;
	reader->rsp_cap = *rsp_len;
	reader->rsp_len = 0;
	reader->status = VCCID_EIO;
	pthread_mutex_unlock(&conn->lock);

	vccid_deadline_after(&deadline, conn->timeout_ms);
	deadline_ms = vccid_now_ms() + conn->timeout_ms;
	rv = send_apdu(reader, cmd, cmd_len, deadline_ms);
	if (direct) {
		enum direct_result result = rv == VCCID_OK
			? read_own_answer(reader, deadline_ms) : DIRECT_HAND_BACK;

		pthread_mutex_lock(&conn->lock);
		conn->reader_owner = OWNER_NONE;
		if (result == DIRECT_ANSWERED)
			conn->linger_until_ms = vccid_now_ms() + DIRECT_LINGER_MS;
		else
			conn->linger_until_ms = 0;
		if (result == DIRECT_BROKEN)
			wake = conn_fail_locked(conn, "the connection broke inside an answer");
		pthread_mutex_unlock(&conn->lock);
		/* Handing back: the transport watches the socket (and the stash) from now on. */
		if (result != DIRECT_ANSWERED && conn->io.wake)
			conn->io.wake(conn->io.io);
		wake = false;
	}

	pthread_mutex_lock(&conn->lock);
	if (rv == VCCID_OK) {
		while (!reader->answered && !conn->dead &&
		       pthread_cond_timedwait(&conn->changed, &conn->lock, &deadline) != ETIMEDOUT)
			;
		if (reader->answered) {
			rv = reader->status;
			if (rv == VCCID_OK)
				*rsp_len = reader->rsp_len;
		} else if (conn->dead) {
			rv = VCCID_EIO;
		} else {
			wake = conn_fail_locked(conn, "no answer to an APDU in time");
			rv = VCCID_ETIMEDOUT;
		}
	}
	reader->pending = false;
	reader->rsp = NULL;
	pthread_mutex_unlock(&conn->lock);
	if (wake && conn->io.wake)
		conn->io.wake(conn->io.io);
	return rv;
}

static void remote_release(void *card)
{
	struct remote_reader *reader = card;

	pthread_mutex_lock(&reader->conn->lock);
	reader->in_slot = false;
	pthread_cond_broadcast(&reader->conn->changed);
	pthread_mutex_unlock(&reader->conn->lock);
}

static const struct vccid_card_ops remote_ops = {
	.backend = "vscard",
	.power = remote_power,
	.transmit = remote_transmit,
	.release = remote_release,
};

/* ---- remote readers ---- */

/*
 * Takes the reader's card out of its slot and waits until the slot let it
 * go, so nothing uses the reader afterwards. host_lock held.
 */
static void reader_take_card_out(struct remote_reader *reader)
{
	vccid_vscard_conn *conn = reader->conn;
	bool in_slot;

	pthread_mutex_lock(&conn->lock);
	reader->removing = true;
	if (reader->pending && !reader->answered) {
		reader->answered = true;
		reader->status = VCCID_ENOCARD;
		pthread_cond_broadcast(&conn->changed);
	}
	in_slot = reader->in_slot;
	pthread_mutex_unlock(&conn->lock);
	if (in_slot && reader->hslot != NULL)
		(void)vccid_slot_remove(reader->hslot->slot);
	/* Another thread may be removing it too: wait for the slot's release. */
	pthread_mutex_lock(&conn->lock);
	while (reader->in_slot)
		pthread_cond_wait(&conn->changed, &conn->lock);
	pthread_mutex_unlock(&conn->lock);
}

/* Removes the reader's card, unbinds its slot and frees it. host_lock held. */
static void reader_destroy(struct remote_reader *reader)
{
	reader_take_card_out(reader);
	if (reader->hslot != NULL)
		reader->hslot->bound = NULL;
	reader->conn->readers[reader->id] = NULL;
	free(reader);
}

void vccid_vscard_host_withdraw_slot(vccid_slot *slot)
{
	struct host_slot **p;
	struct host_slot *hslot;

	pthread_mutex_lock(&host_lock);
	p = find_hslot(slot);
	if (p != NULL) {
		hslot = *p;
		*p = hslot->next;
		if (hslot->bound != NULL) {
			reader_take_card_out(hslot->bound);
			hslot->bound->hslot = NULL;   /* orphaned: its client gets errors */
		}
		free(hslot);
	}
	pthread_mutex_unlock(&host_lock);
}

/* ---- connections ---- */

vccid_vscard_conn *vccid_vscard_conn_new(const struct vccid_vscard_io *io, const char *peer, unsigned timeout_ms)
{
	vccid_vscard_conn *conn = calloc(1, sizeof(*conn));
	pthread_condattr_t attr;

	if (conn == NULL)
		return NULL;
	conn->buf = malloc(VCCID_VSCARD_HEADER_SIZE + READY_MAX_PAYLOAD);
	conn->outbox = malloc(OUTBOX_SIZE);
	if (conn->buf == NULL || conn->outbox == NULL) {
		free(conn->buf);
		free(conn->outbox);
		free(conn);
		return NULL;
	}
	pthread_mutex_init(&conn->lock, NULL);
	pthread_mutex_init(&conn->write_lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&conn->changed, &attr);
	pthread_condattr_destroy(&attr);
	conn->io = *io;
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
	conn->timeout_ms = timeout_ms;
	vccid_vscard_framer_init(&conn->framer, conn->buf, HANDSHAKE_MAX_PAYLOAD);
	return conn;
}

const char *vccid_vscard_conn_peer(const vccid_vscard_conn *conn)
{
	return conn->peer;
}

bool vccid_vscard_conn_handshake_done(vccid_vscard_conn *conn)
{
	return conn->handshake_done;
}

/* Whether the connection holds a reader now; host_lock held. */
static void conn_update_idle_locked(vccid_vscard_conn *conn)
{
	unsigned i;

	for (i = 0; i < VCCID_VSCARD_MAX_READERS_PER_CONN; i++)
		if (conn->readers[i] != NULL)
			break;
	if (i < VCCID_VSCARD_MAX_READERS_PER_CONN)
		conn->idle_since_ms = 0;
	else if (conn->idle_since_ms == 0)
		conn->idle_since_ms = vccid_now_ms();
}

long long vccid_vscard_conn_idle_since(vccid_vscard_conn *conn)
{
	long long since;

	pthread_mutex_lock(&host_lock);
	since = conn->handshake_done ? conn->idle_since_ms : 0;
	pthread_mutex_unlock(&host_lock);
	return since;
}

bool vccid_vscard_conn_dead(vccid_vscard_conn *conn)
{
	bool dead;

	pthread_mutex_lock(&conn->lock);
	dead = conn->dead;
	pthread_mutex_unlock(&conn->lock);
	return dead;
}

bool vccid_vscard_conn_read_begin(vccid_vscard_conn *conn)
{
	bool ok;

	pthread_mutex_lock(&conn->lock);
	ok = conn->reader_owner != OWNER_TRANSMIT && conn->sending == 0;
	if (ok)
		conn->reader_owner = OWNER_TRANSPORT;
	else if (conn->sending > 0)
		conn->skipped = true;
	pthread_mutex_unlock(&conn->lock);
	return ok;
}

void vccid_vscard_conn_read_end(vccid_vscard_conn *conn)
{
	pthread_mutex_lock(&conn->lock);
	if (conn->reader_owner == OWNER_TRANSPORT)
		conn->reader_owner = OWNER_NONE;
	pthread_mutex_unlock(&conn->lock);
}

bool vccid_vscard_conn_watch(vccid_vscard_conn *conn, long long now_ms, long long *recheck_ms)
{
	bool watch;

	pthread_mutex_lock(&conn->lock);
	watch = conn->dead ||
		(conn->reader_owner != OWNER_TRANSMIT && conn->sending == 0 &&
		 now_ms >= conn->linger_until_ms);
	if (!watch && conn->sending > 0)
		conn->skipped = true;   /* the sender wakes the transport when it is done */
	if (!watch)   /* once per linger period, not per APDU */
		*recheck_ms = conn->linger_until_ms > now_ms + DIRECT_LINGER_MS
				      ? conn->linger_until_ms
				      : now_ms + DIRECT_LINGER_MS;
	pthread_mutex_unlock(&conn->lock);
	return watch;
}

bool vccid_vscard_conn_wants_write(vccid_vscard_conn *conn)
{
	bool wants;

	pthread_mutex_lock(&conn->lock);
	wants = conn->outbox_blocked && conn->outbox_len > 0 && !conn->dead;
	pthread_mutex_unlock(&conn->lock);
	return wants;
}

void vccid_vscard_conn_writable(vccid_vscard_conn *conn)
{
	outbox_flush(conn);
}

bool vccid_vscard_conn_stashed(vccid_vscard_conn *conn)
{
	bool stashed;

	pthread_mutex_lock(&conn->lock);
	stashed = conn->stash != NULL;
	pthread_mutex_unlock(&conn->lock);
	return stashed;
}

bool vccid_vscard_conn_mid_message(vccid_vscard_conn *conn)
{
	return conn->framer.used > 0 && !conn->framer.delivered;
}

void vccid_vscard_conn_close(vccid_vscard_conn *conn, const char *reason)
{
	unsigned i;
	unsigned n = 0;

	pthread_mutex_lock(&conn->lock);
	conn->dead = true;
	pthread_cond_broadcast(&conn->changed);
	pthread_mutex_unlock(&conn->lock);
	pthread_mutex_lock(&host_lock);
	for (i = 0; i < VCCID_VSCARD_MAX_READERS_PER_CONN; i++) {
		if (conn->readers[i] != NULL) {
			reader_destroy(conn->readers[i]);
			n++;
		}
	}
	pthread_mutex_unlock(&host_lock);
	VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s closed (%s); %u reader(s) removed", conn->peer,
		  reason, n);
	if (conn->stash != NULL) {
		explicit_bzero(conn->stash, conn->stash_len);   /* may hold card data */
		free(conn->stash);
	}
	pthread_cond_destroy(&conn->changed);
	pthread_mutex_destroy(&conn->write_lock);
	pthread_mutex_destroy(&conn->lock);
	free(conn->outbox);
	free(conn->buf);
	free(conn);
}

static int send_error(vccid_vscard_conn *conn, uint32_t reader_id, uint32_t code)
{
	uint8_t msg[VCCID_VSCARD_HEADER_SIZE + 4];
	size_t len = vccid_vscard_error_encode(msg, sizeof(msg), reader_id, code);

	return conn_answer(conn, msg, len);
}

/* Keeps printable ASCII of a client's reader name. */
static void copy_name(char *out, size_t size, const uint8_t *in, size_t len)
{
	size_t n = 0;
	size_t i;

	for (i = 0; i < len && n + 1 < size; i++) {
		if (in[i] == '\0')
			break;
		out[n++] = (in[i] >= 0x20 && in[i] < 0x7F && in[i] != ' ') ? (char)in[i] : '_';
	}
	out[n] = '\0';
}

static struct host_slot *free_hslot(void)
{
	struct host_slot *hslot;
	struct host_slot *best = NULL;

	/* The lowest free slot of the first reader, so ids map predictably. */
	for (hslot = host_slots; hslot != NULL; hslot = hslot->next)
		if (hslot->bound == NULL && !vccid_slot_present(hslot->slot) &&
		    (best == NULL || strcmp(hslot->reader, best->reader) < 0 ||
		     (strcmp(hslot->reader, best->reader) == 0 && hslot->index < best->index)))
			best = hslot;
	return best;
}

static int handle_reader_add(vccid_vscard_conn *conn, const uint8_t *payload, size_t len)
{
	struct remote_reader *reader = NULL;
	struct host_slot *hslot;
	uint32_t id;

	pthread_mutex_lock(&host_lock);
	for (id = 0; id < VCCID_VSCARD_MAX_READERS_PER_CONN; id++)
		if (conn->readers[id] == NULL)
			break;
	hslot = free_hslot();
	if (id < VCCID_VSCARD_MAX_READERS_PER_CONN && hslot != NULL)
		reader = calloc(1, sizeof(*reader));
	if (reader != NULL) {
		reader->conn = conn;
		reader->id = id;
		copy_name(reader->name, sizeof(reader->name), payload, len);
		reader->hslot = hslot;
		hslot->bound = reader;
		conn->readers[id] = reader;
		conn_update_idle_locked(conn);
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: reader '%s' is id %u in slot %u of %s",
			  conn->peer, reader->name, id, hslot->index, hslot->reader);
	}
	pthread_mutex_unlock(&host_lock);
	if (reader == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: ReaderAdd refused: %s", conn->peer,
			  id >= VCCID_VSCARD_MAX_READERS_PER_CONN ? "too many readers on this connection"
							     : "no free slot");
		return send_error(conn, VCCID_VSCARD_UNDEFINED_READER_ID, VCCID_VSCARD_CANNOT_ADD_MORE_READERS);
	}
	return send_error(conn, id, VCCID_VSCARD_SUCCESS);
}

static int handle_reader_remove(vccid_vscard_conn *conn, uint32_t id)
{
	pthread_mutex_lock(&host_lock);
	if (id < VCCID_VSCARD_MAX_READERS_PER_CONN && conn->readers[id] != NULL) {
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: reader %u removed", conn->peer, id);
		reader_destroy(conn->readers[id]);
		conn_update_idle_locked(conn);
	}
	pthread_mutex_unlock(&host_lock);
	/* Success also for an unknown id: clients send ReaderRemove(0) after an unclean exit. */
	return send_error(conn, id, VCCID_VSCARD_SUCCESS);
}

static struct remote_reader *conn_reader(vccid_vscard_conn *conn, uint32_t id)
{
	return id < VCCID_VSCARD_MAX_READERS_PER_CONN ? conn->readers[id] : NULL;
}

static int handle_atr(vccid_vscard_conn *conn, uint32_t id, const uint8_t *atr, size_t len)
{
	struct remote_reader *reader;
	uint32_t code = VCCID_VSCARD_GENERAL_ERROR;
	unsigned protocols;

	pthread_mutex_lock(&host_lock);
	reader = conn_reader(conn, id);
	if (reader == NULL || reader->hslot == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: ATR for %s reader %u", conn->peer,
			  reader ? "orphaned" : "unknown", id);
	} else if (vccid_atr_check(atr, len, &protocols) != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: reader %u sent an invalid ATR of %zu bytes",
			  conn->peer, id, len);
	} else {
		pthread_mutex_lock(&conn->lock);
		if (reader->in_slot) {
			code = VCCID_VSCARD_CARD_ALREADY_INSERTED;
		} else {
			reader->in_slot = true;
			reader->removing = false;
			memcpy(reader->atr, atr, len);
			reader->atr_len = len;
			code = VCCID_VSCARD_SUCCESS;
		}
		pthread_mutex_unlock(&conn->lock);
		if (code == VCCID_VSCARD_SUCCESS &&
		    vccid_slot_insert(reader->hslot->slot, &remote_ops, reader, reader->name) !=
			    VCCID_OK) {
			pthread_mutex_lock(&conn->lock);
			reader->in_slot = false;
			pthread_mutex_unlock(&conn->lock);
			code = VCCID_VSCARD_GENERAL_ERROR;
			VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: slot of reader %u is occupied",
				  conn->peer, id);
		}
		if (code == VCCID_VSCARD_SUCCESS)
			VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: card inserted in reader %u",
				  conn->peer, id);
	}
	pthread_mutex_unlock(&host_lock);
	return send_error(conn, id, code);
}

static int handle_card_remove(vccid_vscard_conn *conn, uint32_t id)
{
	struct remote_reader *reader;
	uint32_t code = VCCID_VSCARD_GENERAL_ERROR;

	pthread_mutex_lock(&host_lock);
	reader = conn_reader(conn, id);
	if (reader != NULL) {
		reader_take_card_out(reader);
		code = VCCID_VSCARD_SUCCESS;
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: card removed from reader %u",
			  conn->peer, id);
	} else {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: CardRemove for unknown reader %u",
			  conn->peer, id);
	}
	pthread_mutex_unlock(&host_lock);
	return send_error(conn, id, code);
}

/* An APDU (the answer) or an Error from the client for a pending exchange. */
static void handle_answer(vccid_vscard_conn *conn, uint32_t type, uint32_t id, const uint8_t *data,
			  size_t len)
{
	struct remote_reader *reader;
	bool delivered = false;
	size_t cap = 0;

	pthread_mutex_lock(&host_lock);
	reader = conn_reader(conn, id);
	if (reader != NULL) {
		pthread_mutex_lock(&conn->lock);
		if (reader->pending && !reader->answered) {
			cap = reader->rsp_cap;
			if (type == VCCID_VSCARD_ERROR) {
				reader->status = VCCID_EIO;   /* its payload is "not meaningful" */
			} else if (len < 2 || len > reader->rsp_cap) {
				reader->status = len < 2 ? VCCID_EPROTO : VCCID_ENOSPC;
			} else {
				memcpy(reader->rsp, data, len);
				reader->rsp_len = len;
				reader->status = VCCID_OK;
			}
			reader->answered = true;
			pthread_cond_broadcast(&conn->changed);
			delivered = true;
		}
		pthread_mutex_unlock(&conn->lock);
	}
	pthread_mutex_unlock(&host_lock);
	if (!delivered)
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: unexpected %s for reader %u ignored",
			  conn->peer, vccid_vscard_type_name(type), id);
	else if (type == VCCID_VSCARD_ERROR)
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: reader %u failed an APDU", conn->peer, id);
	else if (len < 2)
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: reader %u answered with %zu byte(s), "
			  "less than a status word; the transmit fails", conn->peer, id, len);
	else if (len > cap)
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: reader %u answered with %zu bytes, more "
			  "than the %zu the caller can take; the transmit fails", conn->peer, id, len,
			  cap);
}

static int handle_init(vccid_vscard_conn *conn, const uint8_t *payload, size_t len)
{
	struct vccid_vscard_init init;
	uint8_t msg[VCCID_VSCARD_HEADER_SIZE + VCCID_VSCARD_INIT_MIN_SIZE];
	size_t msg_len;

	if (vccid_vscard_init_decode(payload, len, &init) != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: bad Init (%zu bytes, magic or length)",
			  conn->peer, len);
		return VCCID_EPROTO;
	}
	conn->extended = (init.capabilities[0] & VCCID_VSCARD_CAP_VCCID_EXTENDED) != 0;
	pthread_mutex_lock(&host_lock);
	conn->idle_since_ms = vccid_now_ms();
	conn->handshake_done = true;
	pthread_mutex_unlock(&host_lock);
	conn->framer.max_payload = READY_MAX_PAYLOAD;
	VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: Init version %u, %s APDUs", conn->peer,
		  init.version, conn->extended ? "extended" : "short");
	msg_len = vccid_vscard_init_encode(msg, sizeof(msg), VCCID_VSCARD_UNDEFINED_READER_ID,
				     VCCID_VSCARD_CAP_VCCID_EXTENDED);
	return conn_answer(conn, msg, msg_len);
}

/* A TLS ClientHello read as a VSCard header: record type 22, version 3.x (RFC 8446 §5.1). */
static bool looks_like_tls(const vccid_vscard_conn *conn, const struct vccid_vscard_header *h)
{
	if (conn->handshake_done || (h->type >> 24) != 0x16 || ((h->type >> 16) & 0xFF) != 0x03)
		return false;
	VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: a TLS client on the plaintext port (TLS "
		  "goes to tls-listen); dropping it", conn->peer);
	return true;
}

static int handle_message(vccid_vscard_conn *conn, const struct vccid_vscard_header *header,
			  const uint8_t *payload)
{
	if (!conn->handshake_done) {
		if (header->type != VCCID_VSCARD_INIT) {
			if (looks_like_tls(conn, header))
				return VCCID_EPROTO;
			VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: %s (type %u) before Init",
				  conn->peer, vccid_vscard_type_name(header->type), header->type);
			return VCCID_EPROTO;
		}
		return handle_init(conn, payload, header->length);
	}
	VCCID_LOG(VCCID_LOG_DEBUG, "VSCard peer %s: %s reader %u, %u bytes", conn->peer,
		  vccid_vscard_type_name(header->type), header->reader_id, header->length);
	switch ((enum vccid_vscard_type)header->type) {
	case VCCID_VSCARD_READER_ADD:
		return handle_reader_add(conn, payload, header->length);
	case VCCID_VSCARD_READER_REMOVE:
		return handle_reader_remove(conn, header->reader_id);
	case VCCID_VSCARD_ATR:
		return handle_atr(conn, header->reader_id, payload, header->length);
	case VCCID_VSCARD_CARD_REMOVE:
		return handle_card_remove(conn, header->reader_id);
	case VCCID_VSCARD_APDU:
	case VCCID_VSCARD_ERROR:
		handle_answer(conn, header->type, header->reader_id, payload, header->length);
		return VCCID_OK;
	case VCCID_VSCARD_FLUSH: {
		uint8_t msg[VCCID_VSCARD_HEADER_SIZE];

		vccid_vscard_header_encode(msg, VCCID_VSCARD_FLUSH_COMPLETE, header->reader_id, 0);
		return conn_answer(conn, msg, sizeof(msg));
	}
	case VCCID_VSCARD_INIT:
	case VCCID_VSCARD_FLUSH_COMPLETE:
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s: unexpected %s ignored", conn->peer,
			  vccid_vscard_type_name(header->type));
		return VCCID_OK;
	default:
		/* As QEMU does: a general error, a type every client expects. */
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: unknown message type %u", conn->peer,
			  header->type);
		return send_error(conn, header->reader_id, VCCID_VSCARD_GENERAL_ERROR);
	}
}

static uint8_t *conn_read_space(vccid_vscard_conn *conn, size_t *want)
{
	return vccid_vscard_framer_space(&conn->framer, want);
}

static int conn_read_done(vccid_vscard_conn *conn, size_t n)
{
	struct vccid_vscard_header header;
	const uint8_t *payload;
	int rv = vccid_vscard_framer_fill(&conn->framer, n, &header, &payload);

	if (rv < 0) {
		vccid_vscard_header_decode(conn->buf, &header);
		if (looks_like_tls(conn, &header))
			return VCCID_EPROTO;
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s: %s message announces %u bytes, over the "
			  "limit of %zu", conn->peer, vccid_vscard_type_name(header.type), header.length,
			  conn->framer.max_payload);
		return VCCID_EPROTO;
	}
	if (rv == 0)
		return VCCID_OK;
	rv = handle_message(conn, &header, payload);
	if (rv == VCCID_OK && vccid_vscard_conn_dead(conn))
		rv = VCCID_EIO;
	return rv;
}

int vccid_vscard_conn_input(vccid_vscard_conn *conn, const uint8_t *data, size_t len)
{
	while (len > 0) {
		size_t want;
		uint8_t *space = conn_read_space(conn, &want);
		size_t n = want < len ? want : len;
		int rv;

		if (want == 0)
			return VCCID_EPROTO;

		memcpy(space, data, n);
		data += n;
		len -= n;
		rv = conn_read_done(conn, n);
		if (rv != VCCID_OK)
			return rv;
	}
	return VCCID_OK;
}

/* Parses what a transmit read and left to the transport. */
static int conn_read_stashed(vccid_vscard_conn *conn)
{
	uint8_t *stash;
	size_t len;
	int rv = VCCID_OK;

	pthread_mutex_lock(&conn->lock);
	stash = conn->stash;
	len = conn->stash_len;
	conn->stash = NULL;
	conn->stash_len = 0;
	pthread_mutex_unlock(&conn->lock);
	if (stash != NULL) {
		rv = vccid_vscard_conn_input(conn, stash, len);
		explicit_bzero(stash, len);
		free(stash);
	}
	return rv;
}

const char *vccid_vscard_conn_serve(vccid_vscard_conn *conn)
{
	unsigned i;

	if (conn_read_stashed(conn) != VCCID_OK)
		return vccid_vscard_conn_dead(conn) ? "connection failed" : "protocol error";
	for (i = 0; i < SERVE_MAX_READS; i++) {
		struct iovec iov;
		size_t want;
		ssize_t n;
		bool sender;

		/* A transmit began writing: leave the rest until it is done (it wakes us), so
		 * no message handled here waits for that write (a removal would). */
		pthread_mutex_lock(&conn->lock);
		sender = conn->sending > 0;
		if (sender)
			conn->skipped = true;
		pthread_mutex_unlock(&conn->lock);
		if (sender)
			break;

		iov.iov_base = conn_read_space(conn, &want);
		iov.iov_len = want;
		if (want == 0)
			return "protocol error";
		n = conn->io.read(conn->io.io, &iov, 1, 0);
		if (n == VCCID_ETIMEDOUT)
			break;   /* all there was */
		if (n == 0)
			return "end of stream";
		if (n < 0)
			return "read error";
		if (conn_read_done(conn, (size_t)n) != VCCID_OK)
			return vccid_vscard_conn_dead(conn) ? "connection failed" : "protocol error";
	}
	return NULL;
}
