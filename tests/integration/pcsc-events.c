/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcsc-events: wait with SCardGetStatusChange until a reader's card goes away or arrives. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pcsc-events READER expect-removed|expect-inserted TIMEOUT_MS [-- CMD [ARG]...]\n"
		"Wait until READER is empty (expect-removed) or holds a card (expect-inserted).\n"
		"Without CMD an already reached state counts at once. With CMD, the reader must\n"
		"first be in the opposite state; CMD is then run and the time is measured from\n"
		"its start. Prints the elapsed microseconds; exit 0 if the state was reached\n"
		"within TIMEOUT_MS, 1 if not (or CMD failed), 2 on usage errors.\n");
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *state_name(DWORD s)
{
	if (s & SCARD_STATE_UNKNOWN)
		return "unknown reader";
	if (s & SCARD_STATE_UNAVAILABLE)
		return "unavailable";
	if (s & SCARD_STATE_PRESENT)
		return "present";
	if (s & SCARD_STATE_EMPTY)
		return "empty";
	return "?";
}

int main(int argc, char **argv)
{
	const char *reader;
	DWORD want;
	long timeout_ms;
	char *end;
	char **cmd = NULL;
	SCARDCONTEXT ctx;
	SCARD_READERSTATE rs;
	LONG rv;
	long long start, deadline;
	pid_t child = -1;
	int ret = 1;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 4) {
		usage(stderr);
		return 2;
	}
	reader = argv[1];
	if (strcmp(argv[2], "expect-removed") == 0)
		want = SCARD_STATE_EMPTY;
	else if (strcmp(argv[2], "expect-inserted") == 0)
		want = SCARD_STATE_PRESENT;
	else {
		usage(stderr);
		return 2;
	}
	errno = 0;
	timeout_ms = strtol(argv[3], &end, 10);
	if (errno != 0 || end == argv[3] || *end != '\0' || timeout_ms < 0) {
		fprintf(stderr, "pcsc-events: bad TIMEOUT_MS '%s'\n", argv[3]);
		return 2;
	}
	if (argc > 4) {
		if (strcmp(argv[4], "--") != 0 || argc == 5) {
			usage(stderr);
			return 2;
		}
		cmd = &argv[5];
	}

	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "pcsc-events: SCardEstablishContext: %s\n", pcsc_stringify_error(rv));
		return 1;
	}

	memset(&rs, 0, sizeof(rs));
	rs.szReader = reader;
	rs.dwCurrentState = SCARD_STATE_UNAWARE;
	rv = SCardGetStatusChange(ctx, 0, &rs, 1);
	if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
		fprintf(stderr, "pcsc-events: SCardGetStatusChange(\"%s\"): %s\n", reader,
			pcsc_stringify_error(rv));
		goto out;
	}
	if (rs.dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) {
		fprintf(stderr, "pcsc-events: reader \"%s\" is %s\n", reader, state_name(rs.dwEventState));
		goto out;
	}
	if (cmd != NULL && (rs.dwEventState & want)) {
		fprintf(stderr, "pcsc-events: \"%s\" is already %s before the command\n", reader,
			state_name(rs.dwEventState));
		goto out;
	}

	start = now_us();
	deadline = start + (long long)timeout_ms * 1000;
	if (cmd != NULL) {
		fflush(NULL);
		child = fork();
		if (child < 0) {
			perror("pcsc-events: fork");
			goto out;
		}
		if (child == 0) {
			execvp(cmd[0], cmd);
			fprintf(stderr, "pcsc-events: cannot run %s: %s\n", cmd[0], strerror(errno));
			_exit(127);
		}
	}

	while (!(rs.dwEventState & want)) {
		long long left = deadline - now_us();

		if (left <= 0) {
			fprintf(stderr, "pcsc-events: \"%s\" still %s after %ld ms\n", reader,
				state_name(rs.dwEventState), timeout_ms);
			goto out;
		}
		rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
		rv = SCardGetStatusChange(ctx, (DWORD)((left + 999) / 1000), &rs, 1);
		if (rv == SCARD_E_TIMEOUT)
			continue;
		if (rv != SCARD_S_SUCCESS) {
			fprintf(stderr, "pcsc-events: SCardGetStatusChange(\"%s\"): %s\n", reader,
				pcsc_stringify_error(rv));
			goto out;
		}
		if (rs.dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) {
			fprintf(stderr, "pcsc-events: reader \"%s\" became %s\n", reader,
				state_name(rs.dwEventState));
			goto out;
		}
	}
	printf("pcsc-events: \"%s\" %s after %lld us\n", reader, state_name(rs.dwEventState),
	       now_us() - start);
	ret = 0;

out:
	if (child > 0) {
		int status;

		/* The command's own failure fails the check too. */
		if (waitpid(child, &status, 0) == child &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			fprintf(stderr, "pcsc-events: command %s failed (status 0x%x)\n", cmd[0], status);
			ret = 1;
		}
	}
	SCardReleaseContext(ctx);
	return ret;
}
