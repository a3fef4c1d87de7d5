/*
 * cli: what cohortctl's command files share: failing with a clear message,
 * and the table that maps words to commands.
 *
 * Exit codes: 0 success, 1 the operation failed or found problems, 2 the
 * command line was wrong. Messages go to stderr as "cohortctl: CMD: text".
 */
#ifndef COHORT_CLI_CLI_H
#define COHORT_CLI_CLI_H

#include "util/err.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#define COHORT_CLI_EXIT_FAIL 1
#define COHORT_CLI_EXIT_USAGE 2

typedef int (*cohort_cli_fn)(int argc, char **argv);

typedef struct cohort_cli_cmd {
    const char *group; /* "cert" in "cert issue"; NULL for top-level words */
    const char *name;
    cohort_cli_fn run;
    const char *usage; /* arguments after the command words */
    const char *help;  /* one line */
} cohort_cli_cmd_t;

/* Prints "cohortctl: CMD: <formatted>" to stderr; returns `code`. */
int cohort_cli_fail(int code, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints the error text and returns COHORT_CLI_EXIT_FAIL. */
int cohort_cli_err(const char *cmd, const cohort_err_t *err);
/* Parses a whole number within [min, max]; on failure prints a usage error. */
int cohort_cli_int(const char *cmd, const char *opt, const char *text, long min, long max,
                   long *out);

/* Loads the CA directory DIR (ca.key + ca.crt) and checks they belong
 * together. *key and *cert: caller owns. */
int cohort_cli_load_ca(const char *dir, EVP_PKEY **key, X509 **cert, cohort_err_t *err);

/* Command tables of each file. */
extern const cohort_cli_cmd_t cohort_cli_pki_cmds[];
extern const cohort_cli_cmd_t cohort_cli_roster_cmds[];
extern const cohort_cli_cmd_t cohort_cli_node_cmds[];
extern const cohort_cli_cmd_t cohort_cli_bench_cmds[];

#endif
