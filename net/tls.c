/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS sessions and x509 credentials over GnuTLS, with reasons for every refusal. */
#define _GNU_SOURCE   /* explicit_bzero */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/file.h"


/* TLS 1.2 and 1.3 only, GnuTLS's usual ciphers otherwise. */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Credential files are small; anything larger is a mistake. */
#define CRED_FILE_MAX (1024 * 1024)
/* A TLS handshake record starts with this content type (RFC 8446 §5.1). */
#define TLS_CONTENT_HANDSHAKE 0x16
#define TLS_CONTENT_ALERT 0x15
/* Room for a whole TLS record and its header (RFC 8446 §5.2: 2^14 + 256 + 5). */
#define READ_AHEAD_SIZE (16384 + 256 + 5)
/* Non-fatal GnuTLS results (a warning alert, a ticket) retried within one call. */
#define MAX_NONFATAL_RETRIES 16

struct vccid_tls_creds {
	enum vccid_tls_role role;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t priority;
	bool has_ca;
	char **subjects;
	size_t n_subjects;
};

struct vccid_tls {
	gnutls_session_t session;
	const vccid_tls_creds *creds;
	int fd;
	bool handshaken;
	bool failed;              /* the handshake failed: no more steps */
	/* Reader side only (the handshake, then the one reading thread). */
	bool pull_wait;           /* the next receive may block (once per read call) */
	bool saw_first_byte;
	bool peer_closed;         /* EOF reached the pull function */
	uint8_t first_byte;
	enum vccid_tls_refusal refusal;
	size_t rpos, rlen;        /* read-ahead: rbuf[rpos, rpos + rlen) not yet given to GnuTLS */
	char subject[VCCID_TLS_SUBJECT_MAX];
	char why[VCCID_TLS_WHY_SIZE];
	uint8_t rbuf[READ_AHEAD_SIZE];
};

