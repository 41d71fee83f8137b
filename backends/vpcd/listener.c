/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vpcd transport: a TCP port per slot, one poll thread for all, stalls and garbage drop the card. */
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
#include <unistd.h>

#include "card.h"
#include "corelib/addr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "net/net.h"

/*
 * A connection an exchange used this recently is left out of the poll: the
 * exchange reads its answer itself on pcscd's thread, and the listener waking
 * for that answer would cost a cross-CPU wake-up per APDU for nothing.
 */
#define EXCHANGE_QUIET_MS 50
#define ACCEPT_PAUSE_MS 100
#define MAX_POLL 256
#define LISTENER_TIMER_SLACK_NS 5000000UL

enum refusal { REFUSED_BUSY, REFUSED_CONNECTIONS, REFUSED_ACCEPT, REFUSAL_KINDS };

struct conn {
	int fd;
	char peer[VCCID_NET_PEER_MAX];
	vccid_vpcd_card *card;
	struct vccid_vpcd_io io;
	bool inserted;
	long long accepted_ms;
	long long partial_since_ms;
	long long quiet_until_ms;    /* polled only for the peer closing until then */
	bool hangup;                 /* it closed during an exchange: left out until then */
};

struct port {
	vccid_slot *slot;
	char reader[64];
	unsigned index;
	char where[VCCID_ADDR_TEXT_MAX];
	unsigned timeout_ms;
	int listen_fd;
	long long accept_paused_until_ms;
	struct conn *conn;           /* at most one card per slot, as vpcd */
	struct port *next;
};

/*
 * Lock order: lifecycle_lock, vpcd_lock, then a slot's lock, then a card's lock. The poll
 * itself runs without vpcd_lock; an exchange (pcscd's thread, slot and card
 * locks) never takes vpcd_lock, so dropping a card under it waits at most
 * for an exchange that the socket's shutdown has just failed.
 */
static pthread_mutex_t vpcd_lock = PTHREAD_MUTEX_INITIALIZER;
/* Taken alone around offering and withdrawing a port (before vpcd_lock): the thread
 * is stopped and joined under it, so a new first port cannot start another meanwhile. */
static pthread_mutex_t lifecycle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct port *ports;
static unsigned n_conns;
static unsigned max_connections;
static unsigned generation;          /* bumps when another thread changes ports */
static bool running;
static pthread_t thread;
static atomic_bool stopping;
static int wake_pipe[2] = { -1, -1 };
static struct vccid_net_refusals refusals[REFUSAL_KINDS];

static void wake_listener(void)
{
	char byte = 'w';

	(void)!write(wake_pipe[1], &byte, 1);
}

static int conn_send(void *io, const uint8_t *buf, size_t len, long long deadline_ms)
{
	struct conn *conn = io;

	return vccid_net_write_all(conn->fd, buf, len, deadline_ms);
}

/* A transmit waiting for its answer costs one system call (vccid_net_readv). */
static ssize_t conn_recv(void *io, uint8_t *buf, size_t len, long long deadline_ms)
{
	const struct conn *conn = io;
	const struct iovec iov = { buf, len };

	return vccid_net_readv(conn->fd, &iov, 1, deadline_ms);
}

static void conn_failed(void *io)
{
	(void)io;
	wake_listener();
}

/* Drops the connection of @p port; its card leaves the slot. Under vpcd_lock. */
static void drop_conn(struct port *port, const char *reason)
{
	struct conn *conn = port->conn;

	VCCID_LOG(VCCID_LOG_INFO, "vpcd peer %s (reader %s slot %u) dropped: %s", conn->peer,
		  port->reader, port->index, reason);
	/* Shut down first: an exchange blocked on the socket fails at once. */
	shutdown(conn->fd, SHUT_RDWR);
	if (conn->inserted)
		(void)vccid_slot_remove(port->slot);
	close(conn->fd);
	vccid_vpcd_card_free(conn->card);
	free(conn);
	port->conn = NULL;
	n_conns--;
}

