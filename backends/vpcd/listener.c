/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vpcd transport: a TCP port per slot, or a connection out to a card that listens; one poll thread for all. */
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
/* Connecting out, unless the slot's options say otherwise: after a failed attempt, or a
 * card that went within BACKOFF_MAX_MS of its ATR, wait BACKOFF_FIRST_MS, doubling to
 * BACKOFF_MAX_MS; a card that stayed longer is retried after BACKOFF_FIRST_MS. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* Connects started per turn of the loop without vpcd_lock (a name may wait for the resolver). */
#define DIALS_PER_TURN 8

enum refusal { REFUSED_BUSY, REFUSED_CONNECTIONS, REFUSED_ACCEPT, REFUSAL_KINDS };

struct conn {
	int fd;
	char peer[VCCID_NET_PEER_MAX];
	vccid_vpcd_card *card;
	struct vccid_vpcd_io io;
	bool outbound;               /* we connected to the card (not counted in max-connections) */
	bool inserted;               /* put into the slot by this thread, not taken out since */
	long long ready_ms;          /* when the first ATR came; 0 before */
	long long partial_since_ms;
	long long quiet_until_ms;    /* polled only for the peer closing until then */
	bool hangup;                 /* it closed during an exchange: left out until then */
};

enum dial_state {
	DIAL_IDLE,                   /* connected, or waiting for next_attempt_ms */
	DIAL_STARTING,               /* vccid_net_dial_start() runs without vpcd_lock */
	DIAL_PENDING,                /* the connect is in progress: poll for POLLOUT */
};

struct port {
	vccid_slot *slot;
	char reader[64];
	unsigned index;
	unsigned id;                 /* finds the port again after vpcd_lock was let go */
	char where[VCCID_ADDR_TEXT_MAX];
	unsigned timeout_ms;
	int listen_fd;               /* -1 when connecting out */
	long long accept_paused_until_ms;
	struct conn *conn;           /* at most one card per slot, as vpcd */
	bool held;                   /* vccid-ctl remove: no card goes in until insert */
	/* Connecting out to a card that listens (vpcd's reversed mode). */
	bool outbound;
	struct vccid_addr target;
	enum dial_state dial_state;
	vccid_net_dial *dial;
	long long dial_started_ms;
	long long next_attempt_ms;
	struct vccid_net_backoff backoff;
	unsigned failures;           /* attempts failed in a row: the first and the recovery are logged */
	struct port *next;
};

enum poll_kind { POLL_LISTEN, POLL_CONN, POLL_DIAL };

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
static unsigned next_port_id;
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

/* The next connect of an outbound port after a failure: backoff, quietly after the first. */
static void dial_failed(struct port *port, const char *why)
{
	unsigned delay = vccid_net_backoff_fail(&port->backoff);

	port->dial_state = DIAL_IDLE;
	port->next_attempt_ms = vccid_now_ms() + delay;
	if (port->failures++ == 0)
		VCCID_LOG(VCCID_LOG_INFO, "vpcd: reader %s slot %u cannot connect to %s: %s; "
			  "retrying in %u ms, then doubling to %u ms, quietly until it works",
			  port->reader, port->index, port->where, why, delay, port->backoff.max_ms);
}

/* Drops the connection of @p port; its card leaves the slot. Under vpcd_lock. */
static void drop_conn(struct port *port, const char *reason)
{
	struct conn *conn = port->conn;
	long long now = vccid_now_ms();
	unsigned delay = 0;

	if (conn->outbound) {
		/* A card that stayed starts the backoff over; one that keeps going does not. */
		if (conn->ready_ms != 0 && now - conn->ready_ms >= port->backoff.max_ms)
			vccid_net_backoff_reset(&port->backoff);
		delay = vccid_net_backoff_fail(&port->backoff);
		port->next_attempt_ms = now + delay;
		port->dial_state = DIAL_IDLE;
		VCCID_LOG(VCCID_LOG_INFO, "vpcd card %s (reader %s slot %u) dropped: %s; "
			  "connecting again in %u ms", conn->peer, port->reader, port->index, reason,
			  delay);
	} else {
		VCCID_LOG(VCCID_LOG_INFO, "vpcd peer %s (reader %s slot %u) dropped: %s",
			  conn->peer, port->reader, port->index, reason);
		n_conns--;
	}
	/* Shut down first: an exchange blocked on the socket fails at once. */
	shutdown(conn->fd, SHUT_RDWR);
	if (conn->inserted)
		(void)vccid_slot_remove(port->slot);
	/* A card held out by vccid-ctl remove may still be leaving its slot on another thread. */
	vccid_vpcd_card_detach(conn->card);
	close(conn->fd);
	vccid_vpcd_card_free(conn->card);
	free(conn);
	port->conn = NULL;
}

