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
#include "net/tls.h"

/* Where the host is (corelib/addr.h syntax: HOST:PORT, [V6]:PORT or unix:PATH). */
struct vccid_share_target {
	const char *text;            /* as given, for logs */
	bool is_unix;
	struct vccid_addr addr;
};

/** Parses @p arg; 0, or VCCID_EINVAL with the problem in @p why. */
int vccid_share_target_parse(const char *arg, struct vccid_share_target *target, char *why,
			     size_t why_size);

/* ---------------------------------------------------------------- TLS options */

#define VCCID_SHARE_TLS_ALLOW_MAX 16

/* --tls and its files, as given on the command line (strings not owned). */
struct vccid_share_tls_opts {
	bool on;                  /* --tls */
	const char *dir;          /* --tls-dir: QEMU's x509 folder layout */
	const char *ca, *cert, *key;
	const char *name;         /* --tls-name: the host's name to check (connecting) */
	const char *allow[VCCID_SHARE_TLS_ALLOW_MAX];   /* --tls-allow: subjects (listening) */
	size_t n_allow;
};

/**
 * What is wrong with @p o for connecting (@p listen false) or listening:
 * NULL when it is usable, else a static English sentence for a usage error
 * (a --tls-* option without --tls, --tls without files, a listener without a
 * CA to check the host's client certificate, a name or allow-list on the
 * wrong side, half a certificate and key).
 */
const char *vccid_share_tls_problem(const struct vccid_share_tls_opts *o, bool listen);

/**
 * The name the host's certificate must carry when connecting: --tls-name, else
 * the target's host (name or address); NULL for a unix socket without
 * --tls-name (then only the chain is checked).
 */
const char *vccid_share_tls_name(const struct vccid_share_tls_opts *o,
				 const struct vccid_share_target *target);

/**
 * Loads the credentials @p o names, for the client side (connecting) or the
 * server side (@p listen, with client certificates required, narrowed to
 * o->allow). 0 with *creds, or VCCID_ECONFIG / VCCID_ENOMEM with @p why naming
 * the file.
 */
int vccid_share_tls_load(const struct vccid_share_tls_opts *o, bool listen,
			 vccid_tls_creds **creds, char *why, size_t why_size);

/* ---------------------------------------------------------------- a connection to a host */

/* One connection: its socket, and its TLS session when there is one. */
struct vccid_share_conn {
	int fd;                   /* -1: none */
	vccid_tls *tls;           /* NULL: plaintext */
	bool handshaking;         /* TLS handshake not done yet */
	bool tcp;                 /* re-arm TCP_QUICKACK on reads */
};

/**
 * Starts TLS on @p conn (its socket connected or accepted): the handshake is
 * then stepped with vccid_share_conn_handshake(). @p name: the name to check
 * (client side), or NULL. 0, or a negative vccid_error with @p why.
 */
int vccid_share_conn_start_tls(struct vccid_share_conn *conn, const vccid_tls_creds *creds,
			       const char *name, char *why, size_t why_size);
/**
 * One step of the TLS handshake, without waiting: 0 when done (the peer
 * accepted), VCCID_TLS_WANT_READ / VCCID_TLS_WANT_WRITE for what to poll, or a
 * negative vccid_error with @p why: the reason and the peer's certificate
 * subject when it sent one.
 */
int vccid_share_conn_handshake(struct vccid_share_conn *conn, char *why, size_t why_size);
/**
 * Bytes TLS holds that the socket no longer shows (read with the handshake's
 * last records, or left by a read): the caller reads them before it polls.
 */
size_t vccid_share_conn_pending(const struct vccid_share_conn *conn);
/** After the handshake: "TLS1.3 AES-256-GCM, peer CN=..." into @p buf. */
void vccid_share_conn_describe(const struct vccid_share_conn *conn, char *buf, size_t size);
/** Says TLS goodbye when it can without waiting, closes the socket, frees the session. */
void vccid_share_conn_close(struct vccid_share_conn *conn);

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
/** A vccid_share_client_io write: @p io points to the struct vccid_share_conn. */
int vccid_share_transport_write(void *io, const uint8_t *buf, size_t len);
/**
 * Reads what @p conn has (on its socket, or held inside TLS) into @p client.
 * 0 when it would block; a negative vccid_error when the connection is over:
 * the host closed it (@p why says so) or the client gave up on it
 * (vccid_share_client_why()).
 */
int vccid_share_transport_read(struct vccid_share_conn *conn, vccid_share_client *client,
			       char *why, size_t why_size);

#endif
