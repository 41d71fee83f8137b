/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's VSCard client state machine: handshake as vscclient does it, ATR, APDUs, goodbye. */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vscard/proto.h"
#include "corelib/error.h"
#include "corelib/log.h"

#define ATR_MAX 40                 /* ISO 7816-3; QEMU's MAX_ATR_SIZE */
#define PENDING_MAX 64             /* requests awaiting the host's Error answer */

struct vccid_share_client {
	struct vccid_share_client_io io;
	char name[VCCID_SHARE_NAME_MAX + 1];
	enum vccid_share_state state;
	bool host_extended;
	uint32_t reader_id;
	bool card_on_host;             /* ATR sent, no CardRemove since */
	bool fatal;
	const struct vccid_card_ops *ops;   /* the card source; NULL: none */
	void *card;
	bool card_present;             /* the source has a card */
	bool user_removed;             /* "remove" asked; cleared by "insert" or a new card */
	uint32_t pending[PENDING_MAX]; /* FIFO of message types awaiting an Error answer */
	size_t pending_head, pending_count;
	struct vccid_vscard_framer framer;
	char why[320];
	uint8_t in_buf[VCCID_VSCARD_HEADER_SIZE + VCCID_SHARE_EXT_MAX_PAYLOAD];
	uint8_t out_buf[VCCID_VSCARD_HEADER_SIZE + VCCID_MAX_RESPONSE];
};

/* The connection must go: records why, returns @p err. */
static int fail(vccid_share_client *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(vccid_share_client *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return err;
}

vccid_share_client *vccid_share_client_new(const struct vccid_share_client_io *io,
					   const char *reader_name)
{
	vccid_share_client *c;

	if (strlen(reader_name) > VCCID_SHARE_NAME_MAX)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->io = *io;
	strcpy(c->name, reader_name);
	c->state = VCCID_SHARE_DISCONNECTED;
	c->reader_id = VCCID_VSCARD_UNDEFINED_READER_ID;
	vccid_vscard_framer_init(&c->framer, c->in_buf, VCCID_SHARE_LEGACY_MAX_PAYLOAD);
	return c;
}

void vccid_share_client_free(vccid_share_client *c)
{
	if (c == NULL)
		return;
	explicit_bzero(c, sizeof(*c));   /* buffers may hold a PIN or key material */
	free(c);
}

static void pending_push(vccid_share_client *c, uint32_t type)
{
	if (c->pending_count == PENDING_MAX) {
		/* a host that never answers: forget the oldest */
		c->pending_head = (c->pending_head + 1) % PENDING_MAX;
		c->pending_count--;
	}
	c->pending[(c->pending_head + c->pending_count) % PENDING_MAX] = type;
	c->pending_count++;
}

static bool pending_pop(vccid_share_client *c, uint32_t *type)
{
	if (c->pending_count == 0)
		return false;
	*type = c->pending[c->pending_head];
	c->pending_head = (c->pending_head + 1) % PENDING_MAX;
	c->pending_count--;
	return true;
}

static void log_message(const char *dir, const struct vccid_vscard_header *h, const uint8_t *payload)
{
	char extra[64] = "";

	if (!vccid_log_enabled(VCCID_LOG_DEBUG))
		return;
	if (h->type == VCCID_VSCARD_ERROR && h->length == 4 && payload != NULL)
		snprintf(extra, sizeof(extra), " code %u", (unsigned)((uint32_t)payload[0] << 24 |
			 (uint32_t)payload[1] << 16 | (uint32_t)payload[2] << 8 | payload[3]));
	else if (h->type == VCCID_VSCARD_APDU && h->length >= 2 && payload != NULL && dir[0] == '-')
		snprintf(extra, sizeof(extra), " SW %02X%02X", payload[h->length - 2],
			 payload[h->length - 1]);
	VCCID_LOG(VCCID_LOG_DEBUG, "%s %s reader=%u len=%u%s", dir, vccid_vscard_type_name(h->type),
		  (unsigned)h->reader_id, (unsigned)h->length, extra);
}

/* Writes a whole encoded message (one write for header and payload). */
static int send_raw(vccid_share_client *c, const uint8_t *buf, size_t len)
{
	struct vccid_vscard_header h;
	int rv;

	vccid_vscard_header_decode(buf, &h);
	log_message("->", &h, buf + VCCID_VSCARD_HEADER_SIZE);
	errno = 0;
	rv = c->io.write(c->io.io, buf, len);
	if (rv != VCCID_OK)
		return fail(c, VCCID_EIO, "cannot send %s to the host: %s", vccid_vscard_type_name(h.type),
			    rv == VCCID_ETIMEDOUT ? "it does not read (timed out)"
			    : errno != 0 ? strerror(errno) : "the connection is closed");
	return VCCID_OK;
}

static int send_msg(vccid_share_client *c, uint32_t type, uint32_t reader_id,
		    const uint8_t *payload, size_t len)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + VCCID_SHARE_NAME_MAX + ATR_MAX];
	size_t n = vccid_vscard_message_encode(buf, sizeof(buf), type, reader_id, payload, len);

	if (n == 0)
		return fail(c, VCCID_EINVAL, "a %zu-byte %s does not fit a message", len,
			    vccid_vscard_type_name(type));
	return send_raw(c, buf, n);
}

