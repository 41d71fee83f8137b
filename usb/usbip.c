/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB/IP server of the vccid USB reader: one thread per TCP connection, each running a socket-free usbip-conn, over net/. */
#define _GNU_SOURCE   /* pipe2 */
#include "usbip.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corelib/addr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "net/net.h"
#include "usb/usbip-conn.h"

/*
 * The server thread only accepts, makes room and reaps: every read and write of
 * a peer happens on that connection's own thread (and its IN workers), so no
 * peer can hold up the device list or the import of another.
 */
enum {
	POLL_MS = 200,              /* stop flags are looked at this often */
	MAX_CLIENTS = VCCID_USBIP_MAX_CONNECTIONS,
	MAX_SLOTS = 2 * MAX_CLIENTS,   /* and those closed whose thread is still ending */
	MGMT_TIMEOUT_MS = VCCID_USBIP_REQUEST_TIMEOUT_MS,
	EVICT_GRACE_MS = VCCID_USBIP_EVICT_GRACE_MS,
	ACCEPT_PAUSE_MS = 100,      /* after accept() ran out of descriptors */
	SEND_TIMEOUT_MS = 10000,    /* a peer that does not read is dropped */
	READ_CHUNK = 64 * 1024,
};

enum refusal {
	REFUSED_CONNECTIONS,
	REFUSED_ACCEPT,   /* accept() itself failed: out of descriptors or memory */
	REFUSAL_KINDS
};

struct server;

struct client {
	struct server *server;
	int fd;                     /* -1: a free place; closed by the server after the join */
	pthread_t thread;
	long long accepted_ms;
	char peer[VCCID_NET_PEER_MAX];
	char key[VCCID_NET_PEER_MAX];   /* vccid_net_peer_key(): fairness between peers */
	/* Guarded by server->lock. */
	bool live;                  /* counts among MAX_CLIENTS: not closed for a newcomer */
	bool imported;              /* never closed for a newcomer */
	bool done;                  /* the thread has ended: join it */
};

struct server {
	vccid_usbdev *dev;
	struct vccid_usbip_device record;
	int listen_fd;
	int wake_pipe[2];           /* a connection thread ended */
	atomic_bool stopping;
	pthread_mutex_t lock;
	struct client clients[MAX_SLOTS];
	vccid_usbip_conn *importer;   /* guarded by lock */
	struct vccid_net_refusals refusals[REFUSAL_KINDS];   /* one log line a second each */
	long long accept_paused_until_ms;
};

/* Replies go out whole or the connection fails; only connection threads send. */
static int socket_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct client *c = opaque;

	return vccid_net_writev_all(c->fd, iov, iovcnt, vccid_now_ms() + SEND_TIMEOUT_MS);
}

static bool server_claim(void *opaque, vccid_usbip_conn *conn)
{
	struct server *s = ((struct client *)opaque)->server;
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = s->importer == NULL;
	if (ok)
		s->importer = conn;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* Reads and answers one connection until it ends; returns why (NULL: said already). */
static const char *serve_client(struct client *c, vccid_usbip_conn *conn, uint8_t *buf)
{
	struct server *s = c->server;
	long long deadline = c->accepted_ms + MGMT_TIMEOUT_MS;
	bool imported = false;

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int timeout = POLL_MS;
		ssize_t r;
		int rv;

		if (atomic_load(&s->stopping))
			return "server stopping";
		if (vccid_usbip_conn_failed(conn))
			return "send failed: closed";
		if (!imported) {
			long long left = deadline - vccid_now_ms();

			if (left <= 0)
				return "no request in time: closed";
			if (left < timeout)
				timeout = (int)left;
		}
		if (poll(&pfd, 1, timeout) <= 0)
			continue;   /* a timeout, or EINTR: look at the flags */
		r = read(c->fd, buf, READ_CHUNK);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return imported ? "host detached (connection closed)" : "connection closed";
		rv = vccid_usbip_conn_input(conn, buf, (size_t)r);
		explicit_bzero(buf, (size_t)r);
		if (rv == VCCID_USBIP_DONE || rv == VCCID_EPROTO)
			return NULL;   /* answered, or the reason is logged already */
		if (rv != VCCID_OK)
			return "cannot answer: closed";
		if (!imported && vccid_usbip_conn_imported(conn)) {
			imported = true;
			pthread_mutex_lock(&s->lock);
			c->imported = true;
			pthread_mutex_unlock(&s->lock);
		}
	}
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct server *s = c->server;
	struct vccid_usbip_conn_params p = {
		.dev = s->dev, .record = &s->record, .peer = c->peer, .send = socket_send,
		.claim = server_claim, .opaque = c, .threads = true,
	};
	vccid_usbip_conn *conn = vccid_usbip_conn_new(&p);
	uint8_t *buf = malloc(READ_CHUNK);
	const char *why = "out of memory";
	bool was_importer;
	char byte = 'w';

	if (conn != NULL && buf != NULL)
		why = serve_client(c, conn, buf);
	pthread_mutex_lock(&s->lock);
	was_importer = conn != NULL && s->importer == conn;
	pthread_mutex_unlock(&s->lock);
	if (why != NULL)
		VCCID_LOG(was_importer ? VCCID_LOG_INFO : VCCID_LOG_DEBUG, "usbip %s: %s", c->peer,
			  why);
	/* Blocked sends of the IN workers fail at once; the device is reset before
	 * the claim goes, so the next importer finds it fresh. */
	shutdown(c->fd, SHUT_RDWR);
	vccid_usbip_conn_free(conn);
	free(buf);
	pthread_mutex_lock(&s->lock);
	if (was_importer)
		s->importer = NULL;
	c->done = true;
	pthread_mutex_unlock(&s->lock);
	(void)!write(s->wake_pipe[1], &byte, 1);
	return NULL;
}

