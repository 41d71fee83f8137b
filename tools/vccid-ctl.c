/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-ctl: lists vccid slots and inserts or removes emulated cards, through PC/SC. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <winscard.h>

#include "ifdhandler/control.h"

#define STATUS_MAX 1024

static const char usage[] =
	"Usage: vccid-ctl [-h] COMMAND [ARGS]\n"
	"\n"
	"Controls the slots of vccid's virtual readers in the running pcscd.\n"
	"\n"
	"Commands:\n"
	"  list                 one line per vccid slot: READER, STATE (present or empty),\n"
	"                       CARD in the slot (- if none), HOME card configured for it,\n"
	"                       REMOTE reader NAME@PEER of a VSCard client (- if none)\n"
	"  status NAME          the full status line of one slot (key=value)\n"
	"  remove NAME          take the card out of its slot (pcscd reports removal)\n"
	"  insert NAME [CARD]   put a card in; NAME is a card name (it goes back to\n"
	"                       its configured slot) or a reader name (CARD or the\n"
	"                       slot's configured card goes into it)\n"
	"\n"
	"NAME is a card name from vccid.conf ([card:NAME]) or a PC/SC reader name\n"
	"such as \"vccid 00 01\". vccid-ctl talks to pcscd (SCardControl on a direct\n"
	"connection), so it needs the same access to pcscd as any PC/SC program.\n"
	"\n"
	"Exit status: 0 success, 1 the operation failed, 2 usage error.\n";

struct slot_info {
	char reader[256];
	char status[STATUS_MAX];
};

static void print_pcsc_error(const char *what, LONG rv)
{
	fprintf(stderr, "vccid-ctl: %s: %s (0x%08lX)\n", what, pcsc_stringify_error(rv),
		(unsigned long)rv);
}

/* The value of "key=" in a status line, copied into @p out. */
static const char *status_field(const char *status, const char *key, char *out, size_t size)
{
	size_t key_len = strlen(key);
	const char *p = status;

	out[0] = '\0';
	while ((p = strstr(p, key)) != NULL) {
		if ((p == status || p[-1] == ' ') && p[key_len] == '=') {
			size_t n = strcspn(p + key_len + 1, " ");

			if (n >= size)
				n = size - 1;
			memcpy(out, p + key_len + 1, n);
			out[n] = '\0';
			break;
		}
		p += key_len;
	}
	return out;
}

static LONG connect_direct(SCARDCONTEXT ctx, const char *reader, SCARDHANDLE *card)
{
	DWORD protocol;

	return SCardConnect(ctx, reader, SCARD_SHARE_DIRECT, 0, card, &protocol);
}

/* Asks one reader for its vccid status; false for readers that are not vccid's. */
static bool slot_status(SCARDCONTEXT ctx, const char *reader, char *out, size_t size)
{
	SCARDHANDLE card;
	DWORD len = 0;
	LONG rv;

	if (connect_direct(ctx, reader, &card) != SCARD_S_SUCCESS)
		return false;
	rv = SCardControl(card, VCCID_CTL_STATUS, NULL, 0, out, (DWORD)size - 1, &len);
	SCardDisconnect(card, SCARD_LEAVE_CARD);
	if (rv != SCARD_S_SUCCESS || len == 0 || strncmp(out, "reader=", 7) != 0)
		return false;
	out[len] = '\0';
	return true;
}

/* Fills @p slots with every vccid slot; returns the count, or -1 after an error message. */
static int list_slots(SCARDCONTEXT ctx, struct slot_info **slots)
{
	char *names = NULL;
	DWORD names_len = SCARD_AUTOALLOCATE;
	const char *name;
	int count = 0;
	LONG rv;

	*slots = NULL;
	rv = SCardListReaders(ctx, NULL, (LPSTR)&names, &names_len);
	if (rv == SCARD_E_NO_READERS_AVAILABLE)
		return 0;
	if (rv != SCARD_S_SUCCESS) {
		print_pcsc_error("cannot list readers", rv);
		return -1;
	}
	for (name = names; *name != '\0'; name += strlen(name) + 1) {
		struct slot_info info;
		struct slot_info *grown;

		if (!slot_status(ctx, name, info.status, sizeof(info.status)))
			continue;
		snprintf(info.reader, sizeof(info.reader), "%s", name);
		grown = realloc(*slots, sizeof(**slots) * (size_t)(count + 1));
		if (grown == NULL) {
			fprintf(stderr, "vccid-ctl: out of memory\n");
			break;
		}
		*slots = grown;
		(*slots)[count++] = info;
	}
	SCardFreeMemory(ctx, names);
	return count;
}

/* Finds the slot a NAME means: a reader name, else the slot holding or homing that card. */
static const struct slot_info *find_slot(const struct slot_info *slots, int count,
					 const char *name, bool want_home)
{
	char value[128];
	int i;

	for (i = 0; i < count; i++)
		if (strcmp(slots[i].reader, name) == 0)
			return &slots[i];
	for (i = 0; i < count; i++)
		if (strcmp(status_field(slots[i].status, "card", value, sizeof(value)), name) == 0)
			return &slots[i];
	if (want_home)
		for (i = 0; i < count; i++)
			if (strcmp(status_field(slots[i].status, "home", value, sizeof(value)), name) == 0)
				return &slots[i];
	return NULL;
}

