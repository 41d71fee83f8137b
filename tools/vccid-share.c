/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share: a VSCard client that shares a libcacard card with a VSCard host (vccid, QEMU). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cacard/vcard_emul.h>
#include <cacard/vevent.h>
#include <cacard/vreader.h>
#include <cert.h>
#include <glib.h>
#include <pk11pub.h>
#include <reader.h>
#include <winscard.h>

#include "backends/cacard/card-id.h"
#include "backends/vscard/proto.h"
#include "core/error.h"

#define PROG "vccid-share"
#define DEFAULT_NAME "vccid-share"
#define EXIT_USAGE 2

#define ATR_MAX 40                         /* ISO 7816-3; QEMU's MAX_ATR_SIZE */
#define RESPONSE_MAX (65536 + 2)           /* vreader_xfr_bytes truncates silently */

/* A soft card's own CAC identifier, as the driver gives its cards (card-id.h). */
static uint8_t card_id[VCCID_CARD_ID_BYTES];
static bool has_card_id;
#define LEGACY_MAX_PAYLOAD 4096            /* what we accept from a host without the extension */
#define EXT_MAX_PAYLOAD (65536 + 16)
#define PENDING_MAX 64                     /* requests awaiting the host's Error answer */
#define BACKOFF_START_MS 500
#define HANDSHAKE_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 5000
#define CLOSE_WAIT_MS 1000                 /* goodbye answers; never longer than 1 s */
#define SEND_TIMEOUT_S 10
#define NAME_MAX_LEN 200
#define COMMAND_LINE_MAX 256

static const char usage_text[] =
	"Usage: " PROG " [OPTION]... HOST:PORT\n"
	"       " PROG " [OPTION]... unix:PATH\n"
	"\n"
	"Shares a smart card with a VSCard host: vccid's listener inside pcscd or\n"
	"QEMU's ccid-card-passthru device. The card is emulated by libcacard, either\n"
	"as a soft CAC card made of three certificates (and their keys) from an NSS\n"
	"database, or from a real card NSS sees on this host (--hardware).\n"
	"\n"
	"Card:\n"
	"  -d, --database DB      NSS database of the soft card: sql:DIR (a plain DIR\n"
	"                         means sql:DIR). Its password is the card PIN: the\n"
	"                         PIN the remote PC/SC user presents is passed to NSS.\n"
	"                         With --hardware: the database whose PKCS#11 modules\n"
	"                         are searched (default: libcacard's /etc/pki/nssdb).\n"
	"  -c, --certs N1,N2,N3   nicknames of the soft card's certificates, comma\n"
	"                         separated (CAC: identity, signing, encryption)\n"
	"  -n, --name NAME        reader name sent to the host in ReaderAdd, and the\n"
	"                         soft card's libcacard reader name (default: " DEFAULT_NAME ")\n"
	"      --hardware         share a card from this host's hardware tokens instead\n"
	"                         (libcacard use_hw=yes). Readers served by vccid\n"
	"                         itself are refused: sharing them back would loop.\n"
	"  -r, --reader TEXT      with --hardware: share the first token reader whose\n"
	"                         name contains TEXT (default: the first one found)\n"
	"\n"
	"Connection:\n"
	"      --no-reconnect     exit (status 1) when the host cannot be reached or\n"
	"                         goes away, instead of reconnecting\n"
	"      --retry-max SECS   cap of the reconnect backoff: 0.5 s, doubling up to\n"
	"                         SECS (1..3600, default 30); a completed handshake\n"
	"                         resets it\n"
	"\n"
	"Other:\n"
	"  -v, --verbose          log every message sent (->) and received (<-)\n"
	"  -h, --help             show this help and exit\n"
	"\n"
	"Commands, one per line on standard input (ignored when it is /dev/null):\n"
	"  remove                 take the card out (CardRemove to the host)\n"
	"  insert                 put it back (power on, ATR to the host)\n"
	"  status                 print the connection and card state\n"
	"  exit, quit             leave as on SIGTERM\n"
	"Signals: SIGUSR1 = remove, SIGUSR2 = insert. SIGINT and SIGTERM take the\n"
	"card and the reader away from the host (CardRemove, ReaderRemove), wait at\n"
	"most 1 s for the answers, and exit 0.\n"
	"\n"
	"Loop protection: with --hardware, every PC/SC reader whose vendor attribute\n"
	"(SCARD_ATTR_VENDOR_NAME) is \"vccid\" is looked up through pcscd, and a token\n"
	"reader whose name contains such a reader's name is never shared.\n"
	"\n"
	"Logs go to standard error. Exit status: 0 after a requested exit, 1 on a\n"
	"failure (libcacard could not make the card, the host refused the reader,\n"
	"or the connection failed with --no-reconnect), 2 on a usage error.\n"
	"\n"
	"Examples:\n"
	"  " PROG " -d sql:/var/lib/vccid/nssdb -c alice-id,alice-sign,alice-enc \\\n"
	"      -n alice 127.0.0.1:35963\n"
	"  " PROG " --hardware -d sql:/etc/pki/nssdb unix:/run/vccid/vscard.sock\n";

/* ---------------------------------------------------------------- options and logging */

struct options {
	char *database;          /* "sql:DIR", owned */
	const char *certs;
	const char *name;
	const char *reader_filter;
	bool hardware;
	bool reconnect;
	unsigned retry_max_ms;
	int verbose;
	const char *target;
	/* parsed target */
	bool is_unix;
	char host[256];
	char port[8];
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static struct options opt = {
	.name = DEFAULT_NAME,
	.reconnect = true,
	.retry_max_ms = 30000,
};

/* "vccid-share: MESSAGE" and @p tail on standard error. */
static void vmessage(const char *tail, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void vmessage(const char *tail, const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("\n", fmt, ap);
	va_end(ap);
}

#define debugmsg(...) do { if (opt.verbose) logmsg(__VA_ARGS__); } while (0)

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(" (see --help)\n", fmt, ap);
	va_end(ap);
	exit(EXIT_USAGE);
}

static bool has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7F)
			return true;
	return false;
}