static void set_why(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* A wait of @p left ms for poll(), which takes an int. */
static int poll_ms(long long left)
{
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* --- credentials ------------------------------------------------------------------------- */

static int read_pem(const char *path, gnutls_datum_t *d, char *why, size_t why_size)
{
	char reason[VCCID_FILE_WHY_SIZE];
	char *buf;
	size_t len;
	int rv = vccid_file_read_regular(path, CRED_FILE_MAX, &buf, &len, reason, sizeof(reason));

	if (rv == VCCID_ENOMEM) {
		set_why(why, why_size, "%s: out of memory", path);
		return rv;
	}
	if (rv != VCCID_OK) {
		set_why(why, why_size, "cannot read %s: %s", path, reason);
		return VCCID_ECONFIG;
	}
	d->data = (unsigned char *)buf;
	d->size = (unsigned)len;
	return VCCID_OK;
}

static void free_pem(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		explicit_bzero(d->data, d->size);   /* keys are secrets */
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/* @p explicit, or DIR/@p name, into @p out; "" when neither is set. */
static void cred_path(const struct vccid_tls_files *files, const char *explicit, const char *name,
		      char *out, size_t size)
{
	if (explicit != NULL)
		snprintf(out, size, "%s", explicit);
	else if (files->dir != NULL)
		snprintf(out, size, "%s/%s", files->dir, name);
	else
		out[0] = '\0';
}

static int load_ca(vccid_tls_creds *c, const char *path, char *why, size_t why_size)
{
	gnutls_datum_t pem = { NULL, 0 };
	int rv = read_pem(path, &pem, why, why_size);

	if (rv != VCCID_OK)
		return rv;
	rv = gnutls_certificate_set_x509_trust_mem(c->x509, &pem, GNUTLS_X509_FMT_PEM);
	free_pem(&pem);
	if (rv <= 0) {
		set_why(why, why_size, "%s holds no CA certificate in PEM%s%s", path,
			rv < 0 ? ": " : "", rv < 0 ? gnutls_strerror(rv) : "");
		return VCCID_ECONFIG;
	}
	c->has_ca = true;
	return VCCID_OK;
}

/* Parses each file alone first, so that the error names the file that is wrong. */
static int load_pair(vccid_tls_creds *c, const char *cert_path, const char *key_path,
		     char *why, size_t why_size)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	gnutls_x509_crt_t *list = NULL;
	gnutls_x509_privkey_t pk = NULL;
	unsigned n = 0, i;
	int rv;

	rv = read_pem(cert_path, &cert, why, why_size);
	if (rv == VCCID_OK)
		rv = read_pem(key_path, &key, why, why_size);
	if (rv != VCCID_OK)
		goto out;
	rv = gnutls_x509_crt_list_import2(&list, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
	if (rv < 0 || n == 0) {
		set_why(why, why_size, "%s holds no certificate in PEM: %s", cert_path,
			rv < 0 ? gnutls_strerror(rv) : "empty");
		rv = VCCID_ECONFIG;
		goto out;
	}
	if (gnutls_x509_privkey_init(&pk) < 0 ||
	    (rv = gnutls_x509_privkey_import2(pk, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		set_why(why, why_size, "%s holds no usable private key in PEM (an encrypted key "
			"is not supported): %s", key_path, gnutls_strerror(rv));
		rv = VCCID_ECONFIG;
		goto out;
	}
	rv = gnutls_certificate_set_x509_key_mem2(c->x509, &cert, &key, GNUTLS_X509_FMT_PEM,
						  NULL, 0);
	if (rv == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		set_why(why, why_size, "%s does not match the certificate %s", key_path,
			cert_path);
	else if (rv < 0)
		set_why(why, why_size, "%s with %s: %s", cert_path, key_path, gnutls_strerror(rv));
	rv = rv < 0 ? VCCID_ECONFIG : VCCID_OK;
out:
	if (pk != NULL)
		gnutls_x509_privkey_deinit(pk);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
	free_pem(&cert);
	free_pem(&key);
	return rv;
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int load_files(vccid_tls_creds *c, const struct vccid_tls_files *files, char *why,
		      size_t why_size)
{
	bool server = c->role == VCCID_TLS_SERVER;
	char ca[4096], cert[4096], key[4096];
	int rv;

	cred_path(files, files->ca, "ca-cert.pem", ca, sizeof(ca));
	cred_path(files, files->cert, server ? "server-cert.pem" : "client-cert.pem", cert,
		  sizeof(cert));
	cred_path(files, files->key, server ? "server-key.pem" : "client-key.pem", key,
		  sizeof(key));
	if (ca[0] != '\0') {
		rv = load_ca(c, ca, why, why_size);
		if (rv != VCCID_OK)
			return rv;
	} else if (!server) {
		set_why(why, why_size, "no CA file to verify the server with");
		return VCCID_ECONFIG;
	}
	if (server && (cert[0] == '\0' || key[0] == '\0')) {
		set_why(why, why_size, "no server %s file", cert[0] == '\0' ? "certificate" : "key");
		return VCCID_ECONFIG;
	}
	if (!server) {
		/* A client without a certificate: neither named nor in the folder. */
		if (files->cert == NULL && files->key == NULL &&
		    (files->dir == NULL || (!file_exists(cert) && !file_exists(key))))
			return VCCID_OK;
		if (cert[0] == '\0' || key[0] == '\0') {
			set_why(why, why_size, "a client %s without its %s", cert[0] ? "certificate"
				: "key", cert[0] ? "key" : "certificate");
			return VCCID_ECONFIG;
		}
	}
	return load_pair(c, cert, key, why, why_size);
}

int vccid_tls_creds_load(enum vccid_tls_role role,
				      const struct vccid_tls_files *files,
				      vccid_tls_creds **out, char *why, size_t why_size)
{
	vccid_tls_creds *c;
	const char *err_pos = NULL;
	int rv;

	set_why(why, why_size, "%s", "");
	if (out == NULL || files == NULL)
		return VCCID_EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return VCCID_ENOMEM;
	c->role = role;
	/* Reference-counted and thread-safe since GnuTLS 3.3; undone in creds_free. */
	rv = gnutls_global_init();
	if (rv < 0) {
		set_why(why, why_size, "GnuTLS cannot start: %s", gnutls_strerror(rv));
		free(c);
		return VCCID_EIO;
	}
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0 ||
	    gnutls_priority_init(&c->priority, TLS_PRIORITY, &err_pos) < 0) {
		set_why(why, why_size, "GnuTLS: out of memory");
		vccid_tls_creds_free(c);
		return VCCID_ENOMEM;
	}
	rv = load_files(c, files, why, why_size);
	if (rv != VCCID_OK) {
		vccid_tls_creds_free(c);
		return rv;
	}
	*out = c;
	return VCCID_OK;
}

int vccid_tls_creds_allow_subjects(vccid_tls_creds *creds,
						const char *const *patterns, size_t n)
{
	char **copy;
	size_t i;

	if (creds == NULL || (n > 0 && patterns == NULL))
		return VCCID_EINVAL;
	copy = n > 0 ? calloc(n, sizeof(*copy)) : NULL;
	if (n > 0 && copy == NULL)
		return VCCID_ENOMEM;
	for (i = 0; i < n; i++) {
		copy[i] = strdup(patterns[i]);
		if (copy[i] == NULL) {
			while (i > 0)
				free(copy[--i]);
			free(copy);
			return VCCID_ENOMEM;
		}
	}
	for (i = 0; i < creds->n_subjects; i++)
		free(creds->subjects[i]);
	free(creds->subjects);
	creds->subjects = copy;
	creds->n_subjects = n;
	return VCCID_OK;
}

bool vccid_tls_creds_verifies_clients(const vccid_tls_creds *creds)
{
	return creds != NULL && creds->role == VCCID_TLS_SERVER && creds->has_ca;
}

void vccid_tls_creds_free(vccid_tls_creds *creds)
{
	size_t i;

	if (creds == NULL)
		return;
	if (creds->x509 != NULL)
		gnutls_certificate_free_credentials(creds->x509);
	if (creds->priority != NULL)
		gnutls_priority_deinit(creds->priority);
	for (i = 0; i < creds->n_subjects; i++)
		free(creds->subjects[i]);
	free(creds->subjects);
	free(creds);
	gnutls_global_deinit();
}

/* --- the socket under a session ------------------------------------------------------------ */

/* GnuTLS reads through a read-ahead buffer: a record costs one receive, not two
 * (its header, then its body), and the first byte tells TLS from plaintext. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t size)
{
	struct vccid_tls *t = ptr;
	size_t n;

	if (t->rlen == 0) {
		ssize_t got;

		do
			got = recv(t->fd, t->rbuf, sizeof(t->rbuf), t->pull_wait ? 0 : MSG_DONTWAIT);
		while (got < 0 && errno == EINTR);
		t->pull_wait = false;   /* one blocking receive per read call at most */
		if (got < 0) {
			gnutls_transport_set_errno(t->session,
						   errno == EWOULDBLOCK ? EAGAIN : errno);
			return -1;
		}
		if (got == 0) {
			t->peer_closed = true;
			return 0;
		}
		if (!t->saw_first_byte) {
			t->saw_first_byte = true;
			t->first_byte = t->rbuf[0];
		}
		t->rpos = 0;
		t->rlen = (size_t)got;
	}
	n = size < t->rlen ? size : t->rlen;
	memcpy(data, t->rbuf + t->rpos, n);
	t->rpos += n;
	t->rlen -= n;
	return (ssize_t)n;
}

static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	struct vccid_tls *t = ptr;
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	int rv;

	if (t->rlen > 0)
		return 1;
	rv = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	return rv < 0 ? -1 : rv;
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t size)
{
	struct vccid_tls *t = ptr;
	ssize_t n;

	do
		n = send(t->fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		gnutls_transport_set_errno(t->session, errno == EWOULDBLOCK ? EAGAIN : errno);
	return n;
}

/* --- sessions ------------------------------------------------------------------------------ */

static bool is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int vccid_tls_new(const vccid_tls_creds *creds, int fd, const char *server_name,
			       vccid_tls **out)
{
	bool server = creds->role == VCCID_TLS_SERVER;
	struct vccid_tls *t;
	int rv;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return VCCID_ENOMEM;
	t->creds = creds;
	t->fd = fd;
	/* No session tickets: nobody resumes, and they cost a server two records per handshake. */
	rv = gnutls_init(&t->session, (server ? GNUTLS_SERVER | GNUTLS_NO_TICKETS : GNUTLS_CLIENT) |
			 GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (rv < 0) {
		free(t);
		return VCCID_ENOMEM;
	}
	if (gnutls_priority_set(t->session, creds->priority) < 0 ||
	    gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, creds->x509) < 0)
		goto fail;
	/* The caller bounds the handshake with its own deadline. */
	gnutls_handshake_set_timeout(t->session, 0);
	if (server && creds->has_ca) {
		gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_REQUIRE);
		/* Without the CA names a client sends its certificate whoever signed it, so a
		 * refusal can name the subject that another CA signed. */
		gnutls_certificate_send_x509_rdn_sequence(t->session, 1);
	} else if (!server) {
		/* Checked inside the handshake, so a refused server never sees a byte. */
		gnutls_session_set_verify_cert(t->session, server_name, 0);
		if (server_name != NULL && !is_ip_literal(server_name) &&
		    gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, server_name,
					   strlen(server_name)) < 0)
			goto fail;
	}
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_push_function(t->session, tls_push);
	gnutls_transport_set_pull_function(t->session, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->session, tls_pull_timeout);
	*out = t;
	return VCCID_OK;
fail:
	gnutls_deinit(t->session);
	free(t);
	return VCCID_EIO;
}

/* The subject of the peer's first certificate, if it sent one. */
static void read_subject(struct vccid_tls *t)
{
	const gnutls_datum_t *certs;
	unsigned n = 0;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { NULL, 0 };

	t->subject[0] = '\0';
	certs = gnutls_certificate_get_peers(t->session, &n);
	if (certs == NULL || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) >= 0) {
		size_t i;

		snprintf(t->subject, sizeof(t->subject), "%.*s", (int)dn.size, (char *)dn.data);
		/* A refused peer's certificate is anybody's text: no control bytes in logs. */
		for (i = 0; t->subject[i] != '\0'; i++)
			if ((unsigned char)t->subject[i] < 0x20 || t->subject[i] == 0x7F)
				t->subject[i] = '?';
	}
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
}

/* The first reason in @p status, worded for a log line. */
static void status_reason(struct vccid_tls *t, unsigned status, const char *whose)
{
	static const struct {
		unsigned bit;
		enum vccid_tls_refusal kind;
		const char *what;
	} reasons[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, VCCID_TLS_REFUSAL_UNTRUSTED,
		  "not signed by a trusted CA" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, VCCID_TLS_REFUSAL_UNTRUSTED,
		  "signed by a certificate that is not a CA" },
		{ GNUTLS_CERT_EXPIRED, VCCID_TLS_REFUSAL_EXPIRED, "expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, VCCID_TLS_REFUSAL_NOT_YET_VALID, "not yet valid" },
		{ GNUTLS_CERT_REVOKED, VCCID_TLS_REFUSAL_UNTRUSTED, "revoked" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, VCCID_TLS_REFUSAL_SUBJECT,
		  "issued to another name" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM, VCCID_TLS_REFUSAL_UNTRUSTED,
		  "signed with an insecure algorithm" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, VCCID_TLS_REFUSAL_UNTRUSTED,
		  "with a bad signature" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH, VCCID_TLS_REFUSAL_UNTRUSTED,
		  "not meant for this use" },
	};
	gnutls_datum_t text = { NULL, 0 };
	size_t i;

	t->refusal = VCCID_TLS_REFUSAL_UNTRUSTED;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (status & reasons[i].bit) {
			t->refusal = reasons[i].kind;
			set_why(t->why, sizeof(t->why), "%s certificate %s", whose,
				reasons[i].what);
			return;
		}
	}
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0)
		set_why(t->why, sizeof(t->why), "%s certificate refused: %.*s", whose,
			(int)text.size, (char *)text.data);
	else
		set_why(t->why, sizeof(t->why), "%s certificate refused", whose);
	gnutls_free(text.data);
}

