/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's loop protection: which PC/SC readers of this host are served by vccid. */
#include "card.h"

#include <stdlib.h>
#include <string.h>

#include <reader.h>
#include <winscard.h>

#include "corelib/log.h"

/* True when the PC/SC reader is served by vccid (its vendor attribute says so). */
static bool pcsc_reader_is_vccid(SCARDCONTEXT ctx, const char *reader)
{
	SCARDHANDLE h;
	DWORD proto, len;
	BYTE vendor[64];
	bool is = false;

	if (SCardConnect(ctx, reader, SCARD_SHARE_DIRECT, 0, &h, &proto) != SCARD_S_SUCCESS)
		return false;
	len = sizeof(vendor);
	if (SCardGetAttrib(h, SCARD_ATTR_VENDOR_NAME, vendor, &len) == SCARD_S_SUCCESS &&
	    len >= 5 && len <= sizeof(vendor)) {
		is = memcmp(vendor, "vccid", 5) == 0 && (len == 5 || vendor[5] == '\0');
	}
	SCardDisconnect(h, SCARD_LEAVE_CARD);
	return is;
}

/* PKCS#11 slot descriptions hold 64 characters, so a long name may be a truncated prefix. */
bool vccid_share_is_local_vccid_reader(const char *name)
{
	SCARDCONTEXT ctx;
	char *readers = NULL, *r;
	DWORD len = 0;
	bool found = false;
	size_t name_len = strlen(name);

	if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS) {
		VCCID_LOG(VCCID_LOG_DEBUG, "no PC/SC service: no local vccid readers to avoid");
		return false;
	}
	if (SCardListReaders(ctx, NULL, NULL, &len) == SCARD_S_SUCCESS && len > 0 &&
	    (readers = malloc(len)) != NULL &&
	    SCardListReaders(ctx, NULL, readers, &len) == SCARD_S_SUCCESS) {
		for (r = readers; *r && !found; r += strlen(r) + 1) {
			bool match = strstr(name, r) != NULL ||
				(name_len >= 32 && strncmp(r, name, name_len) == 0);

			if (match && pcsc_reader_is_vccid(ctx, r)) {
				VCCID_LOG(VCCID_LOG_DEBUG, "'%s' is the local vccid reader '%s'", name, r);
				found = true;
			}
		}
	}
	free(readers);
	SCardReleaseContext(ctx);
	return found;
}
