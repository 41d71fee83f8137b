/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client side of VSCard for the benchmark programs: connect, one-write messages, handshake;
 * the message codec is vccid's own (backends/vscard/proto.h). */
#ifndef VCCID_BENCH_VSCARD_WIRE_H
#define VCCID_BENCH_VSCARD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "backends/vscard/proto.h"

/* Largest payload either way: an extended command (4 + 3 + 65535 + 3) or a 64 KiB answer + SW. */
#define VSW_MAX_PAYLOAD (65536 + 16)

/* A message buffer: header room in front of the payload, so one send carries both. */
struct vsw_msg {
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + VSW_MAX_PAYLOAD];
};
#define VSW_PAYLOAD(m) ((m)->buf + VCCID_VSCARD_HEADER_SIZE)

/** Re-arm TCP_QUICKACK after every receive (default 1). */
extern int vsw_quickack;
/** Set by SIGINT/SIGTERM when vsw_install_signals() was called: reads give up. */
extern volatile int vsw_stop;

/*
 * What carries the bytes of a connection (vscard-card's TLS); NULL, the default, is the
 * socket itself. Each returns 0, or -1 on EOF, error or vsw_stop.
 */
struct vsw_transport {
	int (*send_all)(int fd, const void *buf, size_t len);
	int (*recv_all)(int fd, void *buf, size_t len);
};
extern const struct vsw_transport *vsw_transport;

void vsw_install_signals(void);
/** Connects to HOST:PORT (IPv4), retrying until @p timeout_ms; sets TCP_NODELAY (+QUICKACK). */
int vsw_connect(const char *host, unsigned long port, unsigned long timeout_ms);
/** Writes header and @p len payload bytes of @p m with one send (loops only on short writes). */
int vsw_send(int fd, struct vsw_msg *m, uint32_t type, uint32_t reader_id, size_t len);
/** Reads one whole message into @p m; 0, or -1 on EOF, error, oversize or vsw_stop. */
int vsw_recv(int fd, struct vsw_msg *m, struct vccid_vscard_header *h);
/** Init exchange; *host_caps gets the host's first capability word. */
int vsw_init(int fd, struct vsw_msg *m, int extended, uint32_t *host_caps);
/**
 * Reads until an Error message arrives (APDUs meanwhile are answered 90 00);
 * returns 0 with its reader id and code.
 */
int vsw_wait_error(int fd, struct vsw_msg *m, uint32_t *reader_id, uint32_t *code);
/** Builds the answer to the APDU of @p len bytes in @p m (in place): Le zero bytes + 90 00. */
size_t vsw_answer(struct vsw_msg *m, size_t len, size_t max_answer);

#endif