/* A pattern matches the subject DN or its CN (tls.h). */
static bool subject_allowed(const struct vccid_tls *t)
{
	const vccid_tls_creds *c = t->creds;
	char cn[VCCID_TLS_SUBJECT_MAX] = "";
	const gnutls_datum_t *certs;
	unsigned n = 0;
	size_t i;

	if (c->n_subjects == 0)
		return true;
	certs = gnutls_certificate_get_peers(t->session, &n);
	if (certs != NULL && n > 0) {
		gnutls_x509_crt_t crt;
		size_t size = sizeof(cn);

		if (gnutls_x509_crt_init(&crt) >= 0) {
			if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
			    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
							  cn, &size) < 0)
				cn[0] = '\0';
			gnutls_x509_crt_deinit(crt);
		}
	}
	for (i = 0; i < c->n_subjects; i++) {
		if (fnmatch(c->subjects[i], t->subject, 0) == 0 ||
		    (cn[0] != '\0' && fnmatch(c->subjects[i], cn, 0) == 0))
			return true;
	}
	return false;
}

/* A server with a CA checks the client it just completed a handshake with. */
static int check_client(struct vccid_tls *t)
{
	unsigned status = 0;
	int rv;

	if (t->creds->role != VCCID_TLS_SERVER || !t->creds->has_ca)
		return VCCID_OK;
	if (t->subject[0] == '\0') {
		t->refusal = VCCID_TLS_REFUSAL_NO_CERT;
		set_why(t->why, sizeof(t->why), "no client certificate");
		return VCCID_EPROTO;
	}
	rv = gnutls_certificate_verify_peers3(t->session, NULL, &status);
	if (rv < 0) {
		t->refusal = VCCID_TLS_REFUSAL_UNTRUSTED;
		set_why(t->why, sizeof(t->why), "client certificate unusable: %s",
			gnutls_strerror(rv));
		return VCCID_EPROTO;
	}
	if (status != 0) {
		status_reason(t, status, "client");
		return VCCID_EPROTO;
	}
	if (!subject_allowed(t)) {
		t->refusal = VCCID_TLS_REFUSAL_SUBJECT;
		set_why(t->why, sizeof(t->why), "subject not on the tls-subjects list");
		return VCCID_EPROTO;
	}
	return VCCID_OK;
}

