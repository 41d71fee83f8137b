/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TCP helpers of the benchmark card clients (vpcd's and VSCard's). */
#ifndef VCCID_BENCH_TCP_H
#define VCCID_BENCH_TCP_H

/** Sets TCP_QUICKACK when @p on; it must be re-armed after every read. */
void bench_quickack(int fd, int on);
/**
 * Connects to IPv4 @p host : @p port, retrying every 10 ms until @p timeout_ms
 * passes or *stop (may be NULL) is set; TCP_NODELAY is set on success.
 * Returns the socket, or -1 after a message prefixed by @p prog.
 */
int bench_tcp_connect(const char *prog, const char *host, unsigned long port,
		      unsigned long timeout_ms, const volatile int *stop);

#endif
