/*
 * fuzz_config: the node config loader and emitter against arbitrary bytes.
 *
 * Any input may be refused, but none may crash, leak or hang. For an input
 * that is accepted, the emitted effective config must itself load, and
 * emitting that must give the same bytes: `cohortd --check-config` output is
 * promised to be a config cohortd reads back unchanged.
 */
#include "config/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cohort_config_t *cfg = NULL, *again = NULL;
    char *first = NULL, *second = NULL;
    size_t first_len = 0, second_len = 0;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_config_parse("fuzz.yaml", "/tmp", (const char *)data, size, &cfg, &err) < 0)
        goto out;
    if (cohort_config_emit(cfg, &first, &first_len, &err) < 0 ||
        cohort_config_parse("emitted.yaml", "/tmp", first, first_len, &again, &err) < 0 ||
        cohort_config_emit(again, &second, &second_len, &err) < 0) {
        fprintf(stderr, "fuzz_config: accepted config does not round-trip: %s\n%.*s\n",
                cohort_err_text(&err), (int)first_len, first ? first : "");
        abort();
    }
    if (first_len != second_len || memcmp(first, second, first_len) != 0) {
        fprintf(stderr, "fuzz_config: emission changed on reload:\n%s\n---\n%s\n", first, second);
        abort();
    }
out:
    free(first);
    free(second);
    cohort_config_destroy(&cfg);
    cohort_config_destroy(&again);
    return 0;
}
