/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a fuzz corpus through LLVMFuzzerTestOneInput when no fuzzing engine is linked (make check). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { REPLAY_MAX_INPUT = 1 << 20 };

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t len;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return 1;
	}
	buf = malloc(REPLAY_MAX_INPUT);
	if (buf == NULL) {
		fclose(f);
		return 1;
	}
	len = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir_path = argc > 1 ? argv[1] : FUZZ_CORPUS;
	DIR *dir = opendir(dir_path);
	struct dirent *entry;
	int count = 0;
	int failures = 0;

	if (dir == NULL) {
		printf("1..0 # SKIP no corpus at %s\n", dir_path);
		return 77;
	}
	while ((entry = readdir(dir)) != NULL) {
		char path[4096];

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
		failures += replay_file(path);
		count++;
	}
	closedir(dir);
	/* Reaching here means no input crashed or tripped a sanitizer. */
	printf("1..1\n%s 1 - replayed %d inputs from %s\n", failures ? "not ok" : "ok", count,
	       dir_path);
	return failures ? 1 : 0;
}
