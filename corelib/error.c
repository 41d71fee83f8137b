/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Text for the core error codes. */
#include "error.h"

const char *vccid_strerror(int err)
{
	switch ((enum vccid_error)err) {
	case VCCID_OK: return "success";
	case VCCID_EINVAL: return "invalid argument";
	case VCCID_ENOMEM: return "out of memory";
	case VCCID_ENOCARD: return "no card in the slot";
	case VCCID_EBUSY: return "busy";
	case VCCID_ETIMEDOUT: return "timed out";
	case VCCID_EIO: return "card communication error";
	case VCCID_ENOSPC: return "buffer too small";
	case VCCID_EPROTO: return "malformed message";
	case VCCID_ECANCELED: return "wait cancelled";
	case VCCID_ECONFIG: return "configuration error";
	case VCCID_ENOTSUP: return "not supported";
	case VCCID_ENOENT: return "not found";
	case VCCID_ENOTPOWERED: return "card not powered";
	}
	return "unknown error";
}
