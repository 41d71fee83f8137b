/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcscd's floor: an IFD handler v3 driver whose card is always present and answers every APDU in place. */
#include <stdint.h>
#include <string.h>

#include <ifdhandler.h>
#include <reader.h>

#include "apdu-le.h"

#define FLOOR_EXPORT __attribute__((visibility("default")))

/* ISO/IEC 7816-3 §8.2: TS 3B (direct convention), T0 02 (no interface
 * bytes, so T=0 only; two historical bytes 14 50). */
static const UCHAR floor_atr[] = { 0x3B, 0x02, 0x14, 0x50 };

/* Readers one process may drive: several reader.conf entries can point here
 * (pcscd then asks TAG_IFD_SIMULTANEOUS_ACCESS). The driver keeps no state,
 * so any Lun works. */
#define FLOOR_MAX_READERS 16

static RESPONSECODE floor_put_byte(PDWORD Length, PUCHAR Value, UCHAR b)
{
	if (*Length < 1)
		return IFD_ERROR_INSUFFICIENT_BUFFER;
	Value[0] = b;
	*Length = 1;
	return IFD_SUCCESS;
}

FLOOR_EXPORT RESPONSECODE IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
	(void)Lun;
	(void)DeviceName;
	return IFD_SUCCESS;
}

FLOOR_EXPORT RESPONSECODE IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
	(void)Lun;
	(void)Channel;
	return IFD_SUCCESS;
}

FLOOR_EXPORT RESPONSECODE IFDHCloseChannel(DWORD Lun)
{
	(void)Lun;
	return IFD_SUCCESS;
}

FLOOR_EXPORT RESPONSECODE IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
	RESPONSECODE rc = IFD_ERROR_TAG;

	(void)Lun;
	switch (Tag) {
	case TAG_IFD_ATR:
	case SCARD_ATTR_ATR_STRING:
		if (*Length < sizeof floor_atr) {
			rc = IFD_ERROR_INSUFFICIENT_BUFFER;
			break;
		}
		memcpy(Value, floor_atr, sizeof floor_atr);
		*Length = sizeof floor_atr;
		rc = IFD_SUCCESS;
		break;
	case TAG_IFD_SLOTS_NUMBER:
		rc = floor_put_byte(Length, Value, 1);
		break;
	case TAG_IFD_SIMULTANEOUS_ACCESS:
		rc = floor_put_byte(Length, Value, FLOOR_MAX_READERS);
		break;
	case TAG_IFD_THREAD_SAFE:
		rc = floor_put_byte(Length, Value, 1);
		break;
	case TAG_IFD_SLOT_THREAD_SAFE:
		rc = floor_put_byte(Length, Value, 0);
		break;
	default:
		break;
	}
	if (rc != IFD_SUCCESS && rc != IFD_ERROR_INSUFFICIENT_BUFFER)
		*Length = 0;
	return rc;
}

FLOOR_EXPORT RESPONSECODE IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
	(void)Lun;
	(void)Tag;
	(void)Length;
	(void)Value;
	return IFD_NOT_SUPPORTED;
}

FLOOR_EXPORT RESPONSECODE IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags,
						    UCHAR PTS1, UCHAR PTS2, UCHAR PTS3)
{
	(void)Lun;
	(void)Flags;
	(void)PTS1;
	(void)PTS2;
	(void)PTS3;
	return Protocol == SCARD_PROTOCOL_T0 ? IFD_SUCCESS : IFD_PROTOCOL_NOT_SUPPORTED;
}

FLOOR_EXPORT RESPONSECODE IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
	RESPONSECODE rc = IFD_ERROR_POWER_ACTION;

	(void)Lun;
	switch (Action) {
	case IFD_POWER_UP:
	case IFD_RESET:
		if (*AtrLength < sizeof floor_atr)
			break;
		memcpy(Atr, floor_atr, sizeof floor_atr);
		*AtrLength = sizeof floor_atr;
		rc = IFD_SUCCESS;
		break;
	case IFD_POWER_DOWN:
		*AtrLength = 0;
		rc = IFD_SUCCESS;
		break;
	default:
		rc = IFD_NOT_SUPPORTED;
		break;
	}
	if (rc != IFD_SUCCESS)
		*AtrLength = 0;
	return rc;
}

/* Le of a case-2 APDU (ISO/IEC 7816-4 §5.1): short CLA INS P1 P2 Le with
 * Le 00 = 256, extended CLA INS P1 P2 00 Le1 Le2 with 0000 = 65536. Any other
 * shape gets no data. */

FLOOR_EXPORT RESPONSECODE IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer,
					    DWORD TxLength, PUCHAR RxBuffer, PDWORD RxLength,
					    PSCARD_IO_HEADER RecvPci)
{
	RESPONSECODE rc = IFD_COMMUNICATION_ERROR;
	size_t le = bench_case2_le(TxBuffer, TxLength);

	(void)Lun;
	(void)SendPci;
	if (TxLength < 4)
		goto out;
	if (*RxLength < le + 2) {
		rc = IFD_ERROR_INSUFFICIENT_BUFFER;
		goto out;
	}
	memset(RxBuffer, 0, le);
	RxBuffer[le] = 0x90;
	RxBuffer[le + 1] = 0x00;
	*RxLength = (DWORD)(le + 2);
	if (RecvPci != NULL)
		RecvPci->Protocol = SendPci.Protocol;
	rc = IFD_SUCCESS;
out:
	if (rc != IFD_SUCCESS)
		*RxLength = 0;
	return rc;
}

FLOOR_EXPORT RESPONSECODE IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer, DWORD TxLength,
				      PUCHAR RxBuffer, DWORD RxLength, LPDWORD pdwBytesReturned)
{
	(void)Lun;
	(void)dwControlCode;
	(void)TxBuffer;
	(void)TxLength;
	(void)RxBuffer;
	(void)RxLength;
	if (pdwBytesReturned != NULL)
		*pdwBytesReturned = 0;
	return IFD_ERROR_NOT_SUPPORTED;
}

FLOOR_EXPORT RESPONSECODE IFDHICCPresence(DWORD Lun)
{
	(void)Lun;
	return IFD_ICC_PRESENT;
}
