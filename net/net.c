/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sockets for every vccid transport: listen, accept and name peers, connect and write with deadlines. */
#define _GNU_SOURCE   /* accept4, struct ucred */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == VCCID_ADDR_PATH_MAX,
	       "VCCID_ADDR_PATH_MAX is sun_path's size");

enum { BACKLOG = 16 };

/* ------------------------------------------------------------------ peer names */

static void format_peer(int fd, const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
	char host[NI_MAXHOST];
	char port[NI_MAXSERV];

	if (sa->sa_family == AF_UNIX) {
		struct ucred cred;
		socklen_t cred_len = sizeof(cred);

		/* Unix peers have no address: name them by the kernel's credentials. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0)
			snprintf(out, size, "unix:uid=%u,pid=%d", (unsigned)cred.uid, (int)cred.pid);
		else
			snprintf(out, size, "unix");
		return;
	}
	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, size, "?");
	else
		snprintf(out, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

void vccid_net_peer_name(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		snprintf(out, size, "?");
	else
		format_peer(fd, (struct sockaddr *)&ss, len, out, size);
}

/* ------------------------------------------------------------------ resolving */

/* getaddrinfo for @p addr (not unix); on failure *why is the resolver's reason. */
static int resolve(const struct vccid_addr *addr, bool passive, struct addrinfo **res,
		   const char **why)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	char port[8];
	int err;

	if (addr->kind != VCCID_ADDR_NAME)
		hints.ai_flags |= AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", (unsigned)addr->port);
	err = getaddrinfo(addr->host, port, &hints, res);
	if (err != 0) {
		*why = err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err);
		return VCCID_EIO;
	}
	return VCCID_OK;
}

static void unix_sockaddr(const struct vccid_addr *addr, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, addr->path, sizeof(sun->sun_path) - 1);
}

/* ------------------------------------------------------------------ listening */

static int listen_fail(const struct vccid_addr *addr, const struct vccid_net_listen_opts *o,
		       const char *why, int rv)
{
	char text[VCCID_ADDR_TEXT_MAX];

	(void)vccid_addr_format(addr, text, sizeof(text));
	VCCID_LOG(VCCID_LOG_ERROR, "%s cannot listen on %s: %s", o->label, text, why);
	return rv;
}

static int listen_tcp(const struct vccid_addr *addr, const struct vccid_net_listen_opts *o,
		      int *fd_out)
{
	struct addrinfo *res = NULL, *ai;
	const char *why = "no address";
	char text[VCCID_ADDR_TEXT_MAX];
	int one = 1;
	int fd = -1;

	if (resolve(addr, true, &res, &why) != VCCID_OK)
		return listen_fail(addr, o, why, VCCID_ECONFIG);
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
			break;
		why = strerror(errno);
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return listen_fail(addr, o, why, VCCID_EIO);
	if (vccid_addr_is_any(addr) && !o->authenticated) {
		(void)vccid_addr_format(addr, text, sizeof(text));
		VCCID_LOG(VCCID_LOG_ERROR, "%s listens on ALL interfaces (%s) as configured: %s has "
			  "no authentication, anyone who reaches it can %s", o->label, text,
			  o->protocol != NULL ? o->protocol : o->label,
			  o->exposes != NULL ? o->exposes : "use it");
	}
	*fd_out = fd;
	return VCCID_OK;
}

/* Looks up "USER[:GROUP]"; either part may be empty (left as it is). */
static const char *owner_ids(const char *owner, uid_t *uid, gid_t *gid, char *why, size_t size)
{
	char user[128];
	const char *group = strchr(owner, ':');
	size_t user_len = group != NULL ? (size_t)(group - owner) : strlen(owner);

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (user_len >= sizeof(user)) {
		snprintf(why, size, "unix-owner '%s' is too long", owner);
		return why;
	}
	memcpy(user, owner, user_len);
	user[user_len] = '\0';
	if (user[0] != '\0') {
		struct passwd *pw = getpwnam(user);

		if (pw == NULL) {
			snprintf(why, size, "unknown user '%s'", user);
			return why;
		}
		*uid = pw->pw_uid;
	}
	if (group != NULL && group[1] != '\0') {
		struct group *gr = getgrnam(group + 1);

		if (gr == NULL) {
			snprintf(why, size, "unknown group '%s'", group + 1);
			return why;
		}
		*gid = gr->gr_gid;
	}
	return NULL;
}

/*
 * A socket file at the path: stale (left by a crash: nobody accepts, the
 * connect is refused) or live. Returns NULL when it may be replaced.
 */
static const char *probe_unix(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc, err;

	if (fd < 0)
		return strerror(errno);
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	err = errno;
	close(fd);
	if (rc != 0 && err == ECONNREFUSED)
		return NULL;
	/* EAGAIN: a live listener with a full backlog. */
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
		return "the socket is in use by another program";
	return strerror(err);
}

