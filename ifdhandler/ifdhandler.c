/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pcsc-lite IFD handler API v3 entry points: translation to the reader registry and slot model. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <debuglog.h>
#include <ifdhandler.h>
#include <reader.h>

#include "corelib/atr.h"
#include "corelib/config.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "control.h"
#include "registry.h"

#define VCCID_EXPORT __attribute__((visibility("default")))

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

/* PC/SC part 10: class 2 IOCTLs are SCARD_CTL_CODE(0x330000 + feature). */
#define IOCTL_FEATURE_GET_TLV_PROPERTIES SCARD_CTL_CODE(0x330000 + FEATURE_GET_TLV_PROPERTIES)
/* CM_IOCTL_GET_FEATURE_REQUEST as Windows encodes it: CTL_CODE(0x31, 3400, 0, 0). */
#define WINDOWS_GET_FEATURE_REQUEST 0x313520u
/* SCARD_ATTR_CHANNEL_ID: data channel type 0xF0 is "vendor defined" (PC/SC part 3). */
#define CHANNEL_TYPE_VENDOR 0x00F0u
#define ICC_PRESENCE_ABSENT 0
#define ICC_PRESENCE_PRESENT 2   /* present and swallowed, as libccid reports */

RESPONSECODE IFDHPolling(DWORD Lun, int timeout);
RESPONSECODE IFDHStopPolling(DWORD Lun);

/* pcscd's log_msg is resolved from the daemon when the driver is loaded. */
static void pcscd_log_sink(enum vccid_log_level level, const char *line)
{
	int priority;

	switch (level) {
	case VCCID_LOG_CRITICAL: priority = PCSC_LOG_CRITICAL; break;
	case VCCID_LOG_ERROR: priority = PCSC_LOG_ERROR; break;
	case VCCID_LOG_INFO:
	case VCCID_LOG_DEBUG:
	case VCCID_LOG_APDU:
	default: priority = PCSC_LOG_INFO; break;
	}
	log_msg(priority, "%s", line);
}

__attribute__((constructor)) static void ifd_init(void)
{
	vccid_log_set_sink(pcscd_log_sink);
}

/* The one place where core errors become pcscd response codes. */
static RESPONSECODE map_error(int err)
{
	switch ((enum vccid_error)err) {
	case VCCID_OK: return IFD_SUCCESS;
	case VCCID_ENOCARD: return IFD_ICC_NOT_PRESENT;
	case VCCID_ETIMEDOUT: return IFD_RESPONSE_TIMEOUT;
	case VCCID_ENOSPC: return IFD_ERROR_INSUFFICIENT_BUFFER;
	case VCCID_ENOTSUP: return IFD_ERROR_NOT_SUPPORTED;
	case VCCID_ENOENT: return IFD_NO_SUCH_DEVICE;
	case VCCID_EINVAL:
	case VCCID_ENOMEM:
	case VCCID_EBUSY:
	case VCCID_EIO:
	case VCCID_EPROTO:
	case VCCID_ECANCELED:
	case VCCID_ECONFIG:
	case VCCID_ENOTPOWERED:
	default: return IFD_COMMUNICATION_ERROR;
	}
}

static RESPONSECODE create_channel(DWORD Lun, const char *device, unsigned channel)
{
	int rv = vccid_reader_open(Lun, device, channel);

	if (rv != VCCID_OK)
		VCCID_LOG(VCCID_LOG_CRITICAL, "cannot open Lun %lX (%s): %s",
			  (unsigned long)Lun, device ? device : "default configuration",
			  vccid_strerror(rv));
	return rv == VCCID_OK ? IFD_SUCCESS : IFD_COMMUNICATION_ERROR;
}

VCCID_EXPORT RESPONSECODE IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
	VCCID_LOG(VCCID_LOG_INFO, "Lun %lX, device %s", (unsigned long)Lun,
		  DeviceName ? DeviceName : "(none)");
	return create_channel(Lun, DeviceName, VCCID_LUN_READER(Lun));
}

