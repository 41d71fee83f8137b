/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-share: a VSCard client that shares a libcacard card with a VSCard host (vccid, QEMU). Options, signals, commands, the main loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/cacard/emul.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "card.h"
#include "client.h"
#include "transport.h"

#define PROG "vccid-share"
#define DEFAULT_NAME "vccid-share"
#define EXIT_USAGE 2

#define BACKOFF_START_MS 500
#define HANDSHAKE_TIMEOUT_MS 10000
#define CLOSE_WAIT_MS 1000                 /* goodbye answers; never longer than 1 s */
#define LISTEN_PAUSE_MS 1000               /* out of descriptors: accept again after this */
#define COMMAND_LINE_MAX 256

static const char usage_text[] =
	"Usage: " PROG " [OPTION]... HOST:PORT\n"
	"       " PROG " [OPTION]... unix:PATH\n"
	"       " PROG " [OPTION]... --listen HOST:PORT|unix:PATH\n"
	"\n"
	"Shares a smart card with a VSCard host: vccid's listener inside pcscd or\n"
	"QEMU's ccid-card-passthru device. It connects to the host, or with --listen\n"
	"waits for the host to connect (QEMU with a client chardev, server=off: libvirt's\n"
	"<source mode='connect'>). The card is emulated by libcacard, either\n"
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
	"  -l, --listen ADDR      wait for hosts on ADDR (HOST:PORT, [V6]:PORT or\n"
	"                         unix:PATH) instead of connecting: one host at a time\n"
	"                         (another that connects meanwhile is refused and\n"
	"                         logged), the next may come when it leaves; the card\n"
	"                         stays. Use a loopback address or a unix socket (mode\n"
	"                         0600): VSCard has no authentication, and 0.0.0.0 or\n"
	"                         [::] is logged as a warning\n"
	"\n"
	"TLS (as QEMU's tls-creds-x509 chardevs and libvirt's tls='yes'):\n"
	"      --tls              speak TLS 1.2 or later to the host. Connecting: the\n"
	"                         host's certificate must be signed by the CA and\n"
	"                         carry the host's name; we show our client\n"
	"                         certificate if we have one. Listening: the host\n"
	"                         must show a client certificate the CA signed\n"
	"      --tls-dir DIR      credentials in QEMU's x509 folder layout: ca-cert.pem,\n"
	"                         and client-cert.pem + client-key.pem (connecting) or\n"
	"                         server-cert.pem + server-key.pem (--listen)\n"
	"      --tls-ca FILE, --tls-cert FILE, --tls-key FILE\n"
	"                         PEM files named one by one (they win over --tls-dir)\n"
	"      --tls-name NAME    connecting: the name the host's certificate must carry\n"
	"                         (default: the host in HOST:PORT; for unix:PATH only\n"
	"                         the chain is checked unless NAME is given)\n"
	"      --tls-allow SUBJ   listening: take only hosts whose certificate subject\n"
	"                         (\"CN=qemu1,O=Example\") or common name matches SUBJ\n"
	"                         (shell wildcards; repeat for more, at most 16)\n"
	"\n"
	"Reconnecting:\n"
	"      --no-reconnect     exit (status 1) when the host cannot be reached or\n"
	"                         goes away, instead of reconnecting\n"
	"      --retry-max SECS   cap of the reconnect backoff: 0.5 s, doubling up to\n"
	"                         SECS (1..3600, default 30); a completed handshake\n"
	"                         resets it\n"
	"\n"
	"Other:\n"
	"  -v, --verbose          log every message sent (->) and received (<-);\n"
	"                         twice: libcacard's debug output too\n"
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
	"  " PROG " --hardware -d sql:/etc/pki/nssdb unix:/run/vccid/vscard.sock\n"
	"  " PROG " -d sql:DB -c id,sign,enc --listen unix:/run/vccid-share/vm1.sock\n";

/* ---------------------------------------------------------------- options and logging */

struct options {
	char *database;          /* "sql:DIR", owned */
	const char *certs;
	const char *name;
	const char *reader_filter;
	bool hardware;
	bool reconnect;
	bool reconnect_given;    /* --no-reconnect or --retry-max: connecting only */
	bool listen;             /* --listen: target is where we listen */
	unsigned retry_max_ms;
	int verbose;
	struct vccid_share_target target;
	struct vccid_share_tls_opts tls;
};

static struct options opt = {
	.name = DEFAULT_NAME,
	.reconnect = true,
	.retry_max_ms = 30000,
};

