/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VSCard transport: TCP, TLS and unix sockets, one poll thread, limits on connections, stalls. */
#define _GNU_SOURCE   /* pipe2 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "corelib/addr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "host.h"
#include "net/net.h"
#include "net/tls.h"

#define MAX_LISTEN_SOCKETS 4   /* TCP, unix, TLS */
/* A connection still in its handshake, or without a reader, may be closed to make room
 * for a newcomer once it has waited this long; an honest client is past that by then. */
#define EVICT_GRACE_MS 500
/* After accept() ran out of descriptors, it waits this long before it tries again. */
#define ACCEPT_PAUSE_MS 100

enum refusal {
	REFUSED_PENDING,
	REFUSED_CONNECTIONS,
	REFUSED_ACCEPT,   /* accept() itself failed: out of descriptors or memory */
	REFUSED_TLS_STALLED,
	REFUSED_TLS_FAILED,   /* the connection failed in the handshake */
	REFUSED_TLS,          /* + enum vccid_tls_refusal: each kind logged apart */
	REFUSAL_KINDS = REFUSED_TLS + VCCID_TLS_REFUSAL_KINDS
};

struct client {
	int fd;
	vccid_vscard_conn *conn;      /* NULL while the TLS handshake runs */
	vccid_tls *tls;               /* NULL: plaintext */
	int tls_want;                 /* in the TLS handshake: VCCID_TLS_WANT_READ or _WRITE */
	char peer[VCCID_NET_PEER_MAX];
	struct vccid_vscard_io io;
	char peer_key[64];            /* who it is, for fairness: an address, or unix:uid=U */
	long long accepted_ms;
	long long partial_since_ms;   /* 0 when no message is partly received */
	struct client *next;
};

struct listener {
	pthread_t thread;
	int wake_pipe[2];
	int listen_fds[MAX_LISTEN_SOCKETS];
	size_t n_listen;
	int tls_listen_fd;                /* one of listen_fds, or -1 */
	vccid_tls_creds *tls_creds;
	char *unix_path;
	struct vccid_vscard_config cfg;   /* copied scalars; no strings used after start */
	char config_path[256];
	struct client *clients;
	unsigned n_clients;
	struct vccid_net_refusals refusals[REFUSAL_KINDS];   /* one log line a second each */
	long long accept_paused_until_ms;   /* out of descriptors: accept again after this */
	atomic_bool stopping;
};

#define LISTENER_TIMER_SLACK_NS 5000000UL   /* 5 ms: a tick at HZ 250, 4 ms, falls inside */

static pthread_mutex_t listener_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener *listener;
static unsigned listener_users;

