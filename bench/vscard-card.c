/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal VSCard card client: N readers with a card each, every APDU answered in place, to measure a VSCard host's own cost. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "net/tls.h"
#include "stats.h"
#include "tcp.h"
#include "vscard-wire.h"

#define CARD_MAX_READERS 16

/* Same card as bench/floor-driver.c and vpcd-card.c: TS 3B, T=0, historical bytes 14 50. */
static const uint8_t card_atr[] = { 0x3B, 0x02, 0x14, 0x50 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vscard-card [-H HOST] -p PORT [-n READERS] [--conn-per-reader] [--extended]\n"
		"                   [-T CONNECT_TIMEOUT_MS] [--no-quickack] [-N NAME]\n"
		"                   [--tls DIR [--tls-name NAME] [--handshakes N]]\n"
		"  Connects to a VSCard host (vccid's listener, QEMU's ccid-card-passthru),\n"
		"  adds READERS readers (default 1, at most %d) on one connection, or one\n"
		"  connection each, puts a card (ATR 3B 02 14 50) in each and answers every\n"
		"  APDU with 90 00 (case 2: Le zero bytes and 90 00) until the host closes\n"
		"  the connection or SIGTERM/SIGINT. --extended announces vccid's extended\n"
		"  APDU capability (answers up to 64 KiB). TCP_NODELAY is always set;\n"
		"  TCP_QUICKACK is re-armed after every receive unless --no-quickack.\n"
		"  Prints 'ready readers=N' on stdout once every card is in.\n"
		"  --tls DIR: over TLS with the credentials of DIR in QEMU's layout (ca-cert.pem,\n"
		"  client-cert.pem, client-key.pem), the server checked against NAME (default\n"
		"  HOST). --handshakes N: only N TLS handshakes, one after the other; prints\n"
		"  their median and 90th percentile in microseconds.\n",
		CARD_MAX_READERS);
}

/* --- TLS under the messages (net/tls), one session per socket -------------------------- */

#define TLS_MAX_FD 1024
static vccid_tls *tls_of_fd[TLS_MAX_FD];
static vccid_tls_creds *tls_creds;

static int tls_send_all(int fd, const void *buf, size_t len)
{
	return vccid_tls_write_all(tls_of_fd[fd], buf, len, -1) == 0 ? 0 : -1;
}

/* As bench_recv_all: TCP_QUICKACK re-armed after each read, as the plaintext client does. */
static int tls_recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct iovec iov = { p, len };
		ssize_t n = vccid_tls_readv(tls_of_fd[fd], &iov, 1, vccid_now_ms() + 3600000);

		if (n == VCCID_ETIMEDOUT && !vsw_stop)
			continue;
		if (n <= 0)
			return -1;
		bench_quickack(fd, vsw_quickack);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const struct vsw_transport tls_transport = { tls_send_all, tls_recv_all };

