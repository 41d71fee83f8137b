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

/* One table: its rows, the test each row runs (with the row as state) and its setup. */
struct table_part {
	const void *rows;
	size_t row_size, n_rows, name_offset;
	CMUnitTestFunction row_test;
	CMFixtureFunction row_setup;
};

#define TABLE_PART(rows, row_test, row_setup) \
	((struct table_part){ (rows), sizeof((rows)[0]), sizeof(rows) / sizeof((rows)[0]), \
			      offsetof(__typeof__((rows)[0]), name), (row_test), (row_setup) })

/* TABLE_RUN(group name, row array, row test, row setup or NULL, fixed CMUnitTest array) */
#define TABLE_RUN(group, rows, row_test, row_setup, fixed) \
	table_run(group, (const struct table_part[]){ TABLE_PART(rows, row_test, row_setup) }, 1, \
		  fixed, sizeof(fixed) / sizeof((fixed)[0]))

/* Runs the rows of @p n_parts tables, then @p fixed, as one cmocka group (one TAP plan). */
static inline int table_run(const char *group, const struct table_part *parts, size_t n_parts,
			    const struct CMUnitTest *fixed, size_t n_fixed)
{
	struct CMUnitTest *tests;
	size_t n = 0, total = n_fixed, p, i;
	int failed;

	for (p = 0; p < n_parts; p++)
		total += parts[p].n_rows;
	tests = calloc(total, sizeof(*tests));
	if (tests == NULL)
		return 1;
	for (p = 0; p < n_parts; p++) {
		for (i = 0; i < parts[p].n_rows; i++, n++) {
			const char *row = (const char *)parts[p].rows + i * parts[p].row_size;

			memcpy(&tests[n].name, row + parts[p].name_offset, sizeof(tests[n].name));
			tests[n].test_func = parts[p].row_test;
			tests[n].setup_func = parts[p].row_setup;
			tests[n].initial_state = (void *)row;
		}
	}
	memcpy(tests + n, fixed, n_fixed * sizeof(*fixed));
	failed = _cmocka_run_group_tests(group, tests, total, NULL, NULL);
	free(tests);
	return failed;
}

#endif
