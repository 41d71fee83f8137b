/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging for every vccid module: one sink, set by the adapter (pcscd's log_msg in the driver). */
#ifndef VCCID_LOG_H
#define VCCID_LOG_H

#include <stddef.h>
#include <stdint.h>

/* Verbosity levels, as set by log-level in the configuration. */
enum vccid_log_level {
	VCCID_LOG_CRITICAL = 0,
	VCCID_LOG_ERROR = 1,
	VCCID_LOG_INFO = 2,
	VCCID_LOG_DEBUG = 3,   /* includes periodic presence/poll traces */
	VCCID_LOG_APDU = 4,    /* adds hex dumps of every APDU and response */
};

/** A sink gets one finished line (no trailing newline) with its level. */
typedef void (*vccid_log_sink)(enum vccid_log_level level, const char *line);

void vccid_log_set_sink(vccid_log_sink sink);
void vccid_log_set_level(enum vccid_log_level level);
enum vccid_log_level vccid_log_get_level(void);
/** True when a message at @p level would be emitted: guard costly formatting with it. */
int vccid_log_enabled(enum vccid_log_level level);

void vccid_log_write(enum vccid_log_level level, const char *file, int line,
		     const char *func, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/** Hex dump of @p len bytes, emitted only at VCCID_LOG_APDU. */
void vccid_log_hex(const char *file, int line, const char *func,
		   const char *what, const uint8_t *buf, size_t len);

#define VCCID_LOG(level, ...) \
	do { \
		if (vccid_log_enabled(level)) \
			vccid_log_write(level, __FILE__, __LINE__, __func__, __VA_ARGS__); \
	} while (0)
#define VCCID_HEX(what, buf, len) \
	do { \
		if (vccid_log_enabled(VCCID_LOG_APDU)) \
			vccid_log_hex(__FILE__, __LINE__, __func__, what, buf, len); \
	} while (0)

#endif