static void accept_conn(struct port *port)
{
	char peer[VCCID_NET_PEER_MAX];
	struct conn *conn;
	int fd, rv;

	rv = vccid_net_accept(port->listen_fd, "vpcd", &fd, peer, sizeof(peer));
	if (rv == VCCID_ENOMEM) {
		port->accept_paused_until_ms = vccid_now_ms() + ACCEPT_PAUSE_MS;
		vccid_net_log_refusal(&refusals[REFUSED_ACCEPT], "vpcd", "(not accepted)",
				      "out of descriptors or memory");
	}
	if (rv != VCCID_OK)
		return;
	if (port->conn != NULL || n_conns >= max_connections) {
		vccid_net_log_refusal(&refusals[port->conn ? REFUSED_BUSY : REFUSED_CONNECTIONS],
				      "vpcd", peer, port->conn ? "the slot's card is connected"
							       : "max-connections reached");
		close(fd);
		return;
	}
	vccid_net_set_recv_timeout(fd, port->timeout_ms);   /* a transmit's read */
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		close(fd);
		return;
	}
	conn->fd = fd;
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
	conn->io = (struct vccid_vpcd_io){ .send = conn_send, .recv = conn_recv,
					   .failed = conn_failed, .io = conn };
	conn->card = vccid_vpcd_card_new(&conn->io, peer, port->timeout_ms);
	if (conn->card == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "vpcd peer %s refused: out of memory", peer);
		close(fd);
		free(conn);
		return;
	}
	conn->accepted_ms = vccid_now_ms();
	port->conn = conn;
	n_conns++;
	VCCID_LOG(VCCID_LOG_INFO, "vpcd peer %s connected to reader %s slot %u", peer,
		  port->reader, port->index);
	if (vccid_vpcd_card_start(conn->card) != VCCID_OK)
		drop_conn(port, vccid_vpcd_card_why(conn->card));
}

/* The first ATR came: the card goes into its slot, and pcscd's polling thread sees it now. */
static void insert_card(struct port *port)
{
	struct conn *conn = port->conn;
	char name[VCCID_NET_PEER_MAX + 8];
	int rv;

	snprintf(name, sizeof(name), "vpcd %s", conn->peer);   /* the slot keeps 63 bytes */
	rv = vccid_slot_insert(port->slot, &vccid_vpcd_card_ops, conn->card, name);
	if (rv != VCCID_OK) {
		drop_conn(port, "the slot is not free");
		return;
	}
	conn->inserted = true;
	VCCID_LOG(VCCID_LOG_INFO, "vpcd card of %s inserted into reader %s slot %u", conn->peer,
		  port->reader, port->index);
}

static void serve_conn(struct port *port, long long now, bool hangup)
{
	struct conn *conn = port->conn;
	int rv = vccid_vpcd_card_serve(conn->card);

	if (rv == VCCID_EBUSY) {
		/* The peer closed as an exchange ended: look again soon, not after the quiet. */
		conn->quiet_until_ms = now + (hangup ? 1 : EXCHANGE_QUIET_MS);
		conn->hangup = hangup;
		return;
	}
	if (rv < 0) {
		drop_conn(port, vccid_vpcd_card_why(conn->card));
		return;
	}
	if (rv == 1)
		insert_card(port);
	else if (!vccid_vpcd_card_partial(conn->card))
		conn->partial_since_ms = 0;
	else if (conn->partial_since_ms == 0)
		conn->partial_since_ms = now;
}

/* Drops failed and stalled connections; returns when the next deadline is due (-1: none). */
static long long check_deadlines(long long now)
{
	long long next = -1;
	struct port *port;

	for (port = ports; port != NULL; port = port->next) {
		struct conn *conn = port->conn;
		long long due = -1;

		if (conn == NULL)
			continue;
		if (vccid_vpcd_card_failed(conn->card)) {
			drop_conn(port, vccid_vpcd_card_why(conn->card));
			continue;
		}
		if (!vccid_vpcd_card_ready(conn->card)) {
			due = conn->accepted_ms + port->timeout_ms;
			if (now >= due) {
				drop_conn(port, "no ATR in time");
				continue;
			}
		} else if (conn->partial_since_ms != 0) {
			due = conn->partial_since_ms + port->timeout_ms;
			if (now >= due) {
				drop_conn(port, "stalled in the middle of a message");
				continue;
			}
		}
		if (conn->quiet_until_ms > now && (due < 0 || conn->quiet_until_ms < due))
			due = conn->quiet_until_ms;
		if (due >= 0 && (next < 0 || due < next))
			next = due;
	}
	return next;
}

