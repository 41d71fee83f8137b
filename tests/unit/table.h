/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The runner of the table-driven unit tests: one cmocka test per row of a table, named by
 * the row's "name" member and run as @p row_test with the row as its state, then the
 * table's fixed tests. Include after <cmocka.h>.
 */
#ifndef VCCID_TESTS_TABLE_H
#define VCCID_TESTS_TABLE_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* TABLE_RUN(group name, row array, row test, row setup or NULL, fixed CMUnitTest array) */
#define TABLE_RUN(group, rows, row_test, row_setup, fixed) \
	table_run(group, rows, sizeof((rows)[0]), sizeof(rows) / sizeof((rows)[0]), \
		  offsetof(__typeof__((rows)[0]), name), row_test, row_setup, fixed, \
		  sizeof(fixed) / sizeof((fixed)[0]))

static inline int table_run(const char *group, const void *rows, size_t row_size, size_t n_rows,
			    size_t name_offset, CMUnitTestFunction row_test,
			    CMFixtureFunction row_setup, const struct CMUnitTest *fixed,
			    size_t n_fixed)
{
	struct CMUnitTest *tests = calloc(n_rows + n_fixed, sizeof(*tests));
	size_t i;
	int failed;

	if (tests == NULL)
		return 1;
	for (i = 0; i < n_rows; i++) {
		const char *row = (const char *)rows + i * row_size;

		memcpy(&tests[i].name, row + name_offset, sizeof(tests[i].name));
		tests[i].test_func = row_test;
		tests[i].setup_func = row_setup;
		tests[i].initial_state = (void *)row;
	}
	memcpy(tests + n_rows, fixed, n_fixed * sizeof(*fixed));
	failed = _cmocka_run_group_tests(group, tests, n_rows + n_fixed, NULL, NULL);
	free(tests);
	return failed;
}

#endif