/* Joins the connection threads that ended and frees their places. */
static void reap(struct server *s, bool all)
{
	size_t i;

	for (i = 0; i < MAX_SLOTS; i++) {
		struct client *c = &s->clients[i];
		bool done;

		if (c->fd < 0)
			continue;
		pthread_mutex_lock(&s->lock);
		done = c->done;
		pthread_mutex_unlock(&s->lock);
		if (!done && !all)
			continue;
		pthread_join(c->thread, NULL);
		close(c->fd);
		c->fd = -1;
	}
}

/*
 * Makes room for a newcomer within MAX_CLIENTS, so that no peer keeps the
 * others out by holding every place with connections that ask for nothing:
 * closes the oldest management connection (never the importer) of the peer
 * holding the most, once it had EVICT_GRACE_MS to ask. s->lock held. False:
 * the newcomer is refused (and that is logged).
 */
static bool make_room(struct server *s, const char *peer)
{
	struct vccid_net_evictable cand[MAX_SLOTS];
	struct client *live[MAX_SLOTS];
	size_t n = 0;
	size_t i;
	long victim;

	for (i = 0; i < MAX_SLOTS; i++) {
		struct client *c = &s->clients[i];

		if (c->fd < 0 || !c->live || c->done)
			continue;
		cand[n].key = c->key;
		cand[n].since = c->imported ? 0 : c->accepted_ms;
		live[n++] = c;
	}
	if (n < MAX_CLIENTS)
		return true;
	victim = vccid_net_pick_eviction(cand, n, vccid_now_ms(), EVICT_GRACE_MS);
	if (victim < 0) {
		vccid_net_log_refusal(&s->refusals[REFUSED_CONNECTIONS], "usbip", peer,
				      "every connection place taken, none idle long enough to close");
		return false;
	}
	VCCID_LOG(VCCID_LOG_DEBUG, "usbip %s: closed for a newcomer (no request yet)",
		  live[victim]->peer);
	live[victim]->live = false;
	/* Its thread sees the end of the connection and leaves; reap() joins it. */
	shutdown(live[victim]->fd, SHUT_RDWR);
	return true;
}

static void accept_client(struct server *s)
{
	struct client *c = NULL;
	char peer[VCCID_NET_PEER_MAX];
	size_t i;
	int fd;
	int rv;

	rv = vccid_net_accept(s->listen_fd, "usbip", &fd, peer, sizeof(peer));
	if (rv == VCCID_ENOMEM) {
		/* The connection stays queued and the socket readable: pause, not spin. */
		s->accept_paused_until_ms = vccid_now_ms() + ACCEPT_PAUSE_MS;
		vccid_net_log_refusal(&s->refusals[REFUSED_ACCEPT], "usbip", "(not accepted)",
				      "out of descriptors or memory");
	}
	if (rv != VCCID_OK)
		return;
	reap(s, false);
	pthread_mutex_lock(&s->lock);
	if (make_room(s, peer)) {
		for (i = 0; i < MAX_SLOTS && c == NULL; i++)
			if (s->clients[i].fd < 0)
				c = &s->clients[i];
		if (c == NULL)
			vccid_net_log_refusal(&s->refusals[REFUSED_CONNECTIONS], "usbip", peer,
					      "closed connections still ending");
	}
	if (c != NULL) {
		c->fd = fd;
		c->live = true;
		c->imported = false;
		c->done = false;
		c->accepted_ms = vccid_now_ms();
		snprintf(c->peer, sizeof(c->peer), "%s", peer);
		vccid_net_peer_key(peer, c->key, sizeof(c->key));
	}
	pthread_mutex_unlock(&s->lock);
	if (c == NULL) {
		close(fd);
		return;
	}
	if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
		vccid_net_log_refusal(&s->refusals[REFUSED_ACCEPT], "usbip", peer,
				      "cannot start a thread");
		pthread_mutex_lock(&s->lock);
		c->fd = -1;
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return;
	}
	VCCID_LOG(VCCID_LOG_DEBUG, "usbip %s: connected", peer);
}

