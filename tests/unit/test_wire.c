/*
 * Unit tests for wire: the envelope survives a round trip; garbage, wrong
 * versions, empty bodies and oversized input are refused before use; an
 * arena decodes the same, overflows to the heap and grows to fit.
 */
#include "testutil.h"

#include "wire/wire.h"

static void test_data_envelope_round_trips(void **state)
{
    (void)state;
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Data data = COHORT__WIRE__DATA__INIT;
    uint8_t body[] = {0, 1, 2};
    data.stream = 7;
    data.seq = 42;
    data.body.data = body;
    data.body.len = sizeof body;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
    env.data = &data;
    uint8_t *buf = NULL;
    size_t len = 0;
    cohort_wire_encode(&env, &buf, &len);
    Cohort__Wire__Envelope *back = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_wire_decode(buf, len, 1024, &back, &err), 0);
    assert_int_equal(back->version, COHORT_WIRE_VERSION);
    assert_int_equal(back->body_case, COHORT__WIRE__ENVELOPE__BODY_DATA);
    assert_int_equal(back->data->stream, 7);
    assert_int_equal(back->data->seq, 42);
    assert_int_equal(back->data->body.len, 3);
    assert_memory_equal(back->data->body.data, body, 3);
    cohort_wire_free(&back);
    assert_null(back);

    /* The size limit is checked before decoding anything. */
    assert_int_equal(cohort_wire_decode(buf, len, len - 1, &back, &err), -1);
    assert_null(back);
    assert_non_null(strstr(err.text, "over the limit of"));
    free(buf);
}

/* A batch of n Data of len bytes each, encoded. Caller frees *buf. */
static void s_encode_batch(size_t n, size_t len, uint8_t **buf, size_t *buf_len)
{
    Cohort__Wire__Data *data = calloc(n, sizeof *data), **ptrs = calloc(n, sizeof *ptrs);
    uint8_t *body = malloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)i;
    for (size_t i = 0; i < n; i++) {
        cohort__wire__data__init(&data[i]);
        data[i].seq = i + 1;
        data[i].body.data = body;
        data[i].body.len = len;
        ptrs[i] = &data[i];
    }
    Cohort__Wire__Batch batch = COHORT__WIRE__BATCH__INIT;
    batch.n_data = n;
    batch.data = ptrs;
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_BATCH;
    env.batch = &batch;
    cohort_wire_encode(&env, buf, buf_len);
    free(body);
    free(ptrs);
    free(data);
}

static void s_check_batch(const Cohort__Wire__Envelope *env, size_t n, size_t len)
{
    assert_int_equal(env->body_case, COHORT__WIRE__ENVELOPE__BODY_BATCH);
    assert_int_equal(env->batch->n_data, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(env->batch->data[i]->seq, i + 1);
        assert_int_equal(env->batch->data[i]->body.len, len);
        for (size_t j = 0; j < len; j++)
            assert_int_equal(env->batch->data[i]->body.data[j], (uint8_t)j);
    }
}

static void test_arena_decodes_overflows_and_grows(void **state)
{
    (void)state;
    cohort_arena_t arena;
    cohort_arena_init(&arena, 1); /* one page */
    assert_int_equal(arena.cap, 4096);
    uint8_t *small = NULL, *big = NULL;
    size_t small_len = 0, big_len = 0;
    s_encode_batch(4, 64, &small, &small_len);
    s_encode_batch(200, 1000, &big, &big_len); /* ~200 KB decoded: overflows */
    Cohort__Wire__Envelope *env = NULL;
    cohort_err_t err;

    /* fits: nothing leaves the block */
    assert_int_equal(cohort_wire_decode_in(&arena, small, small_len, 1 << 20, &env, &err), 0);
    s_check_batch(env, 4, 64);
    assert_int_equal(arena.outstanding, 0);
    assert_true(arena.used > 0);
    cohort_wire_free_in(&arena, &env);
    assert_null(env);
    cohort_arena_reset(&arena);
    assert_int_equal(arena.used, 0);
    assert_int_equal(arena.cap, 4096);

    /* does not fit: the rest goes to the heap, freed with the envelope,
     * and the next reset grows the block so that it fits next time */
    assert_int_equal(cohort_wire_decode_in(&arena, big, big_len, 1 << 20, &env, &err), 0);
    s_check_batch(env, 200, 1000);
    assert_true(arena.outstanding > 0);
    cohort_wire_free_in(&arena, &env);
    assert_int_equal(arena.outstanding, 0);
    cohort_arena_reset(&arena);
    assert_true(arena.cap >= 200 * 1000);
    assert_true(arena.cap <= COHORT_ARENA_MAX);
    assert_int_equal(cohort_wire_decode_in(&arena, big, big_len, 1 << 20, &env, &err), 0);
    s_check_batch(env, 200, 1000);
    assert_int_equal(arena.outstanding, 0);
    cohort_wire_free_in(&arena, &env);
    cohort_arena_reset(&arena);

    /* garbage decoded into an arena leaves nothing behind */
    uint8_t junk[64];
    memset(junk, 0xff, sizeof junk);
    assert_int_equal(cohort_wire_decode_in(&arena, junk, sizeof junk, 1 << 20, &env, &err), -1);
    assert_null(env);
    assert_int_equal(arena.outstanding, 0);
    cohort_arena_reset(&arena);
    cohort_arena_fini(&arena);
    free(small);
    free(big);
}

static void test_garbage_wrong_version_and_empty_body_are_refused(void **state)
{
    (void)state;
    cohort_err_t err;
    Cohort__Wire__Envelope *env = NULL;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
    assert_int_equal(cohort_wire_decode(garbage, sizeof garbage, 1024, &env, &err), -1);
    assert_string_equal(err.text, "envelope: malformed (7 bytes)");

    Cohort__Wire__Envelope e = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Ping ping = COHORT__WIRE__PING__INIT;
    e.body_case = COHORT__WIRE__ENVELOPE__BODY_PING;
    e.ping = &ping;
    e.version = 99;
    uint8_t buf[64];
    size_t len = cohort__wire__envelope__pack(&e, buf);
    assert_int_equal(cohort_wire_decode(buf, len, 1024, &env, &err), -1);
    assert_string_equal(err.text, "envelope: unsupported version 99 (this node speaks 1)");

    Cohort__Wire__Envelope empty = COHORT__WIRE__ENVELOPE__INIT;
    empty.version = COHORT_WIRE_VERSION;
    len = cohort__wire__envelope__pack(&empty, buf);
    assert_int_equal(cohort_wire_decode(buf, len, 1024, &env, &err), -1);
    assert_string_equal(err.text, "envelope: no body");
    assert_null(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_envelope_round_trips),
        cmocka_unit_test(test_garbage_wrong_version_and_empty_body_are_refused),
        cmocka_unit_test(test_arena_decodes_overflows_and_grows),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
