/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's card source: one libcacard reader (a soft card or a hardware token) for the client. */
#ifndef VCCID_SHARE_CARD_H
#define VCCID_SHARE_CARD_H

#include <stdbool.h>

#include "client.h"

struct vccid_share_card_options {
	const char *database;        /* "sql:DIR", or NULL for libcacard's default (hardware) */
	const char *certs;           /* soft card: comma-separated nicknames, identity first */
	const char *name;            /* soft card's libcacard reader name */
	bool hardware;               /* share a hardware token NSS sees instead */
	const char *reader_filter;   /* hardware: share the first reader whose name has this */
};

/**
 * Initialises libcacard for @p options (once per process), checks the soft
 * card's certificates and starts the event thread. Call with every signal
 * blocked: the threads it starts inherit the mask. 0 or a negative
 * vccid_error (logged).
 */
int vccid_share_card_start(const struct vccid_share_card_options *options);
/** Readable when libcacard events wait for vccid_share_card_drain(). */
int vccid_share_card_event_fd(void);
/**
 * Handles the waiting events: the reader to share appears or goes, its card
 * comes or goes; tells @p client. Returns as the client's functions do.
 */
int vccid_share_card_drain(vccid_share_client *client);
/** The shared libcacard reader's name, or NULL; *present: it holds a card. */
const char *vccid_share_card_reader(bool *present);
/** Stops the event thread, drops the reader and shuts NSS down. */
void vccid_share_card_stop(void);

/**
 * Whether the libcacard reader @p name is one of this host's vccid readers
 * (NSS -> OpenSC -> pcscd -> vccid): sharing it would loop.
 */
bool vccid_share_is_local_vccid_reader(const char *name);

#endif
