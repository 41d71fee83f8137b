/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's transport: the host's address, connecting and writing (over net/), reading into the client. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"

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

int vccid_share_transport_listen(const struct vccid_share_target *t, int *fd)
{
	static const struct vccid_net_listen_opts opts = {
		.label = VCCID_SHARE_LISTEN_LABEL,
		.protocol = "VSCard",
		.exposes = "take this card as a host: send it APDUs, and PINs to try",
		.unix_mode = 0600,    /* the owner's hosts only: QEMU under another user needs a group */
	};

	return vccid_net_listen(&t->addr, &opts, fd);
}

void vccid_share_transport_unlisten(const struct vccid_share_target *t, int fd)
{
	if (fd < 0)
		return;
	close(fd);
	if (t->is_unix)
		(void)unlink(t->addr.path);
}

/* What connect and accept do to a fresh connection to a host. */
static void tune_socket(int fd, bool tcp)
{
	if (tcp) {
		int one = 1;

		/* No delayed ACK: with it, ~45 ms per APDU instead of ~3 (net/ sets NODELAY). */
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
}

int vccid_share_transport_accept(int listen_fd, bool busy, struct vccid_net_refusals *refusals,
				 int *fd_out, char *peer, size_t peer_size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = -1;
	int rv = vccid_net_accept(listen_fd, VCCID_SHARE_LISTEN_LABEL, &fd, peer, peer_size);

	if (rv == VCCID_EBUSY)
		return VCCID_ENOENT;
	if (rv == VCCID_ENOMEM) {
		vccid_net_log_refusal(refusals, VCCID_SHARE_LISTEN_LABEL, "(queued)",
				      "out of file descriptors; pausing accept");
		return rv;
	}
	if (rv != VCCID_OK)
		return rv;
	if (busy) {
		/* One host at a time: a second would fight the first over one card. */
		vccid_net_log_refusal(refusals, VCCID_SHARE_LISTEN_LABEL, peer,
				      "another host is being served (one at a time)");
		close(fd);
		return VCCID_EBUSY;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, VCCID_SHARE_LISTEN_LABEL " peer %s: %s", peer,
			  strerror(errno));
		close(fd);
		return VCCID_EIO;
	}
	tune_socket(fd, getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
			    ss.ss_family != AF_UNIX);
	*fd_out = fd;
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
	tune_socket(fd, !t->is_unix);
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
