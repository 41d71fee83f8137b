/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB/IP server of the vccid USB reader: one socket-free usbip-conn per TCP connection, over net/. */
#include "usbip.h"

#include <errno.h>
#include <poll.h>
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

enum {
	POLL_MS = 200,              /* *stop is looked at this often */
	MAX_CLIENTS = 8,            /* connections at once, the importer included */
	MGMT_TIMEOUT_MS = 10000,    /* a management request must arrive within this */
	SEND_TIMEOUT_MS = 10000,    /* a peer that does not read is dropped */
	READ_CHUNK = 64 * 1024,
};

struct server;

struct client {
	struct server *server;
	int fd;
	vccid_usbip_conn *conn;
	long long deadline_ms;      /* management phase only */
	char peer[VCCID_NET_PEER_MAX];
};

struct server {
	vccid_usbdev *dev;
	struct vccid_usbip_device record;
	int listen_fd;
	struct client clients[MAX_CLIENTS];
	vccid_usbip_conn *importer;   /* guarded by the main thread only */
};

/* Replies go out whole or the connection fails; IN workers send from their own threads. */
static int socket_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct client *c = opaque;

	return vccid_net_writev_all(c->fd, iov, iovcnt, vccid_now_ms() + SEND_TIMEOUT_MS);
}

static bool server_claim(void *opaque, vccid_usbip_conn *conn)
{
	struct server *s = ((struct client *)opaque)->server;

	if (s->importer != NULL)
		return false;
	s->importer = conn;
	return true;
}

static void client_close(struct server *s, struct client *c, const char *why)
{
	bool was_importer = c->conn != NULL && c->conn == s->importer;

	if (why != NULL)
		VCCID_LOG(was_importer ? VCCID_LOG_INFO : VCCID_LOG_DEBUG, "usbip %s: %s", c->peer,
			  why);
	/* Blocked sends of the IN workers fail at once. */
	shutdown(c->fd, SHUT_RDWR);
	vccid_usbip_conn_free(c->conn);
	if (was_importer)
		s->importer = NULL;
	close(c->fd);
	c->fd = -1;
	c->conn = NULL;
}

static void accept_client(struct server *s)
{
	struct client *c = NULL;
	struct vccid_usbip_conn_params p;
	char peer[VCCID_NET_PEER_MAX];
	int fd;
	size_t i;

	if (vccid_net_accept(s->listen_fd, "usbip", &fd, peer, sizeof(peer)) != VCCID_OK)
		return;
	for (i = 0; i < MAX_CLIENTS && c == NULL; i++)
		if (s->clients[i].fd < 0)
			c = &s->clients[i];
	if (c == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "usbip: too many connections: %s refused", peer);
		close(fd);
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	memset(&p, 0, sizeof(p));
	p.dev = s->dev;
	p.record = &s->record;
	p.peer = c->peer;
	p.send = socket_send;
	p.claim = server_claim;
	p.opaque = c;
	p.threads = true;
	c->fd = fd;
	c->conn = vccid_usbip_conn_new(&p);
	if (c->conn == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "usbip %s: out of memory", c->peer);
		close(fd);
		c->fd = -1;
		return;
	}
	c->deadline_ms = vccid_now_ms() + MGMT_TIMEOUT_MS;
	VCCID_LOG(VCCID_LOG_DEBUG, "usbip %s: connected", c->peer);
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

int vccid_usbip_serve(vccid_usbdev *dev, const char *listen_addr, const char *busid,
		      volatile sig_atomic_t *stop)
{
	struct server *s;
	uint8_t *buf;
	size_t i;
	int rv;

	if (dev == NULL || stop == NULL)
		return VCCID_EINVAL;
	if (listen_addr == NULL)
		listen_addr = VCCID_USBIP_DEFAULT_LISTEN;
	if (busid == NULL)
		busid = VCCID_USBIP_DEFAULT_BUSID;
	s = calloc(1, sizeof(*s));
	buf = malloc(READ_CHUNK);
	if (s == NULL || buf == NULL) {
		free(s);
		free(buf);
		return VCCID_ENOMEM;
	}
	s->dev = dev;
	if (vccid_usbip_device_record(dev, busid, &s->record) != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "usbip: bad bus id \"%s\" (BUS-PORT, e.g. 1-1)", busid);
		free(s);
		free(buf);
		return VCCID_EINVAL;
	}
	rv = open_listener(listen_addr);
	if (rv < 0) {
		free(s);
		free(buf);
		return rv;
	}
	s->listen_fd = rv;
	for (i = 0; i < MAX_CLIENTS; i++) {
		s->clients[i].fd = -1;
		s->clients[i].server = s;
	}
	VCCID_LOG(VCCID_LOG_INFO, "usbip: exporting %s (%04x:%04x) on %s", s->record.busid,
		  s->record.idVendor, s->record.idProduct, listen_addr);

	while (!*stop) {
		struct pollfd pfd[MAX_CLIENTS + 1];
		struct client *owner[MAX_CLIENTS + 1];
		long long now;
		nfds_t n = 0;

		pfd[n].fd = s->listen_fd;
		pfd[n].events = POLLIN;
		owner[n++] = NULL;
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (s->clients[i].fd < 0)
				continue;
			pfd[n].fd = s->clients[i].fd;
			pfd[n].events = POLLIN;
			owner[n++] = &s->clients[i];
		}
		if (poll(pfd, n, POLL_MS) < 0 && errno != EINTR) {
			VCCID_LOG(VCCID_LOG_ERROR, "usbip: poll: %s", strerror(errno));
			break;
		}
		if (*stop)
			break;
		for (i = 1; i < n; i++) {
			struct client *c = owner[i];
			ssize_t r;

			if (c->fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c->fd, buf, READ_CHUNK);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				client_close(s, c, vccid_usbip_conn_imported(c->conn)
							  ? "host detached (connection closed)"
							  : "connection closed");
				continue;
			}
			rv = vccid_usbip_conn_input(c->conn, buf, (size_t)r);
			if (rv == VCCID_USBIP_DONE)
				client_close(s, c, NULL);
			else if (rv == VCCID_EPROTO)
				client_close(s, c, NULL);   /* the reason is logged already */
			else if (rv != VCCID_OK)
				client_close(s, c, "cannot answer: closed");
		}
		explicit_bzero(buf, READ_CHUNK);
		now = vccid_now_ms();
		for (i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &s->clients[i];

			if (c->fd < 0)
				continue;
			if (vccid_usbip_conn_failed(c->conn))
				client_close(s, c, "send failed: closed");
			else if (!vccid_usbip_conn_imported(c->conn) && now > c->deadline_ms)
				client_close(s, c, "no request in time: closed");
		}
		if (pfd[0].revents & POLLIN)
			accept_client(s);
	}

	for (i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			client_close(s, &s->clients[i], "server stopping");
	close(s->listen_fd);
	free(buf);
	free(s);
	VCCID_LOG(VCCID_LOG_INFO, "usbip: stopped");
	return VCCID_OK;
}