/* Why the handshake failed with GnuTLS result @p rv; the refusal or EIO code. */
static int handshake_failure(struct vccid_tls *t, int rv)
{
	bool server = t->creds->role == VCCID_TLS_SERVER;

	t->refusal = VCCID_TLS_REFUSAL_OTHER;
	if (t->saw_first_byte && t->first_byte != TLS_CONTENT_HANDSHAKE &&
	    (server || t->first_byte != TLS_CONTENT_ALERT)) {
		if (server)
			set_why(t->why, sizeof(t->why), "not TLS (first byte 0x%02x): a plaintext "
				"client on the TLS port?", t->first_byte);
		else
			set_why(t->why, sizeof(t->why), "the server does not speak TLS (first byte "
				"0x%02x)", t->first_byte);
		t->refusal = VCCID_TLS_REFUSAL_NOT_TLS;
		return VCCID_EPROTO;
	}
	switch (rv) {
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		set_why(t->why, sizeof(t->why), "connection closed in the TLS handshake%s",
			!server && !t->saw_first_byte ? " (does the server speak TLS?)" : "");
		t->refusal = VCCID_TLS_REFUSAL_NONE;
		return VCCID_EIO;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		set_why(t->why, sizeof(t->why), "%s", server ? "no client certificate" :
			"the server sent no certificate");
		t->refusal = VCCID_TLS_REFUSAL_NO_CERT;
		return VCCID_EPROTO;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		status_reason(t, gnutls_session_get_verify_cert_status(t->session),
			      server ? "client" : "server");
		return VCCID_EPROTO;
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
		set_why(t->why, sizeof(t->why), "no TLS version in common (TLS 1.2 or later only)");
		return VCCID_EPROTO;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		set_why(t->why, sizeof(t->why), "the peer refused the handshake: %s",
			gnutls_alert_get_name(gnutls_alert_get(t->session)));
		return VCCID_EPROTO;
	default:
		set_why(t->why, sizeof(t->why), "TLS handshake failed: %s", gnutls_strerror(rv));
		return VCCID_EPROTO;
	}
}