/* A token for libcacard's option string: no separators, no edge spaces. */
static void check_token(const char *what, const char *s)
{
	size_t len = strlen(s);

	if (len == 0)
		usage_error("%s must not be empty", what);
	if (len > NAME_MAX_LEN)
		usage_error("%s is longer than %d characters", what, NAME_MAX_LEN);
	if (has_control_chars(s))
		usage_error("%s '%s' contains control characters", what, s);
	if (strpbrk(s, ",()\"") != NULL)
		usage_error("%s '%s' must not contain ',', '(', ')' or '\"'", what, s);
	if (s[0] == ' ' || s[len - 1] == ' ')
		usage_error("%s '%s' must not begin or end with a space", what, s);
}

static void parse_database(const char *arg)
{
	const char *dir = arg;
	struct stat st;
	size_t len;

	if (strncmp(arg, "sql:", 4) == 0)
		dir = arg + 4;
	else if (strchr(arg, ':') != NULL && arg[0] != '/' && arg[0] != '.')
		usage_error("database '%s': only the sql: format is supported (sql:DIR)", arg);
	if (*dir == '\0')
		usage_error("database '%s' names no directory", arg);
	if (has_control_chars(dir) || strchr(dir, '"') != NULL)
		usage_error("database directory '%s' must not contain '\"' or control characters", dir);
	if (stat(dir, &st) != 0)
		usage_error("database directory '%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		usage_error("database '%s' is not a directory", dir);
	len = strlen(dir) + 5;
	free(opt.database);
	opt.database = malloc(len);
	if (opt.database == NULL) {
		logmsg("out of memory");
		exit(1);
	}
	snprintf(opt.database, len, "sql:%s", dir);
}

static void parse_certs(const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int n = 0;

	if (copy == NULL) {
		logmsg("out of memory");
		exit(1);
	}
	if (arg[0] == '\0' || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		usage_error("--certs '%s': expected NICK1,NICK2,NICK3 without empty entries", arg);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		check_token("certificate nickname", tok);
		n++;
	}
	free(copy);
	if (n > 10)
		usage_error("--certs: %d certificates, a CAC card holds at most 10", n);
	opt.certs = arg;
}

static void parse_target(const char *arg)
{
	const char *colon, *host;
	size_t host_len;
	char *end;
	unsigned long port;

	opt.target = arg;
	if (strncmp(arg, "unix:", 5) == 0) {
		const char *path = arg + 5;

		if (*path == '\0')
			usage_error("'%s': unix: needs a socket path", arg);
		if (strlen(path) >= sizeof(opt.unix_path))
			usage_error("socket path '%s' is longer than %zu bytes", path,
				    sizeof(opt.unix_path) - 1);
		opt.is_unix = true;
		strcpy(opt.unix_path, path);
		return;
	}
	colon = strrchr(arg, ':');
	if (colon == NULL)
		usage_error("'%s' is not HOST:PORT or unix:PATH", arg);
	host = arg;
	host_len = (size_t)(colon - arg);
	if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
		host++;
		host_len -= 2;
	} else if (memchr(host, ':', host_len) != NULL) {
		usage_error("'%s': write an IPv6 address in brackets, [ADDR]:PORT", arg);
	}
	if (host_len == 0)
		usage_error("'%s' has no host before the port", arg);
	if (host_len >= sizeof(opt.host))
		usage_error("host name in '%s' is too long", arg);
	memcpy(opt.host, host, host_len);
	opt.host[host_len] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno || port == 0 || port > 65535)
		usage_error("'%s': the port must be a number from 1 to 65535", colon + 1);
	snprintf(opt.port, sizeof(opt.port), "%lu", port);
}

static void parse_args(int argc, char **argv)
{
	enum { OPT_HARDWARE = 256, OPT_NO_RECONNECT, OPT_RETRY_MAX };
	static const struct option longopts[] = {
		{ "database", required_argument, NULL, 'd' },
		{ "certs", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "reader", required_argument, NULL, 'r' },
		{ "hardware", no_argument, NULL, OPT_HARDWARE },
		{ "no-reconnect", no_argument, NULL, OPT_NO_RECONNECT },
		{ "retry-max", required_argument, NULL, OPT_RETRY_MAX },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:c:n:r:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			parse_database(optarg);
			break;
		case 'c':
			parse_certs(optarg);
			break;
		case 'n':
			check_token("reader name", optarg);
			opt.name = optarg;
			break;
		case 'r':
			if (*optarg == '\0')
				usage_error("--reader needs a non-empty TEXT");
			opt.reader_filter = optarg;
			break;
		case OPT_HARDWARE:
			opt.hardware = true;
			break;
		case OPT_NO_RECONNECT:
			opt.reconnect = false;
			break;
		case OPT_RETRY_MAX: {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno ||
			    v < 1 || v > 3600)
				usage_error("--retry-max '%s': expected whole seconds from 1 to 3600",
					    optarg);
			opt.retry_max_ms = (unsigned)v * 1000;
			break;
		}
		case 'v':
			opt.verbose++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case ':':
			if (optopt > 0 && optopt < 128)
				usage_error("option -%c needs an argument", optopt);
			usage_error("option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 128)
				usage_error("unknown option -%c", optopt);
			usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		usage_error("expected one HOST:PORT or unix:PATH argument, got %d", argc - optind);
	parse_target(argv[optind]);
	if (opt.hardware) {
		if (opt.certs != NULL)
			usage_error("--hardware and --certs exclude each other");
	} else {
		if (opt.reader_filter != NULL)
			usage_error("--reader only applies with --hardware");
		if (opt.certs == NULL)
			usage_error("no card: give --database and --certs, or --hardware");
		if (opt.database == NULL)
			usage_error("--certs needs --database sql:DIR");
	}
}

/* ---------------------------------------------------------------- time, pipes, signals */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int signal_pipe[2] = { -1, -1 };
static int event_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t r = write(signal_pipe[1], &b, 1);

	(void)r;              /* a full pipe already holds a wake-up */
	errno = saved;
}

