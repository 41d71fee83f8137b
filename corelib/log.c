/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The single logging sink of vccid; without a sink set, messages are dropped (a library never writes to stderr). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static _Atomic(vccid_log_sink) log_sink;
static atomic_int log_level = VCCID_LOG_ERROR;

void vccid_log_set_sink(vccid_log_sink sink)
{
	atomic_store(&log_sink, sink);
}

void vccid_log_set_level(enum vccid_log_level level)
{
	if (level < VCCID_LOG_CRITICAL)
		level = VCCID_LOG_CRITICAL;
	if (level > VCCID_LOG_APDU)
		level = VCCID_LOG_APDU;
	atomic_store(&log_level, (int)level);
}

enum vccid_log_level vccid_log_get_level(void)
{
	return (enum vccid_log_level)atomic_load(&log_level);
}

int vccid_log_enabled(enum vccid_log_level level)
{
	return (int)level <= atomic_load(&log_level) && atomic_load(&log_sink) != NULL;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

void vccid_log_write(enum vccid_log_level level, const char *file, int line,
		     const char *func, const char *fmt, ...)
{
	vccid_log_sink sink = atomic_load(&log_sink);
	char msg[1024];
	char out[1200];
	va_list ap;

	if (sink == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "vccid %s:%d:%s() %s", base_name(file), line, func, msg);
	sink(level, out);
}

void vccid_log_hex(const char *file, int line, const char *func,
		   const char *what, const uint8_t *buf, size_t len)
{
	/* Long APDUs are cut: a 64 KiB dump would drown pcscd's log. */
	enum { MAX_DUMP = 512 };
	static const char digits[] = "0123456789ABCDEF";
	char hex[MAX_DUMP * 3 + 1];
	size_t shown = len < MAX_DUMP ? len : MAX_DUMP;
	size_t i;

	for (i = 0; i < shown; i++) {
		hex[i * 3] = digits[buf[i] >> 4];
		hex[i * 3 + 1] = digits[buf[i] & 0x0F];
		hex[i * 3 + 2] = ' ';
	}
	hex[shown ? shown * 3 - 1 : 0] = '\0';
	vccid_log_write(VCCID_LOG_APDU, file, line, func, "%s (%zu bytes): %s%s",
			what, len, hex, shown < len ? " ..." : "");
}