static int listen_unix(const struct vccid_addr *addr, const struct vccid_net_listen_opts *o,
		       int *fd_out)
{
	struct sockaddr_un sun;
	struct stat st;
	char why[160];
	const char *reason;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int fd;

	unix_sockaddr(addr, &sun);
	if (o->unix_owner != NULL &&
	    (reason = owner_ids(o->unix_owner, &uid, &gid, why, sizeof(why))) != NULL)
		return listen_fail(addr, o, reason, VCCID_ECONFIG);
	if (lstat(addr->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return listen_fail(addr, o, "the path exists and is not a socket",
					   VCCID_ECONFIG);
		reason = probe_unix(&sun);
		if (reason != NULL)
			return listen_fail(addr, o, reason, VCCID_ECONFIG);
		VCCID_LOG(VCCID_LOG_INFO, "%s: replacing the stale socket %s", o->label, addr->path);
		if (unlink(addr->path) != 0 && errno != ENOENT)
			return listen_fail(addr, o, strerror(errno), VCCID_EIO);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return listen_fail(addr, o, strerror(errno), VCCID_EIO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		close(fd);
		return listen_fail(addr, o, why, VCCID_EIO);
	}
	/* From here the file is ours: remove it on failure. */
	reason = NULL;
	if (chmod(addr->path, o->unix_mode) != 0)
		snprintf(why, sizeof(why), "chmod %03o: %s", o->unix_mode, strerror(errno));
	else if (o->unix_owner != NULL && chown(addr->path, uid, gid) != 0)
		snprintf(why, sizeof(why), "unix-owner %s: %s", o->unix_owner, strerror(errno));
	else if (listen(fd, BACKLOG) != 0)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else
		why[0] = '\0';
	if (why[0] != '\0') {
		close(fd);
		unlink(addr->path);
		return listen_fail(addr, o, why, VCCID_EIO);
	}
	*fd_out = fd;
	return VCCID_OK;
}

int vccid_net_listen(const struct vccid_addr *addr, const struct vccid_net_listen_opts *opts,
		     int *fd)
{
	if (addr == NULL || opts == NULL || opts->label == NULL || fd == NULL)
		return VCCID_EINVAL;
	*fd = -1;
	return addr->kind == VCCID_ADDR_UNIX ? listen_unix(addr, opts, fd)
					     : listen_tcp(addr, opts, fd);
}

/* ------------------------------------------------------------------ accepting */

static void set_nodelay(int fd, int family)
{
	int one = 1;

	/* One message is one segment: no Nagle delay between header and payload. */
	if (family == AF_INET || family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int vccid_net_accept(int listen_fd, const char *label, int *fd, char *peer, size_t peer_size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int s = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

	if (s < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return VCCID_EBUSY;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			return VCCID_ENOMEM;   /* the caller pauses, and logs it rate-limited */
		VCCID_LOG(VCCID_LOG_ERROR, "%s accept failed: %s", label, strerror(errno));
		return VCCID_EIO;
	}
	format_peer(s, (struct sockaddr *)&ss, len, peer, peer_size);
	set_nodelay(s, ss.ss_family);
	*fd = s;
	return VCCID_OK;
}

/* ------------------------------------------------------------------ connecting */

/* One connect attempt within the deadline; 0 or a vccid error with *err an errno. */
static int connect_one(const struct sockaddr *sa, socklen_t len, long long deadline,
		       int cancel_fd, int *fd_out, int *err)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rv = VCCID_EIO;

	if (fd < 0) {
		*err = errno;
		return VCCID_EIO;
	}
	if (connect(fd, sa, len) == 0) {
		rv = VCCID_OK;
	} else if (errno != EINPROGRESS && errno != EINTR) {
		*err = errno;
	} else {
		for (;;) {
			struct pollfd p[2] = { { .fd = fd, .events = POLLOUT },
					       { .fd = cancel_fd, .events = POLLIN } };
			long long left = deadline - vccid_now_ms();
			socklen_t elen = sizeof(*err);
			int n;

			if (left <= 0) {
				*err = ETIMEDOUT;
				rv = VCCID_ETIMEDOUT;
				break;
			}
			n = poll(p, cancel_fd >= 0 ? 2 : 1, (int)left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				*err = errno;
				break;
			}
			if (n > 0 && (p[1].revents & POLLIN) && !(p[0].revents & POLLOUT)) {
				*err = ECANCELED;
				rv = VCCID_ECANCELED;
				break;
			}
			if (n == 0)
				continue;   /* the deadline is checked above */
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &elen) == 0 && *err == 0)
				rv = VCCID_OK;
			break;
		}
	}
	if (rv != VCCID_OK) {
		close(fd);
		return rv;
	}
	set_nodelay(fd, sa->sa_family);
	*fd_out = fd;
	return VCCID_OK;
}

int vccid_net_connect(const struct vccid_addr *addr, int timeout_ms, int cancel_fd, int *fd,
		      char *why, size_t why_size)
{
	long long deadline = vccid_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct addrinfo *res = NULL, *ai;
	const char *reason = NULL;
	int rv = VCCID_EIO;
	int err = 0;

	if (addr == NULL || fd == NULL)
		return VCCID_EINVAL;
	*fd = -1;
	if (addr->kind == VCCID_ADDR_UNIX) {
		struct sockaddr_un sun;

		unix_sockaddr(addr, &sun);
		rv = connect_one((struct sockaddr *)&sun, sizeof(sun), deadline, cancel_fd, fd, &err);
	} else if (resolve(addr, false, &res, &reason) == VCCID_OK) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			rv = connect_one(ai->ai_addr, ai->ai_addrlen, deadline, cancel_fd, fd, &err);
			if (rv == VCCID_OK || rv == VCCID_ECANCELED || rv == VCCID_ETIMEDOUT)
				break;
		}
		freeaddrinfo(res);
	}
	if (rv != VCCID_OK && why != NULL && why_size > 0) {
		if (reason != NULL)
			snprintf(why, why_size, "cannot resolve %s: %s", addr->host, reason);
		else
			snprintf(why, why_size, "%s", strerror(err != 0 ? err : EIO));
	}
	return rv;
}

