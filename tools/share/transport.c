/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's transport: the host's address, connecting and writing (over net/), reading into the client. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "net/net.h"

#define CONNECT_TIMEOUT_MS 5000
#define SEND_TIMEOUT_MS 10000

int vccid_share_target_parse(const char *arg, struct vccid_share_target *t, char *why,
			     size_t why_size)
{
	const char *problem = NULL;

	memset(t, 0, sizeof(*t));
	t->text = arg;
	if (vccid_addr_parse(arg, 0, &t->addr, &problem) != VCCID_OK) {
		snprintf(why, why_size, "'%s': %s", arg, problem);
		return VCCID_EINVAL;
	}
	t->is_unix = t->addr.kind == VCCID_ADDR_UNIX;
	return VCCID_OK;
}

int vccid_share_transport_connect(const struct vccid_share_target *t, int wake_fd, int *fd_out,
				  char *why, size_t why_size)
{
	char reason[128];
	int fd = -1;
	int rv = vccid_net_connect(&t->addr, CONNECT_TIMEOUT_MS, wake_fd, &fd, reason,
				   sizeof(reason));

	if (rv == VCCID_ECANCELED)
		return rv;   /* a signal: the main loop sees it first */
	if (rv != VCCID_OK) {
		snprintf(why, why_size, "cannot connect to %s: %s", t->text, reason);
		return rv;
	}
	if (!t->is_unix) {
		int one = 1;

		/* No delayed ACK: with it, ~45 ms per APDU instead of ~3 (net/ sets NODELAY). */
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	*fd_out = fd;
	return VCCID_OK;
}

int vccid_share_transport_write(void *io, const uint8_t *buf, size_t len)
{
	int fd = *(const int *)io;

	return vccid_net_write_all(fd, buf, len, vccid_now_ms() + SEND_TIMEOUT_MS);
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
