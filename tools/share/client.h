/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's VSCard client without sockets: bytes from the host in, messages out, one card. */
#ifndef VCCID_SHARE_CLIENT_H
#define VCCID_SHARE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

#define VCCID_SHARE_NAME_MAX 200            /* reader name sent in ReaderAdd */
#define VCCID_SHARE_LEGACY_MAX_PAYLOAD 4096 /* what we take from a host without the extension */
#define VCCID_SHARE_EXT_MAX_PAYLOAD (65536 + 16)

typedef struct vccid_share_client vccid_share_client;

enum vccid_share_state {
	VCCID_SHARE_DISCONNECTED,  /* no connection */
	VCCID_SHARE_WAIT_INIT,     /* our Init sent */
	VCCID_SHARE_ADDING,        /* ReaderRemove(0) and ReaderAdd sent */
	VCCID_SHARE_READY,         /* the host gave us a reader id */
	VCCID_SHARE_CLOSING,       /* goodbye sent, waiting for the answers */
};

/** How the client reaches the host; provided by the transport. */
struct vccid_share_client_io {
	/** Writes one whole message; 0, or VCCID_EIO with errno saying why. */
	int (*write)(void *io, const uint8_t *buf, size_t len);
	void *io;
};

/**
 * Creates a disconnected client that adds a reader called @p reader_name
 * (copied; at most VCCID_SHARE_NAME_MAX bytes). NULL on allocation failure.
 */
vccid_share_client *vccid_share_client_new(const struct vccid_share_client_io *io,
					   const char *reader_name);
void vccid_share_client_free(vccid_share_client *client);

/*
 * Every function below that returns int returns 0, or a negative
 * vccid_error when the connection must be closed: vccid_share_client_why()
 * says why, and vccid_share_client_fatal() whether to give up for good.
 */

/** The transport connected: sends Init (with vccid's extended-APDU bit). */
int vccid_share_client_connected(vccid_share_client *client);
/** The connection is gone: forgets the host's state and powers the card off. */
void vccid_share_client_disconnected(vccid_share_client *client);
/** Where the transport reads next and at most how much (0: a message is complete). */
uint8_t *vccid_share_client_read_space(vccid_share_client *client, size_t *want);
/** Accounts @p n bytes read into vccid_share_client_read_space(); handles whole messages. */
int vccid_share_client_read_done(vccid_share_client *client, size_t n);
/** Feeds @p len bytes from the host (copies them through the read space). */
int vccid_share_client_input(vccid_share_client *client, const uint8_t *data, size_t len);

/**
 * The card source: @p ops and @p card (NULL: none), whose power and transmit
 * the client calls; @p present says whether a card is in it. A card that
 * arrives while connected goes to the host (an ATR); one that leaves is taken
 * away (CardRemove).
 */
int vccid_share_client_set_card(vccid_share_client *client, const struct vccid_card_ops *ops,
				void *card, bool present);
int vccid_share_client_card_present(vccid_share_client *client, bool present);

/** The user takes the card out (it stays out until vccid_share_client_insert). */
int vccid_share_client_remove(vccid_share_client *client);
/** The user puts it back. */
int vccid_share_client_insert(vccid_share_client *client);
/**
 * Takes the card and the reader away from the host (CardRemove,
 * ReaderRemove) and enters CLOSING: the transport then waits until
 * vccid_share_client_pending() is 0. Not connected: nothing to say.
 */
int vccid_share_client_goodbye(vccid_share_client *client);

enum vccid_share_state vccid_share_client_state(const vccid_share_client *client);
const char *vccid_share_state_name(enum vccid_share_state state);
/** The reader id the host gave; VCCID_VSCARD_UNDEFINED_READER_ID before. */
uint32_t vccid_share_client_reader_id(const vccid_share_client *client);
bool vccid_share_client_card_on_host(const vccid_share_client *client);
bool vccid_share_client_host_extended(const vccid_share_client *client);
/** Requests (ReaderAdd, ReaderRemove, ATR, CardRemove) the host has not answered yet. */
size_t vccid_share_client_pending(const vccid_share_client *client);
/** Why the connection must be closed (after a negative return). */
const char *vccid_share_client_why(const vccid_share_client *client);
/** True when the host refused us for good (it cannot add more readers). */
bool vccid_share_client_fatal(const vccid_share_client *client);

#endif