/* A connection to the card of @p port (accepted, or connected out): ask for its ATR. */
static void attach_conn(struct port *port, int fd, const char *peer, bool outbound)
{
	struct conn *conn;

	vccid_net_set_recv_timeout(fd, port->timeout_ms);   /* a transmit's read */
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		close(fd);
		return;
	}
	conn->fd = fd;
	conn->outbound = outbound;
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
	port->conn = conn;
	if (!outbound)
		n_conns++;
	if (outbound)
		VCCID_LOG(VCCID_LOG_INFO, "vpcd: reader %s slot %u connected to the card at %s",
			  port->reader, port->index, peer);
	else
		VCCID_LOG(VCCID_LOG_INFO, "vpcd peer %s connected to reader %s slot %u", peer,
			  port->reader, port->index);
	if (vccid_vpcd_card_start(conn->card) != VCCID_OK)
		drop_conn(port, vccid_vpcd_card_why(conn->card));
}

static void accept_conn(struct port *port)
{
	char peer[VCCID_NET_PEER_MAX];
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
	attach_conn(port, fd, peer, false);
}

/* The ATR came: the card goes into its slot, and pcscd's polling thread sees it now. */
static void insert_card(struct port *port)
{
	struct conn *conn = port->conn;
	char name[VCCID_NET_PEER_MAX + 8];
	int rv;

	if (port->held) {
		VCCID_LOG(VCCID_LOG_INFO, "vpcd card of %s is ready, but reader %s slot %u is held "
			  "empty (vccid-ctl remove) until vccid-ctl insert", conn->peer, port->reader,
			  port->index);
		return;
	}
	snprintf(name, sizeof(name), "vpcd %s", conn->peer);   /* the slot keeps 63 bytes */
	rv = vccid_vpcd_card_insert(conn->card, port->slot, name);
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
	if (rv == 1) {
		if (conn->ready_ms == 0)
			conn->ready_ms = now;
		insert_card(port);
	} else if (!vccid_vpcd_card_partial(conn->card))
		conn->partial_since_ms = 0;
	else if (conn->partial_since_ms == 0)
		conn->partial_since_ms = now;
}

/* The connect of @p port ended or progressed (its socket polled writable). */
static void step_dial(struct port *port)
{
	char why[128] = "", peer[VCCID_NET_PEER_MAX];
	int fd = -1;
	int rv = vccid_net_dial_step(port->dial, &fd, why, sizeof(why));

	if (rv == VCCID_EBUSY)
		return;   /* the next address of a name: poll again */
	vccid_net_dial_free(port->dial);
	port->dial = NULL;
	port->dial_state = DIAL_IDLE;
	if (rv != VCCID_OK) {
		dial_failed(port, why);
		return;
	}
	if (port->failures > 0)
		VCCID_LOG(VCCID_LOG_INFO, "vpcd: reader %s slot %u reaches %s again, after %u "
			  "failed attempts", port->reader, port->index, port->where, port->failures);
	port->failures = 0;
	/* Read as an accepted socket is: one blocking recv bounded by the receive timeout. */
	vccid_net_set_blocking(fd);
	vccid_net_peer_name(fd, peer, sizeof(peer));
	attach_conn(port, fd, peer, true);
}

/* Deadlines of a port that connects out; returns when the next one is due (-1: none). */
static long long check_dial(struct port *port, long long now)
{
	if (port->conn != NULL)
		return -1;
	if (port->dial_state == DIAL_PENDING) {
		long long due = port->dial_started_ms + port->timeout_ms;

		if (now < due)
			return due;
		vccid_net_dial_free(port->dial);
		port->dial = NULL;
		dial_failed(port, "no answer to the connect in time");
	}
	return port->dial_state == DIAL_IDLE ? port->next_attempt_ms : -1;
}