static int make_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	return fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0 && fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0
		? 0 : -1;
}

/* ---------------------------------------------------------------- libcacard */

static VReader *shared;         /* the libcacard reader we share (referenced) */
static bool lib_card;           /* libcacard has a card in it */
static bool user_removed;       /* "remove" asked; cleared by "insert" or a new card */
static pthread_t event_thread_id;

/* vevent_wait_next_vevent blocks: this thread forwards events through a pipe. */
static void *event_thread(void *arg)
{
	(void)arg;
	for (;;) {
		VEvent *ev = vevent_wait_next_vevent();
		const uint8_t *p = (const uint8_t *)&ev;
		size_t done = 0;

		if (ev == NULL)
			continue;
		if (ev->type == VEVENT_LAST) {
			vevent_delete(ev);
			break;
		}
		while (done < sizeof(ev)) {
			ssize_t n = write(event_pipe[1], p + done, sizeof(ev) - done);

			if (n > 0) {
				done += (size_t)n;
			} else if (n < 0 && errno == EAGAIN) {
				struct pollfd pfd = { .fd = event_pipe[1], .events = POLLOUT };

				poll(&pfd, 1, 100);
			} else if (n < 0 && errno != EINTR) {
				vevent_delete(ev);
				return NULL;
			}
		}
	}
	return NULL;
}

static int cacard_start(void)
{
	GString *o = g_string_new(NULL);
	VCardEmulOptions *emul;
	VCardEmulError rc;

	if (opt.hardware) {
		/* not hw_type=: libcacard takes the rest of the string as its value (CAC is the default) */
		g_string_append(o, "use_hw=yes");
	} else {
		g_string_append_printf(o, "use_hw=no soft=(,%s,CAC,,%s)", opt.name, opt.certs);
	}
	if (opt.database != NULL)
		g_string_append_printf(o, " db=\"%s\"", opt.database);
	debugmsg("libcacard options: %s", o->str);
	emul = vcard_emul_options(o->str);
	g_string_free(o, TRUE);
	if (emul == NULL) {
		logmsg("libcacard rejected the card options");
		return -1;
	}
	rc = vcard_emul_init(emul);
	if (rc != VCARD_EMUL_OK) {
		if (opt.hardware)
			logmsg("libcacard could not open the NSS database %s",
			       opt.database ? opt.database : "sql:/etc/pki/nssdb (default)");
		else
			logmsg("libcacard could not make a card from %s with the certificates %s "
			       "(does the database exist and hold these nicknames?)",
			       opt.database, opt.certs);
		return -1;
	}
	if (!opt.hardware) {
		/* libcacard skips a missing nickname silently: a smaller card confuses everyone. */
		char *copy = strdup(opt.certs), *save = NULL, *tok;
		int missing = 0;

		for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
		     tok = strtok_r(NULL, ",", &save)) {
			CERTCertificate *cert = PK11_FindCertFromNickname(tok, NULL);

			if (cert == NULL) {
				logmsg("certificate '%s' is not in %s", tok, opt.database);
				missing++;
			} else {
				/* The identity certificate (the first) names the card. */
				if (!has_card_id)
					has_card_id = vccid_card_id_derive(cert->derCert.data,
									   cert->derCert.len,
									   card_id);
				CERT_DestroyCertificate(cert);
			}
		}
		free(copy);
		if (copy == NULL || missing)
			return -1;
	}
	if (pthread_create(&event_thread_id, NULL, event_thread, NULL) != 0) {
		logmsg("cannot start the libcacard event thread");
		return -1;
	}
	return 0;
}

static void cacard_stop(void)
{
	VEvent *ev;

	vevent_queue_vevent(vevent_new(VEVENT_LAST, NULL, NULL));
	pthread_join(event_thread_id, NULL);
	while (read(event_pipe[0], &ev, sizeof(ev)) == (ssize_t)sizeof(ev))
		vevent_delete(ev);
	if (shared != NULL) {
		vreader_free(shared);
		shared = NULL;
	}
	vcard_emul_finalize();
}

/* True when the PC/SC reader is served by vccid (its vendor attribute says so). */
static bool pcsc_reader_is_vccid(SCARDCONTEXT ctx, const char *reader)
{
	SCARDHANDLE h;
	DWORD proto, len;
	BYTE vendor[64];
	bool is = false;

	if (SCardConnect(ctx, reader, SCARD_SHARE_DIRECT, 0, &h, &proto) != SCARD_S_SUCCESS)
		return false;
	len = sizeof(vendor);
	if (SCardGetAttrib(h, SCARD_ATTR_VENDOR_NAME, vendor, &len) == SCARD_S_SUCCESS &&
	    len >= 5 && len <= sizeof(vendor)) {
		is = memcmp(vendor, "vccid", 5) == 0 && (len == 5 || vendor[5] == '\0');
	}
	SCardDisconnect(h, SCARD_LEAVE_CARD);
	return is;
}