/* The transport's write (host.h): what fits, waiting for room until the deadline. */
static ssize_t client_write(void *io, const uint8_t *buf, size_t len, long long deadline_ms)
{
	struct client *client = io;

	for (;;) {
		ssize_t n = send(client->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd pfd = { .fd = client->fd, .events = POLLOUT };
		long long left;

		if (n > 0)
			return n;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return VCCID_EIO;
		left = deadline_ms - vccid_now_ms();
		if (deadline_ms <= 0 || left <= 0)
			return VCCID_ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return VCCID_EIO;
	}
}

/* The transport's read (host.h): a transmit waiting for its answer costs one system call. */
static ssize_t client_read(void *io, const struct iovec *iov, size_t iovcnt, long long deadline_ms)
{
	const struct client *client = io;

	return vccid_net_readv(client->fd, iov, iovcnt, deadline_ms);
}

/* The same over TLS. The host writes one message at a time under its lock, and reads only
 * between read_begin and read_end (or in the one transmit that owns the reading): one
 * writer and one reader at once, as GnuTLS allows. */
static ssize_t tls_client_write(void *io, const uint8_t *buf, size_t len, long long deadline_ms)
{
	struct client *client = io;

	return vccid_tls_write(client->tls, buf, len, deadline_ms);
}

static ssize_t tls_client_read(void *io, const struct iovec *iov, size_t iovcnt,
			       long long deadline_ms)
{
	struct client *client = io;

	return vccid_tls_readv(client->tls, iov, iovcnt, deadline_ms);
}

static void listener_wake(void *io)
{
	(void)io;
	pthread_mutex_lock(&listener_lock);
	if (listener != NULL) {
		char byte = 'w';

		(void)!write(listener->wake_pipe[1], &byte, 1);
	}
	pthread_mutex_unlock(&listener_lock);
}

static unsigned pending_handshakes(const struct listener *l)
{
	const struct client *c;
	unsigned n = 0;

	for (c = l->clients; c != NULL; c = c->next)
		n += c->conn == NULL || !vccid_vscard_conn_handshake_done(c->conn);
	return n;
}

/* Since when @p c has been evictable (pending, or with @p idle holding no reader); 0: not. */
static long long evictable_since(const struct client *c, bool idle)
{
	if (c->conn == NULL)   /* in its TLS handshake */
		return idle ? 0 : c->accepted_ms;
	if (idle)
		return vccid_vscard_conn_idle_since(c->conn);
	return vccid_vscard_conn_handshake_done(c->conn) ? 0 : c->accepted_ms;
}

/*
 * The connection to close for a newcomer (vccid_net_pick_eviction: evictable for
 * EVICT_GRACE_MS, of the peer holding the most, the longest waiting). NULL when
 * there is none.
 */
static struct client *eviction_candidate(const struct listener *l, bool idle, long long now)
{
	struct vccid_net_evictable *e = calloc(l->n_clients ? l->n_clients : 1, sizeof(*e));
	struct client *c, *victim = NULL;
	size_t n = 0;
	long pick;

	if (e == NULL)
		return NULL;   /* no room made: the newcomer is refused, as when full */
	for (c = l->clients; c != NULL && n < l->n_clients; c = c->next, n++) {
		e[n].key = c->peer_key;
		e[n].since = evictable_since(c, idle);
	}
	pick = vccid_net_pick_eviction(e, n, now, EVICT_GRACE_MS);
	for (c = l->clients; c != NULL && pick > 0; c = c->next)
		pick--;
	if (pick == 0)
		victim = c;
	free(e);
	return victim;
}

static void drop_client(struct listener *l, struct client *client, const char *reason);

/*
 * Makes room for a newcomer within max-pending and max-connections, so that no
 * peer keeps the others out by holding every place with connections that do
 * nothing. False: the newcomer is refused (and that is logged).
 */
static bool make_room(struct listener *l, const char *peer)
{
	long long now = vccid_now_ms();
	struct client *victim;

	if (pending_handshakes(l) >= l->cfg.max_pending) {
		victim = eviction_candidate(l, false, now);
		if (victim == NULL) {
			vccid_net_log_refusal(&l->refusals[REFUSED_PENDING], "VSCard", peer,
					      "max-pending handshakes reached");
			return false;
		}
		drop_client(l, victim, "closed for a newcomer: no Init yet");
	}
	if (l->n_clients >= l->cfg.max_connections) {
		victim = eviction_candidate(l, true, now);
		if (victim == NULL) {
			vccid_net_log_refusal(&l->refusals[REFUSED_CONNECTIONS], "VSCard", peer,
					      "max-connections reached");
			return false;
		}
		drop_client(l, victim, "closed for a newcomer: it holds no reader");
	}
	return true;
}

/* "ADDRESS (SUBJECT)" for a TLS client that sent a certificate, else "ADDRESS". */
static void peer_name(const struct client *client, char *out, size_t size)
{
	char subject[VCCID_TLS_SUBJECT_MAX] = "";

	if (client->tls != NULL)
		vccid_tls_peer_subject(client->tls, subject, sizeof(subject));
	if (subject[0] == '\0')
		snprintf(out, size, "%s", client->peer);
	else if (snprintf(out, size, "%s (%s)", client->peer, subject) >= (int)size)
		snprintf(out + size - 5, 5, "...)");   /* a subject too long to show whole */
}

/* The VSCard side of a connection; its peer names a TLS client's subject too. */
static int start_conn(struct listener *l, struct client *client)
{
	char peer[VCCID_VSCARD_PEER_MAX];
	char desc[64] = "";

	if (client->tls != NULL)
		vccid_tls_describe(client->tls, desc, sizeof(desc));
	peer_name(client, peer, sizeof(peer));
	client->conn = vccid_vscard_conn_new(&client->io, peer, l->cfg.timeout_ms);
	if (client->conn == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s refused: out of memory", peer);
		return VCCID_ENOMEM;
	}
	if (client->tls != NULL)
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s connected over %s", peer, desc);
	else
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s connected", peer);
	return VCCID_OK;
}

static void accept_client(struct listener *l, int listen_fd)
{
	bool tls = listen_fd == l->tls_listen_fd;
	char peer[VCCID_NET_PEER_MAX];
	struct client *client;
	int fd, rv;

	rv = vccid_net_accept(listen_fd, "VSCard", &fd, peer, sizeof(peer));
	if (rv == VCCID_ENOMEM) {
		/* The connection stays queued and the socket readable: pause, not spin. */
		l->accept_paused_until_ms = vccid_now_ms() + ACCEPT_PAUSE_MS;
		vccid_net_log_refusal(&l->refusals[REFUSED_ACCEPT], "VSCard", "(not accepted)",
				      "out of descriptors or memory");
	}
	if (rv != VCCID_OK)
		return;
	if (!make_room(l, peer)) {
		close(fd);
		return;
	}
	/* The socket stays blocking, its reads bounded by the answer timeout, for a
	 * transmit that waits for its answer in client_read; the listener itself never
	 * waits in a read (the TLS handshake sends and receives without waiting). */
	vccid_net_set_recv_timeout(fd, l->cfg.timeout_ms);
	client = calloc(1, sizeof(*client));
	if (client == NULL || (tls && vccid_tls_new(l->tls_creds, fd, NULL, &client->tls) != 0)) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s refused: out of memory", peer);
		free(client);
		close(fd);
		return;
	}
	client->fd = fd;
	snprintf(client->peer, sizeof(client->peer), "%s", peer);
	vccid_net_peer_key(peer, client->peer_key, sizeof(client->peer_key));
	client->io.write = tls ? tls_client_write : client_write;
	client->io.wake = listener_wake;
	client->io.read = tls ? tls_client_read : client_read;
	client->io.transmit_reads = true;
	client->io.io = client;
	client->accepted_ms = vccid_now_ms();
	if (tls) {
		client->tls_want = VCCID_TLS_WANT_READ;   /* the ClientHello */
	} else if (start_conn(l, client) != VCCID_OK) {
		close(fd);
		free(client);
		return;
	}
	client->next = l->clients;
	l->clients = client;
	l->n_clients++;
	if (tls)
		VCCID_LOG(VCCID_LOG_DEBUG, "VSCard peer %s: TLS handshake", peer);
}

