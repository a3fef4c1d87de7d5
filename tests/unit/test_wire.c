/*
 * Unit tests for wire: the envelope survives a round trip; garbage, wrong
 * versions, empty bodies and oversized input are refused before use.
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
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