/*
 * Whether the libcacard reader @p name is one of this host's vccid readers
 * (NSS -> OpenSC -> pcscd -> vccid): sharing it would loop. PKCS#11 slot
 * descriptions hold 64 characters, so a long name may be a truncated prefix.
 */
static bool is_local_vccid_reader(const char *name)
{
	SCARDCONTEXT ctx;
	char *readers = NULL, *r;
	DWORD len = 0;
	bool found = false;
	size_t name_len = strlen(name);

	if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS) {
		debugmsg("no PC/SC service: no local vccid readers to avoid");
		return false;
	}
	if (SCardListReaders(ctx, NULL, NULL, &len) == SCARD_S_SUCCESS && len > 0 &&
	    (readers = malloc(len)) != NULL &&
	    SCardListReaders(ctx, NULL, readers, &len) == SCARD_S_SUCCESS) {
		for (r = readers; *r && !found; r += strlen(r) + 1) {
			bool match = strstr(name, r) != NULL ||
				(name_len >= 32 && strncmp(r, name, name_len) == 0);

			if (match && pcsc_reader_is_vccid(ctx, r)) {
				debugmsg("'%s' is the local vccid reader '%s'", name, r);
				found = true;
			}
		}
	}
	free(readers);
	SCardReleaseContext(ctx);
	return found;
}

/* ---------------------------------------------------------------- the connection */

enum conn_state {
	ST_BACKOFF,        /* no socket; next attempt at deadline */
	ST_WAIT_INIT,      /* our Init sent */
	ST_ADDING,         /* ReaderRemove(0) and ReaderAdd sent */
	ST_READY,          /* the host gave us a reader id */
	ST_CLOSING,        /* goodbye sent, waiting for the answers */
};

static const char *state_name(enum conn_state s)
{
	switch (s) {
	case ST_BACKOFF: return "disconnected";
	case ST_WAIT_INIT: return "waiting for the host's Init";
	case ST_ADDING: return "adding the reader";
	case ST_READY: return "connected";
	case ST_CLOSING: return "closing";
	}
	return "?";
}

static struct {
	enum conn_state state;
	int fd;
	bool tcp;
	bool host_extended;
	uint32_t reader_id;
	bool card_on_host;             /* ATR sent, no CardRemove since */
	uint32_t pending[PENDING_MAX]; /* FIFO of message types awaiting an Error answer */
	size_t pending_head, pending_count;
	struct vscard_framer framer;
	int64_t deadline;              /* -1: none */
	unsigned backoff_ms;
	unsigned attempt;
} conn = { .state = ST_BACKOFF, .fd = -1, .deadline = 0, .backoff_ms = BACKOFF_START_MS };

static uint8_t in_buf[VSCARD_HEADER_SIZE + EXT_MAX_PAYLOAD];
static uint8_t out_buf[VSCARD_HEADER_SIZE + RESPONSE_MAX];
static uint8_t apdu_buf[EXT_MAX_PAYLOAD];

static bool quit_requested;
static int exit_status;

static void pending_push(uint32_t type)
{
	if (conn.pending_count == PENDING_MAX) {
		/* a host that never answers: forget the oldest */
		conn.pending_head = (conn.pending_head + 1) % PENDING_MAX;
		conn.pending_count--;
	}
	conn.pending[(conn.pending_head + conn.pending_count) % PENDING_MAX] = type;
	conn.pending_count++;
}

static bool pending_pop(uint32_t *type)
{
	if (conn.pending_count == 0)
		return false;
	*type = conn.pending[conn.pending_head];
	conn.pending_head = (conn.pending_head + 1) % PENDING_MAX;
	conn.pending_count--;
	return true;
}

static void conn_close(void)
{
	if (conn.fd >= 0)
		close(conn.fd);
	conn.fd = -1;
	conn.card_on_host = false;
	conn.pending_count = 0;
	conn.pending_head = 0;
	if (shared != NULL && lib_card)
		vreader_power_off(shared);
}

/* The connection is gone: back off and retry, or leave. */
static void conn_lost(const char *why)
{
	bool was_ready = conn.state == ST_READY;

	conn_close();
	if (quit_requested) {
		conn.state = ST_BACKOFF;
		return;
	}
	if (!opt.reconnect) {
		logmsg("%s; not reconnecting (--no-reconnect)", why);
		exit_status = 1;
		quit_requested = true;
		conn.state = ST_BACKOFF;
		return;
	}
	if (was_ready)
		conn.backoff_ms = BACKOFF_START_MS;
	logmsg("%s; reconnecting in %u.%u s", why, conn.backoff_ms / 1000,
	       conn.backoff_ms % 1000 / 100);
	conn.state = ST_BACKOFF;
	conn.deadline = now_ms() + conn.backoff_ms;
	conn.backoff_ms = conn.backoff_ms * 2 > opt.retry_max_ms ? opt.retry_max_ms
								  : conn.backoff_ms * 2;
}

static void log_message(const char *dir, const struct vscard_header *h, const uint8_t *payload)
{
	char extra[64] = "";

	if (!opt.verbose)
		return;
	if (h->type == VSCARD_ERROR && h->length == 4 && payload != NULL)
		snprintf(extra, sizeof(extra), " code %u", (unsigned)(payload[0] << 24 |
			 payload[1] << 16 | payload[2] << 8 | payload[3]));
	else if (h->type == VSCARD_APDU && h->length >= 2 && payload != NULL && dir[0] == '-')
		snprintf(extra, sizeof(extra), " SW %02X%02X", payload[h->length - 2],
			 payload[h->length - 1]);
	logmsg("%s %s reader=%u len=%u%s", dir, vscard_type_name(h->type),
	       (unsigned)h->reader_id, (unsigned)h->length, extra);
}