/*
 * Every log line as "vccid-share: MESSAGE", as before the tool logged through
 * the core: the core's "vccid FILE:LINE:FUNC() " prefix is for pcscd's log.
 */
static void stderr_sink(enum vccid_log_level level, const char *line)
{
	const char *msg = line;

	(void)level;
	if (strncmp(line, "vccid ", 6) == 0) {
		const char *end = strstr(line, "() ");

		if (end != NULL)
			msg = end + 3;
	}
	fprintf(stderr, PROG ": %s\n", msg);
}

#define LOG_INFO(...) VCCID_LOG(VCCID_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) VCCID_LOG(VCCID_LOG_DEBUG, __VA_ARGS__)

/* Usage errors go straight to stderr: the log is not set up yet. */
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see --help)\n", stderr);
	va_end(ap);
	exit(EXIT_USAGE);
}

static void out_of_memory(void) __attribute__((noreturn));
static void out_of_memory(void)
{
	fputs(PROG ": out of memory\n", stderr);
	exit(1);
}

/* A token for libcacard's option string (emul.h says what it cannot take). */
static void check_token(const char *what, const char *s)
{
	const char *problem = vccid_cacard_emul_token_problem(s);

	if (problem != NULL)
		usage_error("%s '%s' %s", what, s, problem);
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
	if (strpbrk(dir, "\"\n\r\t") != NULL)
		usage_error("database directory '%s' must not contain '\"' or control characters", dir);
	if (stat(dir, &st) != 0)
		usage_error("database directory '%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		usage_error("database '%s' is not a directory", dir);
	len = strlen(dir) + 5;
	free(opt.database);
	opt.database = malloc(len);
	if (opt.database == NULL)
		out_of_memory();
	snprintf(opt.database, len, "sql:%s", dir);
}

static void parse_certs(const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int n = 0;

	if (copy == NULL)
		out_of_memory();
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

static const char *nonempty(const char *option, const char *arg)
{
	if (*arg == '\0')
		usage_error("%s needs a non-empty argument", option);
	return arg;
}

static unsigned parse_retry_max(const char *arg)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno || v < 1 || v > 3600)
		usage_error("--retry-max '%s': expected whole seconds from 1 to 3600", arg);
	return (unsigned)v * 1000;
}

