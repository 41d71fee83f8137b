/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TCP connect-with-retry, whole reads and writes, and QUICKACK for the benchmark card clients. */
#include "tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

void bench_quickack(int fd, int on)
{
	int one = 1;

	if (on)
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

int bench_tcp_connect(const char *prog, const char *host, unsigned long port,
		      unsigned long timeout_ms, const volatile int *stop)
{
	uint64_t deadline = stats_now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "%s: %s is not an IPv4 address\n", prog, host);
		return -1;
	}
	while (stop == NULL || !*stop) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
		struct timespec nap = { 0, 10000000L };

		if (fd < 0) {
			fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			return fd;
		}
		close(fd);
		if (stats_now_ns() >= deadline) {
			fprintf(stderr, "%s: cannot connect to %s:%lu: %s\n", prog, host, port,
				strerror(errno));
			return -1;
		}
		nanosleep(&nap, NULL);
	}
	return -1;
}

int bench_recv_all(int fd, void *buf, size_t len, int quickack, const volatile int *stop)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t r = recv(fd, p, len, 0);

		if (r < 0 && errno == EINTR && (stop == NULL || !*stop))
			continue;
		if (r <= 0)
			return -1;
		bench_quickack(fd, quickack);
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int bench_send_all(int fd, const void *buf, size_t len, const volatile int *stop)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (off < len) {
		ssize_t w = send(fd, p + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR && (stop == NULL || !*stop))
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}