/* Fills the poll set under vpcd_lock; returns its size and sets *timeout. */
static size_t build_poll(struct pollfd *fds, struct port **owner, bool *is_conn, int *timeout,
			 long long now)
{
	long long next = check_deadlines(now);
	struct port *port;
	size_t n = 1;

	fds[0] = (struct pollfd){ .fd = wake_pipe[0], .events = POLLIN };
	for (port = ports; port != NULL && n + 2 <= MAX_POLL; port = port->next) {
		struct conn *conn = port->conn;

		if (port->accept_paused_until_ms > now) {
			if (next < 0 || port->accept_paused_until_ms < next)
				next = port->accept_paused_until_ms;
		} else {
			fds[n] = (struct pollfd){ .fd = port->listen_fd, .events = POLLIN };
			owner[n] = port;
			is_conn[n++] = false;
		}
		if (conn == NULL)
			continue;
		if (conn->quiet_until_ms > now && conn->hangup)
			continue;
		fds[n] = (struct pollfd){ .fd = conn->fd, .events = POLLIN };
		if (conn->quiet_until_ms > now ||
		    vccid_vpcd_card_last_exchange(conn->card) + EXCHANGE_QUIET_MS > now) {
			long long quiet = vccid_vpcd_card_last_exchange(conn->card) + EXCHANGE_QUIET_MS;

			if (next < 0 || quiet < next)
				next = quiet;
			/* Not woken by answers, but by the peer closing: a removal is seen at once. */
			fds[n].events = POLLRDHUP;
		}
		owner[n] = port;
		is_conn[n++] = true;
	}
	*timeout = next < 0 ? -1 : (next > now ? (int)(next - now) : 0);
	return n;
}

static void *listener_loop(void *arg)
{
	(void)arg;
	(void)prctl(PR_SET_TIMERSLACK, LISTENER_TIMER_SLACK_NS, 0, 0, 0);
	pthread_mutex_lock(&vpcd_lock);
	while (!atomic_load(&stopping)) {
		struct pollfd fds[MAX_POLL];
		struct port *owner[MAX_POLL];
		bool is_conn[MAX_POLL];
		int timeout;
		size_t n = build_poll(fds, owner, is_conn, &timeout, vccid_now_ms());
		unsigned seen = generation;
		long long now;
		size_t i;
		int rv;

		pthread_mutex_unlock(&vpcd_lock);
		rv = poll(fds, n, timeout);
		pthread_mutex_lock(&vpcd_lock);
		if (rv < 0 && errno != EINTR) {
			VCCID_LOG(VCCID_LOG_CRITICAL, "vpcd poll failed: %s", strerror(errno));
			break;
		}
		if (fds[0].revents & POLLIN) {
			char drain[64];

			(void)!read(wake_pipe[0], drain, sizeof(drain));
		}
		if (rv <= 0 || seen != generation)
			continue;   /* ports changed while polling: the descriptors may be others */
		now = vccid_now_ms();
		for (i = 1; i < n; i++) {
			if (!(fds[i].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)))
				continue;
			if (!is_conn[i])
				accept_conn(owner[i]);
			else if (owner[i]->conn != NULL && owner[i]->conn->fd == fds[i].fd)
				serve_conn(owner[i], now, fds[i].revents & POLLRDHUP);
		}
	}
	pthread_mutex_unlock(&vpcd_lock);
	return NULL;
}

/* Starts the thread for the first port. Under vpcd_lock. */
static int thread_start(void)
{
	if (running)
		return VCCID_OK;
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return VCCID_EIO;
	atomic_store(&stopping, false);
	if (pthread_create(&thread, NULL, listener_loop, NULL) != 0) {
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		VCCID_LOG(VCCID_LOG_ERROR, "cannot start the vpcd thread");
		return VCCID_EIO;
	}
	running = true;
	return VCCID_OK;
}

