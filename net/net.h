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

/** A connection being made without waiting (vccid_net_dial_start()). */
typedef struct vccid_net_dial vccid_net_dial;

/**
 * Starts connecting to @p addr without waiting for the peer. A host name is
 * resolved here, which may block on the resolver (call it holding no lock);
 * an address is not. Every address the name has is tried in turn. *dial gets
 * the attempt: poll vccid_net_dial_fd() for POLLOUT, then call
 * vccid_net_dial_step(). Returns 0, or VCCID_EIO / VCCID_ENOMEM with @p why
 * (may be NULL) set to the reason and *dial NULL; nothing is logged.
 */
int vccid_net_dial_start(const struct vccid_addr *addr, vccid_net_dial **dial, char *why,
			 size_t why_size);
/** The socket to poll for POLLOUT (it changes when the next address is tried). */
int vccid_net_dial_fd(const vccid_net_dial *dial);
/**
 * Advances @p dial without waiting: 0 with *fd the connected socket
 * (non-blocking, CLOEXEC, TCP_NODELAY on TCP; it is the caller's now), VCCID_EBUSY
 * while a connect is in progress (poll the fd again), or VCCID_EIO when the
 * last address failed too, with @p why (may be NULL) set to its reason
 * ("Connection refused"). Free @p dial after 0 or VCCID_EIO.
 */
int vccid_net_dial_step(vccid_net_dial *dial, int *fd, char *why, size_t why_size);
/** Closes a socket still connecting and frees. NULL is fine. */
void vccid_net_dial_free(vccid_net_dial *dial);

/**
 * Makes socket @p fd blocking, so that with vccid_net_set_recv_timeout() a
 * connected socket reads as an accepted one does (one system call per answer).
 */
void vccid_net_set_blocking(int fd);

/** A bounded exponential backoff for reconnecting; zero it, then set first_ms and max_ms. */
struct vccid_net_backoff {
	unsigned first_ms;      /* the first delay */
	unsigned max_ms;        /* the delay doubles up to this */
	unsigned next_ms;       /* internal: the delay the next failure gets (0: first_ms) */
};

/** A failed attempt: returns how long to wait before the next (first_ms, doubling to max_ms). */
unsigned vccid_net_backoff_fail(struct vccid_net_backoff *b);
/** A success: the next failure waits first_ms again. */
void vccid_net_backoff_reset(struct vccid_net_backoff *b);

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