/* A request the host answers with one Error message. */
static int send_request(vccid_share_client *c, uint32_t type, uint32_t reader_id,
			const uint8_t *payload, size_t len)
{
	int rv = send_msg(c, type, reader_id, payload, len);

	if (rv == VCCID_OK)
		pending_push(c, type);
	return rv;
}

static int card_to_host(vccid_share_client *c)
{
	uint8_t atr[ATR_MAX];
	size_t atr_len = sizeof(atr);
	int rv;

	if (c->state != VCCID_SHARE_READY || c->card_on_host || c->ops == NULL ||
	    !c->card_present || c->user_removed)
		return VCCID_OK;
	rv = c->ops->power(c->card, VCCID_POWER_UP, atr, &atr_len);
	if (rv != VCCID_OK || atr_len < 2 || atr_len > ATR_MAX) {
		VCCID_LOG(VCCID_LOG_INFO, "the card could not be powered on (%s, ATR length %zu)",
			  vccid_strerror(rv), atr_len);
		return VCCID_OK;
	}
	rv = send_request(c, VCCID_VSCARD_ATR, c->reader_id, atr, atr_len);
	if (rv == VCCID_OK) {
		c->card_on_host = true;
		VCCID_LOG(VCCID_LOG_INFO, "card inserted: ATR sent to the host (%zu bytes)", atr_len);
	}
	return rv;
}

static int card_from_host(vccid_share_client *c)
{
	int rv = VCCID_OK;

	if (c->card_on_host && c->state != VCCID_SHARE_DISCONNECTED) {
		c->card_on_host = false;
		rv = send_request(c, VCCID_VSCARD_CARD_REMOVE, c->reader_id, NULL, 0);
		if (rv == VCCID_OK)
			VCCID_LOG(VCCID_LOG_INFO, "card removed: CardRemove sent to the host");
	}
	if (c->ops != NULL && c->card_present)
		c->ops->power(c->card, VCCID_POWER_DOWN, NULL, NULL);   /* a later insert starts logged out */
	return rv;
}

int vccid_share_client_connected(vccid_share_client *c)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + VCCID_VSCARD_INIT_MIN_SIZE];
	size_t n;

	c->host_extended = false;
	c->reader_id = VCCID_VSCARD_UNDEFINED_READER_ID;
	c->card_on_host = false;
	c->fatal = false;
	c->pending_count = 0;
	c->pending_head = 0;
	vccid_vscard_framer_init(&c->framer, c->in_buf, VCCID_SHARE_LEGACY_MAX_PAYLOAD);
	c->state = VCCID_SHARE_WAIT_INIT;
	VCCID_LOG(VCCID_LOG_DEBUG, "connected; sending Init");
	n = vccid_vscard_init_encode(buf, sizeof(buf), 0, VCCID_VSCARD_CAP_VCCID_EXTENDED);
	return send_raw(c, buf, n);
}

void vccid_share_client_disconnected(vccid_share_client *c)
{
	c->state = VCCID_SHARE_DISCONNECTED;
	c->card_on_host = false;
	c->pending_count = 0;
	c->pending_head = 0;
	if (c->ops != NULL && c->card_present)
		c->ops->power(c->card, VCCID_POWER_DOWN, NULL, NULL);
}