static void check_args(int argc, char **argv)
{
	const char *why_tls;
	char why[320];

	if ((why_tls = vccid_share_tls_problem(&opt.tls, opt.listen)) != NULL)
		usage_error("%s", why_tls);
	if (opt.listen) {
		if (argc - optind != 0)
			usage_error("--listen takes the address: no HOST:PORT argument too");
		if (opt.reconnect_given)
			usage_error("--no-reconnect and --retry-max are for connecting, not --listen");
	} else {
		if (argc - optind != 1)
			usage_error("expected one HOST:PORT or unix:PATH argument, got %d",
				    argc - optind);
		if (vccid_share_target_parse(argv[optind], &opt.target, why, sizeof(why)) !=
		    VCCID_OK)
			usage_error("%s", why);
	}
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

static void parse_args(int argc, char **argv)
{
	enum {
		OPT_HARDWARE = 256, OPT_NO_RECONNECT, OPT_RETRY_MAX, OPT_TLS, OPT_TLS_DIR,
		OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_NAME, OPT_TLS_ALLOW,
	};
	static const struct option longopts[] = {
		{ "database", required_argument, NULL, 'd' },
		{ "certs", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "reader", required_argument, NULL, 'r' },
		{ "hardware", no_argument, NULL, OPT_HARDWARE },
		{ "listen", required_argument, NULL, 'l' },
		{ "tls", no_argument, NULL, OPT_TLS },
		{ "tls-dir", required_argument, NULL, OPT_TLS_DIR },
		{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "tls-name", required_argument, NULL, OPT_TLS_NAME },
		{ "tls-allow", required_argument, NULL, OPT_TLS_ALLOW },
		{ "no-reconnect", no_argument, NULL, OPT_NO_RECONNECT },
		{ "retry-max", required_argument, NULL, OPT_RETRY_MAX },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char why[320];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:c:n:r:l:vh", longopts, NULL)) != -1) {
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
		case 'l':
			if (opt.listen)
				usage_error("--listen given twice");
			if (vccid_share_target_parse(optarg, &opt.target, why, sizeof(why)) !=
			    VCCID_OK)
				usage_error("--listen %s", why);
			opt.listen = true;
			break;
		case OPT_TLS:
			opt.tls.on = true;
			break;
		case OPT_TLS_DIR:
			opt.tls.dir = nonempty("--tls-dir", optarg);
			break;
		case OPT_TLS_CA:
			opt.tls.ca = nonempty("--tls-ca", optarg);
			break;
		case OPT_TLS_CERT:
			opt.tls.cert = nonempty("--tls-cert", optarg);
			break;
		case OPT_TLS_KEY:
			opt.tls.key = nonempty("--tls-key", optarg);
			break;
		case OPT_TLS_NAME:
			opt.tls.name = nonempty("--tls-name", optarg);
			break;
		case OPT_TLS_ALLOW:
			if (opt.tls.n_allow == VCCID_SHARE_TLS_ALLOW_MAX)
				usage_error("--tls-allow given more than %d times",
					    VCCID_SHARE_TLS_ALLOW_MAX);
			opt.tls.allow[opt.tls.n_allow++] = nonempty("--tls-allow", optarg);
			break;
		case OPT_NO_RECONNECT:
			opt.reconnect = false;
			opt.reconnect_given = true;
			break;
		case OPT_RETRY_MAX:
			opt.retry_max_ms = parse_retry_max(optarg);
			opt.reconnect_given = true;
			break;
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
	check_args(argc, argv);
}

/* ---------------------------------------------------------------- time and signals */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t r = write(signal_pipe[1], &b, 1);

	(void)r;              /* a full pipe already holds a wake-up */
	errno = saved;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------- the connection's life */

static struct {
	vccid_share_client *client;
	struct vccid_share_conn sock;  /* the connection to the host, TLS or not */
	vccid_tls_creds *tls_creds;    /* --tls */
	int tls_want;                  /* handshaking: VCCID_TLS_WANT_READ or _WRITE */
	/* --listen: failed TLS handshakes, each kind rate-limited apart (a flood of plaintext
	   peers must not hide the one with an expired certificate) */
	struct vccid_net_refusals tls_refusals[VCCID_TLS_REFUSAL_KINDS];
	int64_t deadline;              /* -1: none */
	unsigned backoff_ms;
	unsigned attempt;
	/* --listen */
	int listen_fd;
	int64_t listen_resume;         /* accept again from then (0: now) */
	struct vccid_net_refusals refusals;
	char peer[VCCID_NET_PEER_MAX]; /* the host being served */
} conn = { .sock = { .fd = -1 }, .deadline = 0, .backoff_ms = BACKOFF_START_MS,
	    .listen_fd = -1 };

static bool quit_requested;
static int exit_status;

static void conn_close(void)
{
	vccid_share_conn_close(&conn.sock);
	vccid_share_client_disconnected(conn.client);
}

/* The connection is gone: back off and retry, or leave. */
static void conn_lost(const char *why)
{
	bool was_ready = vccid_share_client_state(conn.client) == VCCID_SHARE_READY;

	conn_close();
	if (quit_requested)
		return;
	if (opt.listen) {
		/* The card stays: the next host that connects gets it. */
		LOG_INFO("%s; waiting for the next host on %s", why, opt.target.text);
		conn.deadline = -1;
		return;
	}
	if (!opt.reconnect) {
		LOG_INFO("%s; not reconnecting (--no-reconnect)", why);
		exit_status = 1;
		quit_requested = true;
		return;
	}
	if (was_ready)
		conn.backoff_ms = BACKOFF_START_MS;
	LOG_INFO("%s; reconnecting in %u.%u s", why, conn.backoff_ms / 1000,
		 conn.backoff_ms % 1000 / 100);
	conn.deadline = now_ms() + conn.backoff_ms;
	conn.backoff_ms = conn.backoff_ms * 2 > opt.retry_max_ms ? opt.retry_max_ms
								  : conn.backoff_ms * 2;
}

/*
 * After a client call: a negative result ends the connection (for good when
 * the host we connected to refused us; a host that connected to us only
 * loses its connection); a handshake just completed resets the backoff.
 */
static void after_client(int rv, enum vccid_share_state before)
{
	const vccid_share_client *c = conn.client;

	if (rv != VCCID_OK && vccid_share_client_fatal(c) && !opt.listen) {
		LOG_INFO("%s", vccid_share_client_why(c));
		exit_status = 1;
		quit_requested = true;
		conn_close();
	} else if (rv != VCCID_OK) {
		conn_lost(vccid_share_client_why(c));
	} else if (before != VCCID_SHARE_READY &&
		   vccid_share_client_state(c) == VCCID_SHARE_READY) {
		conn.deadline = -1;
		conn.backoff_ms = BACKOFF_START_MS;
	}
}

static void conn_start(const char *tls_name);

static void conn_open(void)
{
	char why[320];
	int rv;

	conn.attempt++;
	LOG_INFO("connecting to %s (attempt %u)", opt.target.text, conn.attempt);
	rv = vccid_share_transport_connect(&opt.target, signal_pipe[0], &conn.sock.fd, why,
					   sizeof(why));
	if (rv == VCCID_ECANCELED) {
		/* a signal: let the main loop see it, then try again */
		conn.deadline = now_ms();
		conn.attempt--;
		return;
	}
	if (rv != VCCID_OK) {
		conn_lost(why);
		return;
	}
	conn_start(vccid_share_tls_name(&opt.tls, &opt.target));
}

/* The TLS handshake failed: drop the host (listening) or retry later (connecting). */
static void tls_refused(const char *why)
{
	if (opt.listen) {
		/* Anyone can connect: a flood of them must not flood the log. */
		enum vccid_tls_refusal kind = conn.sock.tls != NULL ? vccid_tls_refusal(conn.sock.tls)
								     : VCCID_TLS_REFUSAL_NONE;

		vccid_net_log_refusal(&conn.tls_refusals[kind], VCCID_SHARE_LISTEN_LABEL, conn.peer,
				      why);
		conn_close();
		conn.deadline = -1;
	} else {
		conn_lost(why);
	}
}

/* A TLS handshake step; once done, the VSCard handshake starts. */
static void tls_step(void)
{
	char why[VCCID_TLS_WHY_SIZE + VCCID_TLS_SUBJECT_MAX + 64], what[VCCID_TLS_SUBJECT_MAX + 96];
	int rv = vccid_share_conn_handshake(&conn.sock, why, sizeof(why));

	if (rv == VCCID_TLS_WANT_READ || rv == VCCID_TLS_WANT_WRITE) {
		conn.tls_want = rv;
		return;
	}
	if (rv != VCCID_OK) {
		tls_refused(why);
		return;
	}
	vccid_share_conn_describe(&conn.sock, what, sizeof(what));
	LOG_INFO("TLS with %s: %s", opt.listen ? conn.peer : opt.target.text, what);
	after_client(vccid_share_client_connected(conn.client), VCCID_SHARE_DISCONNECTED);
}

/* A connection to a host is up (conn.sock.fd): TLS first if asked, then the VSCard handshake. */
static void conn_start(const char *tls_name)
{
	char why[320];

	conn.sock.tcp = !opt.target.is_unix;
	conn.deadline = now_ms() + HANDSHAKE_TIMEOUT_MS;   /* for both handshakes together */
	if (conn.tls_creds == NULL) {
		after_client(vccid_share_client_connected(conn.client), VCCID_SHARE_DISCONNECTED);
		return;
	}
	if (vccid_share_conn_start_tls(&conn.sock, conn.tls_creds, tls_name, why, sizeof(why)) !=
	    VCCID_OK) {
		conn_lost(why);
		return;
	}
	tls_step();
}

/* --listen: a host connects (or is refused while another is served). */
static void conn_accept(void)
{
	char peer[VCCID_NET_PEER_MAX];
	int fd = -1;
	/* Busy from accept to close, the goodbye's wait included. */
	int rv = vccid_share_transport_accept(conn.listen_fd, conn.sock.fd >= 0, &conn.refusals, &fd,
					      peer, sizeof(peer));

	if (rv == VCCID_ENOMEM)
		conn.listen_resume = now_ms() + LISTEN_PAUSE_MS;
	if (rv != VCCID_OK)
		return;
	conn.sock.fd = fd;
	snprintf(conn.peer, sizeof(conn.peer), "%s", peer);
	LOG_INFO("host %s connected on %s", peer, opt.target.text);
	conn_start(NULL);
}

static void conn_read(void)
{
	enum vccid_share_state before = vccid_share_client_state(conn.client);
	char why[320];
	int rv = vccid_share_transport_read(&conn.sock, conn.client, why, sizeof(why));

	if (rv != VCCID_OK && !vccid_share_client_fatal(conn.client)) {
		conn_lost(why);
		return;
	}
	after_client(rv, before);
}

/* Runs a client call that may send (user commands, card events). */
#define CLIENT_DO(call) \
	do { \
		enum vccid_share_state before_ = vccid_share_client_state(conn.client); \
		after_client(call, before_); \
	} while (0)

/* ---------------------------------------------------------------- commands */

static void cmd_status(void)
{
	enum vccid_share_state state = vccid_share_client_state(conn.client);
	bool present;
	const char *reader = vccid_share_card_reader(&present);
	const char *host = !opt.listen ? opt.target.text : conn.sock.fd >= 0 ? conn.peer : "no host";

	LOG_INFO("status: %s to %s%s%s, host reader id %d, card %s on the host, libcacard reader %s%s",
		 vccid_share_state_name(state), host, opt.listen ? ", listening on " : "",
		 opt.listen ? opt.target.text : "",
		 state == VCCID_SHARE_READY ? (int)vccid_share_client_reader_id(conn.client) : -1,
		 vccid_share_client_card_on_host(conn.client) ? "present" : "absent",
		 reader != NULL ? reader : "(none)",
		 reader != NULL ? (present ? " with a card" : " without a card") : "");
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
		CLIENT_DO(vccid_share_client_remove(conn.client));
	else if (strcmp(p, "insert") == 0)
		CLIENT_DO(vccid_share_client_insert(conn.client));
	else if (strcmp(p, "status") == 0)
		cmd_status();
	else if (strcmp(p, "exit") == 0 || strcmp(p, "quit") == 0)
		quit_requested = true;
	else
		LOG_INFO("unknown command '%s': use remove, insert, status, exit or quit", p);
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
		LOG_DEBUG("standard input closed: no more commands");
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
		LOG_INFO("command line too long: ignored");
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
					LOG_INFO("signal %d: leaving", sigs[i]);
				quit_requested = true;
				break;
			case SIGUSR1:
				CLIENT_DO(vccid_share_client_remove(conn.client));
				break;
			case SIGUSR2:
				CLIENT_DO(vccid_share_client_insert(conn.client));
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
	CLIENT_DO(vccid_share_client_goodbye(conn.client));
	if (vccid_share_client_state(conn.client) == VCCID_SHARE_CLOSING)
		conn.deadline = now_ms() + CLOSE_WAIT_MS;
	else
		conn_close();
}

/* A deadline passed: connect, give up on a handshake, or on the goodbye. Returns true to exit. */
static bool on_deadline(void)
{
	switch (vccid_share_client_state(conn.client)) {
	case VCCID_SHARE_DISCONNECTED:
		if (conn.sock.handshaking)
			tls_refused("TLS handshake not done within 10 s (a plaintext peer?)");
		else if (!quit_requested && !opt.listen)
			conn_open();
		break;
	case VCCID_SHARE_WAIT_INIT:
	case VCCID_SHARE_ADDING:
		conn_lost("the host did not complete the handshake within 10 s");
		break;
	case VCCID_SHARE_CLOSING:
		LOG_INFO("no answer to the goodbye within 1 s; closing");
		conn_close();
		return true;
	case VCCID_SHARE_READY:
		break;
	}
	return false;
}

/* What to do about a requested exit: 1 leave now, 0 keep running, -1 loop again. */
static int quit_step(void)
{
	if (!quit_requested)
		return 0;
	if (vccid_share_client_state(conn.client) == VCCID_SHARE_CLOSING) {
		if (vccid_share_client_pending(conn.client) > 0)
			return 0;
		LOG_INFO("goodbye answered; closing");
		conn_close();
		return 1;
	}
	if (conn.sock.fd >= 0) {
		start_goodbye();
		return -1;
	}
	return 1;
}

/* The poll timeout: the connection's deadline, or when accepting resumes. */
static int poll_timeout(void)
{
	int64_t now = now_ms(), until = -1;

	if (vccid_share_client_state(conn.client) != VCCID_SHARE_READY && conn.deadline >= 0)
		until = conn.deadline;
	if (conn.listen_resume > now && (until < 0 || conn.listen_resume < until))
		until = conn.listen_resume;
	if (until < 0)
		return -1;
	return until <= now ? 0 : (int)(until - now);
}

static int run(void)
{
	conn.deadline = opt.listen ? -1 : now_ms();
	for (;;) {
		struct pollfd p[5];
		int np = 0, timeout, i_sock = -1, i_stdin = -1, i_listen = -1, rc;
		enum vccid_share_state state;

		rc = quit_step();
		if (rc > 0)
			return exit_status;
		if (rc < 0)
			continue;
		if (conn.sock.fd >= 0 && vccid_share_conn_pending(&conn.sock) > 0) {
			/* Inside TLS, not on the socket: poll would not see it. */
			conn_read();
			continue;
		}
		p[np++] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = vccid_share_card_event_fd(), .events = POLLIN };
		if (stdin_active) {
			i_stdin = np;
			p[np++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (conn.sock.fd >= 0) {
			short ev = conn.sock.handshaking && conn.tls_want == VCCID_TLS_WANT_WRITE
					   ? POLLOUT : POLLIN;

			i_sock = np;
			p[np++] = (struct pollfd){ .fd = conn.sock.fd, .events = ev };
		}
		if (conn.listen_fd >= 0 && now_ms() >= conn.listen_resume) {
			i_listen = np;
			p[np++] = (struct pollfd){ .fd = conn.listen_fd, .events = POLLIN };
		}
		timeout = poll_timeout();
		rc = poll(p, (nfds_t)np, timeout);
		if (rc < 0 && errno != EINTR) {
			LOG_INFO("poll: %s", strerror(errno));
			return 1;
		}
		if (rc > 0) {
			if (p[0].revents & POLLIN)
				drain_signals();
			if (p[1].revents & POLLIN)
				CLIENT_DO(vccid_share_card_drain(conn.client));
			if (i_stdin >= 0 && p[i_stdin].revents)
				read_commands();
			if (i_sock >= 0 && conn.sock.fd >= 0 && p[i_sock].revents) {
				if (conn.sock.handshaking)
					tls_step();
				else
					conn_read();
			}
			if (i_listen >= 0 && p[i_listen].revents)
				conn_accept();
		}
		state = vccid_share_client_state(conn.client);
		if (state != VCCID_SHARE_READY && conn.deadline >= 0 && now_ms() >= conn.deadline &&
		    on_deadline())
			return exit_status;
		if (vccid_share_client_state(conn.client) == VCCID_SHARE_CLOSING && conn.sock.fd < 0)
			return exit_status;   /* the host closed first */
	}
}

int main(int argc, char **argv)
{
	struct vccid_share_card_options card_opts;
	const struct vccid_share_client_io io = {
		.write = vccid_share_transport_write,
		.io = &conn.sock,
	};
	sigset_t all, old;
	char why[VCCID_TLS_WHY_SIZE];
	int rc;

	parse_args(argc, argv);
	vccid_log_set_sink(stderr_sink);
	vccid_log_set_level(opt.verbose >= 2 ? VCCID_LOG_APDU :
			    opt.verbose ? VCCID_LOG_DEBUG : VCCID_LOG_INFO);
	conn.client = vccid_share_client_new(&io, opt.name);
	if (conn.client == NULL || pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		LOG_INFO("cannot start: %s", strerror(errno));
		return 1;
	}
	/* Before the card: bad credentials or a bad address fail fast. */
	if (opt.tls.on &&
	    vccid_share_tls_load(&opt.tls, opt.listen, &conn.tls_creds, why, sizeof(why)) != VCCID_OK) {
		LOG_INFO("TLS: %s", why);
		vccid_share_client_free(conn.client);
		free(opt.database);
		return 1;
	}
	if (opt.listen) {
		if (vccid_share_transport_listen(&opt.target, &conn.listen_fd) != VCCID_OK) {
			vccid_tls_creds_free(conn.tls_creds);
			vccid_share_client_free(conn.client);
			free(opt.database);
			return 1;
		}
		LOG_INFO("listening on %s for a host (one at a time)", opt.target.text);
	}
	card_opts = (struct vccid_share_card_options){
		.database = opt.database,
		.certs = opt.certs,
		.name = opt.name,
		.hardware = opt.hardware,
		.reader_filter = opt.reader_filter,
	};
	/* Threads started from here on (ours, NSS's) never take our signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (vccid_share_card_start(&card_opts) != VCCID_OK) {
		vccid_share_card_stop();
		vccid_share_transport_unlisten(&opt.target, conn.listen_fd);
		vccid_tls_creds_free(conn.tls_creds);
		vccid_share_client_free(conn.client);
		free(opt.database);
		return 1;
	}
	install_signals();
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	stdin_active = stdin_is_usable();
	LOG_DEBUG("commands from standard input: %s", stdin_active ? "yes" : "no");

	rc = run();
	vccid_share_transport_unlisten(&opt.target, conn.listen_fd);
	vccid_share_card_stop();
	vccid_tls_creds_free(conn.tls_creds);
	vccid_share_client_free(conn.client);
	free(opt.database);
	return rc;
}