static void drop_client(struct listener *l, struct client *client, const char *reason)
{
	struct client **p;

	for (p = &l->clients; *p != NULL; p = &(*p)->next) {
		if (*p == client) {
			*p = client->next;
			break;
		}
	}
	l->n_clients--;
	/* Close first: a transmit blocked writing to it fails at once. */
	shutdown(client->fd, SHUT_RDWR);
	if (client->conn != NULL)
		vccid_vscard_conn_close(client->conn, reason);   /* no transmit uses it after */
	else if (reason != NULL)
		VCCID_LOG(VCCID_LOG_INFO, "VSCard peer %s closed (%s)", client->peer, reason);
	vccid_tls_free(client->tls);
	close(client->fd);
	free(client);
}

/* A refused or failed TLS handshake: one log line per kind and second, and the client goes. */
static void refuse_tls(struct listener *l, struct client *client, int rv)
{
	char peer[VCCID_VSCARD_PEER_MAX];
	size_t kind = rv == VCCID_EPROTO ? REFUSED_TLS + vccid_tls_refusal(client->tls)
					 : REFUSED_TLS_FAILED;

	peer_name(client, peer, sizeof(peer));
	vccid_net_log_refusal(&l->refusals[kind], "VSCard TLS", peer, vccid_tls_error(client->tls));
	drop_client(l, client, NULL);
}