/* Writes a whole encoded message (one write for header and payload). */
static int send_raw(const uint8_t *buf, size_t len)
{
	size_t done = 0;
	struct vscard_header h;

	if (conn.fd < 0)
		return -1;
	vscard_header_decode(buf, &h);
	log_message("->", &h, buf + VSCARD_HEADER_SIZE);
	while (done < len) {
		ssize_t n = send(conn.fd, buf + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			char why[128];

			snprintf(why, sizeof(why), "cannot send %s to the host: %s",
				 vscard_type_name(h.type), n < 0 ? strerror(errno) : "short write");
			conn_lost(why);
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

static int send_msg(uint32_t type, uint32_t reader_id, const uint8_t *payload, size_t len)
{
	uint8_t buf[VSCARD_HEADER_SIZE + NAME_MAX_LEN + ATR_MAX];
	size_t n = vscard_message_encode(buf, sizeof(buf), type, reader_id, payload, len);

	if (n == 0)
		return -1;
	return send_raw(buf, n);
}

/* A request the host answers with one Error message. */
static int send_request(uint32_t type, uint32_t reader_id, const uint8_t *payload, size_t len)
{
	if (send_msg(type, reader_id, payload, len) != 0)
		return -1;
	pending_push(type);
	return 0;
}

static void card_to_host(void)
{
	uint8_t atr[ATR_MAX];
	int atr_len = sizeof(atr);
	VReaderStatus st;

	if (conn.state != ST_READY || conn.card_on_host || shared == NULL || !lib_card ||
	    user_removed)
		return;
	st = vreader_power_on(shared, atr, &atr_len);
	if (st != VREADER_OK || atr_len < 2 || atr_len > ATR_MAX) {
		logmsg("libcacard could not power the card on (status %d, ATR length %d)", (int)st,
		       atr_len);
		return;
	}
	if (send_request(VSCARD_ATR, conn.reader_id, atr, (size_t)atr_len) == 0) {
		conn.card_on_host = true;
		logmsg("card inserted: ATR sent to the host (%d bytes)", atr_len);
	}
}

static void card_from_host(void)
{
	if (conn.card_on_host && conn.fd >= 0) {
		conn.card_on_host = false;
		if (send_request(VSCARD_CARD_REMOVE, conn.reader_id, NULL, 0) == 0)
			logmsg("card removed: CardRemove sent to the host");
	}
	if (shared != NULL && lib_card)
		vreader_power_off(shared);   /* a later insert starts logged out */
}

static int conn_open(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_un sun;
	int fd = -1, err = 0, rc;
	char why[320];

	conn.attempt++;
	logmsg("connecting to %s (attempt %u)", opt.target, conn.attempt);
	if (opt.is_unix) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strcpy(sun.sun_path, opt.unix_path);
	} else {
		rc = getaddrinfo(opt.host, opt.port, &hints, &res);
		if (rc != 0) {
			snprintf(why, sizeof(why), "cannot resolve %s: %s", opt.host, gai_strerror(rc));
			conn_lost(why);
			return -1;
		}
	}
	for (ai = res; opt.is_unix || ai != NULL; ai = ai->ai_next) {
		const struct sockaddr *sa = opt.is_unix ? (const struct sockaddr *)&sun : ai->ai_addr;
		socklen_t salen = opt.is_unix ? (socklen_t)sizeof(sun) : ai->ai_addrlen;
		int family = opt.is_unix ? AF_UNIX : ai->ai_family;

		fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			err = errno;
		} else if (connect(fd, sa, salen) == 0) {
			break;
		} else if (errno == EINPROGRESS) {
			struct pollfd p[2] = {
				{ .fd = fd, .events = POLLOUT },
				{ .fd = signal_pipe[0], .events = POLLIN },
			};
			socklen_t elen = sizeof(err);

			rc = poll(p, 2, CONNECT_TIMEOUT_MS);
			if (rc > 0 && (p[1].revents & POLLIN) && !(p[0].revents & POLLOUT)) {
				/* a signal: let the main loop see it, then try again */
				close(fd);
				freeaddrinfo(res);
				conn.deadline = now_ms();
				conn.attempt--;
				return -1;
			}
			if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
				break;
			if (rc == 0)
				err = ETIMEDOUT;
		} else {
			err = errno;
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (opt.is_unix)
			break;
	}
	if (res != NULL)
		freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, sizeof(why), "cannot connect to %s: %s", opt.target, strerror(err));
		conn_lost(why);
		return -1;
	}

	{
		int one = 1, flags = fcntl(fd, F_GETFL);
		struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };

		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);   /* reads use MSG_DONTWAIT */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		conn.tcp = !opt.is_unix;
		if (conn.tcp) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		}
	}
	conn.fd = fd;
	conn.host_extended = false;
	conn.reader_id = VSCARD_UNDEFINED_READER_ID;
	conn.card_on_host = false;
	conn.pending_count = 0;
	vscard_framer_init(&conn.framer, in_buf, LEGACY_MAX_PAYLOAD);
	conn.state = ST_WAIT_INIT;
	conn.deadline = now_ms() + HANDSHAKE_TIMEOUT_MS;
	debugmsg("connected; sending Init");
	{
		uint8_t buf[VSCARD_HEADER_SIZE + VSCARD_INIT_MIN_SIZE];
		size_t n = vscard_init_encode(buf, sizeof(buf), 0, VSCARD_CAP_VCCID_EXTENDED);

		if (send_raw(buf, n) != 0)
			return -1;
	}
	return 0;
}

