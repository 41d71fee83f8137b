/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcsc-wait: poll pcscd until it lists enough readers (and cards), so tests never sleep. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#define POLL_INTERVAL_NS (5 * 1000 * 1000) /* 5 ms */
#define MAX_READERS 64

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pcsc-wait [-n NREADERS] [-c NCARDS] [-t TIMEOUT_MS] [-p PID] [-q]\n"
		"Poll pcscd every 5 ms until it lists at least NREADERS readers (default 1)\n"
		"and at least NCARDS of them hold a card (default 0). Exit 0 when reached,\n"
		"1 on timeout (default 10000 ms) or when process PID has gone, 2 on usage errors.\n");
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_num(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out >= 0 ? 0 : -1;
}

/* Counts the readers in a multi-string and how many of them report a card. */
static int count_state(SCARDCONTEXT ctx, const char *mszReaders, int *nreaders, int *ncards)
{
	SCARD_READERSTATE rs[MAX_READERS];
	int n = 0;
	LONG rv;

	memset(rs, 0, sizeof(rs));
	for (const char *p = mszReaders; *p != '\0' && n < MAX_READERS; p += strlen(p) + 1) {
		rs[n].szReader = p;
		rs[n].dwCurrentState = SCARD_STATE_UNAWARE;
		n++;
	}
	*nreaders = n;
	*ncards = 0;
	if (n == 0)
		return 0;
	rv = SCardGetStatusChange(ctx, 0, rs, (DWORD)n);
	if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT)
		return -1;
	for (int i = 0; i < n; i++)
		if (rs[i].dwEventState & SCARD_STATE_PRESENT)
			(*ncards)++;
	return 0;
}

static void print_readers(SCARDCONTEXT ctx, const char *mszReaders)
{
	for (const char *p = mszReaders; *p != '\0'; p += strlen(p) + 1) {
		SCARD_READERSTATE rs = { .szReader = p, .dwCurrentState = SCARD_STATE_UNAWARE };

		if (SCardGetStatusChange(ctx, 0, &rs, 1) == SCARD_S_SUCCESS)
			fprintf(stderr, "pcsc-wait:   \"%s\" state 0x%lx%s\n", p,
				(unsigned long)rs.dwEventState,
				(rs.dwEventState & SCARD_STATE_PRESENT) ? " (card present)" : "");
		else
			fprintf(stderr, "pcsc-wait:   \"%s\"\n", p);
	}
}

int main(int argc, char **argv)
{
	long want_readers = 1, want_cards = 0, timeout_ms = 10000, pid = 0;
	int quiet = 0, opt;
	long long start, deadline;
	LONG last_rv = SCARD_S_SUCCESS;
	char last_list[4096] = "";
	int last_readers = -1, last_cards = 0;
	const struct timespec interval = { 0, POLL_INTERVAL_NS };

	while ((opt = getopt(argc, argv, "n:c:t:p:qh")) != -1) {
		long *dst = NULL;

		switch (opt) {
		case 'n': dst = &want_readers; break;
		case 'c': dst = &want_cards; break;
		case 't': dst = &timeout_ms; break;
		case 'p': dst = &pid; break;
		case 'q': quiet = 1; continue;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (parse_num(optarg, dst) != 0) {
			fprintf(stderr, "pcsc-wait: -%c needs a non-negative number, got '%s'\n", opt, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	start = now_ms();
	deadline = start + timeout_ms;
	for (;;) {
		SCARDCONTEXT ctx;
		LONG rv;

		if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
			fprintf(stderr, "pcsc-wait: process %ld (pcscd) has exited\n", pid);
			return 1;
		}
		rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
		if (rv == SCARD_S_SUCCESS) {
			char buf[4096];
			DWORD len = sizeof(buf);

			rv = SCardListReaders(ctx, NULL, buf, &len);
			if (rv == SCARD_S_SUCCESS) {
				int nreaders, ncards;

				if (count_state(ctx, buf, &nreaders, &ncards) == 0) {
					if (nreaders >= want_readers && ncards >= want_cards) {
						if (!quiet)
							printf("pcsc-wait: %d reader(s), %d card(s) after %lld ms\n",
							       nreaders, ncards, now_ms() - start);
						SCardReleaseContext(ctx);
						return 0;
					}
					last_readers = nreaders;
					last_cards = ncards;
					memcpy(last_list, buf, len < sizeof(last_list) ? len : sizeof(last_list));
					last_list[sizeof(last_list) - 2] = last_list[sizeof(last_list) - 1] = '\0';
				}
			} else if (rv == SCARD_E_NO_READERS_AVAILABLE) {
				last_readers = 0;
				last_cards = 0;
			}
			if (now_ms() >= deadline && last_readers > 0) {
				fprintf(stderr, "pcsc-wait: timeout after %ld ms: %d reader(s), %d card(s), "
					"wanted %ld reader(s), %ld card(s):\n",
					timeout_ms, last_readers, last_cards, want_readers, want_cards);
				print_readers(ctx, last_list);
				SCardReleaseContext(ctx);
				return 1;
			}
			SCardReleaseContext(ctx);
		}
		last_rv = rv;
		if (now_ms() >= deadline)
			break;
		nanosleep(&interval, NULL);
	}
	if (last_readers < 0)
		fprintf(stderr, "pcsc-wait: timeout after %ld ms: no answer from pcscd (%s)\n",
			timeout_ms, pcsc_stringify_error(last_rv));
	else
		fprintf(stderr, "pcsc-wait: timeout after %ld ms: %d reader(s) (%s), wanted %ld\n",
			timeout_ms, last_readers, pcsc_stringify_error(last_rv), want_readers);
	return 1;
}
