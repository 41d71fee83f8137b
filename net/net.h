/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sockets for every vccid transport: listening (TCP and unix), accepting and
 * naming peers, connecting and writing with a deadline. Addresses come parsed
 * (corelib/addr.h). Every socket is CLOEXEC; listening and connected sockets are
 * non-blocking, accepted ones blocking (their owners read with MSG_DONTWAIT or
 * a receive timeout). Failures are logged here with the real reason, once.
 */
#ifndef VCCID_NET_H
#define VCCID_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "corelib/addr.h"

/* A peer name: "1.2.3.4:5", "[::1]:5" or "unix:uid=U,pid=P". */
#define VCCID_NET_PEER_MAX 64

struct vccid_net_listen_opts {
	const char *label;        /* log prefix: "VSCard", "usbip" */
	const char *protocol;     /* named in the all-interfaces warning (NULL: label) */
	const char *exposes;      /* said when listening on all interfaces: "add cards" */
	unsigned unix_mode;       /* unix sockets: mode of the socket file */
	const char *unix_owner;   /* unix sockets: "USER[:GROUP]", or NULL to keep ours */
	bool authenticated;       /* peers prove who they are (TLS client certificates): no
				   * warning when listening on all interfaces */
};

/**
 * Listens on @p addr; *fd gets a non-blocking CLOEXEC listening socket.
 * TCP: SO_REUSEADDR; a name is resolved and the first address that binds is
 * used; 0.0.0.0 and [::] work but log a warning (no authentication). Port 0,
 * which the parser never gives, lets the kernel pick one (getsockname).
 * Unix: a socket file left at the path is replaced only when nothing answers
 * on it (stale); a live one ("in use by another program") and any other kind
 * of file are refused and left alone. The file then gets unix_mode and
 * unix_owner. Returns 0, VCCID_ECONFIG (bad owner, path taken) or VCCID_EIO;
 * the reason is logged as "LABEL cannot listen on ADDR: REASON".
 */
int vccid_net_listen(const struct vccid_addr *addr, const struct vccid_net_listen_opts *opts,
		     int *fd);

/**
 * Accepts one connection on @p listen_fd: *fd gets a blocking CLOEXEC socket
 * (TCP_NODELAY on TCP) and @p peer (VCCID_NET_PEER_MAX bytes is enough) its
 * name. Returns 0, VCCID_EBUSY when nothing is pending (not logged),
 * VCCID_ENOMEM when out of descriptors or memory (not logged: the connection
 * stays queued and @p listen_fd readable, so the caller must stop polling it
 * for a while, and log with vccid_net_log_refusal()) or VCCID_EIO (logged
 * with @p label).
 */
int vccid_net_accept(int listen_fd, const char *label, int *fd, char *peer, size_t peer_size);

/* Refusals of newcomers are logged once per this period (per log), with a count. */
#define VCCID_NET_REFUSAL_PERIOD_MS 1000

/** One kind of repeated refusal; zero-initialised. */
struct vccid_net_refusals {
	long long last_ms;
	unsigned suppressed;
};

/**
 * Logs "LABEL peer PEER refused: WHY" at most once per
 * VCCID_NET_REFUSAL_PERIOD_MS for @p r, with a count of those left out: a
 * flood of connections cannot flood the log.
 */
void vccid_net_log_refusal(struct vccid_net_refusals *r, const char *label, const char *peer,
			   const char *why);

/**
 * Who a peer is, for fairness between peers: its address without the port
 * ("1.2.3.4", "[::1]"), or "unix:uid=U" for a unix socket peer.
 */
void vccid_net_peer_key(const char *peer, char *key, size_t size);

/** A connection a server might close to make room for a newcomer. */
struct vccid_net_evictable {
	const char *key;     /* vccid_net_peer_key() of its peer */
	long long since;     /* evictable (idle) since, vccid_now_ms(); 0: not evictable */
};

/**
 * The connection to close so that a newcomer gets a place and no peer keeps
 * the others out with connections that do nothing: among the @p n in @p c
 * evictable for at least @p grace_ms at @p now, one of the peer holding the
 * most evictable ones, the one evictable longest. Returns its index, or -1.
 */
long vccid_net_pick_eviction(const struct vccid_net_evictable *c, size_t n, long long now,
			     long long grace_ms);

/**
 * Makes blocking reads of accepted socket @p fd give up after @p timeout_ms
 * (SO_RCVTIMEO), so vccid_net_readv() can wait in one blocking call.
 */
void vccid_net_set_recv_timeout(int fd, unsigned timeout_ms);

/**
 * Reads what socket @p fd has into @p iov, waiting until @p deadline_ms
 * (vccid_now_ms() time) for the first byte; a deadline <= 0 takes only what is
 * there now. The first wait is one blocking recvmsg (bounded by the socket's
 * receive timeout, vccid_net_set_recv_timeout), so an answer costs one system
 * call; after that a poll up to the deadline. Returns the count (> 0), 0 at
 * end of stream, VCCID_ETIMEDOUT when nothing came, or VCCID_EIO.
 */
ssize_t vccid_net_readv(int fd, const struct iovec *iov, size_t iovcnt, long long deadline_ms);

/** Names the peer of connected socket @p fd, as vccid_net_accept() does ("?" if unknown). */
void vccid_net_peer_name(int fd, char *out, size_t size);

/**
 * Connects to @p addr (a name is resolved first, blocking; every address it
 * has is tried) within @p timeout_ms. @p cancel_fd, if >= 0, aborts the wait
 * when it becomes readable (a signal pipe). *fd gets a connected,
 * non-blocking CLOEXEC socket (TCP_NODELAY on TCP). Returns 0,
 * VCCID_ETIMEDOUT, VCCID_ECANCELED or VCCID_EIO, with @p why (may be NULL)
 * set to the reason ("Connection refused"); nothing is logged.
 */
int vccid_net_connect(const struct vccid_addr *addr, int timeout_ms, int cancel_fd, int *fd,
		      char *why, size_t why_size);

/**
 * Writes all of @p iov (@p iovcnt parts, in order) to socket @p fd, blocking
 * or not, without SIGPIPE, before @p deadline_ms on vccid_now_ms()'s clock
 * (negative: no deadline). Returns 0, VCCID_ETIMEDOUT (a peer that does not
 * read) or VCCID_EIO (errno tells why; 0 for a closed connection).
 */
int vccid_net_writev_all(int fd, const struct iovec *iov, int iovcnt, long long deadline_ms);
/** vccid_net_writev_all() of one buffer. */
int vccid_net_write_all(int fd, const void *buf, size_t len, long long deadline_ms);

#endif