static int on_host_init(vccid_share_client *c, const struct vccid_vscard_header *h,
			const uint8_t *payload)
{
	struct vccid_vscard_init init;
	int rv;

	if (vccid_vscard_init_decode(payload, h->length, &init) != VCCID_OK)
		return fail(c, VCCID_EPROTO, "the host's Init is malformed (bad magic or length)");
	if (init.version != VCCID_VSCARD_VERSION)
		VCCID_LOG(VCCID_LOG_INFO, "warning: host speaks VSCard version %u, we speak %u",
			  (unsigned)init.version, VCCID_VSCARD_VERSION);
	c->host_extended = init.n_capabilities > 0 &&
		(init.capabilities[0] & VCCID_VSCARD_CAP_VCCID_EXTENDED) != 0;
	if (c->host_extended)
		c->framer.max_payload = VCCID_SHARE_EXT_MAX_PAYLOAD;
	VCCID_LOG(VCCID_LOG_DEBUG, "host Init: version %u, extended APDUs %s",
		  (unsigned)init.version, c->host_extended ? "yes" : "no");
	/* A reader left over from an unclean exit would make ReaderAdd fail. */
	rv = send_request(c, VCCID_VSCARD_READER_REMOVE, 0, NULL, 0);
	if (rv == VCCID_OK)
		rv = send_request(c, VCCID_VSCARD_READER_ADD, 0, (const uint8_t *)c->name, strlen(c->name));
	if (rv == VCCID_OK)
		c->state = VCCID_SHARE_ADDING;
	return rv;
}

static int on_reader_added(vccid_share_client *c, const struct vccid_vscard_header *h, uint32_t code)
{
	if (c->state != VCCID_SHARE_ADDING)
		return VCCID_OK;
	if (code == VCCID_VSCARD_SUCCESS) {
		c->reader_id = h->reader_id;
		c->state = VCCID_SHARE_READY;
		VCCID_LOG(VCCID_LOG_INFO, "handshake complete: host reader id %u, extended APDUs %s",
			  (unsigned)c->reader_id, c->host_extended ? "yes" : "no");
		return card_to_host(c);
	}
	if (code == VCCID_VSCARD_CANNOT_ADD_MORE_READERS) {
		c->fatal = true;
		return fail(c, VCCID_EBUSY, "the host cannot add more readers (error 2): it already "
			    "has as many as it takes (another client?); giving up");
	}
	return fail(c, VCCID_EPROTO, "the host refused the reader (error %u)", (unsigned)code);
}

static int on_host_error(vccid_share_client *c, const struct vccid_vscard_header *h,
			 const uint8_t *payload)
{
	uint32_t code, what;

	if (vccid_vscard_error_decode(payload, h->length, &code) != VCCID_OK)
		return fail(c, VCCID_EPROTO, "the host sent a malformed Error message");
	if (!pending_pop(c, &what)) {
		VCCID_LOG(VCCID_LOG_INFO, "warning: unsolicited Error from the host (code %u)",
			  (unsigned)code);
		return VCCID_OK;
	}
	VCCID_LOG(VCCID_LOG_DEBUG, "host answered %s with code %u", vccid_vscard_type_name(what),
		  (unsigned)code);
	switch (what) {
	case VCCID_VSCARD_READER_ADD:
		return on_reader_added(c, h, code);
	case VCCID_VSCARD_ATR:
		if (code == VCCID_VSCARD_SUCCESS)
			VCCID_LOG(VCCID_LOG_INFO, "the host accepted the ATR");
		else if (code == VCCID_VSCARD_CARD_ALREADY_INSERTED)
			VCCID_LOG(VCCID_LOG_INFO, "the host already has a card in the reader (error 3)");
		else
			VCCID_LOG(VCCID_LOG_INFO, "the host rejected the ATR (error %u)", (unsigned)code);
		if (code != VCCID_VSCARD_SUCCESS && code != VCCID_VSCARD_CARD_ALREADY_INSERTED)
			c->card_on_host = false;
		break;
	case VCCID_VSCARD_CARD_REMOVE:
		if (code != VCCID_VSCARD_SUCCESS)
			VCCID_LOG(VCCID_LOG_INFO, "the host answered CardRemove with error %u",
				  (unsigned)code);
		break;
	case VCCID_VSCARD_READER_REMOVE:
		if (c->state == VCCID_SHARE_CLOSING)
			VCCID_LOG(VCCID_LOG_INFO, "the host answered ReaderRemove (code %u)",
				  (unsigned)code);
		break;
	default:
		break;
	}
	return VCCID_OK;
}