/* One step of a client's TLS handshake, when its socket is ready for it. */
static void step_tls(struct listener *l, struct client *client)
{
	int rv = vccid_tls_handshake(client->tls);

	if (rv == VCCID_TLS_WANT_READ || rv == VCCID_TLS_WANT_WRITE) {
		client->tls_want = rv;
		return;
	}
	if (rv != VCCID_OK) {
		refuse_tls(l, client, rv);
		return;
	}
	client->tls_want = 0;
	if (start_conn(l, client) != VCCID_OK)
		drop_client(l, client, NULL);
}

/* True when TLS holds bytes of @p client that its socket no longer shows. */
static bool tls_pending(struct client *client)
{
	bool pending = false;

	if (client->tls == NULL || !vccid_vscard_conn_read_begin(client->conn))
		return false;
	pending = vccid_tls_pending(client->tls) > 0;
	vccid_vscard_conn_read_end(client->conn);
	return pending;
}

/* Reads what is there; returns NULL or the reason to drop the client. */
static const char *read_client(struct client *client)
{
	const char *reason = vccid_vscard_conn_serve(client->conn);

	if (reason != NULL)
		return reason;
	if (vccid_vscard_conn_mid_message(client->conn)) {
		if (client->partial_since_ms == 0)
			client->partial_since_ms = vccid_now_ms();
	} else {
		client->partial_since_ms = 0;
	}
	return NULL;
}

/* Drops stalled and failed clients; returns the poll timeout until the next deadline. */
static int check_deadlines(struct listener *l)
{
	long long now = vccid_now_ms();
	long long next = -1;
	struct client *c = l->clients;

	while (c != NULL) {
		struct client *following = c->next;
		const char *reason = NULL;
		long long due = -1;

		if (c->conn == NULL) {
			due = c->accepted_ms + l->cfg.handshake_timeout_ms;
			if (now >= due) {
				vccid_net_log_refusal(&l->refusals[REFUSED_TLS_STALLED], "VSCard TLS",
						      c->peer, "TLS handshake not done within "
						      "handshake-timeout-ms");
				drop_client(l, c, NULL);
				due = -1;
			}
		} else if (vccid_vscard_conn_dead(c->conn)) {
			reason = "connection failed";
		} else if (!vccid_vscard_conn_handshake_done(c->conn)) {
			due = c->accepted_ms + l->cfg.handshake_timeout_ms;
			if (now >= due)
				reason = "no Init in time";
		} else if (c->partial_since_ms != 0) {
			due = c->partial_since_ms + l->cfg.timeout_ms;
			if (now >= due)
				reason = "stalled in the middle of a message";
		} else if (vccid_vscard_conn_idle_since(c->conn) != 0) {
			due = vccid_vscard_conn_idle_since(c->conn) + l->cfg.idle_timeout_ms;
			if (now >= due)
				reason = "no reader for idle-timeout-ms";
		}
		if (reason != NULL) {
			VCCID_LOG(VCCID_LOG_ERROR, "VSCard peer %s dropped: %s",
				  vccid_vscard_conn_peer(c->conn), reason);
			drop_client(l, c, reason);
		} else if (due >= 0 && (next < 0 || due < next)) {
			next = due;
		}
		c = following;
	}
	if (next < 0)
		return -1;
	return next - now > 0 ? (int)(next - now) : 0;
}