static void on_host_init(const struct vscard_header *h, const uint8_t *payload)
{
	struct vscard_init init;

	if (vscard_init_decode(payload, h->length, &init) != VCCID_OK) {
		conn_lost("the host's Init is malformed (bad magic or length)");
		return;
	}
	if (init.version != VSCARD_VERSION)
		logmsg("warning: host speaks VSCard version %u, we speak %u", (unsigned)init.version,
		       VSCARD_VERSION);
	conn.host_extended = init.n_capabilities > 0 &&
		(init.capabilities[0] & VSCARD_CAP_VCCID_EXTENDED) != 0;
	if (conn.host_extended)
		conn.framer.max_payload = EXT_MAX_PAYLOAD;
	debugmsg("host Init: version %u, extended APDUs %s", (unsigned)init.version,
		 conn.host_extended ? "yes" : "no");
	/* A reader left over from an unclean exit would make ReaderAdd fail. */
	if (send_request(VSCARD_READER_REMOVE, 0, NULL, 0) != 0)
		return;
	if (send_request(VSCARD_READER_ADD, 0, (const uint8_t *)opt.name, strlen(opt.name)) != 0)
		return;
	conn.state = ST_ADDING;
}

static void on_host_error(const struct vscard_header *h, const uint8_t *payload)
{
	uint32_t code, what;
	char why[160];

	if (vscard_error_decode(payload, h->length, &code) != VCCID_OK) {
		conn_lost("the host sent a malformed Error message");
		return;
	}
	if (!pending_pop(&what)) {
		logmsg("warning: unsolicited Error from the host (code %u)", (unsigned)code);
		return;
	}
	debugmsg("host answered %s with code %u", vscard_type_name(what), (unsigned)code);
	switch (what) {
	case VSCARD_READER_ADD:
		if (conn.state != ST_ADDING)
			break;
		if (code == VSCARD_SUCCESS) {
			conn.reader_id = h->reader_id;
			conn.state = ST_READY;
			conn.deadline = -1;
			conn.backoff_ms = BACKOFF_START_MS;
			logmsg("handshake complete: host reader id %u, extended APDUs %s",
			       (unsigned)conn.reader_id, conn.host_extended ? "yes" : "no");
			card_to_host();
		} else if (code == VSCARD_CANNOT_ADD_MORE_READERS) {
			logmsg("the host cannot add more readers (error 2): it already has as many "
			       "as it takes (another client?); giving up");
			exit_status = 1;
			quit_requested = true;
			conn_close();
			conn.state = ST_BACKOFF;
		} else {
			snprintf(why, sizeof(why), "the host refused the reader (error %u)",
				 (unsigned)code);
			conn_lost(why);
		}
		break;
	case VSCARD_ATR:
		if (code == VSCARD_SUCCESS)
			logmsg("the host accepted the ATR");
		else if (code == VSCARD_CARD_ALREADY_INSERTED)
			logmsg("the host already has a card in the reader (error 3)");
		else
			logmsg("the host rejected the ATR (error %u)", (unsigned)code);
		if (code != VSCARD_SUCCESS && code != VSCARD_CARD_ALREADY_INSERTED)
			conn.card_on_host = false;
		break;
	case VSCARD_CARD_REMOVE:
		if (code != VSCARD_SUCCESS)
			logmsg("the host answered CardRemove with error %u", (unsigned)code);
		break;
	case VSCARD_READER_REMOVE:
		if (conn.state == ST_CLOSING)
			logmsg("the host answered ReaderRemove (code %u)", (unsigned)code);
		break;
	default:
		break;
	}
}

static void on_host_apdu(const struct vscard_header *h, const uint8_t *payload)
{
	int rlen = RESPONSE_MAX;
	VReaderStatus st;
	uint8_t err[4] = { 0, 0, 0, VSCARD_GENERAL_ERROR };

	if (h->reader_id != conn.reader_id)
		debugmsg("APDU for reader %u, ours is %u: answering anyway (one reader per "
			 "connection)", (unsigned)h->reader_id, (unsigned)conn.reader_id);
	if (conn.state != ST_READY || !conn.card_on_host || shared == NULL || !lib_card) {
		debugmsg("APDU without a card: answering with an Error");
		send_msg(VSCARD_ERROR, h->reader_id, err, sizeof(err));
		return;
	}
	memcpy(apdu_buf, payload, h->length);
	st = vreader_xfr_bytes(shared, apdu_buf, (int)h->length, out_buf + VSCARD_HEADER_SIZE,
			       &rlen);
	explicit_bzero(apdu_buf, h->length);   /* may hold a PIN */
	if (st != VREADER_OK || rlen < 0 || rlen > RESPONSE_MAX) {
		debugmsg("libcacard failed the APDU (status %d)", (int)st);
		send_msg(VSCARD_ERROR, h->reader_id, err, sizeof(err));
		return;
	}
	if (has_card_id)
		vccid_card_id_apply(card_id, out_buf + VSCARD_HEADER_SIZE, (size_t)rlen);
	vscard_header_encode(out_buf, VSCARD_APDU, h->reader_id, (uint32_t)rlen);
	send_raw(out_buf, VSCARD_HEADER_SIZE + (size_t)rlen);
	explicit_bzero(out_buf, VSCARD_HEADER_SIZE + (size_t)rlen);
}