int vccid_tls_handshake(vccid_tls *t)
{
	int rv = GNUTLS_E_AGAIN;
	int tries;

	if (t->handshaken)
		return VCCID_OK;
	if (t->failed)
		return VCCID_EPROTO;
	t->pull_wait = false;
	for (tries = 0; tries < MAX_NONFATAL_RETRIES; tries++) {
		rv = gnutls_handshake(t->session);
		if (rv >= 0 || rv == GNUTLS_E_AGAIN || gnutls_error_is_fatal(rv))
			break;
	}
	if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED || (rv < 0 && !gnutls_error_is_fatal(rv)))
		return gnutls_record_get_direction(t->session) ? VCCID_TLS_WANT_WRITE
							       : VCCID_TLS_WANT_READ;
	read_subject(t);
	if (rv < 0) {
		t->failed = true;
		return handshake_failure(t, rv);
	}
	rv = check_client(t);
	if (rv != VCCID_OK) {
		t->failed = true;
		return rv;
	}
	t->handshaken = true;
	t->why[0] = '\0';
	return VCCID_OK;
}

int vccid_tls_handshake_until(vccid_tls *t, long long deadline_ms)
{
	for (;;) {
		int rv = vccid_tls_handshake(t);
		struct pollfd pfd = { .fd = t->fd };
		long long left;

		if (rv != VCCID_TLS_WANT_READ && rv != VCCID_TLS_WANT_WRITE)
			return rv;
		left = deadline_ms - vccid_now_ms();
		if (left <= 0) {
			set_why(t->why, sizeof(t->why), "TLS handshake timed out");
			return VCCID_ETIMEDOUT;
		}
		pfd.events = rv == VCCID_TLS_WANT_READ ? POLLIN : POLLOUT;
		if (poll(&pfd, 1, poll_ms(left)) < 0 && errno != EINTR) {
			set_why(t->why, sizeof(t->why), "poll: %s", strerror(errno));
			return VCCID_EIO;
		}
	}
}