/* Drops the connection of @p port from the deadline check; when the port is due next. */
static long long drop_for_deadline(struct port *port, const char *reason)
{
	drop_conn(port, reason);
	/* A port that connects out has its next attempt now: the poll must wake for it. */
	return port->outbound ? port->next_attempt_ms : -1;
}

/* Drops failed and stalled connections; returns when the next deadline is due (-1: none). */
static long long check_deadlines(long long now)
{
	long long next = -1;
	struct port *port;

	for (port = ports; port != NULL; port = port->next) {
		struct conn *conn = port->conn;
		long long due = -1;

		if (port->outbound) {
			due = check_dial(port, now);
			conn = port->conn;
		}
		if (conn == NULL) {
			/* no connection: only the next attempt, if any */
		} else if (vccid_vpcd_card_failed(conn->card)) {
			due = drop_for_deadline(port, vccid_vpcd_card_why(conn->card));
		} else if (vccid_vpcd_card_atr_asked(conn->card) != 0 &&
			   now >= vccid_vpcd_card_atr_asked(conn->card) + port->timeout_ms) {
			due = drop_for_deadline(port, "no ATR in time");
		} else if (vccid_vpcd_card_atr_asked(conn->card) == 0 && conn->partial_since_ms != 0 &&
			   now >= conn->partial_since_ms + port->timeout_ms) {
			due = drop_for_deadline(port, "stalled in the middle of a message");
		} else {
			if (vccid_vpcd_card_atr_asked(conn->card) != 0)
				due = vccid_vpcd_card_atr_asked(conn->card) + port->timeout_ms;
			else if (conn->partial_since_ms != 0)
				due = conn->partial_since_ms + port->timeout_ms;
			if (conn->quiet_until_ms > now && (due < 0 || conn->quiet_until_ms < due))
				due = conn->quiet_until_ms;
		}
		if (due >= 0 && (next < 0 || due < next))
			next = due;
	}
	return next;
}

static struct port *find_port_id(unsigned id)
{
	struct port *port;

	for (port = ports; port != NULL; port = port->next)
		if (port->id == id)
			return port;
	return NULL;
}

/*
 * Starts the connects that are due. Under vpcd_lock, which it lets go while
 * they start: resolving a name may wait for the resolver, and nobody else may
 * wait for that. Returns true when it started any (the ports may have changed).
 */
static bool start_dials(long long now)
{
	struct {
		unsigned id;
		struct vccid_addr addr;
		vccid_net_dial *dial;
		int rv;
		char why[160];
	} due[DIALS_PER_TURN];
	struct port *port;
	size_t n = 0, i;

	for (port = ports; port != NULL && n < DIALS_PER_TURN; port = port->next) {
		if (!port->outbound || port->conn != NULL || port->dial_state != DIAL_IDLE ||
		    port->next_attempt_ms > now)
			continue;
		port->dial_state = DIAL_STARTING;
		due[n].id = port->id;
		due[n].addr = port->target;
		n++;
	}
	if (n == 0)
		return false;
	pthread_mutex_unlock(&vpcd_lock);
	for (i = 0; i < n; i++)
		due[i].rv = vccid_net_dial_start(&due[i].addr, &due[i].dial, due[i].why,
						 sizeof(due[i].why));
	pthread_mutex_lock(&vpcd_lock);
	for (i = 0; i < n; i++) {
		port = find_port_id(due[i].id);
		if (port == NULL) {
			vccid_net_dial_free(due[i].dial);   /* withdrawn meanwhile */
		} else if (due[i].rv != VCCID_OK) {
			dial_failed(port, due[i].why);
		} else {
			port->dial = due[i].dial;
			port->dial_state = DIAL_PENDING;
			port->dial_started_ms = vccid_now_ms();
		}
	}
	return true;
}

static void poll_add(struct pollfd *fds, struct port **owner, enum poll_kind *kind, size_t *n,
		     int fd, short events, struct port *port, enum poll_kind k)
{
	fds[*n] = (struct pollfd){ .fd = fd, .events = events };
	owner[*n] = port;
	kind[(*n)++] = k;
}