VCCID_EXPORT RESPONSECODE IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
	VCCID_LOG(VCCID_LOG_INFO, "Lun %lX, channel %lu", (unsigned long)Lun,
		  (unsigned long)Channel);
	return create_channel(Lun, NULL, (unsigned)Channel);
}

VCCID_EXPORT RESPONSECODE IFDHCloseChannel(DWORD Lun)
{
	RESPONSECODE rc = map_error(vccid_reader_close(Lun));

	VCCID_LOG(VCCID_LOG_INFO, "Lun %lX closed", (unsigned long)Lun);
	return rc;
}

/* Copies @p len bytes into a capability buffer of *Length bytes. */
static RESPONSECODE put_value(PDWORD Length, PUCHAR Value, const void *data, size_t len)
{
	if (*Length < len)
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	memcpy(Value, data, len);
	*Length = (DWORD)len;
	return IFD_SUCCESS;
}

static RESPONSECODE put_string(PDWORD Length, PUCHAR Value, const char *text)
{
	return put_value(Length, Value, text, strlen(text) + 1);
}

static RESPONSECODE put_dword(PDWORD Length, PUCHAR Value, DWORD value)
{
	return put_value(Length, Value, &value, sizeof(value));
}

static RESPONSECODE put_byte(PDWORD Length, PUCHAR Value, UCHAR value)
{
	return put_value(Length, Value, &value, 1);
}

static DWORD version_dword(void)
{
	unsigned major = 0, minor = 0, patch = 0;

	(void)sscanf(PACKAGE_VERSION, "%u.%u.%u", &major, &minor, &patch);
	return (DWORD)((major & 0xFFu) << 24 | (minor & 0xFFu) << 16 | (patch & 0xFFFFu));
}

VCCID_EXPORT RESPONSECODE IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length,
					      PUCHAR Value)
{
	RESPONSECODE rc = IFD_ERROR_TAG;
	vccid_slot *slot = vccid_reader_slot(Lun);
	struct vccid_slot_status status;
	char serial[96];
	char remote_name[VCCID_NAME_MAX + 1];
	char remote_peer[320];   /* VCCID_VSCARD_PEER_MAX: an address and a TLS subject */

	if (slot == NULL || Length == NULL || Value == NULL) {
		rc = IFD_COMMUNICATION_ERROR;
		goto out;
	}
	vccid_slot_get_status(slot, &status);
	switch (Tag) {
	case TAG_IFD_ATR:
	case SCARD_ATTR_ATR_STRING:
		rc = put_value(Length, Value, status.atr, status.atr_len);
		break;
	case SCARD_ATTR_ICC_PRESENCE:
		rc = put_byte(Length, Value, status.present ? ICC_PRESENCE_PRESENT
							    : ICC_PRESENCE_ABSENT);
		break;
	case SCARD_ATTR_ICC_INTERFACE_STATUS:
		rc = put_byte(Length, Value, status.powered ? 1 : 0);
		break;
	case TAG_IFD_SIMULTANEOUS_ACCESS:
		rc = put_byte(Length, Value, VCCID_MAX_READERS);
		break;
	case TAG_IFD_THREAD_SAFE:
	case TAG_IFD_SLOT_THREAD_SAFE:
		/* Readers are independent and each slot serialises its own card. */
		rc = put_byte(Length, Value, 1);
		break;
	case TAG_IFD_SLOTS_NUMBER:
		rc = put_byte(Length, Value, (UCHAR)vccid_reader_slot_count(Lun));
		break;
	case TAG_IFD_POLLING_THREAD_WITH_TIMEOUT: {
		RESPONSECODE (*polling)(DWORD, int) = IFDHPolling;

		rc = put_value(Length, Value, &polling, sizeof(polling));
		break;
	}
	case TAG_IFD_STOP_POLLING_THREAD: {
		RESPONSECODE (*stop)(DWORD) = IFDHStopPolling;

		rc = put_value(Length, Value, &stop, sizeof(stop));
		break;
	}
	case SCARD_ATTR_VENDOR_NAME:
		rc = put_string(Length, Value, "vccid");
		break;
	case SCARD_ATTR_VENDOR_IFD_TYPE:
		rc = put_string(Length, Value, "vccid virtual reader");
		break;
	case SCARD_ATTR_VENDOR_IFD_VERSION:
		rc = put_dword(Length, Value, version_dword());
		break;
	case SCARD_ATTR_VENDOR_IFD_SERIAL_NO:
		snprintf(serial, sizeof(serial), "vccid-%s", vccid_reader_name(Lun));
		rc = put_string(Length, Value, serial);
		break;
	case SCARD_ATTR_MAXINPUT:
		rc = put_dword(Length, Value, (DWORD)vccid_reader_max_command(Lun));
		break;
	case SCARD_ATTR_CHANNEL_ID:
		rc = put_dword(Length, Value,
			       CHANNEL_TYPE_VENDOR << 16 | (vccid_reader_channel(Lun) & 0xFFFFu));
		break;
	case VCCID_ATTR_REMOTE_NAME:
	case VCCID_ATTR_REMOTE_PEER:
		if (vccid_reader_remote(Lun, remote_name, sizeof(remote_name), remote_peer,
					sizeof(remote_peer)))
			rc = put_string(Length, Value, Tag == VCCID_ATTR_REMOTE_NAME ? remote_name
										    : remote_peer);
		break;
	default:
		break;
	}
out:
	if (rc != IFD_SUCCESS && Length != NULL && rc != IFD_ERROR_INSUFFICIENT_BUFFER)
		*Length = 0;
	VCCID_LOG(VCCID_LOG_DEBUG, "Lun %lX tag 0x%lX: %ld", (unsigned long)Lun,
		  (unsigned long)Tag, (long)rc);
	return rc;
}

