/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening a file that configuration names, safely: never blocks, regular files only, bounded size. */
#ifndef VCCID_FILE_H
#define VCCID_FILE_H

#include <stddef.h>

/* Room for the reason vccid_file_read_regular() gives, path not included. */
#define VCCID_FILE_WHY_SIZE 128

/**
 * Reads the whole of @p path when it is a regular file of at most @p max
 * bytes. The open cannot block or take a controlling terminal (O_NONBLOCK,
 * O_NOCTTY: a FIFO or a device named by mistake would otherwise hang the
 * caller, inside pcscd at start), and anything fstat() does not call a
 * regular file is refused before a byte is read.
 *
 * On success *buf is a malloc'd copy of the *len bytes followed by a NUL
 * (the caller frees it, and wipes it first if it held a secret). On failure
 * *buf is NULL, *len 0 and caller-owned @p why (capacity @p why_size, e.g.
 * VCCID_FILE_WHY_SIZE) says what was wrong without the path, e.g. "it is a
 * FIFO, not a regular file", "it is larger than 1048576 bytes", or the
 * system's "No such file or directory"; the caller logs it with the path.
 *
 * Returns 0, VCCID_ECONFIG (the file cannot be used; see @p why),
 * VCCID_ENOMEM, or VCCID_EINVAL (NULL arguments, @p max of SIZE_MAX / 2 or more).
 */
int vccid_file_read_regular(const char *path, size_t max, char **buf, size_t *len,
			    char *why, size_t why_size);

#endif
