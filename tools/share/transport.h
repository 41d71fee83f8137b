/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share's transport: the host's address, connecting, and moving bytes between socket and client. */
#ifndef VCCID_SHARE_TRANSPORT_H
#define VCCID_SHARE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "corelib/addr.h"
#include "net/net.h"

/* Where the host is (corelib/addr.h syntax: HOST:PORT, [V6]:PORT or unix:PATH). */
struct vccid_share_target {
	const char *text;            /* as given, for logs */
	bool is_unix;
	struct vccid_addr addr;
};

/** Parses @p arg; 0, or VCCID_EINVAL with the problem in @p why. */
int vccid_share_target_parse(const char *arg, struct vccid_share_target *target, char *why,
			     size_t why_size);

/* Log label of the listen mode ("vccid-share: listener peer P refused: ..."). */
#define VCCID_SHARE_LISTEN_LABEL "listener"

/**
 * Listens on @p target for hosts that connect to us (libvirt's
 * <source mode='connect'>): net/'s listen, so all interfaces are warned about
 * and a stale unix socket is replaced. 0 with *fd, or a negative vccid_error
 * (already logged).
 */
int vccid_share_transport_listen(const struct vccid_share_target *target, int *fd);
/** Closes the listening @p fd and removes our unix socket file. */
void vccid_share_transport_unlisten(const struct vccid_share_target *target, int fd);
/**
 * Takes one pending connection from @p listen_fd. One host at a time: when
 * @p busy, the newcomer is closed at once and the refusal logged
 * (rate-limited through @p refusals), and VCCID_EBUSY returned. Otherwise
 * 0 with *fd (non-blocking, TCP_NODELAY and TCP_QUICKACK on TCP) and the
 * host's name in @p peer (VCCID_NET_PEER_MAX bytes). VCCID_ENOENT: nothing
 * pending. VCCID_ENOMEM: out of descriptors, logged rate-limited; the
 * connection stays queued, so the caller stops polling @p listen_fd for a
 * while. VCCID_EIO: accept failed (logged).
 */
int vccid_share_transport_accept(int listen_fd, bool busy, struct vccid_net_refusals *refusals,
				 int *fd, char *peer, size_t peer_size);

/**
 * Connects to @p target within a few seconds; gives up early (VCCID_ECANCELED)
 * when @p wake_fd becomes readable. On success *fd is a connected socket
 * (TCP_NODELAY and TCP_QUICKACK on TCP); otherwise @p why says what failed.
 */
int vccid_share_transport_connect(const struct vccid_share_target *target, int wake_fd,
				  int *fd, char *why, size_t why_size);
/** A vccid_share_client_io write: @p io points to the socket (int). */
int vccid_share_transport_write(void *io, const uint8_t *buf, size_t len);
/**
 * Reads what @p fd has into @p client. 0 when it would block; a negative
 * vccid_error when the connection is over: the host closed it (@p why says
 * so) or the client gave up on it (vccid_share_client_why()).
 */
int vccid_share_transport_read(int fd, bool tcp, vccid_share_client *client, char *why,
			       size_t why_size);

#endif