VCCID_EXPORT RESPONSECODE IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
	(void)Length;
	(void)Value;
	VCCID_LOG(VCCID_LOG_DEBUG, "Lun %lX tag 0x%lX: not supported", (unsigned long)Lun,
		  (unsigned long)Tag);
	return IFD_NOT_SUPPORTED;
}

VCCID_EXPORT RESPONSECODE IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags,
						    UCHAR PTS1, UCHAR PTS2, UCHAR PTS3)
{
	RESPONSECODE rc = IFD_COMMUNICATION_ERROR;
	vccid_slot *slot = vccid_reader_slot(Lun);
	struct vccid_slot_status status;
	unsigned offered = 0;

	(void)Flags;
	(void)PTS1;
	(void)PTS2;
	(void)PTS3;
	if (slot == NULL)
		goto out;
	vccid_slot_get_status(slot, &status);
	if (!status.present) {
		rc = IFD_ICC_NOT_PRESENT;
		goto out;
	}
	/* Protocol is SCARD_PROTOCOL_T0 (1) or T1 (2): the same bits as the ATR mask. */
	if (status.atr_len == 0 || vccid_atr_check(status.atr, status.atr_len, &offered) != 0 ||
	    (offered & Protocol & (SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)) == 0)
		rc = IFD_PROTOCOL_NOT_SUPPORTED;
	else
		rc = IFD_SUCCESS;
out:
	VCCID_LOG(VCCID_LOG_DEBUG, "Lun %lX protocol %lu: %ld", (unsigned long)Lun,
		  (unsigned long)Protocol, (long)rc);
	return rc;
}

VCCID_EXPORT RESPONSECODE IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
	RESPONSECODE rc = IFD_ERROR_POWER_ACTION;
	vccid_slot *slot = vccid_reader_slot(Lun);
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);
	int rv;

	if (slot == NULL || (Action != IFD_POWER_DOWN && (Atr == NULL || AtrLength == NULL))) {
		rc = IFD_COMMUNICATION_ERROR;
		goto out;
	}
	switch (Action) {
	case IFD_POWER_UP:
		rv = vccid_slot_power(slot, VCCID_POWER_UP, atr, &atr_len);
		break;
	case IFD_RESET:
		rv = vccid_slot_power(slot, VCCID_POWER_RESET, atr, &atr_len);
		break;
	case IFD_POWER_DOWN:
		rv = vccid_slot_power(slot, VCCID_POWER_DOWN, NULL, NULL);
		atr_len = 0;
		break;
	default:
		rc = IFD_NOT_SUPPORTED;
		goto out;
	}
	if (rv == VCCID_ENOCARD) {
		rc = IFD_ICC_NOT_PRESENT;
	} else if (rv == VCCID_OK) {
		if (AtrLength != NULL && atr_len > *AtrLength) {
			rc = IFD_ERROR_INSUFFICIENT_BUFFER;
		} else {
			if (Atr != NULL && atr_len > 0)
				memcpy(Atr, atr, atr_len);
			rc = IFD_SUCCESS;
		}
	}