/* ------------------------------------------------------------------ writing */

int vccid_net_writev_all(int fd, const struct iovec *iov, int iovcnt, long long deadline_ms)
{
	struct iovec v[8];
	struct msghdr msg;

	if (iovcnt < 0 || (size_t)iovcnt > sizeof(v) / sizeof(v[0]))
		return VCCID_EINVAL;
	memcpy(v, iov, (size_t)iovcnt * sizeof(v[0]));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = v;
	msg.msg_iovlen = (size_t)iovcnt;
	while (msg.msg_iovlen > 0) {
		ssize_t n;
		size_t done;

		if (msg.msg_iov[0].iov_len == 0) {
			msg.msg_iov++;
			msg.msg_iovlen--;
			continue;
		}
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			long long left = deadline_ms < 0 ? -1 : deadline_ms - vccid_now_ms();

			if (deadline_ms >= 0 && left <= 0)
				return VCCID_ETIMEDOUT;
			if (poll(&p, 1, left < 0 ? -1 : (int)left) < 0 && errno != EINTR)
				return VCCID_EIO;
			continue;
		}
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return VCCID_EIO;
		}
		done = (size_t)n;
		while (msg.msg_iovlen > 0 && done >= msg.msg_iov[0].iov_len) {
			done -= msg.msg_iov[0].iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov[0].iov_base = (uint8_t *)msg.msg_iov[0].iov_base + done;
			msg.msg_iov[0].iov_len -= done;
		}
	}
	return VCCID_OK;
}

int vccid_net_write_all(int fd, const void *buf, size_t len, long long deadline_ms)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return vccid_net_writev_all(fd, &iov, 1, deadline_ms);
}

/* ------------------------------------------------------------------ refusals */

void vccid_net_log_refusal(struct vccid_net_refusals *r, const char *label, const char *peer,
			   const char *why)
{
	long long now = vccid_now_ms();

	if (r->last_ms != 0 && now - r->last_ms < VCCID_NET_REFUSAL_PERIOD_MS) {
		r->suppressed++;
		return;
	}
	if (r->suppressed > 0)
		VCCID_LOG(VCCID_LOG_ERROR, "%s peer %s refused: %s (and %u more like it in the "
			  "last %lld ms)", label, peer, why, r->suppressed, now - r->last_ms);
	else
		VCCID_LOG(VCCID_LOG_ERROR, "%s peer %s refused: %s", label, peer, why);
	r->last_ms = now;
	r->suppressed = 0;
}

void vccid_net_peer_key(const char *peer, char *key, size_t size)
{
	const char *end = strncmp(peer, "unix", 4) == 0 ? strstr(peer, ",pid=") : strrchr(peer, ':');

	snprintf(key, size, "%.*s", end != NULL ? (int)(end - peer) : (int)strlen(peer), peer);
}

long vccid_net_pick_eviction(const struct vccid_net_evictable *c, size_t n, long long now,
			     long long grace_ms)
{
	long best = -1;
	size_t best_count = 0;
	size_t i, j;

	for (i = 0; i < n; i++) {
		size_t count = 0;

		if (c[i].since == 0 || now - c[i].since < grace_ms)
			continue;
		for (j = 0; j < n; j++)
			count += c[j].since != 0 && strcmp(c[j].key, c[i].key) == 0;
		if (best < 0 || count > best_count ||
		    (count == best_count && c[i].since < c[best].since)) {
			best = (long)i;
			best_count = count;
		}
	}
	return best;
}

/* ------------------------------------------------------------------ reading */

void vccid_net_set_recv_timeout(int fd, unsigned timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

ssize_t vccid_net_readv(int fd, const struct iovec *iov, size_t iovcnt, long long deadline_ms)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	int flags = deadline_ms > 0 ? 0 : MSG_DONTWAIT;

	for (;;) {
		ssize_t n = recvmsg(fd, &mh, flags);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return VCCID_EIO;
		left = deadline_ms - vccid_now_ms();
		if (deadline_ms <= 0 || left <= 0)
			return VCCID_ETIMEDOUT;
		(void)poll(&pfd, 1, (int)left);
		flags = MSG_DONTWAIT;
	}
}