static void *listener_loop(void *arg)
{
	struct listener *l = arg;

	/* Every timeout here is 10 ms or more (the recheck of a socket left to transmits,
	 * handshake and stall limits): let the kernel fire them with a tick that comes
	 * anyway. On a VM, a timer interrupt of its own, 100 times a second during APDU
	 * bursts, lands inside an APDU and doubled the 99th percentile of its round trip. */
	(void)prctl(PR_SET_TIMERSLACK, LISTENER_TIMER_SLACK_NS, 0, 0, 0);
	while (!l->stopping) {
		struct pollfd fds[MAX_LISTEN_SOCKETS + 1 + 1024];
		struct client *owners[MAX_LISTEN_SOCKETS + 1 + 1024];
		bool stashed[MAX_LISTEN_SOCKETS + 1 + 1024];
		bool watching[MAX_LISTEN_SOCKETS + 1 + 1024];
		size_t n = 0;
		size_t i;
		struct client *c;
		int timeout = check_deadlines(l);
		long long now = vccid_now_ms();

		fds[n].fd = l->wake_pipe[0];
		fds[n++].events = POLLIN;
		for (i = 0; i < l->n_listen; i++) {
			fds[n].fd = l->listen_fds[i];
			fds[n++].events = now >= l->accept_paused_until_ms ? POLLIN : 0;
		}
		if (now < l->accept_paused_until_ms &&
		    (timeout < 0 || l->accept_paused_until_ms - now < timeout))
			timeout = (int)(l->accept_paused_until_ms - now);
		for (c = l->clients; c != NULL && n < sizeof(fds) / sizeof(fds[0]); c = c->next) {
			long long recheck;
			bool reading, writing;

			if (c->conn == NULL) {   /* in the TLS handshake */
				fds[n].fd = c->fd;
				fds[n].events = c->tls_want == VCCID_TLS_WANT_WRITE ? POLLOUT : POLLIN;
				watching[n] = false;
				stashed[n] = false;
				owners[n++] = c;
				continue;
			}
			reading = vccid_vscard_conn_watch(c->conn, now, &recheck);
			writing = vccid_vscard_conn_wants_write(c->conn);

			/* A socket a transmit reads or writes is left out for a moment. */
			if (!reading) {
				int wait = recheck > now ? (int)(recheck - now) : 0;

				if (timeout < 0 || wait < timeout)
					timeout = wait;
				if (!writing)
					continue;
			}
			fds[n].fd = c->fd;
			fds[n].events = (short)((reading ? POLLIN : 0) | (writing ? POLLOUT : 0));
			watching[n] = reading;
			/* Bytes to parse that the socket no longer shows: stashed by a transmit,
			 * or received and decrypted inside TLS. */
			stashed[n] = reading &&
				     (vccid_vscard_conn_stashed(c->conn) || tls_pending(c));
			if (stashed[n])
				timeout = 0;
			owners[n++] = c;
		}
		if (poll(fds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			VCCID_LOG(VCCID_LOG_CRITICAL, "VSCard poll failed: %s", strerror(errno));
			break;
		}
		if (fds[0].revents & POLLIN) {
			char drain[64];

			(void)!read(l->wake_pipe[0], drain, sizeof(drain));
		}
		for (i = 1 + l->n_listen; i < n; i++) {
			const char *reason;

			if (owners[i]->conn == NULL) {
				if (fds[i].revents != 0)
					step_tls(l, owners[i]);   /* may drop it */
				continue;
			}
			if (fds[i].revents & POLLOUT)
				vccid_vscard_conn_writable(owners[i]->conn);   /* a failure drops it below */
			if (!watching[i] ||
			    (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && !stashed[i]))
				continue;
			if (!vccid_vscard_conn_read_begin(owners[i]->conn))
				continue;   /* a transmit reads its answer itself */
			reason = read_client(owners[i]);
			vccid_vscard_conn_read_end(owners[i]->conn);
			if (reason != NULL)
				drop_client(l, owners[i], reason);
		}
		/* After the clients: making room for a newcomer may free some of owners[]. */
		for (i = 1; i <= l->n_listen; i++)
			if (fds[i].revents & POLLIN)
				accept_client(l, fds[i].fd);
	}
	while (l->clients != NULL)
		drop_client(l, l->clients, "vccid is stopping");
	return NULL;
}

static const struct vccid_net_listen_opts listen_opts = {
	.label = "VSCard", .exposes = "add cards",
};

static int open_tcp(struct listener *l, const char *listen_spec,
		    const struct vccid_net_listen_opts *opts)
{
	struct vccid_addr addr;
	const char *why = NULL;
	int fd;
	int rv;

	/* The configuration checked the syntax; this only fails on a caller's bug. */
	if (vccid_addr_parse(listen_spec, 0, &addr, &why) != VCCID_OK ||
	    addr.kind == VCCID_ADDR_UNIX) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard cannot listen on %s: %s", listen_spec,
			  why != NULL ? why : "not a TCP address");
		return VCCID_ECONFIG;
	}
	rv = vccid_net_listen(&addr, opts, &fd);
	if (rv != VCCID_OK)
		return rv;
	l->listen_fds[l->n_listen++] = fd;
	VCCID_LOG(VCCID_LOG_INFO, "%s listening on %s", opts->label, listen_spec);
	return VCCID_OK;
}

