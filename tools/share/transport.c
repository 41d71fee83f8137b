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
	struct vccid_share_conn *c = io;
	long long deadline = vccid_now_ms() + SEND_TIMEOUT_MS;

	if (c->tls != NULL)
		return vccid_tls_write_all(c->tls, buf, len, deadline);
	return vccid_net_write_all(c->fd, buf, len, deadline);
}

/* What is there now, without waiting: > 0 bytes, 0 end of stream, VCCID_ETIMEDOUT nothing, else an error. */
static ssize_t read_now(struct vccid_share_conn *c, uint8_t *space, size_t want, char *why,
			size_t why_size)
{
	ssize_t n;

	if (c->tls != NULL) {
		struct iovec iov = { .iov_base = space, .iov_len = want };

		n = vccid_tls_readv(c->tls, &iov, 1, 0);
		if (n == VCCID_EIO)
			snprintf(why, why_size, "TLS: %s", vccid_tls_error(c->tls));
		return n;
	}
	do
		n = recv(c->fd, space, want, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return VCCID_ETIMEDOUT;
	if (n < 0) {
		snprintf(why, why_size, "%s", strerror(errno));
		return VCCID_EIO;
	}
	return n;
}

int vccid_share_transport_read(struct vccid_share_conn *c, vccid_share_client *client,
			       char *why, size_t why_size)
{
	for (;;) {
		size_t want;
		uint8_t *space = vccid_share_client_read_space(client, &want);
		ssize_t n = 0;    /* want 0: a header-only message is complete */
		char reason[VCCID_TLS_WHY_SIZE + 8];
		int rv;

		if (want > 0) {
			n = read_now(c, space, want, reason, sizeof(reason));
			if (n == VCCID_ETIMEDOUT)
				return VCCID_OK;
			if (n <= 0) {
				snprintf(why, why_size, "the host closed the connection%s%s",
					 n < 0 ? ": " : "", n < 0 ? reason : "");
				return VCCID_EIO;
			}
			if (c->tcp) {
				int one = 1;

				/* Linux clears it after a while: re-arm it on every read. */
				setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			}
		}
		rv = vccid_share_client_read_done(client, (size_t)n);
		if (rv != VCCID_OK) {
			snprintf(why, why_size, "%s", vccid_share_client_why(client));
			return rv;
		}
	}
}

/* ---------------------------------------------------------------- TLS */

const char *vccid_share_tls_problem(const struct vccid_share_tls_opts *o, bool listen)
{
	bool files = o->dir != NULL || o->ca != NULL || o->cert != NULL || o->key != NULL;

	if (!o->on)
		return files || o->name != NULL || o->n_allow > 0
			       ? "the --tls-* options need --tls" : NULL;
	if (!files)
		return "--tls needs --tls-dir DIR, or --tls-ca (and --tls-cert, --tls-key)";
	if ((o->cert != NULL) != (o->key != NULL) && o->dir == NULL)
		return "--tls-cert and --tls-key go together";
	if (listen) {
		if (o->dir == NULL && (o->cert == NULL || o->key == NULL))
			return "--listen --tls needs our certificate and key (--tls-dir with "
			       "server-cert.pem and server-key.pem, or --tls-cert and --tls-key)";
		if (o->dir == NULL && o->ca == NULL)
			return "--listen --tls needs a CA (--tls-ca, or ca-cert.pem in --tls-dir) "
			       "to check the host's client certificate";
		if (o->name != NULL)
			return "--tls-name names the host we connect to: not with --listen";
	} else {
		if (o->dir == NULL && o->ca == NULL)
			return "--tls needs a CA to check the host's certificate (--tls-ca, or "
			       "ca-cert.pem in --tls-dir)";
		if (o->n_allow > 0)
			return "--tls-allow checks hosts that connect to us: only with --listen";
	}
	return NULL;
}

const char *vccid_share_tls_name(const struct vccid_share_tls_opts *o,
				 const struct vccid_share_target *t)
{
	if (o->name != NULL)
		return o->name;
	return t->is_unix ? NULL : t->addr.host;
}

int vccid_share_tls_load(const struct vccid_share_tls_opts *o, bool listen,
			 vccid_tls_creds **creds, char *why, size_t why_size)
{
	const struct vccid_tls_files files = {
		.dir = o->dir, .ca = o->ca, .cert = o->cert, .key = o->key,
	};
	int rv = vccid_tls_creds_load(listen ? VCCID_TLS_SERVER : VCCID_TLS_CLIENT, &files, creds,
				      why, why_size);

	if (rv != VCCID_OK)
		return rv;
	if (listen && !vccid_tls_creds_verifies_clients(*creds)) {
		/* The layout always has a CA; this is the last guard against an open listener. */
		snprintf(why, why_size, "no CA: hosts' client certificates could not be checked");
		vccid_tls_creds_free(*creds);
		*creds = NULL;
		return VCCID_ECONFIG;
	}
	if (o->n_allow > 0 &&
	    vccid_tls_creds_allow_subjects(*creds, o->allow, o->n_allow) != VCCID_OK) {
		snprintf(why, why_size, "out of memory");
		vccid_tls_creds_free(*creds);
		*creds = NULL;
		return VCCID_ENOMEM;
	}
	return VCCID_OK;
}

int vccid_share_conn_start_tls(struct vccid_share_conn *c, const vccid_tls_creds *creds,
			       const char *name, char *why, size_t why_size)
{
	int rv = vccid_tls_new(creds, c->fd, name, &c->tls);

	if (rv != VCCID_OK) {
		snprintf(why, why_size, "cannot start TLS: %s", vccid_strerror(rv));
		c->tls = NULL;
		return rv;
	}
	c->handshaking = true;
	return VCCID_OK;
}

int vccid_share_conn_handshake(struct vccid_share_conn *c, char *why, size_t why_size)
{
	char subject[VCCID_TLS_SUBJECT_MAX];
	int rv = vccid_tls_handshake(c->tls);

	if (rv == VCCID_OK)
		c->handshaking = false;
	if (rv >= 0)
		return rv;
	vccid_tls_peer_subject(c->tls, subject, sizeof(subject));
	snprintf(why, why_size, "TLS handshake failed: %s%s%s%s", vccid_tls_error(c->tls),
		 subject[0] != '\0' ? " (certificate " : "", subject,
		 subject[0] != '\0' ? ")" : "");
	return rv;
}

size_t vccid_share_conn_pending(const struct vccid_share_conn *c)
{
	return c->tls != NULL && !c->handshaking ? vccid_tls_pending(c->tls) : 0;
}

void vccid_share_conn_describe(const struct vccid_share_conn *c, char *buf, size_t size)
{
	char proto[96], subject[VCCID_TLS_SUBJECT_MAX];

	if (c->tls == NULL) {
		snprintf(buf, size, "plaintext");
		return;
	}
	vccid_tls_describe(c->tls, proto, sizeof(proto));
	vccid_tls_peer_subject(c->tls, subject, sizeof(subject));
	snprintf(buf, size, "%s, peer certificate %s", proto, subject[0] ? subject : "(none)");
}

void vccid_share_conn_close(struct vccid_share_conn *c)
{
	if (c->tls != NULL) {
		if (!c->handshaking)
			vccid_tls_bye(c->tls);
		vccid_tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->handshaking = false;
}