static int open_listener(const char *listen_addr)
{
	static const struct vccid_net_listen_opts opts = {
		.label = "usbip", .protocol = "USB/IP", .exposes = "use the cards",
	};
	struct vccid_addr addr;
	const char *why = "a unix socket: usbip attach speaks TCP";
	int fd;
	int rv;

	if (vccid_addr_parse(listen_addr, VCCID_USBIP_DEFAULT_PORT, &addr, &why) != VCCID_OK ||
	    addr.kind == VCCID_ADDR_UNIX) {
		VCCID_LOG(VCCID_LOG_ERROR, "usbip: bad listen address \"%s\" (HOST:PORT): %s",
			  listen_addr, why);
		return VCCID_EINVAL;
	}
	rv = vccid_net_listen(&addr, &opts, &fd);
	return rv == VCCID_OK ? fd : rv == VCCID_ECONFIG ? VCCID_EINVAL : VCCID_EIO;
}

static void server_free(struct server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->wake_pipe[0] >= 0)
		close(s->wake_pipe[0]);
	if (s->wake_pipe[1] >= 0)
		close(s->wake_pipe[1]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void serve(struct server *s, volatile sig_atomic_t *stop)
{
	size_t i;

	/* Atomic loads: a test may set *stop from another thread. */
	while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		long long now = vccid_now_ms();
		struct pollfd pfd[2] = {
			{ .fd = s->listen_fd, .events = now >= s->accept_paused_until_ms ? POLLIN : 0 },
			{ .fd = s->wake_pipe[0], .events = POLLIN },
		};
		int timeout = POLL_MS;

		if (now < s->accept_paused_until_ms && s->accept_paused_until_ms - now < timeout)
			timeout = (int)(s->accept_paused_until_ms - now);
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			VCCID_LOG(VCCID_LOG_ERROR, "usbip: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents & POLLIN) {
			char drain[64];

			while (read(s->wake_pipe[0], drain, sizeof(drain)) > 0)
				;
			reap(s, false);
		}
		if (__atomic_load_n(stop, __ATOMIC_RELAXED))
			break;
		if (pfd[0].revents & POLLIN)
			accept_client(s);
	}
	atomic_store(&s->stopping, true);
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < MAX_SLOTS; i++)
		if (s->clients[i].fd >= 0 && !s->clients[i].done)
			shutdown(s->clients[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	reap(s, true);
}

int vccid_usbip_serve(vccid_usbdev *dev, const char *listen_addr, const char *busid,
		      volatile sig_atomic_t *stop)
{
	struct server *s;
	size_t i;
	int rv;

	if (dev == NULL || stop == NULL)
		return VCCID_EINVAL;
	if (listen_addr == NULL)
		listen_addr = VCCID_USBIP_DEFAULT_LISTEN;
	if (busid == NULL)
		busid = VCCID_USBIP_DEFAULT_BUSID;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return VCCID_ENOMEM;
	s->dev = dev;
	s->listen_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->stopping, false);
	for (i = 0; i < MAX_SLOTS; i++) {
		s->clients[i].fd = -1;
		s->clients[i].server = s;
	}
	if (pipe2(s->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		s->wake_pipe[0] = s->wake_pipe[1] = -1;
		server_free(s);
		return VCCID_EIO;
	}
	if (vccid_usbip_device_record(dev, busid, &s->record) != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "usbip: bad bus id \"%s\" (BUS-PORT, e.g. 1-1)", busid);
		server_free(s);
		return VCCID_EINVAL;
	}
	rv = open_listener(listen_addr);
	if (rv < 0) {
		server_free(s);
		return rv;
	}
	s->listen_fd = rv;
	VCCID_LOG(VCCID_LOG_INFO, "usbip: exporting %s (%04x:%04x) on %s", s->record.busid,
		  s->record.idVendor, s->record.idProduct, listen_addr);
	serve(s, stop);
	server_free(s);
	VCCID_LOG(VCCID_LOG_INFO, "usbip: stopped");
	return VCCID_OK;
}
