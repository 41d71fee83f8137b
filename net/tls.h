/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TLS for vccid's transports (GnuTLS, as QEMU and libvirt use for their
 * VSCard chardevs): x509 credentials read from QEMU's folder layout or from
 * named files, and sessions over connected sockets, driven step by step from a
 * poll loop or with a deadline. TLS 1.2 or later only. Nothing is logged here:
 * every failure comes back with its reason, for the caller to log with the
 * peer or the file it concerns.
 *
 * Threads: credentials are read-only once loaded and may be shared by any
 * number of sessions and threads. A session is used by one thread at a time
 * until its handshake is done; after that one thread may write while another
 * reads (GnuTLS allows one sender and one receiver at once).
 */
#ifndef VCCID_TLS_H
#define VCCID_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct vccid_tls_creds vccid_tls_creds;
typedef struct vccid_tls vccid_tls;

enum vccid_tls_role {
	VCCID_TLS_SERVER,
	VCCID_TLS_CLIENT,
};

/* Room for a reason (VCCID_TLS_WHY_SIZE) or a subject DN (VCCID_TLS_SUBJECT_MAX). */
#define VCCID_TLS_WHY_SIZE 256
#define VCCID_TLS_SUBJECT_MAX 256

/*
 * Where the credentials are. @c dir, if set, is a folder in QEMU's x509
 * layout: ca-cert.pem, and server-cert.pem + server-key.pem (server) or
 * client-cert.pem + client-key.pem (client). A file named explicitly wins over
 * the folder's. Everything is PEM.
 */
struct vccid_tls_files {
	const char *dir;
	const char *cert;
	const char *key;
	const char *ca;
};

/**
 * Reads credentials for @p role. A server needs its certificate and key; with
 * a CA (always, in the folder layout, as QEMU requires ca-cert.pem) every
 * client must present a certificate that CA signed, otherwise clients are not
 * asked for one. A client needs the CA that signed the server's certificate;
 * its own certificate and key are optional (both or neither; in the folder
 * layout, neither file present means none).
 *
 * Returns 0 with *out set (free with vccid_tls_creds_free()), or
 * VCCID_ECONFIG (a file is missing, unreadable, not PEM, a key does not match
 * its certificate, a CA file holds no certificate) or VCCID_ENOMEM, with
 * caller-owned @p why (VCCID_TLS_WHY_SIZE is enough) naming the file and the
 * reason, e.g. "/etc/x/server-key.pem does not match /etc/x/server-cert.pem".
 */
int vccid_tls_creds_load(enum vccid_tls_role role, const struct vccid_tls_files *files,
			 vccid_tls_creds **out, char *why, size_t why_size);

/**
 * Server only: accepts only clients whose certificate subject matches one of
 * @p patterns (copied). A pattern matches the whole subject DN as RFC 4514
 * writes it ("CN=alice,O=Example") or its common name alone ("alice"), with
 * shell wildcards (*, ?, [...]) allowed. @p n 0: any subject the CA signed.
 * Call before the credentials are shared. Returns 0 or VCCID_ENOMEM.
 */
int vccid_tls_creds_allow_subjects(vccid_tls_creds *creds, const char *const *patterns,
				   size_t n);

/** True when clients must present a certificate (a server with a CA). */
bool vccid_tls_creds_verifies_clients(const vccid_tls_creds *creds);

void vccid_tls_creds_free(vccid_tls_creds *creds);

/**
 * A session over connected socket @p fd (blocking or not; the session never
 * changes its mode, never closes it). @p creds must outlive the session.
 * A client checks the server's certificate against @p server_name (a host
 * name, also sent as SNI, or an IP address), or only its chain when NULL.
 * Servers pass NULL. Returns 0 with *out set, or VCCID_ENOMEM / VCCID_EIO.
 */
int vccid_tls_new(const vccid_tls_creds *creds, int fd, const char *server_name,
		  vccid_tls **out);

/* What vccid_tls_handshake() needs before it can go on. */
#define VCCID_TLS_WANT_READ 1
#define VCCID_TLS_WANT_WRITE 2

/**
 * One step of the handshake without waiting: VCCID_OK when it is done and the
 * peer is accepted (server: its certificate verified and its subject allowed),
 * VCCID_TLS_WANT_READ or VCCID_TLS_WANT_WRITE when the socket must become
 * readable or writable first, or a negative vccid_error (VCCID_EPROTO: the
 * peer is refused; VCCID_EIO: the connection failed) with
 * vccid_tls_error() saying why ("no client certificate", "certificate
 * expired", "not TLS: plaintext on the TLS port?", ...).
 */