static int open_unix(struct listener *l, const struct vccid_vscard_config *cfg)
{
	struct vccid_net_listen_opts opts = listen_opts;
	struct vccid_addr addr;
	int fd;
	int rv;

	if (strlen(cfg->unix_socket) >= sizeof(addr.path)) {
		VCCID_LOG(VCCID_LOG_ERROR, "VSCard unix-socket path is too long: %s", cfg->unix_socket);
		return VCCID_ECONFIG;
	}
	memset(&addr, 0, sizeof(addr));
	addr.kind = VCCID_ADDR_UNIX;
	strcpy(addr.path, cfg->unix_socket);
	opts.unix_mode = cfg->unix_mode;
	opts.unix_owner = cfg->unix_owner;
	rv = vccid_net_listen(&addr, &opts, &fd);
	if (rv != VCCID_OK)
		return rv;
	l->listen_fds[l->n_listen++] = fd;
	l->unix_path = strdup(cfg->unix_socket);
	VCCID_LOG(VCCID_LOG_INFO, "VSCard listening on unix:%s (mode %03o)", cfg->unix_socket,
		  cfg->unix_mode);
	return VCCID_OK;
}

/*
 * The TLS endpoint: credentials first (a bad file is named in the log and the endpoint
 * stays closed; the rest of the listener is not affected), then its socket.
 */
static void open_tls(struct listener *l, const struct vccid_config *config)
{
	const struct vccid_vscard_config *cfg = &config->vscard;
	struct vccid_tls_files files = { cfg->tls_dir, cfg->tls_cert, cfg->tls_key, cfg->tls_ca };
	struct vccid_net_listen_opts opts = {
		.label = "VSCard TLS", .exposes = "add cards",
		.protocol = "VSCard over TLS without tls-ca (or tls-dir)",
	};
	char why[VCCID_TLS_WHY_SIZE];
	size_t n = 0;

	if (vccid_tls_creds_load(VCCID_TLS_SERVER, &files, &l->tls_creds, why, sizeof(why)) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [vscard]: TLS credentials: %s; the TLS endpoint "
			  "%s stays closed", config->path, why, cfg->tls_listen);
		return;
	}
	while (cfg->tls_subjects != NULL && cfg->tls_subjects[n] != NULL)
		n++;
	if (vccid_tls_creds_allow_subjects(l->tls_creds, (const char *const *)cfg->tls_subjects,
					   n) != VCCID_OK) {
		vccid_tls_creds_free(l->tls_creds);
		l->tls_creds = NULL;
		return;
	}
	opts.authenticated = vccid_tls_creds_verifies_clients(l->tls_creds);
	if (!opts.authenticated)
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [vscard]: no tls-ca: TLS clients are not asked "
			  "for a certificate, anyone who reaches %s can add cards", config->path,
			  cfg->tls_listen);
	else if (n > 0)
		VCCID_LOG(VCCID_LOG_INFO, "VSCard TLS accepts %zu subject pattern(s)", n);
	if (open_tcp(l, cfg->tls_listen, &opts) != VCCID_OK) {
		vccid_tls_creds_free(l->tls_creds);
		l->tls_creds = NULL;
		return;
	}
	l->tls_listen_fd = l->listen_fds[l->n_listen - 1];
}

