/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's card source: a libcacard reader through the shared libcacard setup (backends/cacard/emul.h). */
#define _GNU_SOURCE
#include "card.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libcacard.h>

#include "backends/cacard/emul.h"
#include "corelib/error.h"
#include "corelib/log.h"

#define CERTS_MAX 10                 /* a CAC card holds at most 10 certificates */

/* What the event thread hands to the main thread: a type and a referenced reader. */
struct card_event {
	VEventType type;
	VReader *reader;
};

static struct vccid_share_card_options opts;
static int event_pipe[2] = { -1, -1 };
static VReader *shared;              /* the libcacard reader we share (referenced) */
static bool lib_card;                /* libcacard has a card in it */
static uint8_t card_id[VCCID_CARD_ID_BYTES];
static bool has_card_id;             /* a soft card's own CAC identifier (card-id.h) */

static int share_power(void *card, enum vccid_power_action action, uint8_t *atr,
		       size_t *atr_len)
{
	int len;

	(void)card;
	if (shared == NULL)
		return VCCID_ENOCARD;
	if (action == VCCID_POWER_DOWN) {
		vreader_power_off(shared);
		return VCCID_OK;
	}
	len = *atr_len > INT_MAX ? INT_MAX : (int)*atr_len;
	if (vreader_power_on(shared, atr, &len) != VREADER_OK || len <= 0) {
		VCCID_LOG(VCCID_LOG_INFO, "libcacard could not power the card on");
		return VCCID_EIO;
	}
	*atr_len = (size_t)len;
	return VCCID_OK;
}

/* @p rsp must take VCCID_MAX_RESPONSE bytes: vreader_xfr_bytes truncates silently. */
static int share_transmit(void *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			  size_t *rsp_len)
{
	int len = *rsp_len > INT_MAX ? INT_MAX : (int)*rsp_len;
	VReaderStatus st;

	(void)card;
	if (shared == NULL)
		return VCCID_ENOCARD;
	if (cmd_len > INT_MAX)
		return VCCID_EINVAL;
	/* libcacard's API is not const-correct; it does not write to the command. */
	st = vreader_xfr_bytes(shared, (unsigned char *)cmd, (int)cmd_len, rsp, &len);
	if (st != VREADER_OK || len < 0) {
		VCCID_LOG(VCCID_LOG_DEBUG, "libcacard failed the APDU (status %d)", (int)st);
		return VCCID_EIO;
	}
	*rsp_len = (size_t)len;
	if (has_card_id)
		vccid_card_id_apply(card_id, rsp, *rsp_len);
	return VCCID_OK;
}

static const struct vccid_card_ops share_ops = {
	.backend = "cacard",
	.power = share_power,
	.transmit = share_transmit,
};

/* On libcacard's event thread: vevent_wait_next_vevent blocks, so events travel through a pipe. */
static void forward_event(VEvent *event, void *arg)
{
	struct card_event ev = { .type = event->type, .reader = NULL };
	const uint8_t *p = (const uint8_t *)&ev;
	size_t done = 0;

	(void)arg;
	if (event->reader != NULL)
		ev.reader = vreader_reference(event->reader);
	while (done < sizeof(ev)) {
		ssize_t n = write(event_pipe[1], p + done, sizeof(ev) - done);

		if (n > 0) {
			done += (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = event_pipe[1], .events = POLLOUT };

			poll(&pfd, 1, 100);
		} else if (n < 0 && errno != EINTR) {
			if (ev.reader != NULL)
				vreader_free(ev.reader);
			return;
		}
	}
}

/* Splits the comma-separated nicknames (checked by the option parser) in place. */
static size_t split_certs(char *list, const char *certs[CERTS_MAX])
{
	char *save = NULL, *tok;
	size_t n = 0;

	for (tok = strtok_r(list, ",", &save); tok != NULL && n < CERTS_MAX;
	     tok = strtok_r(NULL, ",", &save))
		certs[n++] = tok;
	return n;
}

static int start_libcacard(const struct vccid_share_card_options *o)
{
	const char *certs[CERTS_MAX];
	char *list = o->certs != NULL ? strdup(o->certs) : NULL;
	struct vccid_cacard_emul_card card = { .name = o->name, .certs = certs };
	struct vccid_cacard_emul_setup setup = {
		.database = o->database,
		.use_hw = o->hardware,
		.private_database = false,   /* --hardware wants the database's modules */
		.cards = &card,
		.n_cards = o->hardware ? 0 : 1,
	};
	int rv;

	if (!o->hardware && list == NULL)
		return VCCID_ENOMEM;
	if (list != NULL)
		card.n_certs = split_certs(list, certs);
	rv = vccid_cacard_emul_init(&setup);
	if (rv == VCCID_EIO && o->hardware)
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard could not open the NSS database %s",
			  o->database ? o->database : "sql:/etc/pki/nssdb (default)");
	else if (rv == VCCID_EIO)
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard could not make a card from %s with the "
			  "certificates %s (does the database exist and hold these nicknames?)",
			  o->database, o->certs);
	else if (rv != VCCID_OK)
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard rejected the card options");
	/* libcacard skips a missing nickname silently: a smaller card confuses everyone. */
	if (rv == VCCID_OK && !o->hardware)
		rv = vccid_cacard_emul_check_card(&card, o->database, card_id, &has_card_id);
	free(list);
	return rv;
}