static int on_host_apdu(vccid_share_client *c, const struct vccid_vscard_header *h,
			const uint8_t *payload)
{
	/* Client to host, the code is "not meaningful" (FACTS.md): any says "failed". */
	static const uint8_t err[4] = { 0, 0, 0, VCCID_VSCARD_GENERAL_ERROR };
	size_t rlen = VCCID_MAX_RESPONSE;
	int rv;

	if (h->reader_id != c->reader_id)
		VCCID_LOG(VCCID_LOG_DEBUG, "APDU for reader %u, ours is %u: answering anyway (one "
			  "reader per connection)", (unsigned)h->reader_id, (unsigned)c->reader_id);
	if (c->state != VCCID_SHARE_READY || !c->card_on_host || c->ops == NULL ||
	    !c->card_present) {
		VCCID_LOG(VCCID_LOG_DEBUG, "APDU without a card: answering with an Error");
		return send_msg(c, VCCID_VSCARD_ERROR, h->reader_id, err, sizeof(err));
	}
	rv = c->ops->transmit(c->card, payload, h->length, c->out_buf + VCCID_VSCARD_HEADER_SIZE, &rlen);
	if (rv != VCCID_OK || rlen > VCCID_MAX_RESPONSE) {
		VCCID_LOG(VCCID_LOG_DEBUG, "the card failed the APDU (%s)", vccid_strerror(rv));
		return send_msg(c, VCCID_VSCARD_ERROR, h->reader_id, err, sizeof(err));
	}
	vccid_vscard_header_encode(c->out_buf, VCCID_VSCARD_APDU, h->reader_id, (uint32_t)rlen);
	rv = send_raw(c, c->out_buf, VCCID_VSCARD_HEADER_SIZE + rlen);
	explicit_bzero(c->out_buf, VCCID_VSCARD_HEADER_SIZE + rlen);   /* may answer a PIN */
	return rv;
}

static int on_message(vccid_share_client *c, const struct vccid_vscard_header *h,
		      const uint8_t *payload)
{
	log_message("<-", h, payload);
	if (c->state == VCCID_SHARE_WAIT_INIT && h->type != VCCID_VSCARD_INIT)
		return fail(c, VCCID_EPROTO, "the host sent %s (type %u) before its Init",
			    vccid_vscard_type_name(h->type), (unsigned)h->type);
	switch (h->type) {
	case VCCID_VSCARD_INIT:
		if (c->state == VCCID_SHARE_WAIT_INIT)
			return on_host_init(c, h, payload);
		VCCID_LOG(VCCID_LOG_INFO, "warning: ignoring a second Init from the host");
		return VCCID_OK;
	case VCCID_VSCARD_ERROR:
		return on_host_error(c, h, payload);
	case VCCID_VSCARD_APDU:
		return on_host_apdu(c, h, payload);
	case VCCID_VSCARD_FLUSH:
		return send_msg(c, VCCID_VSCARD_FLUSH_COMPLETE, h->reader_id, NULL, 0);
	default:
		/* vscclient drops a host that sends what only a client sends; so do we. */
		return fail(c, VCCID_EPROTO, "the host sent an unexpected %s message (type %u)",
			    vccid_vscard_type_name(h->type), (unsigned)h->type);
	}
}

uint8_t *vccid_share_client_read_space(vccid_share_client *c, size_t *want)
{
	return vccid_vscard_framer_space(&c->framer, want);
}

int vccid_share_client_read_done(vccid_share_client *c, size_t n)
{
	struct vccid_vscard_header h;
	const uint8_t *payload;
	int rv = vccid_vscard_framer_fill(&c->framer, n, &h, &payload);

	if (rv < 0) {
		vccid_vscard_header_decode(c->in_buf, &h);
		return fail(c, VCCID_EPROTO, "the host announced a %u-byte %s payload, over our "
			    "limit of %zu", (unsigned)h.length, vccid_vscard_type_name(h.type),
			    c->framer.max_payload);
	}
	if (rv == 0)
		return VCCID_OK;
	if (c->state == VCCID_SHARE_DISCONNECTED)
		return fail(c, VCCID_EINVAL, "a message from the host while not connected");
	rv = on_message(c, &h, payload);
	explicit_bzero(c->in_buf + VCCID_VSCARD_HEADER_SIZE, h.length);   /* may hold a PIN */
	return rv;
}