out:
	if (AtrLength != NULL)
		*AtrLength = rc == IFD_SUCCESS ? (DWORD)atr_len : 0;
	VCCID_LOG(VCCID_LOG_DEBUG, "Lun %lX action %lu: %ld", (unsigned long)Lun,
		  (unsigned long)Action, (long)rc);
	return rc;
}

VCCID_EXPORT RESPONSECODE IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer,
					    DWORD TxLength, PUCHAR RxBuffer, PDWORD RxLength,
					    PSCARD_IO_HEADER RecvPci)
{
	RESPONSECODE rc = IFD_COMMUNICATION_ERROR;
	vccid_slot *slot = vccid_reader_slot(Lun);
	size_t rx_len;
	int rv;

	if (slot == NULL || TxBuffer == NULL || RxBuffer == NULL || RxLength == NULL)
		goto out;
	rx_len = *RxLength;
	rv = vccid_slot_transmit(slot, TxBuffer, TxLength, RxBuffer, &rx_len);
	rc = map_error(rv);
	if (rv == VCCID_OK)
		*RxLength = (DWORD)rx_len;
	else
		VCCID_LOG(VCCID_LOG_ERROR, "Lun %lX: transmit of %lu bytes failed: %s",
			  (unsigned long)Lun, (unsigned long)TxLength, vccid_strerror(rv));
	if (RecvPci != NULL) {
		RecvPci->Protocol = SendPci.Protocol;
		RecvPci->Length = 0;
	}
out:
	if (rc != IFD_SUCCESS && RxLength != NULL)
		*RxLength = 0;
	return rc;
}

/* PC/SC part 10 properties: extended APDUs up to what the reader's slots carry, no PIN pad, no display. */
static size_t tlv_properties(DWORD Lun, uint8_t *out)
{
	static const char firmware[] = "vccid " PACKAGE_VERSION;
	size_t n = 0;
	uint32_t max = (uint32_t)vccid_reader_max_apdu_data(Lun);

	out[n++] = PCSCv2_PART10_PROPERTY_wLcdLayout;
	out[n++] = 2;
	out[n++] = 0;
	out[n++] = 0;
	out[n++] = PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize;
	out[n++] = 4;
	out[n++] = max & 0xFF;   /* part 10 values are little-endian */
	out[n++] = (max >> 8) & 0xFF;
	out[n++] = (max >> 16) & 0xFF;
	out[n++] = (max >> 24) & 0xFF;
	out[n++] = PCSCv2_PART10_PROPERTY_sFirmwareID;
	out[n++] = sizeof(firmware) - 1;
	memcpy(out + n, firmware, sizeof(firmware) - 1);
	return n + sizeof(firmware) - 1;
}