static int open_port(struct port *port, const struct vccid_vpcd_slot_opts *opts)
{
	static const struct vccid_net_listen_opts listen_opts = {
		.label = "vpcd", .exposes = "add cards",
	};
	struct vccid_addr addr;
	const char *why = NULL;

	if (vccid_addr_parse(opts->host, opts->port, &addr, &why) != VCCID_OK ||
	    addr.kind == VCCID_ADDR_UNIX) {
		VCCID_LOG(VCCID_LOG_ERROR, "vpcd cannot listen on %s port %u: %s", opts->host,
			  opts->port, why != NULL ? why : "not a TCP address");
		return VCCID_ECONFIG;
	}
	addr.port = opts->port;
	(void)vccid_addr_format(&addr, port->where, sizeof(port->where));
	return vccid_net_listen(&addr, &listen_opts, &port->listen_fd);
}

int vccid_vpcd_offer_slot(vccid_slot *slot, const struct vccid_vpcd_slot_opts *opts)
{
	struct port *port = calloc(1, sizeof(*port));
	int rv;

	if (port == NULL)
		return VCCID_ENOMEM;
	port->slot = slot;
	snprintf(port->reader, sizeof(port->reader), "%s", opts->reader);
	port->index = opts->index;
	port->timeout_ms = opts->timeout_ms;
	rv = open_port(port, opts);
	if (rv != VCCID_OK) {
		free(port);
		return rv;
	}
	pthread_mutex_lock(&lifecycle_lock);
	pthread_mutex_lock(&vpcd_lock);
	if (ports == NULL)
		max_connections = opts->max_connections;
	rv = thread_start();
	if (rv == VCCID_OK) {
		port->next = ports;
		ports = port;
		generation++;
		wake_listener();
	}
	pthread_mutex_unlock(&vpcd_lock);
	pthread_mutex_unlock(&lifecycle_lock);
	if (rv != VCCID_OK) {
		close(port->listen_fd);
		free(port);
		return rv;
	}
	VCCID_LOG(VCCID_LOG_INFO, "vpcd: reader %s slot %u listens on %s", port->reader,
		  port->index, port->where);
	return VCCID_OK;
}

void vccid_vpcd_withdraw_slot(vccid_slot *slot)
{
	struct port **p, *port = NULL;
	bool stop = false;

	pthread_mutex_lock(&lifecycle_lock);
	pthread_mutex_lock(&vpcd_lock);
	for (p = &ports; *p != NULL; p = &(*p)->next) {
		if ((*p)->slot == slot) {
			port = *p;
			*p = port->next;
			break;
		}
	}
	if (port != NULL) {
		if (port->conn != NULL)
			drop_conn(port, "the reader is closing");
		close(port->listen_fd);
		generation++;
		stop = ports == NULL && running;
		if (stop) {
			atomic_store(&stopping, true);
			running = false;
		}
		wake_listener();
	}
	pthread_mutex_unlock(&vpcd_lock);
	free(port);
	if (stop) {
		pthread_join(thread, NULL);
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		wake_pipe[0] = wake_pipe[1] = -1;
	}
	pthread_mutex_unlock(&lifecycle_lock);
}

bool vccid_vpcd_slot_bound(vccid_slot *slot)
{
	struct port *port;
	bool bound = false;

	pthread_mutex_lock(&vpcd_lock);
	for (port = ports; port != NULL && !bound; port = port->next)
		bound = port->slot == slot;
	pthread_mutex_unlock(&vpcd_lock);
	return bound;
}

bool vccid_vpcd_slot_peer(vccid_slot *slot, char *peer, size_t size)
{
	struct port *port;
	bool found = false;

	pthread_mutex_lock(&vpcd_lock);
	for (port = ports; port != NULL && !found; port = port->next) {
		if (port->slot == slot && port->conn != NULL) {
			snprintf(peer, size, "%s", port->conn->peer);
			found = true;
		}
	}
	pthread_mutex_unlock(&vpcd_lock);
	return found;
}
