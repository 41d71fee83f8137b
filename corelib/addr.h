/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Socket address syntax, one rule set for every listener and client: parsing only, no sockets. */
#ifndef VCCID_ADDR_H
#define VCCID_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The forms, everywhere an address is written (configuration, command lines):
 *   1.2.3.4:PORT      an IPv4 address
 *   [::1]:PORT        an IPv6 address, always in brackets
 *   NAME:PORT         a host name (letters, digits, '-' and '.'), resolved when used
 *   unix:PATH         a unix socket (PATH not empty, shorter than VCCID_ADDR_PATH_MAX)
 * PORT is decimal, 1 to 65535. A caller may allow the port to be left out
 * (then the default it gives is used). 0.0.0.0 and [::] mean all interfaces.
 */
enum vccid_addr_kind {
	VCCID_ADDR_IPV4,
	VCCID_ADDR_IPV6,
	VCCID_ADDR_NAME,
	VCCID_ADDR_UNIX,
};

#define VCCID_ADDR_HOST_MAX 256   /* a DNS name is at most 253 characters */
#define VCCID_ADDR_PATH_MAX 108   /* sizeof(sockaddr_un.sun_path) on Linux, NUL included */
/* The longest formatted address: "unix:" and a path, or "[host]:65535". */
#define VCCID_ADDR_TEXT_MAX (VCCID_ADDR_HOST_MAX + 8)

struct vccid_addr {
	enum vccid_addr_kind kind;
	char host[VCCID_ADDR_HOST_MAX];   /* without brackets; "" for unix */
	uint16_t port;                    /* 1..65535; 0 for unix */
	char path[VCCID_ADDR_PATH_MAX];   /* unix only, else "" */
};

/**
 * Parses @p text into @p out (caller-owned). @p default_port 0 means the port
 * is required; else "HOST" alone takes it. Returns 0, or VCCID_EINVAL with
 * *why (if not NULL) set to a static English reason ("the port must be a
 * number from 1 to 65535").
 */
int vccid_addr_parse(const char *text, uint16_t default_port, struct vccid_addr *out,
		     const char **why);

/** True for 0.0.0.0 and [::], the addresses that listen on every interface. */
bool vccid_addr_is_any(const struct vccid_addr *addr);

/**
 * Writes @p addr in its canonical form ("1.2.3.4:5", "[::1]:5", "name:5",
 * "unix:/path") into @p out of @p size bytes. Returns 0 or VCCID_ENOSPC.
 */
int vccid_addr_format(const struct vccid_addr *addr, char *out, size_t size);

#endif