static int control_answer(DWORD Lun, DWORD code, const uint8_t *in, size_t in_len,
			  uint8_t *out, size_t out_size, size_t *out_len)
{
	uint8_t buf[1024];   /* a status line with a TLS peer's subject */
	char name[VCCID_NAME_MAX + 1];
	size_t n = 0;
	int rv = VCCID_OK;

	switch (code) {
	case CM_IOCTL_GET_FEATURE_REQUEST:
	case WINDOWS_GET_FEATURE_REQUEST:
		buf[n++] = FEATURE_GET_TLV_PROPERTIES;
		buf[n++] = 4;
		buf[n++] = (IOCTL_FEATURE_GET_TLV_PROPERTIES >> 24) & 0xFF; /* big-endian */
		buf[n++] = (IOCTL_FEATURE_GET_TLV_PROPERTIES >> 16) & 0xFF;
		buf[n++] = (IOCTL_FEATURE_GET_TLV_PROPERTIES >> 8) & 0xFF;
		buf[n++] = IOCTL_FEATURE_GET_TLV_PROPERTIES & 0xFF;
		break;
	case IOCTL_FEATURE_GET_TLV_PROPERTIES:
		n = tlv_properties(Lun, buf);
		break;
	case VCCID_CTL_STATUS:
		rv = vccid_reader_describe(Lun, (char *)buf, sizeof(buf));
		if (rv >= 0) {
			n = (size_t)rv;
			rv = VCCID_OK;
		}
		break;
	case VCCID_CTL_INSERT:
		if (in_len > VCCID_NAME_MAX)
			return VCCID_EINVAL;
		if (in_len > 0)   /* pcscd may pass NULL with length 0 */
			memcpy(name, in, in_len);
		name[in_len] = '\0';
		rv = vccid_reader_insert(Lun, name);
		break;
	case VCCID_CTL_REMOVE:
		rv = vccid_reader_remove(Lun);
		break;
	default:
		return VCCID_ENOTSUP;
	}
	if (rv != VCCID_OK)
		return rv;
	if (n > out_size)
		return VCCID_ENOSPC;
	if (n > 0)
		memcpy(out, buf, n);
	*out_len = n;
	return VCCID_OK;
}

VCCID_EXPORT RESPONSECODE IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer,
				      DWORD TxLength, PUCHAR RxBuffer, DWORD RxLength,
				      LPDWORD pdwBytesReturned)
{
	RESPONSECODE rc = IFD_COMMUNICATION_ERROR;
	size_t out_len = 0;
	int rv;

	if (vccid_reader_slot(Lun) == NULL || pdwBytesReturned == NULL ||
	    (TxLength > 0 && TxBuffer == NULL) || (RxLength > 0 && RxBuffer == NULL))
		goto out;
	rv = control_answer(Lun, dwControlCode, TxBuffer, TxLength, RxBuffer, RxLength, &out_len);
	if (rv == VCCID_ENOTSUP)
		rc = IFD_ERROR_NOT_SUPPORTED;
	else
		rc = map_error(rv);
	VCCID_LOG(rv == VCCID_OK || rv == VCCID_ENOTSUP ? VCCID_LOG_DEBUG : VCCID_LOG_INFO,
		  "Lun %lX control 0x%08lX: %s", (unsigned long)Lun,
		  (unsigned long)dwControlCode, vccid_strerror(rv));
out:
	if (pdwBytesReturned != NULL)
		*pdwBytesReturned = rc == IFD_SUCCESS ? (DWORD)out_len : 0;
	return rc;
}

VCCID_EXPORT RESPONSECODE IFDHICCPresence(DWORD Lun)
{
	RESPONSECODE rc = IFD_ICC_NOT_PRESENT;

	if (vccid_reader_slot(Lun) == NULL)
		rc = IFD_NO_SUCH_DEVICE;
	else if (vccid_reader_poll_presence(Lun))
		rc = IFD_ICC_PRESENT;
	VCCID_LOG(VCCID_LOG_DEBUG, "Lun %lX: %s", (unsigned long)Lun,
		  rc == IFD_ICC_PRESENT ? "present" : "absent");
	return rc;
}

/* pcscd's event thread waits here; it calls IFDHICCPresence when this returns. */
VCCID_EXPORT RESPONSECODE IFDHPolling(DWORD Lun, int timeout)
{
	int rv = vccid_reader_wait_change(Lun, timeout);

	return rv == VCCID_ENOENT ? IFD_NO_SUCH_DEVICE : IFD_SUCCESS;
}

VCCID_EXPORT RESPONSECODE IFDHStopPolling(DWORD Lun)
{
	vccid_slot *slot = vccid_reader_slot(Lun);

	if (slot != NULL)
		vccid_slot_cancel_waits(slot);
	return IFD_SUCCESS;
}