int vccid_share_client_input(vccid_share_client *c, const uint8_t *data, size_t len)
{
	for (;;) {
		size_t want;
		uint8_t *space = vccid_share_client_read_space(c, &want);
		size_t n = want < len ? want : len;
		int rv;

		if (want > 0 && len == 0)
			return VCCID_OK;
		memcpy(space, data, n);
		data += n;
		len -= n;
		rv = vccid_share_client_read_done(c, n);
		if (rv != VCCID_OK)
			return rv;
	}
}

int vccid_share_client_set_card(vccid_share_client *c, const struct vccid_card_ops *ops,
				void *card, bool present)
{
	int rv = VCCID_OK;

	if (c->ops != NULL && (ops != c->ops || card != c->card))
		rv = card_from_host(c);   /* the old card goes */
	c->ops = ops;
	c->card = card;
	c->card_present = ops != NULL && present;
	if (rv == VCCID_OK)
		rv = card_to_host(c);
	return rv;
}

int vccid_share_client_card_present(vccid_share_client *c, bool present)
{
	int rv;

	if (present) {
		c->card_present = c->ops != NULL;
		c->user_removed = false;
		return card_to_host(c);
	}
	rv = card_from_host(c);
	c->card_present = false;
	return rv;
}

int vccid_share_client_remove(vccid_share_client *c)
{
	c->user_removed = true;
	if (!c->card_on_host) {
		VCCID_LOG(VCCID_LOG_INFO, "remove: no card on the host%s",
			  c->state == VCCID_SHARE_READY ? "" :
			  " (not connected; the card stays out when we connect)");
		return VCCID_OK;
	}
	return card_from_host(c);
}

int vccid_share_client_insert(vccid_share_client *c)
{
	c->user_removed = false;
	if (c->card_on_host)
		VCCID_LOG(VCCID_LOG_INFO, "insert: the card is already on the host");
	else if (c->ops == NULL || !c->card_present)
		VCCID_LOG(VCCID_LOG_INFO, "insert: there is no card to insert");
	else if (c->state != VCCID_SHARE_READY)
		VCCID_LOG(VCCID_LOG_INFO, "insert: not connected; the card goes in when we connect");
	else
		return card_to_host(c);
	return VCCID_OK;
}

int vccid_share_client_goodbye(vccid_share_client *c)
{
	int rv = VCCID_OK;

	if (c->state != VCCID_SHARE_READY)
		return VCCID_OK;
	if (c->card_on_host) {
		c->card_on_host = false;
		rv = send_request(c, VCCID_VSCARD_CARD_REMOVE, c->reader_id, NULL, 0);
	}
	if (rv == VCCID_OK)
		rv = send_request(c, VCCID_VSCARD_READER_REMOVE, c->reader_id, NULL, 0);
	if (rv == VCCID_OK)
		c->state = VCCID_SHARE_CLOSING;
	return rv;
}

enum vccid_share_state vccid_share_client_state(const vccid_share_client *c)
{
	return c->state;
}

const char *vccid_share_state_name(enum vccid_share_state state)
{
	switch (state) {
	case VCCID_SHARE_DISCONNECTED: return "disconnected";
	case VCCID_SHARE_WAIT_INIT: return "waiting for the host's Init";
	case VCCID_SHARE_ADDING: return "adding the reader";
	case VCCID_SHARE_READY: return "connected";
	case VCCID_SHARE_CLOSING: return "closing";
	}
	return "?";
}

uint32_t vccid_share_client_reader_id(const vccid_share_client *c)
{
	return c->reader_id;
}

bool vccid_share_client_card_on_host(const vccid_share_client *c)
{
	return c->card_on_host;
}

bool vccid_share_client_host_extended(const vccid_share_client *c)
{
	return c->host_extended;
}

size_t vccid_share_client_pending(const vccid_share_client *c)
{
	return c->pending_count;
}

const char *vccid_share_client_why(const vccid_share_client *c)
{
	return c->why;
}

bool vccid_share_client_fatal(const vccid_share_client *c)
{
	return c->fatal;
}
