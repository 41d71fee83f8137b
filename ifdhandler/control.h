/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vendor control codes of the vccid driver, sent with SCardControl on a direct connection to one slot. */
#ifndef VCCID_CONTROL_H
#define VCCID_CONTROL_H

/* pcsc-lite's SCARD_CTL_CODE(code) is 0x42000000 + code; the range above
 * 3500 is unused by libccid and PC/SC part 10. */
#define VCCID_CTL_BASE 0x42000000u
#define VCCID_CTL_CODE(code) (VCCID_CTL_BASE + (code))

/** Out: one text line "key=value ..." describing the slot connected to:
 *  reader=<pcsc name prefix> slot=<n> state=present|empty powered=0|1
 *  card=<name or -> home=<configured card or -> backend=<name or -> atr=<hex or ->
 *  remote=<VSCard reader name, vpcd, vpcd-connect or -> peer=<HOST:PORT, unix:... or ->.
 *  In: nothing. */
#define VCCID_CTL_STATUS VCCID_CTL_CODE(3600)
/** In: optional card name (no NUL needed); empty means the slot's configured
 *  card. Inserts it into the slot connected to. Out: nothing. */
#define VCCID_CTL_INSERT VCCID_CTL_CODE(3601)
/** Removes the card from the slot connected to. In and out: nothing. */
#define VCCID_CTL_REMOVE VCCID_CTL_CODE(3602)

/* Reader attributes (SCardGetAttrib) of a slot that holds a remote VSCard
 * reader or a connected vpcd card: SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED,
 * 0x7A01/0x7A02). Both are NUL-terminated strings; IFD_ERROR_TAG
 * (SCARD_E_UNSUPPORTED_FEATURE) when the slot has no remote reader or card. */
#define VCCID_ATTR_REMOTE_NAME 0x00077A01u   /* the name the client gave in ReaderAdd;
					      * "vpcd", or "vpcd-connect" when vccid
					      * connected to the card */
#define VCCID_ATTR_REMOTE_PEER 0x00077A02u   /* "ADDRESS:PORT" or "unix" */

#endif
