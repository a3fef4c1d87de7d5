/*
 * testutil: the one place unit tests include cmocka from.
 *
 * cmocka.h needs <stdarg.h>, <stddef.h> and <setjmp.h> first; clang-format's
 * include sorting would otherwise reorder them and break the build. Also
 * small helpers shared by unit tests: throwaway directories.
 */
#ifndef COHORT_TESTUTIL_H
#define COHORT_TESTUTIL_H

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Creates a fresh directory under $TMPDIR (or /tmp). Caller owns the string
 * and removes the directory with test_rmdir. */
char *test_tmpdir(void);
/* rm -rf dir, then frees it and sets *dir_p to NULL. */
void test_rmdir(char **dir_p);
/* Writes text to dir/name with mode; returns the path (caller owns). */
char *test_write(const char *dir, const char *name, const char *text, unsigned mode);
/* Path of a file in the source tree (e.g. "config/node.yaml"). Caller owns. */
char *test_src_path(const char *rel);

/* Test waits and timing bounds, stretched for slow runs: COHORT_TEST_WAIT_MS
 * (tests/valgrind.sh exports 20000) is what the standard wait of
 * TEST_WAIT_MS becomes, and every other wait grows in proportion. */
#define TEST_WAIT_MS 3000
int test_ms(int ms);
/* True when waits are stretched (a run under valgrind). */
bool test_slow(void);

#endif
