/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's transport: parse HOST:PORT or unix:PATH, connect, read into and write for the client. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"

#define CONNECT_TIMEOUT_MS 5000
#define SEND_TIMEOUT_S 10

static int parse_tcp(const char *arg, struct vccid_share_target *t, char *why, size_t why_size)
{
	const char *colon = strrchr(arg, ':');
	const char *host = arg;
	size_t host_len;
	unsigned long port;
	char *end;

	if (colon == NULL) {
		snprintf(why, why_size, "'%s' is not HOST:PORT or unix:PATH", arg);
		return VCCID_EINVAL;
	}
	host_len = (size_t)(colon - arg);
	if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
		host++;
		host_len -= 2;
	} else if (memchr(host, ':', host_len) != NULL) {
		snprintf(why, why_size, "'%s': write an IPv6 address in brackets, [ADDR]:PORT", arg);
		return VCCID_EINVAL;
	}
	if (host_len == 0 || host_len >= sizeof(t->host)) {
		snprintf(why, why_size, host_len == 0 ? "'%s' has no host before the port" :
			 "host name in '%s' is too long", arg);
		return VCCID_EINVAL;
	}
	memcpy(t->host, host, host_len);
	t->host[host_len] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno || port == 0 || port > 65535) {
		snprintf(why, why_size, "'%s': the port must be a number from 1 to 65535", colon + 1);
		return VCCID_EINVAL;
	}
	snprintf(t->port, sizeof(t->port), "%lu", port);
	return VCCID_OK;
}

int vccid_share_target_parse(const char *arg, struct vccid_share_target *t, char *why,
			     size_t why_size)
{
	memset(t, 0, sizeof(*t));
	t->text = arg;
	if (strncmp(arg, "unix:", 5) != 0)
		return parse_tcp(arg, t, why, why_size);
	if (arg[5] == '\0') {
		snprintf(why, why_size, "'%s': unix: needs a socket path", arg);
		return VCCID_EINVAL;
	}
	if (strlen(arg + 5) >= sizeof(t->unix_path)) {
		snprintf(why, why_size, "socket path '%s' is longer than %zu bytes", arg + 5,
			 sizeof(t->unix_path) - 1);
		return VCCID_EINVAL;
	}
	t->is_unix = true;
	strcpy(t->unix_path, arg + 5);
	return VCCID_OK;
}

/* One non-blocking connect, bounded; VCCID_ECANCELED when @p wake_fd is readable first. */
static int connect_one(int fd, const struct sockaddr *sa, socklen_t salen, int wake_fd, int *err)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = POLLOUT },
		{ .fd = wake_fd, .events = POLLIN },
	};
	socklen_t elen = sizeof(*err);
	int rc;

	if (connect(fd, sa, salen) == 0)
		return VCCID_OK;
	*err = errno;
	if (errno != EINPROGRESS)
		return VCCID_EIO;
	rc = poll(p, 2, CONNECT_TIMEOUT_MS);
	if (rc > 0 && (p[1].revents & POLLIN) && !(p[0].revents & POLLOUT))
		return VCCID_ECANCELED;   /* a signal: the main loop sees it first */
	if (rc == 0)
		*err = ETIMEDOUT;
	else if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &elen) == 0 && *err == 0)
		return VCCID_OK;
	return VCCID_EIO;
}

static void tune(int fd, bool tcp)
{
	int one = 1, flags = fcntl(fd, F_GETFL);
	struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };

	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);   /* reads use MSG_DONTWAIT */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (tcp) {
		/* One write per message and no delayed ACK: ~3 ms per APDU instead of ~45. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
}

int vccid_share_transport_connect(const struct vccid_share_target *t, int wake_fd, int *fd_out,
				  char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_un sun;
	int fd = -1, err = 0, rv = VCCID_EIO;

	if (t->is_unix) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strcpy(sun.sun_path, t->unix_path);
	} else {
		int rc = getaddrinfo(t->host, t->port, &hints, &res);

		if (rc != 0) {
			snprintf(why, why_size, "cannot resolve %s: %s", t->host, gai_strerror(rc));
			return VCCID_EIO;
		}
	}
	for (ai = res; t->is_unix || ai != NULL; ai = ai->ai_next) {
		const struct sockaddr *sa = t->is_unix ? (const struct sockaddr *)&sun : ai->ai_addr;
		socklen_t salen = t->is_unix ? (socklen_t)sizeof(sun) : ai->ai_addrlen;

		fd = socket(t->is_unix ? AF_UNIX : ai->ai_family,
			    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		rv = fd < 0 ? VCCID_EIO : connect_one(fd, sa, salen, wake_fd, &err);
		if (fd < 0)
			err = errno;
		if (rv == VCCID_OK || rv == VCCID_ECANCELED || t->is_unix)
			break;
		close(fd);
		fd = -1;
	}
	if (res != NULL)
		freeaddrinfo(res);
	if (rv != VCCID_OK) {
		if (fd >= 0)
			close(fd);
		snprintf(why, why_size, "cannot connect to %s: %s", t->text, strerror(err));
		return rv;
	}
	tune(fd, !t->is_unix);
	*fd_out = fd;
	return VCCID_OK;
}

int vccid_share_transport_write(void *io, const uint8_t *buf, size_t len)
{
	int fd = *(const int *)io;
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EPIPE;
			return VCCID_EIO;
		}
		done += (size_t)n;
	}
	return VCCID_OK;
}

int vccid_share_transport_read(int fd, bool tcp, vccid_share_client *client, char *why,
			       size_t why_size)
{
	for (;;) {
		size_t want;
		uint8_t *space = vccid_share_client_read_space(client, &want);
		ssize_t n = 0;    /* want 0: a header-only message is complete */
		int rv;

		if (want > 0) {
			n = recv(fd, space, want, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return VCCID_OK;
			if (n <= 0) {
				snprintf(why, why_size, "the host closed the connection%s%s",
					 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
				return VCCID_EIO;
			}
			if (tcp) {
				int one = 1;

				/* Linux clears it after a while: re-arm it on every read. */
				setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			}
		}
		rv = vccid_share_client_read_done(client, (size_t)n);
		if (rv != VCCID_OK) {
			snprintf(why, why_size, "%s", vccid_share_client_why(client));
			return rv;
		}
	}
}