/* A TLS session on @p fd, its handshake done; *us gets how long that took. */
static int tls_start(int fd, const char *name, unsigned long timeout_ms, long long *us)
{
	struct timespec a, b;
	vccid_tls *t;
	int rv;

	if (fd < 0 || fd >= TLS_MAX_FD || vccid_tls_new(tls_creds, fd, name, &t) != 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	rv = vccid_tls_handshake_until(t, vccid_now_ms() + (long long)timeout_ms);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (rv != 0) {
		fprintf(stderr, "vscard-card: TLS handshake failed: %s\n", vccid_tls_error(t));
		vccid_tls_free(t);
		return -1;
	}
	*us = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
	tls_of_fd[fd] = t;
	return 0;
}

static void tls_stop(int fd)
{
	if (fd >= 0 && fd < TLS_MAX_FD && tls_of_fd[fd] != NULL) {
		vccid_tls_free(tls_of_fd[fd]);
		tls_of_fd[fd] = NULL;
	}
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* @p n handshakes (connect, handshake, close), one after another: median and p90. */
static int handshakes(const char *host, unsigned long port, const char *name,
		      unsigned long n, unsigned long timeout_ms)
{
	long long *us = calloc(n, sizeof(*us));
	unsigned long i;

	if (us == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		int fd = vsw_connect(host, port, timeout_ms);

		if (fd < 0 || tls_start(fd, name, timeout_ms, &us[i]) != 0) {
			free(us);
			return 1;
		}
		vccid_tls_bye(tls_of_fd[fd]);
		tls_stop(fd);
		close(fd);
	}
	qsort(us, n, sizeof(*us), cmp_ll);
	printf("tls-handshakes n=%lu median_us=%lld p90_us=%lld\n", n, us[n / 2],
	       us[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1]);
	free(us);
	return 0;
}

/* Init, ReaderRemove(0), then per reader ReaderAdd + ATR; ids into @p ids. */
static int setup_conn(int fd, struct vsw_msg *m, unsigned nreaders, const char *name,
		      unsigned first, int extended, int *host_ext)
{
	uint32_t caps, id, code;
	unsigned i;

	if (vsw_init(fd, m, extended, &caps) != 0)
		return -1;
	*host_ext = (caps & VCCID_VSCARD_CAP_VCCID_EXTENDED) != 0;
	if (vsw_send(fd, m, VCCID_VSCARD_READER_REMOVE, 0, 0) != 0 || vsw_wait_error(fd, m, &id, &code) != 0)
		return -1;
	for (i = 0; i < nreaders; i++) {
		int n = snprintf((char *)VSW_PAYLOAD(m), 64, "%s%u", name, first + i);

		if (vsw_send(fd, m, VCCID_VSCARD_READER_ADD, 0, (size_t)n) != 0 ||
		    vsw_wait_error(fd, m, &id, &code) != 0)
			return -1;
		if (code != 0) {
			fprintf(stderr, "vscard-card: ReaderAdd %u refused (code %u)\n", first + i,
				(unsigned)code);
			return -1;
		}
		memcpy(VSW_PAYLOAD(m), card_atr, sizeof card_atr);
		if (vsw_send(fd, m, VCCID_VSCARD_ATR, id, sizeof card_atr) != 0 ||
		    vsw_wait_error(fd, m, &id, &code) != 0)
			return -1;
		if (code != 0) {
			fprintf(stderr, "vscard-card: ATR of reader %u refused (code %u)\n",
				(unsigned)id, (unsigned)code);
			return -1;
		}
	}
	return 0;
}

struct conn_job {
	int fd;
	int extended;         /* the host takes extended APDUs too */
	unsigned long apdus;
	struct vsw_msg *m;
};

/* One thread per connection, blocked in recv: as lean as vpcd-card (no poll per APDU). */
static void *serve(void *arg)
{
	struct conn_job *job = arg;
	size_t max = job->extended ? 65536 + 2 : 256 + 2;

	for (;;) {
		struct vccid_vscard_header h;

		if (vsw_recv(job->fd, job->m, &h) != 0)
			break;
		if (h.type == VCCID_VSCARD_APDU) {
			if (vsw_send(job->fd, job->m, VCCID_VSCARD_APDU, h.reader_id,
				     vsw_answer(job->m, h.length, max)) != 0)
				break;
			job->apdus++;
		} else if (h.type == VCCID_VSCARD_FLUSH) {
			if (vsw_send(job->fd, job->m, VCCID_VSCARD_FLUSH_COMPLETE, h.reader_id, 0) != 0)
				break;
		}
		/* Anything else (Error answers) needs no reply. */
	}
	kill(getpid(), SIGUSR1);   /* EOF or error: the main thread ends the client */
	return NULL;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *name = "bench", *tls_dir = NULL, *tls_name = NULL;
	unsigned long port = 0, timeout_ms = 10000, nreaders = 1, apdus = 0, n_handshakes = 0;
	int per_reader = 0, extended = 0, host_ext = 0, i, sig;
	struct conn_job jobs[CARD_MAX_READERS];
	pthread_t tids[CARD_MAX_READERS];
	unsigned nconn, c;
	sigset_t set;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-quickack") == 0) {
			vsw_quickack = 0;
		} else if (strcmp(argv[i], "--extended") == 0) {
			extended = 1;
		} else if (strcmp(argv[i], "--conn-per-reader") == 0) {
			per_reader = 1;
		} else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
			host = argv[++i];
		} else if (strcmp(argv[i], "-N") == 0 && i + 1 < argc) {
			name = argv[++i];
		} else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
			tls_dir = argv[++i];
		} else if (strcmp(argv[i], "--tls-name") == 0 && i + 1 < argc) {
			tls_name = argv[++i];
		} else if (strcmp(argv[i], "--handshakes") == 0 && i + 1 < argc) {
			if (stats_option_count("vscard-card", "N", argv[++i], 1, 100000,
					       &n_handshakes) != 0)
				goto bad;
		} else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
			if (stats_option_count("vscard-card", "PORT", argv[++i], 1, 65535,
					       &port) != 0)
				goto bad;
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			if (stats_option_count("vscard-card", "READERS", argv[++i], 1, CARD_MAX_READERS,
					       &nreaders) != 0)
				goto bad;
		} else if (strcmp(argv[i], "-T") == 0 && i + 1 < argc) {
			if (stats_option_count("vscard-card", "TIMEOUT_MS", argv[++i], 1, 600000,
					       &timeout_ms) != 0)
				goto bad;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			goto bad;
		}
	}
	if (port == 0 || (tls_dir == NULL && (tls_name != NULL || n_handshakes > 0)))
		goto bad;
	vsw_install_signals();
	if (tls_dir != NULL) {
		struct vccid_tls_files files = { .dir = tls_dir };
		char why[VCCID_TLS_WHY_SIZE];

		if (vccid_tls_creds_load(VCCID_TLS_CLIENT, &files, &tls_creds, why,
					 sizeof(why)) != 0) {
			fprintf(stderr, "vscard-card: %s\n", why);
			return 1;
		}
		if (tls_name == NULL)
			tls_name = host;
		if (n_handshakes > 0)
			return handshakes(host, port, tls_name, n_handshakes, timeout_ms);
		vsw_transport = &tls_transport;
	}
	nconn = per_reader ? (unsigned)nreaders : 1;
	for (c = 0; c < nconn; c++) {
		jobs[c].m = malloc(sizeof *jobs[c].m);
		jobs[c].apdus = 0;
		jobs[c].fd = jobs[c].m ? vsw_connect(host, port, timeout_ms) : -1;
		if (tls_dir != NULL && jobs[c].fd >= 0) {
			long long us;

			if (tls_start(jobs[c].fd, tls_name, timeout_ms, &us) != 0)
				return 1;
			fprintf(stderr, "vscard-card: TLS handshake in %lld us\n", us);
		}
		if (jobs[c].fd < 0 ||
		    setup_conn(jobs[c].fd, jobs[c].m, per_reader ? 1 : (unsigned)nreaders, name, c,
			       extended, &host_ext) != 0) {
			fprintf(stderr, "vscard-card: handshake on connection %u failed\n", c);
			return 1;
		}
		jobs[c].extended = extended && host_ext;
	}
	/* The threads block SIGINT/SIGTERM; the main thread takes them and closes the sockets. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (vsw_stop)
		return 0;
	for (c = 0; c < nconn; c++) {
		if (pthread_create(&tids[c], NULL, serve, &jobs[c]) != 0) {
			fprintf(stderr, "vscard-card: cannot start a thread\n");
			return 1;
		}
	}
	printf("ready readers=%lu connections=%u extended=%s\n", nreaders, nconn,
	       extended && host_ext ? "yes" : "no");
	fflush(stdout);
	/* SIGINT/SIGTERM, or SIGUSR1 from a thread whose connection ended (EOF). */
	sigwait(&set, &sig);
	for (c = 0; c < nconn; c++)
		shutdown(jobs[c].fd, SHUT_RDWR);
	for (c = 0; c < nconn; c++) {
		pthread_join(tids[c], NULL);
		tls_stop(jobs[c].fd);
		close(jobs[c].fd);
		apdus += jobs[c].apdus;
		free(jobs[c].m);
	}
	fprintf(stderr, "vscard-card: stopped after %lu APDUs\n", apdus);
	vccid_tls_creds_free(tls_creds);
	return 0;
bad:
	usage(stderr);
	return 2;
}
