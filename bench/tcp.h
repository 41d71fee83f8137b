/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TCP helpers of the benchmark card clients (vpcd's and VSCard's). */
#ifndef VCCID_BENCH_TCP_H
#define VCCID_BENCH_TCP_H

#include <stddef.h>

/** Sets TCP_QUICKACK when @p on; it must be re-armed after every read. */
void bench_quickack(int fd, int on);
/**
 * Connects to IPv4 @p host : @p port, retrying every 10 ms until @p timeout_ms
 * passes or *stop (may be NULL) is set; TCP_NODELAY is set on success.
 * Returns the socket, or -1 after a message prefixed by @p prog.
 */
int bench_tcp_connect(const char *prog, const char *host, unsigned long port,
		      unsigned long timeout_ms, const volatile int *stop);
/**
 * Reads exactly @p len bytes, re-arming TCP_QUICKACK after every receive when @p quickack.
 * A signal interrupts it only once *stop (may be NULL) is set. Returns 0, or -1 on EOF or error.
 */
int bench_recv_all(int fd, void *buf, size_t len, int quickack, const volatile int *stop);
/** Writes @p len bytes with one send (loops only on short writes); 0, or -1 as above. */
int bench_send_all(int fd, const void *buf, size_t len, const volatile int *stop);

#endif