static void listener_free(struct listener *l)
{
	size_t i;

	for (i = 0; i < l->n_listen; i++)
		close(l->listen_fds[i]);
	if (l->unix_path != NULL) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
	close(l->wake_pipe[0]);
	close(l->wake_pipe[1]);
	vccid_tls_creds_free(l->tls_creds);
	free(l);
}

static int listener_start(const struct vccid_config *config)
{
	struct listener *l = calloc(1, sizeof(*l));
	const struct vccid_vscard_config *cfg = &config->vscard;

	if (l == NULL)
		return VCCID_ENOMEM;
	if (pipe2(l->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		free(l);
		return VCCID_EIO;
	}
	l->cfg = *cfg;
	l->cfg.listen = NULL;
	l->cfg.unix_socket = NULL;
	l->cfg.unix_owner = NULL;
	l->cfg.readers = NULL;
	l->cfg.tls_listen = NULL;
	l->cfg.tls_dir = NULL;
	l->cfg.tls_cert = NULL;
	l->cfg.tls_key = NULL;
	l->cfg.tls_ca = NULL;
	l->cfg.tls_subjects = NULL;
	l->tls_listen_fd = -1;
	snprintf(l->config_path, sizeof(l->config_path), "%s", config->path);
	if (cfg->listen != NULL)
		(void)open_tcp(l, cfg->listen, &listen_opts);
	if (cfg->unix_socket != NULL)
		(void)open_unix(l, cfg);
	if (cfg->tls_listen != NULL)
		open_tls(l, config);
	if (l->n_listen == 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [vscard]: no socket could be opened; remote "
			  "cards are not available", config->path);
		listener_free(l);
		return VCCID_EIO;
	}
	listener = l;
	if (pthread_create(&l->thread, NULL, listener_loop, l) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "cannot start the VSCard thread");
		listener = NULL;
		listener_free(l);
		return VCCID_EIO;
	}
	return VCCID_OK;
}

int vccid_vscard_acquire(const struct vccid_config *config)
{
	int rv = VCCID_OK;

	pthread_mutex_lock(&listener_lock);
	if (listener == NULL)
		rv = listener_start(config);
	else if (strcmp(listener->config_path, config->path) != 0)
		VCCID_LOG(VCCID_LOG_INFO, "%s: [vscard]: the listener already runs with the "
			  "settings of %s", config->path, listener->config_path);
	if (rv == VCCID_OK)
		listener_users++;
	pthread_mutex_unlock(&listener_lock);
	return rv;
}

void vccid_vscard_release(void)
{
	struct listener *l = NULL;

	pthread_mutex_lock(&listener_lock);
	if (listener_users > 0 && --listener_users == 0) {
		l = listener;
		listener = NULL;
	}
	pthread_mutex_unlock(&listener_lock);
	if (l != NULL) {
		char byte = 's';

		l->stopping = true;
		(void)!write(l->wake_pipe[1], &byte, 1);
		pthread_join(l->thread, NULL);
		listener_free(l);
	}
}
