/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slot model: one card position, thread-safe, event-driven, fed by a backend's card operations. */
#ifndef VCCID_SLOT_H
#define VCCID_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCCID_MAX_ATR 33          /* MAX_ATR_SIZE in pcsc-lite */
/* Largest response: 65536 data bytes + SW1 SW2 (ISO 7816-4 extended Le). */
#define VCCID_MAX_RESPONSE (65536 + 2)
/* Largest command: header + extended Lc (3) + 65535 data + extended Le (2). */
#define VCCID_MAX_COMMAND (4 + 3 + 65535 + 2)

enum vccid_power_action {
	VCCID_POWER_UP = 0,
	VCCID_POWER_DOWN = 1,
	VCCID_POWER_RESET = 2,   /* warm reset: power stays on, card state is reset */
};

/**
 * What a backend provides for one card. Every function returns 0 or a
 * negative vccid_error. The slot serialises calls for one card: a backend
 * never sees power and transmit of the same card at once.
 */
struct vccid_card_ops {
	const char *backend;  /* short backend name for status, e.g. "cacard" */
	/** Power action; on UP/RESET fills @p atr (capacity *atr_len, at least
	 *  VCCID_MAX_ATR) and sets *atr_len. @p atr may be NULL for DOWN. */
	int (*power)(void *card, enum vccid_power_action action,
		     uint8_t *atr, size_t *atr_len);
	/** Sends @p cmd; writes the response with SW1 SW2 to caller-owned @p rsp
	 *  of capacity *rsp_len and sets *rsp_len to its length. */
	int (*transmit)(void *card, const uint8_t *cmd, size_t cmd_len,
			uint8_t *rsp, size_t *rsp_len);
	/** Called once when the card leaves the slot, after the last call. May be NULL. */
	void (*release)(void *card);
};

typedef struct vccid_slot vccid_slot;

struct vccid_slot_status {
	bool present;
	bool powered;
	uint64_t changes;     /* bumps on every insert and remove */
	uint64_t removals;    /* bumps on every remove */
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len;       /* 0 unless powered */
	char card_name[64];   /* name given at insert, "" when empty */
	char backend[16];
};

/** Creates an empty slot; NULL on allocation failure. */
vccid_slot *vccid_slot_new(void);
/** Removes any card (calling its release) and frees the slot. No waiter may remain. */
void vccid_slot_free(vccid_slot *slot);

/**
 * Puts a card into an empty slot. @p name is copied (truncated to 63 bytes).
 * Returns VCCID_EBUSY if the slot is occupied (the card is not taken then).
 * On success the slot owns @p card until it calls ops->release.
 */
int vccid_slot_insert(vccid_slot *slot, const struct vccid_card_ops *ops,
		      void *card, const char *name);
/** Takes the card out; waits for an exchange in flight, then calls release.
 *  Returns VCCID_ENOCARD if the slot was empty. */
int vccid_slot_remove(vccid_slot *slot);

/** Cached presence: never blocks on I/O. */
bool vccid_slot_present(vccid_slot *slot);
void vccid_slot_get_status(vccid_slot *slot, struct vccid_slot_status *status);

/**
 * Blocks until the slot's change counter differs from @p seen_changes, the
 * timeout passes or vccid_slot_cancel_waits() is called. @p timeout_ms < 0 waits
 * without limit. Returns 0 on change, VCCID_ETIMEDOUT or VCCID_ECANCELED.
 */
int vccid_slot_wait_change(vccid_slot *slot, uint64_t seen_changes, int timeout_ms);
/**
 * Makes every current wait return VCCID_ECANCELED; when none is waiting, the
 * next wait returns it at once instead (a stop request must not be lost when
 * it comes just before the wait). One-shot: pcscd stops its polling thread
 * whenever its last client disconnects and starts it again.
 */
void vccid_slot_cancel_waits(vccid_slot *slot);

/** Powers the card; on UP/RESET copies the validated ATR to @p atr (capacity *atr_len). */
int vccid_slot_power(vccid_slot *slot, enum vccid_power_action action,
		     uint8_t *atr, size_t *atr_len);
/**
 * Exchanges one APDU. A malformed APDU (ISO 7816-4 §5.1) never reaches the
 * card: the slot answers 67 00 (wrong length) itself, as a card would.
 * @p rsp is caller-owned with capacity *rsp_len; VCCID_ENOSPC if too small.
 * On every failure but VCCID_EINVAL, *rsp_len is set to 0.
 */
int vccid_slot_transmit(vccid_slot *slot, const uint8_t *cmd, size_t cmd_len,
			uint8_t *rsp, size_t *rsp_len);

#endif