static int send_control(SCARDCONTEXT ctx, const char *reader, DWORD code, const char *arg)
{
	SCARDHANDLE card;
	DWORD len = 0;
	char out[16];
	LONG rv = connect_direct(ctx, reader, &card);

	if (rv != SCARD_S_SUCCESS) {
		print_pcsc_error(reader, rv);
		return 1;
	}
	rv = SCardControl(card, code, arg, arg ? (DWORD)strlen(arg) : 0, out, sizeof(out), &len);
	SCardDisconnect(card, SCARD_LEAVE_CARD);
	if (rv != SCARD_S_SUCCESS) {
		print_pcsc_error(reader, rv);
		return 1;
	}
	return 0;
}

static int cmd_list(const struct slot_info *slots, int count)
{
	char state[32], card[128], home[128], remote[128], peer[128];
	int i;

	for (i = 0; i < count; i++) {
		status_field(slots[i].status, "remote", remote, sizeof(remote));
		status_field(slots[i].status, "peer", peer, sizeof(peer));
		printf("%s\t%s\t%s\t%s\t", slots[i].reader,
		       status_field(slots[i].status, "state", state, sizeof(state)),
		       status_field(slots[i].status, "card", card, sizeof(card)),
		       status_field(slots[i].status, "home", home, sizeof(home)));
		if (remote[0] == '\0' || strcmp(remote, "-") == 0)
			printf("-\n");
		else
			printf("%s@%s\n", remote, peer);
	}
	return 0;
}

static int cmd_remove(SCARDCONTEXT ctx, const struct slot_info *slots, int count,
		      const char *name)
{
	const struct slot_info *slot = find_slot(slots, count, name, false);
	char state[32];

	if (slot == NULL) {
		fprintf(stderr, "vccid-ctl: no vccid reader or inserted card is called '%s' "
			"(see vccid-ctl list)\n", name);
		return 1;
	}
	if (strcmp(status_field(slot->status, "state", state, sizeof(state)), "present") != 0) {
		fprintf(stderr, "vccid-ctl: %s holds no card\n", slot->reader);
		return 1;
	}
	return send_control(ctx, slot->reader, VCCID_CTL_REMOVE, NULL);
}

static int cmd_insert(SCARDCONTEXT ctx, const struct slot_info *slots, int count,
		      const char *name, const char *card)
{
	const struct slot_info *by_reader = NULL;
	const struct slot_info *slot;
	char value[128];
	int i;

	for (i = 0; i < count; i++)
		if (strcmp(slots[i].reader, name) == 0)
			by_reader = &slots[i];
	if (by_reader == NULL && card != NULL) {
		fprintf(stderr, "vccid-ctl: '%s' is not a vccid reader\n", name);
		return 1;
	}
	slot = by_reader ? by_reader : find_slot(slots, count, name, true);
	if (slot == NULL) {
		fprintf(stderr, "vccid-ctl: no vccid reader or configured card is called '%s' "
			"(see vccid-ctl list)\n", name);
		return 1;
	}
	if (by_reader == NULL)
		card = name;
	if (strcmp(status_field(slot->status, "state", value, sizeof(value)), "present") == 0) {
		fprintf(stderr, "vccid-ctl: %s already holds card %s\n", slot->reader,
			status_field(slot->status, "card", value, sizeof(value)));
		return 1;
	}
	if (card == NULL &&
	    strcmp(status_field(slot->status, "home", value, sizeof(value)), "-") == 0) {
		fprintf(stderr, "vccid-ctl: no card is configured for %s; name one\n",
			slot->reader);
		return 1;
	}
	return send_control(ctx, slot->reader, VCCID_CTL_INSERT, card);
}

int main(int argc, char **argv)
{
	SCARDCONTEXT ctx;
	struct slot_info *slots = NULL;
	const char *command;
	int count;
	int status = 2;
	LONG rv;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	command = argv[1];
	if (!((strcmp(command, "list") == 0 && argc == 2) ||
	      ((strcmp(command, "status") == 0 || strcmp(command, "remove") == 0) && argc == 3) ||
	      (strcmp(command, "insert") == 0 && (argc == 3 || argc == 4)))) {
		fprintf(stderr, "vccid-ctl: bad command or arguments: try vccid-ctl --help\n");
		return 2;
	}
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		print_pcsc_error("cannot reach pcscd", rv);
		return 1;
	}
	count = list_slots(ctx, &slots);
	if (count < 0) {
		status = 1;
	} else if (strcmp(command, "list") == 0) {
		status = cmd_list(slots, count);
	} else if (strcmp(command, "status") == 0) {
		const struct slot_info *slot = find_slot(slots, count, argv[2], true);

		if (slot != NULL)
			printf("%s\n", slot->status);
		else
			fprintf(stderr, "vccid-ctl: no vccid reader or card is called '%s'\n", argv[2]);
		status = slot != NULL ? 0 : 1;
	} else if (strcmp(command, "remove") == 0) {
		status = cmd_remove(ctx, slots, count, argv[2]);
	} else {
		status = cmd_insert(ctx, slots, count, argv[2], argc == 4 ? argv[3] : NULL);
	}
	free(slots);
	SCardReleaseContext(ctx);
	return status;
}
