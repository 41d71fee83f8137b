/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reads files named by configuration under one set of rules (see file.h). */
#define _GNU_SOURCE   /* strerror_r returning the text */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static int refuse(char *why, size_t why_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && why_size > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_size, fmt, ap);
		va_end(ap);
	}
	return VCCID_ECONFIG;
}

/* The system's reason for errno, thread-safe (the driver runs inside pcscd's threads). */
static int refuse_errno(char *why, size_t why_size)
{
	char text[128];

	return refuse(why, why_size, "%s", strerror_r(errno, text, sizeof(text)));
}

static const char *type_name(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of an unknown type";
}

/*
 * Reads to the end into a buffer that grows up to max + 1 bytes: the file may
 * have grown since fstat(), and one byte past the limit is enough to refuse.
 */
static int read_all(int fd, size_t size_hint, size_t max, char **buf, size_t *len, char *why,
		    size_t why_size)
{
	size_t cap = size_hint + 1;   /* the +1 sees EOF without a second buffer */
	size_t got = 0;
	char *p;

	*buf = malloc(cap + 1);       /* and room for the NUL */
	if (*buf == NULL)
		return VCCID_ENOMEM;
	for (;;) {
		ssize_t n;

		if (got == cap) {
			if (cap > max)
				break;
			cap = cap > max / 2 ? max + 1 : cap * 2;
			p = realloc(*buf, cap + 1);
			if (p == NULL)
				return VCCID_ENOMEM;
			*buf = p;
		}
		n = read(fd, *buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return refuse_errno(why, why_size);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max)
		return refuse(why, why_size, "it is larger than %zu bytes", max);
	(*buf)[got] = '\0';
	*len = got;
	return VCCID_OK;
}

int vccid_file_read_regular(const char *path, size_t max, char **buf, size_t *len,
			    char *why, size_t why_size)
{
	struct stat st;
	int fd;
	int rv;

	if (buf != NULL)
		*buf = NULL;
	if (len != NULL)
		*len = 0;
	if (why != NULL && why_size > 0)
		why[0] = '\0';
	if (path == NULL || buf == NULL || len == NULL || max >= SIZE_MAX / 2)
		return VCCID_EINVAL;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return refuse_errno(why, why_size);
	if (fstat(fd, &st) != 0) {
		rv = refuse_errno(why, why_size);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = refuse(why, why_size, "it is %s, not a regular file", type_name(st.st_mode));
		goto out;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		rv = refuse(why, why_size, "it is larger than %zu bytes", max);
		goto out;
	}
	rv = read_all(fd, (size_t)st.st_size, max, buf, len, why, why_size);
	if (rv != VCCID_OK) {
		free(*buf);
		*buf = NULL;
		*len = 0;
	}
out:
	close(fd);
	return rv;
}
