/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Socket address syntax: "1.2.3.4:PORT", "[V6]:PORT", "NAME:PORT", "unix:PATH"; no syscalls. */
#include "addr.h"

#include <arpa/inet.h>   /* inet_pton: text parsing only */
#include <stdio.h>
#include <string.h>

#include "error.h"

static int fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return VCCID_EINVAL;
}

/* Decimal, 1 to 65535, no sign, no spaces. */
static bool parse_port(const char *text, uint16_t *port)
{
	unsigned long value = 0;
	size_t i;

	if (text[0] == '\0' || strlen(text) > 5)
		return false;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		value = value * 10 + (unsigned long)(text[i] - '0');
	}
	if (value == 0 || value > 65535)
		return false;
	*port = (uint16_t)value;
	return true;
}

/* A host name as the resolver takes it: labels of letters, digits and '-'. */
static bool valid_name(const char *name)
{
	size_t i;

	if (name[0] == '\0' || name[0] == '-' || name[0] == '.')
		return false;
	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static int parse_unix(const char *path, struct vccid_addr *out, const char **why)
{
	if (path[0] == '\0')
		return fail(why, "unix: needs a socket path");
	if (strlen(path) >= sizeof(out->path))
		return fail(why, "the socket path is longer than 107 bytes");
	out->kind = VCCID_ADDR_UNIX;
	strcpy(out->path, path);
	return VCCID_OK;
}

int vccid_addr_parse(const char *text, uint16_t default_port, struct vccid_addr *out,
		     const char **why)
{
	const char *host, *port = NULL;
	size_t host_len;
	uint8_t bin[16];

	if (text == NULL || out == NULL)
		return fail(why, "no address");
	memset(out, 0, sizeof(*out));
	if (strncmp(text, "unix:", 5) == 0)
		return parse_unix(text + 5, out, why);
	host = text;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return fail(why, "no ']' after the IPv6 address");
		if (close[1] != '\0' && close[1] != ':')
			return fail(why, "junk after the ']' of the IPv6 address");
		host = text + 1;
		host_len = (size_t)(close - host);
		port = close[1] == ':' ? close + 2 : NULL;
	} else {
		const char *colon = strchr(text, ':');

		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return fail(why, "write an IPv6 address in brackets, [ADDR]:PORT");
		host_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
		port = colon != NULL ? colon + 1 : NULL;
	}
	if (host_len == 0)
		return fail(why, "no host before the port");
	if (host_len >= sizeof(out->host))
		return fail(why, "the host name is too long");
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';
	if (port == NULL) {
		if (default_port == 0)
			return fail(why, "no port: write HOST:PORT");
		out->port = default_port;
	} else if (!parse_port(port, &out->port)) {
		return fail(why, "the port must be a number from 1 to 65535");
	}
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, out->host, bin) != 1)
			return fail(why, "not an IPv6 address in the brackets");
		out->kind = VCCID_ADDR_IPV6;
	} else if (inet_pton(AF_INET, out->host, bin) == 1) {
		out->kind = VCCID_ADDR_IPV4;
	} else if (valid_name(out->host)) {
		out->kind = VCCID_ADDR_NAME;
	} else {
		return fail(why, "the host is neither an address nor a host name");
	}
	return VCCID_OK;
}

bool vccid_addr_is_any(const struct vccid_addr *addr)
{
	static const uint8_t zero[16];
	uint8_t bin[16];

	if (addr->kind == VCCID_ADDR_IPV4)
		return inet_pton(AF_INET, addr->host, bin) == 1 && memcmp(bin, zero, 4) == 0;
	if (addr->kind == VCCID_ADDR_IPV6)
		return inet_pton(AF_INET6, addr->host, bin) == 1 && memcmp(bin, zero, 16) == 0;
	return false;
}

int vccid_addr_format(const struct vccid_addr *addr, char *out, size_t size)
{
	int n;

	switch (addr->kind) {
	case VCCID_ADDR_UNIX:
		n = snprintf(out, size, "unix:%s", addr->path);
		break;
	case VCCID_ADDR_IPV6:
		n = snprintf(out, size, "[%s]:%u", addr->host, (unsigned)addr->port);
		break;
	case VCCID_ADDR_IPV4:
	case VCCID_ADDR_NAME:
	default:
		n = snprintf(out, size, "%s:%u", addr->host, (unsigned)addr->port);
		break;
	}
	return n >= 0 && (size_t)n < size ? VCCID_OK : VCCID_ENOSPC;
}