static void on_message(const struct vscard_header *h, const uint8_t *payload)
{
	char why[128];

	log_message("<-", h, payload);
	if (conn.state == ST_WAIT_INIT && h->type != VSCARD_INIT) {
		snprintf(why, sizeof(why), "the host sent %s (type %u) before its Init",
			 vscard_type_name(h->type), (unsigned)h->type);
		conn_lost(why);
		return;
	}
	switch (h->type) {
	case VSCARD_INIT:
		if (conn.state == ST_WAIT_INIT)
			on_host_init(h, payload);
		else
			logmsg("warning: ignoring a second Init from the host");
		break;
	case VSCARD_ERROR:
		on_host_error(h, payload);
		break;
	case VSCARD_APDU:
		on_host_apdu(h, payload);
		break;
	case VSCARD_FLUSH:
		send_msg(VSCARD_FLUSH_COMPLETE, h->reader_id, NULL, 0);
		break;
	default:
		snprintf(why, sizeof(why), "the host sent an unexpected %s message (type %u)",
			 vscard_type_name(h->type), (unsigned)h->type);
		conn_lost(why);
		break;
	}
}

/* Reads what the socket has; every message is handled as it completes. */
static void conn_read(void)
{
	while (conn.fd >= 0) {
		struct vscard_header h;
		const uint8_t *payload;
		size_t want;
		uint8_t *space = vscard_framer_space(&conn.framer, &want);
		ssize_t n;
		int rc;

		if (want == 0) {
			n = 0;     /* a header-only message is complete */
		} else {
			n = recv(conn.fd, space, want, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n <= 0) {
				char why[128];

				snprintf(why, sizeof(why), "the host closed the connection%s%s",
					 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
				conn_lost(why);
				return;
			}
			if (conn.tcp) {
				int one = 1;

				setsockopt(conn.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			}
		}
		rc = vscard_framer_fill(&conn.framer, (size_t)n, &h, &payload);
		if (rc < 0) {
			char why[128];

			vscard_header_decode(in_buf, &h);
			snprintf(why, sizeof(why), "the host announced a %u-byte %s payload, over our "
				 "limit of %zu", (unsigned)h.length, vscard_type_name(h.type),
				 conn.framer.max_payload);
			conn_lost(why);
			return;
		}
		if (rc == 1) {
			on_message(&h, payload);
			explicit_bzero(in_buf + VSCARD_HEADER_SIZE, h.length);
		}
	}
}

/* ---------------------------------------------------------------- events and commands */

static void on_event(VEvent *ev)
{
	const char *name = ev->reader ? vreader_get_name(ev->reader) : "?";

	switch (ev->type) {
	case VEVENT_READER_INSERT:
		if (shared != NULL) {
			debugmsg("libcacard reader '%s' ignored: already sharing '%s'", name,
				 vreader_get_name(shared));
		} else if (opt.hardware && opt.reader_filter && !strstr(name, opt.reader_filter)) {
			logmsg("libcacard reader '%s' ignored: it does not match --reader '%s'", name,
			       opt.reader_filter);
		} else if (opt.hardware && is_local_vccid_reader(name)) {
			logmsg("libcacard reader '%s' refused: it is one of this host's vccid readers, "
			       "sharing it would loop", name);
		} else {
			shared = vreader_reference(ev->reader);
			lib_card = vreader_card_is_present(shared) == VREADER_OK;
			logmsg("sharing libcacard reader '%s'%s", name, lib_card ? " (card present)" : "");
			card_to_host();
		}
		break;
	case VEVENT_READER_REMOVE:
		if (ev->reader == shared && shared != NULL) {
			logmsg("libcacard reader '%s' went away", name);
			card_from_host();
			vreader_free(shared);
			shared = NULL;
			lib_card = false;
		}
		break;
	case VEVENT_CARD_INSERT:
		if (ev->reader == shared && shared != NULL) {
			debugmsg("libcacard: card inserted in '%s'", name);
			lib_card = true;
			user_removed = false;
			card_to_host();
		}
		break;
	case VEVENT_CARD_REMOVE:
		if (ev->reader == shared && shared != NULL) {
			debugmsg("libcacard: card removed from '%s'", name);
			card_from_host();
			lib_card = false;
		}
		break;
	case VEVENT_LAST:
	default:
		break;
	}
	vevent_delete(ev);
}

static void drain_events(void)
{
	VEvent *ev;

	while (read(event_pipe[0], &ev, sizeof(ev)) == (ssize_t)sizeof(ev))
		on_event(ev);
}

static void cmd_remove(void)
{
	user_removed = true;
	if (!conn.card_on_host) {
		logmsg("remove: no card on the host%s", conn.state == ST_READY ? "" :
		       " (not connected; the card stays out when we connect)");
		return;
	}
	card_from_host();
}

static void cmd_insert(void)
{
	user_removed = false;
	if (conn.card_on_host)
		logmsg("insert: the card is already on the host");
	else if (shared == NULL || !lib_card)
		logmsg("insert: libcacard has no card to insert");
	else if (conn.state != ST_READY)
		logmsg("insert: not connected; the card goes in when we connect");
	else
		card_to_host();
}

static void cmd_status(void)
{
	logmsg("status: %s to %s, host reader id %d, card %s on the host, libcacard reader %s%s",
	       state_name(conn.state), opt.target,
	       conn.state == ST_READY ? (int)conn.reader_id : -1,
	       conn.card_on_host ? "present" : "absent",
	       shared ? vreader_get_name(shared) : "(none)",
	       shared ? (lib_card ? " with a card" : " without a card") : "");
}

static void run_command(char *line)
{
	char *p = line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	if (*p == '\0')
		return;
	if (strcmp(p, "remove") == 0)
		cmd_remove();
	else if (strcmp(p, "insert") == 0)
		cmd_insert();
	else if (strcmp(p, "status") == 0)
		cmd_status();
	else if (strcmp(p, "exit") == 0 || strcmp(p, "quit") == 0)
		quit_requested = true;
	else
		logmsg("unknown command '%s': use remove, insert, status, exit or quit", p);
}

static bool stdin_active;
static char cmd_buf[COMMAND_LINE_MAX];
static size_t cmd_used;

static void read_commands(void)
{
	ssize_t n = read(STDIN_FILENO, cmd_buf + cmd_used, sizeof(cmd_buf) - 1 - cmd_used);
	char *nl;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		debugmsg("standard input closed: no more commands");
		stdin_active = false;
		if (cmd_used > 0) {
			cmd_buf[cmd_used] = '\0';
			cmd_used = 0;
			run_command(cmd_buf);
		}
		return;
	}
	cmd_used += (size_t)n;
	cmd_buf[cmd_used] = '\0';
	while ((nl = strchr(cmd_buf, '\n')) != NULL) {
		*nl = '\0';
		run_command(cmd_buf);
		cmd_used -= (size_t)(nl + 1 - cmd_buf);
		memmove(cmd_buf, nl + 1, cmd_used + 1);
	}
	if (cmd_used == sizeof(cmd_buf) - 1) {
		logmsg("command line too long: ignored");
		cmd_used = 0;
	}
}

static bool stdin_is_usable(void)
{
	struct stat in, null;

	if (fstat(STDIN_FILENO, &in) != 0)
		return false;
	if (S_ISCHR(in.st_mode) && stat("/dev/null", &null) == 0 && in.st_rdev == null.st_rdev)
		return false;
	return true;
}

static void drain_signals(void)
{
	unsigned char sigs[32];
	ssize_t n, i;

	while ((n = read(signal_pipe[0], sigs, sizeof(sigs))) > 0) {
		for (i = 0; i < n; i++) {
			switch (sigs[i]) {
			case SIGINT:
			case SIGTERM:
				if (!quit_requested)
					logmsg("signal %d: leaving", sigs[i]);
				quit_requested = true;
				break;
			case SIGUSR1:
				cmd_remove();
				break;
			case SIGUSR2:
				cmd_insert();
				break;
			default:
				break;
			}
		}
	}
}

/* ---------------------------------------------------------------- main loop */

/* Takes the card and the reader away from the host; the caller waits for the answers. */
static void start_goodbye(void)
{
	if (conn.state != ST_READY) {
		conn_close();
		conn.state = ST_BACKOFF;
		return;
	}
	if (conn.card_on_host) {
		conn.card_on_host = false;
		if (send_request(VSCARD_CARD_REMOVE, conn.reader_id, NULL, 0) != 0)
			return;
	}
	if (send_request(VSCARD_READER_REMOVE, conn.reader_id, NULL, 0) != 0)
		return;
	conn.state = ST_CLOSING;
	conn.deadline = now_ms() + CLOSE_WAIT_MS;
}

static int run(void)
{
	conn.state = ST_BACKOFF;
	conn.deadline = now_ms();
	for (;;) {
		struct pollfd p[4];
		int np = 0, timeout = -1, i_sock = -1, i_stdin = -1, rc;
		int64_t now;

		if (quit_requested) {
			if (conn.state == ST_CLOSING) {
				if (conn.pending_count == 0) {
					logmsg("goodbye answered; closing");
					conn_close();
					return exit_status;
				}
			} else if (conn.fd >= 0) {
				start_goodbye();
				continue;
			} else {
				return exit_status;
			}
		}

		p[np++] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = event_pipe[0], .events = POLLIN };
		if (stdin_active) {
			i_stdin = np;
			p[np++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (conn.fd >= 0) {
			i_sock = np;
			p[np++] = (struct pollfd){ .fd = conn.fd, .events = POLLIN };
		}
		if (conn.state != ST_READY && conn.deadline >= 0) {
			now = now_ms();
			timeout = conn.deadline <= now ? 0 : (int)(conn.deadline - now);
		}
		rc = poll(p, (nfds_t)np, timeout);
		if (rc < 0 && errno != EINTR) {
			logmsg("poll: %s", strerror(errno));
			return 1;
		}
		if (rc > 0) {
			if (p[0].revents & POLLIN)
				drain_signals();
			if (p[1].revents & POLLIN)
				drain_events();
			if (i_stdin >= 0 && p[i_stdin].revents)
				read_commands();
			if (i_sock >= 0 && conn.fd >= 0 && p[i_sock].revents)
				conn_read();
		}
		now = now_ms();
		if (conn.state != ST_READY && conn.deadline >= 0 && now >= conn.deadline) {
			switch (conn.state) {
			case ST_BACKOFF:
				if (!quit_requested)
					conn_open();
				break;
			case ST_WAIT_INIT:
			case ST_ADDING:
				conn_lost("the host did not complete the handshake within 10 s");
				break;
			case ST_CLOSING:
				logmsg("no answer to the goodbye within 1 s; closing");
				conn_close();
				return exit_status;
			case ST_READY:
				break;
			}
		}
		if (conn.state == ST_CLOSING && conn.fd < 0)
			return exit_status;   /* the host closed first */
	}
}

int main(int argc, char **argv)
{
	sigset_t all, old;
	struct sigaction sa;
	int rc;

	parse_args(argc, argv);
	if (make_pipe(signal_pipe) != 0 || make_pipe(event_pipe) != 0) {
		logmsg("cannot create pipes: %s", strerror(errno));
		return 1;
	}
	/* Threads started from here on (ours, NSS's) never take our signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (cacard_start() != 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	stdin_active = stdin_is_usable();
	debugmsg("commands from standard input: %s", stdin_active ? "yes" : "no");

	rc = run();
	cacard_stop();
	free(opt.database);
	return rc;
}