/* Fills the poll set under vpcd_lock; returns its size and sets *timeout. */
static size_t build_poll(struct pollfd *fds, struct port **owner, enum poll_kind *kind,
			 int *timeout, long long now)
{
	long long next = check_deadlines(now);
	struct port *port;
	size_t n = 1;
	short events;

	fds[0] = (struct pollfd){ .fd = wake_pipe[0], .events = POLLIN };
	for (port = ports; port != NULL && n + 2 <= MAX_POLL; port = port->next) {
		struct conn *conn = port->conn;

		if (port->dial_state == DIAL_PENDING) {
			poll_add(fds, owner, kind, &n, vccid_net_dial_fd(port->dial), POLLOUT, port,
				 POLL_DIAL);
		} else if (port->listen_fd < 0) {
			/* connecting out: nothing to accept */
		} else if (port->accept_paused_until_ms > now) {
			if (next < 0 || port->accept_paused_until_ms < next)
				next = port->accept_paused_until_ms;
		} else {
			poll_add(fds, owner, kind, &n, port->listen_fd, POLLIN, port, POLL_LISTEN);
		}
		if (conn == NULL)
			continue;
		if (conn->quiet_until_ms > now && conn->hangup)
			continue;
		events = POLLIN;
		if (conn->quiet_until_ms > now ||
		    vccid_vpcd_card_last_exchange(conn->card) + EXCHANGE_QUIET_MS > now) {
			long long quiet = vccid_vpcd_card_last_exchange(conn->card) + EXCHANGE_QUIET_MS;

			if (conn->quiet_until_ms > quiet)
				quiet = conn->quiet_until_ms;
			if (next < 0 || quiet < next)
				next = quiet;
			/* Not woken by answers, but by the peer closing: a removal is seen at once. */
			events = POLLRDHUP;
		}
		poll_add(fds, owner, kind, &n, conn->fd, events, port, POLL_CONN);
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
		enum poll_kind kind[MAX_POLL];
		int timeout;
		unsigned seen;
		long long now;
		size_t n, i;
		int rv;

		if (start_dials(vccid_now_ms()))
			continue;   /* vpcd_lock was let go: look again */
		n = build_poll(fds, owner, kind, &timeout, vccid_now_ms());
		seen = generation;
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
			struct port *port = owner[i];

			if (!(fds[i].revents & (POLLIN | POLLOUT | POLLRDHUP | POLLHUP | POLLERR)))
				continue;
			switch (kind[i]) {
			case POLL_LISTEN:
				accept_conn(port);
				break;
			case POLL_DIAL:
				if (port->dial_state == DIAL_PENDING &&
				    vccid_net_dial_fd(port->dial) == fds[i].fd)
					step_dial(port);
				break;
			case POLL_CONN:
				if (port->conn != NULL && port->conn->fd == fds[i].fd)
					serve_conn(port, now, fds[i].revents & POLLRDHUP);
				break;
			}
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

/* The card of @p port listens at opts->connect: we connect out to it, from the vpcd thread. */
static int open_outbound(struct port *port, const struct vccid_vpcd_slot_opts *opts)
{
	const char *why = NULL;

	if (vccid_addr_parse(opts->connect, 0, &port->target, &why) != VCCID_OK ||
	    port->target.kind == VCCID_ADDR_UNIX) {
		VCCID_LOG(VCCID_LOG_ERROR, "vpcd: reader %s slot %u cannot connect to '%s': %s",
			  opts->reader, opts->index, opts->connect,
			  why != NULL ? why : "vpcd speaks TCP only");
		return VCCID_ECONFIG;
	}
	port->outbound = true;
	port->listen_fd = -1;
	port->backoff = (struct vccid_net_backoff){
		.first_ms = opts->backoff_first_ms != 0 ? opts->backoff_first_ms : BACKOFF_FIRST_MS,
		.max_ms = opts->backoff_max_ms != 0 ? opts->backoff_max_ms : BACKOFF_MAX_MS,
	};
	port->next_attempt_ms = 0;   /* at once */
	(void)vccid_addr_format(&port->target, port->where, sizeof(port->where));
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
	rv = opts->connect != NULL ? open_outbound(port, opts) : open_port(port, opts);
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
		port->id = ++next_port_id;
		port->next = ports;
		ports = port;
		generation++;
		wake_listener();
	}
	pthread_mutex_unlock(&vpcd_lock);
	pthread_mutex_unlock(&lifecycle_lock);
	if (rv != VCCID_OK) {
		if (port->listen_fd >= 0)
			close(port->listen_fd);
		free(port);
		return rv;
	}
	VCCID_LOG(VCCID_LOG_INFO, "vpcd: reader %s slot %u %s %s", port->reader, port->index,
		  port->outbound ? "connects to its card at" : "listens on", port->where);
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
		if (port->listen_fd >= 0)
			close(port->listen_fd);
		vccid_net_dial_free(port->dial);   /* DIAL_STARTING: the thread frees its own */
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

/* The port of @p slot, or NULL. Under vpcd_lock. */
static struct port *find_port(vccid_slot *slot)
{
	struct port *port;

	for (port = ports; port != NULL; port = port->next)
		if (port->slot == slot)
			return port;
	return NULL;
}

bool vccid_vpcd_slot_bound(vccid_slot *slot)
{
	bool bound;

	pthread_mutex_lock(&vpcd_lock);
	bound = find_port(slot) != NULL;
	pthread_mutex_unlock(&vpcd_lock);
	return bound;
}

bool vccid_vpcd_slot_peer(vccid_slot *slot, char *peer, size_t size, bool *outbound)
{
	struct port *port;
	bool up = false;

	pthread_mutex_lock(&vpcd_lock);
	port = find_port(slot);
	*outbound = port != NULL && port->outbound;
	if (port != NULL && port->conn != NULL) {
		snprintf(peer, size, "%s", port->conn->peer);
		up = true;
	} else {
		snprintf(peer, size, "%s", port != NULL && port->outbound ? port->where : "-");
	}
	pthread_mutex_unlock(&vpcd_lock);
	return up;
}

int vccid_vpcd_slot_eject(vccid_slot *slot)
{
	vccid_vpcd_card *card = NULL;
	struct port *port;
	int rv = VCCID_ENOENT;

	pthread_mutex_lock(&vpcd_lock);
	port = find_port(slot);
	if (port != NULL) {
		rv = VCCID_ENOCARD;
		port->held = true;
		if (port->conn != NULL && port->conn->inserted) {
			card = port->conn->card;
			port->conn->inserted = false;   /* a drop meanwhile leaves the slot to us */
			vccid_vpcd_card_keep(card);
			VCCID_LOG(VCCID_LOG_INFO, "vpcd card of %s leaves reader %s slot %u "
				  "(vccid-ctl remove); its connection stays", port->conn->peer,
				  port->reader, port->index);
		}
	}
	pthread_mutex_unlock(&vpcd_lock);
	/* Without vpcd_lock: the removal waits for an exchange in flight (timeout-ms at most).
	 * The slot's reference keeps the card alive even if its connection drops meanwhile. */
	if (card != NULL)
		rv = vccid_slot_remove(slot);
	return rv;
}

int vccid_vpcd_slot_reinsert(vccid_slot *slot)
{
	struct port *port;
	struct conn *conn;
	int rv = VCCID_ENOENT;

	pthread_mutex_lock(&vpcd_lock);
	port = find_port(slot);
	conn = port != NULL ? port->conn : NULL;
	if (port == NULL) {
		/* not a vpcd slot */
	} else if (conn != NULL && conn->inserted) {
		rv = VCCID_EBUSY;
	} else {
		port->held = false;
		rv = VCCID_ENOCARD;   /* none connected: the next one goes in when its ATR comes */
		if (conn != NULL && !vccid_vpcd_card_ready(conn->card)) {
			rv = VCCID_OK;    /* its ATR is on the way */
		} else if (conn != NULL) {
			/* Out of a slot, so no exchange holds the card: this does not wait. */
			rv = vccid_vpcd_card_restart(conn->card);
			if (rv != VCCID_OK) {
				drop_conn(port, vccid_vpcd_card_why(conn->card));
				rv = VCCID_ENOCARD;
			}
		}
		wake_listener();   /* the new GET ATR's deadline */
	}
	pthread_mutex_unlock(&vpcd_lock);
	return rv;
}