const char *vccid_tls_error(const vccid_tls *t)
{
	return t->why;
}

enum vccid_tls_refusal vccid_tls_refusal(const vccid_tls *t)
{
	return t->refusal;
}

void vccid_tls_peer_subject(const vccid_tls *t, char *buf, size_t size)
{
	if (size > 0)
		snprintf(buf, size, "%s", t->subject);
}

void vccid_tls_describe(const vccid_tls *t, char *buf, size_t size)
{
	const char *proto, *cipher;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (!t->handshaken)
		return;
	proto = gnutls_protocol_get_name(gnutls_protocol_get_version(t->session));
	cipher = gnutls_cipher_get_name(gnutls_cipher_get(t->session));
	snprintf(buf, size, "%s %s", proto ? proto : "?", cipher ? cipher : "?");
}

/* --- records -------------------------------------------------------------------------------- */

size_t vccid_tls_pending(const vccid_tls *t)
{
	return gnutls_record_check_pending(t->session) + t->rlen;
}

ssize_t vccid_tls_readv(vccid_tls *t, const struct iovec *iov, size_t iovcnt,
				     long long deadline_ms)
{
	size_t total = 0, i = 0, off = 0;
	int nonfatal = 0;

	t->pull_wait = deadline_ms > 0;
	while (i < iovcnt) {
		ssize_t n;
		long long left;
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };

		if (iov[i].iov_len == off) {
			i++;
			off = 0;
			continue;
		}
		n = gnutls_record_recv(t->session, (uint8_t *)iov[i].iov_base + off,
				       iov[i].iov_len - off);
		if (n > 0) {
			total += (size_t)n;
			off += (size_t)n;
			t->pull_wait = false;
			/* More only while it is already decrypted: never a second system call. */
			if (gnutls_record_check_pending(t->session) == 0)
				break;
			continue;
		}
		if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
			/* close_notify, or EOF without it: VSCard peers just close. */
			break;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if (total > 0)
				break;
			t->pull_wait = false;
			left = deadline_ms - vccid_now_ms();
			if (deadline_ms <= 0 || left <= 0)
				return VCCID_ETIMEDOUT;
			(void)poll(&pfd, 1, poll_ms(left));
			continue;
		}
		if (!gnutls_error_is_fatal((int)n) && ++nonfatal < MAX_NONFATAL_RETRIES)
			continue;   /* a warning alert, a renegotiation request we ignore */
		if (total > 0)
			break;       /* the error comes back on the next call */
		set_why(t->why, sizeof(t->why), "TLS record error: %s", gnutls_strerror((int)n));
		return VCCID_EIO;
	}
	t->pull_wait = false;
	return (ssize_t)total;
}

ssize_t vccid_tls_write(vccid_tls *t, const void *buf, size_t len,
				     long long deadline_ms)
{
	int nonfatal = 0;

	for (;;) {
		ssize_t n = gnutls_record_send(t->session, buf, len);
		struct pollfd pfd = { .fd = t->fd, .events = POLLOUT };
		long long left;

		if (n > 0)
			return n;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			left = deadline_ms - vccid_now_ms();
			if (deadline_ms <= 0 || left <= 0)
				return VCCID_ETIMEDOUT;
			if (poll(&pfd, 1, poll_ms(left)) < 0 && errno != EINTR)
				return VCCID_EIO;
			continue;
		}
		if (n < 0 && !gnutls_error_is_fatal((int)n) && ++nonfatal < MAX_NONFATAL_RETRIES)
			continue;
		return VCCID_EIO;
	}
}

int vccid_tls_write_all(vccid_tls *t, const void *buf, size_t len,
				     long long deadline_ms)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = vccid_tls_write(t, p, len, deadline_ms < 0 ? LLONG_MAX : deadline_ms);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return VCCID_OK;
}

void vccid_tls_bye(vccid_tls *t)
{
	if (t != NULL && t->handshaken)
		(void)gnutls_bye(t->session, GNUTLS_SHUT_WR);
}

void vccid_tls_free(vccid_tls *t)
{
	if (t == NULL)
		return;
	gnutls_deinit(t->session);
	explicit_bzero(t->rbuf, sizeof(t->rbuf));
	free(t);
}
