/*
 * cohortctl: the admin and operator CLI. main() only finds the command in
 * the tables of the cmd_*.c files and runs it; all logic lives in the core
 * library.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cohort_cli_fail(int code, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cohortctl: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cohort_cli_err(const char *cmd, const cohort_err_t *err)
{
    return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd, "%s", cohort_err_text(err));
}

int cohort_cli_int(const char *cmd, const char *opt, const char *text, long min, long max,
                   long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max) {
        /* Callers test for < 0: returning the exit code (2) here made them go on. */
        cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "%s: must be %ld..%ld, got '%.40s'", opt, min,
                        max, text);
        return -1;
    }
    *out = v;
    return 0;
}

static const cohort_cli_cmd_t *const s_tables[] = {cohort_cli_pki_cmds, cohort_cli_roster_cmds,
                                                   cohort_cli_node_cmds, cohort_cli_bench_cmds};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: cohortctl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++)
        for (const cohort_cli_cmd_t *c = s_tables[t]; c->name; c++) {
            char words[64];
            snprintf(words, sizeof words, "%s%s%s", c->group ? c->group : "", c->group ? " " : "",
                     c->name);
            fprintf(out, "  %-16s %s\n  %-16s   %s\n", words, c->usage, "", c->help);
        }
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? COHORT_CLI_EXIT_USAGE : 0;
    }
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++)
        for (const cohort_cli_cmd_t *c = s_tables[t]; c->name; c++) {
            if (!c->group && !strcmp(argv[1], c->name))
                return c->run(argc - 1, argv + 1);
            if (c->group && !strcmp(argv[1], c->group) && argc > 2 && !strcmp(argv[2], c->name))
                return c->run(argc - 2, argv + 2);
        }
    fprintf(stderr, "cohortctl: unknown command '%s%s%s'\n\n", argv[1], argc > 2 ? " " : "",
            argc > 2 ? argv[2] : "");
    s_usage(stderr);
    return COHORT_CLI_EXIT_USAGE;
}