int vccid_tls_handshake(vccid_tls *t);

/**
 * The whole handshake, waiting on the socket until @p deadline_ms
 * (vccid_now_ms() time). Returns VCCID_OK, VCCID_ETIMEDOUT, or as
 * vccid_tls_handshake().
 */
int vccid_tls_handshake_until(vccid_tls *t, long long deadline_ms);

/** Why the last call failed (never NULL; "" when nothing failed). */
const char *vccid_tls_error(const vccid_tls *t);

/* The kind of a refused handshake, e.g. to rate-limit each kind's log lines apart. */
enum vccid_tls_refusal {
	VCCID_TLS_REFUSAL_NONE,        /* not refused (or failed for another reason: EIO) */
	VCCID_TLS_REFUSAL_NOT_TLS,     /* the peer sent something else than TLS */
	VCCID_TLS_REFUSAL_NO_CERT,     /* no client certificate (no server certificate) */
	VCCID_TLS_REFUSAL_UNTRUSTED,   /* not signed by the CA, or otherwise invalid */
	VCCID_TLS_REFUSAL_EXPIRED,
	VCCID_TLS_REFUSAL_NOT_YET_VALID,
	VCCID_TLS_REFUSAL_SUBJECT,     /* not on the allow-list (or another server name) */
	VCCID_TLS_REFUSAL_OTHER,       /* no common version or cipher, a bad message, an alert */
	VCCID_TLS_REFUSAL_KINDS
};

/** What the handshake was refused for, after it returned VCCID_EPROTO. */
enum vccid_tls_refusal vccid_tls_refusal(const vccid_tls *t);

/**
 * The peer certificate's subject DN (RFC 4514) into @p buf, "" when the peer
 * sent none. Known once the handshake has read the peer's certificate, so a
 * refusal for an untrusted or expired certificate can name it too.
 */
void vccid_tls_peer_subject(const vccid_tls *t, char *buf, size_t size);

/** The protocol and cipher in use, e.g. "TLS1.3 AES-256-GCM" ("" before the handshake). */
void vccid_tls_describe(const vccid_tls *t, char *buf, size_t size);

/**
 * Reads decrypted bytes into @p iov, as vccid_net_readv() does on a socket:
 * waits until @p deadline_ms for the first byte (<= 0: only what is there),
 * the first wait one blocking receive when the socket is blocking (bounded by
 * its receive timeout). Bytes already decrypted or received are returned
 * without a system call. Returns the count (> 0), 0 at the end of the stream
 * (the peer's close_notify or EOF), VCCID_ETIMEDOUT, or VCCID_EIO
 * (vccid_tls_error() says why: a cut record, a bad MAC).
 */
ssize_t vccid_tls_readv(vccid_tls *t, const struct iovec *iov, size_t iovcnt,
			long long deadline_ms);

/**
 * Bytes the session holds that the socket no longer shows (decrypted, or
 * received and not yet decrypted). A poll loop must read while this is
 * non-zero instead of waiting for the socket.
 */
size_t vccid_tls_pending(const vccid_tls *t);

/**
 * Sends what it can of @p buf (up to one TLS record, 16 KiB), waiting for room
 * until @p deadline_ms (<= 0: only what fits now). Returns the count (> 0),
 * VCCID_ETIMEDOUT when nothing was taken in time, or VCCID_EIO. After
 * VCCID_ETIMEDOUT the session may hold a record partly sent: the next call
 * must start with the same bytes (it sends that record first and returns its
 * length), as a writer that keeps unsent bytes in an outbox does.
 */
ssize_t vccid_tls_write(vccid_tls *t, const void *buf, size_t len, long long deadline_ms);

/** All of @p len bytes before @p deadline_ms (< 0: no deadline): 0, VCCID_ETIMEDOUT or
 *  VCCID_EIO. */
int vccid_tls_write_all(vccid_tls *t, const void *buf, size_t len, long long deadline_ms);

/** Sends close_notify if the socket takes it now (never waits). */
void vccid_tls_bye(vccid_tls *t);

/** Frees the session (not its socket). NULL is fine. */
void vccid_tls_free(vccid_tls *t);

#endif