int vccid_share_card_start(const struct vccid_share_card_options *o)
{
	int rv;

	opts = *o;
	if (pipe2(event_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "cannot create pipes: %s", strerror(errno));
		return VCCID_EIO;
	}
	rv = start_libcacard(o);
	if (rv == VCCID_OK)
		rv = vccid_cacard_emul_events_start(forward_event, NULL);
	return rv;
}

int vccid_share_card_event_fd(void)
{
	return event_pipe[0];
}

static int on_reader_insert(vccid_share_client *client, VReader *reader, const char *name)
{
	if (shared != NULL) {
		VCCID_LOG(VCCID_LOG_DEBUG, "libcacard reader '%s' ignored: already sharing '%s'",
			  name, vreader_get_name(shared));
	} else if (opts.hardware && opts.reader_filter && !strstr(name, opts.reader_filter)) {
		VCCID_LOG(VCCID_LOG_INFO, "libcacard reader '%s' ignored: it does not match "
			  "--reader '%s'", name, opts.reader_filter);
	} else if (opts.hardware && vccid_share_is_local_vccid_reader(name)) {
		VCCID_LOG(VCCID_LOG_INFO, "libcacard reader '%s' refused: it is one of this host's "
			  "vccid readers, sharing it would loop", name);
	} else {
		shared = vreader_reference(reader);
		lib_card = vreader_card_is_present(shared) == VREADER_OK;
		VCCID_LOG(VCCID_LOG_INFO, "sharing libcacard reader '%s'%s", name,
			  lib_card ? " (card present)" : "");
		return vccid_share_client_set_card(client, &share_ops, NULL, lib_card);
	}
	return VCCID_OK;
}

static int on_event(vccid_share_client *client, const struct card_event *ev)
{
	const char *name = ev->reader != NULL ? vreader_get_name(ev->reader) : "?";
	bool ours = ev->reader != NULL && ev->reader == shared;
	int rv = VCCID_OK;

	switch (ev->type) {
	case VEVENT_READER_INSERT:
		if (ev->reader != NULL)
			rv = on_reader_insert(client, ev->reader, name);
		break;
	case VEVENT_READER_REMOVE:
		if (ours) {
			VCCID_LOG(VCCID_LOG_INFO, "libcacard reader '%s' went away", name);
			rv = vccid_share_client_set_card(client, NULL, NULL, false);
			vreader_free(shared);
			shared = NULL;
			lib_card = false;
		}
		break;
	case VEVENT_CARD_INSERT:
		if (ours) {
			VCCID_LOG(VCCID_LOG_DEBUG, "libcacard: card inserted in '%s'", name);
			lib_card = true;
			rv = vccid_share_client_card_present(client, true);
		}
		break;
	case VEVENT_CARD_REMOVE:
		if (ours) {
			VCCID_LOG(VCCID_LOG_DEBUG, "libcacard: card removed from '%s'", name);
			rv = vccid_share_client_card_present(client, false);
			lib_card = false;
		}
		break;
	case VEVENT_LAST:
	default:
		break;
	}
	return rv;
}

int vccid_share_card_drain(vccid_share_client *client)
{
	struct card_event ev;
	int rv = VCCID_OK;

	/* After a failure the rest waits: the caller closes the connection first. */
	while (rv == VCCID_OK && read(event_pipe[0], &ev, sizeof(ev)) == (ssize_t)sizeof(ev)) {
		rv = on_event(client, &ev);
		if (ev.reader != NULL)
			vreader_free(ev.reader);
	}
	return rv;
}

const char *vccid_share_card_reader(bool *present)
{
	*present = shared != NULL && lib_card;
	return shared != NULL ? vreader_get_name(shared) : NULL;
}

void vccid_share_card_stop(void)
{
	struct card_event ev;

	vccid_cacard_emul_events_stop();
	while (event_pipe[0] >= 0 && read(event_pipe[0], &ev, sizeof(ev)) == (ssize_t)sizeof(ev))
		if (ev.reader != NULL)
			vreader_free(ev.reader);
	if (shared != NULL) {
		vreader_free(shared);
		shared = NULL;
	}
	if (vccid_cacard_emul_initialised())
		vcard_emul_finalize();
}
