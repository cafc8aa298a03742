/* Failures of the parts: a projector killed mid-stream, the broker gone. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tl_kafka.h"
#include "tl_topics.h"

static tl_stack_t stack;
static char study[40], site[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "resilience");
    snprintf(stack.gateway_env[0], sizeof stack.gateway_env[0],
             "TRIALOG_PRODUCE_TIMEOUT_MS=1500");
    /* restart the gateway with the short produce timeout */
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    tl_stack_start_gateway(&stack);
    tl_stack_study(&stack, "RES-1", study, site);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static long enrol_async(int i)
{
    char code[32];
    snprintf(code, sizeof code, "K-%05d", i);
    return tl_stack_enrol(&stack, study, site, code, true);
}

#define KILL_TOTAL 2000

static void test_projector_sigkill_applies_each_event_once(void **state)
{
    (void)state;
    for (int i = 0; i < KILL_TOTAL; i++) {
        if (i == KILL_TOTAL / 2) {
            /* mid-stream: it has applied some and has more coming */
            assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", 1, 10000));
            tl_stack_kill(&stack.projector, SIGKILL);
        }
        assert_int_equal(enrol_async(i), 202);
    }
    tl_stack_start_projector(&stack);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", KILL_TOTAL, 60000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), KILL_TOTAL);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants WHERE version <> 1"),
                     0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(DISTINCT participant_code)"
                                        " FROM participants"),
                     KILL_TOTAL);
    /* a second application would have been refused as a version conflict */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"), 0);
    /* stored offsets account for every message exactly */
    assert_int_equal(tl_sql_int(&stack, "SELECT sum(next_offset) FROM projection_offsets WHERE projection = 'participants' AND"
                                        " topic = 'trialog.participant.v1'"),
                     KILL_TOTAL);
    assert_int_equal(tl_sql_int(&stack, "SELECT sum(next_offset) FROM projection_offsets WHERE projection = 'participants' AND"
                                        " topic = 'trialog.protocol.v1'"),
                     2);
}

/* A stored offset past the end of a partition means the broker lost what
 * this projection applied (reset without re-seed): refuse to run. */
static void test_offset_beyond_log_end_stops_the_projector(void **state)
{
    (void)state;
    assert_int_equal(tl_stack_kill(&stack.projector, SIGTERM), 0);
    tl_sql_int(&stack, "UPDATE projection_offsets SET next_offset = next_offset + 1000"
                       " WHERE topic = 'trialog.participant.v1' AND partition ="
                       " (SELECT min(partition) FROM projection_offsets"
                       "   WHERE topic = 'trialog.participant.v1') RETURNING 1");
    assert_int_not_equal(tl_stack_projector_exit(&stack, 30000), 0);
    assert_true(tl_stack_log_contains(&stack, "participants", "offset_beyond_log_end"));
    tl_sql_int(&stack, "UPDATE projection_offsets SET next_offset = next_offset - 1000"
                       " WHERE next_offset >= 1000 RETURNING 1");
    tl_stack_start_projector(&stack);
}

/* A producer that hit a fatal error produces nothing more (librdkafka): it
 * is replaced by a new one, and the next message goes through. */
static void test_fatal_producer_is_replaced(void **state)
{
    (void)state;
    tl_kafka_producer_t *k = NULL;
    tl_kafka_pos_t first = {0}, second = {0};
    const char *topic = TL_TOPIC_ACCESS ".dlq";
    assert_int_equal(tl_kafka_producer_new(stack.brokers, 10000, &k), TL_OK);
    assert_int_equal(tl_kafka_produce_sync(k, topic, "k", 1, "one", 3, NULL, 0, &first), TL_OK);
    tl_kafka_producer_test_fatal(k);
    assert_int_equal(tl_kafka_produce_sync(k, topic, "k", 1, "two", 3, NULL, 0, &second), TL_OK);
    assert_int_equal(second.partition, first.partition); /* same key, same partition */
    assert_true(second.offset > first.offset);
    assert_int_equal(tl_kafka_producer_ping(k, 5000), TL_OK);
    tl_kafka_producer_test_fatal(k);
    /* a ping sees it too, and the next produce has a new producer */
    assert_int_equal(tl_kafka_producer_ping(k, 5000), TL_ERR_UNAVAILABLE);
    assert_int_equal(tl_kafka_producer_ping(k, 5000), TL_OK);
    assert_int_equal(tl_kafka_produce_sync(k, topic, "k", 1, "three", 5, NULL, 0, &second),
                     TL_OK);
    tl_kafka_producer_destroy(k);
}

static void test_broker_down_answers_503_and_changes_nothing(void **state)
{
    (void)state;
    tl_stack_kill(&stack.broker[0], SIGKILL);
    char path[128], body[512];
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"DOWN-1\",\"site_id\":\"%s\",\"consent_date\":\"2026-01-01\","
             "\"baseline_date\":\"2026-01-02\"}",
             site);
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, NULL, true);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.ctype, "application/problem+json");
    assert_string_equal(json_string_value(json_object_get(r.body, "type")), "/problems/unavailable");
    tl_http_free(&r);
    r = tl_http(&stack, "GET", "/readyz", NULL, NULL, false);
    assert_int_equal(r.status, 503);
    tl_http_free(&r);
    tl_sleep_ms(2000);
    assert_int_equal(
        tl_sql_int(&stack, "SELECT count(*) FROM participants WHERE participant_code = 'DOWN-1'"),
        0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_projector_sigkill_applies_each_event_once),
        cmocka_unit_test(test_offset_beyond_log_end_stops_the_projector),
        cmocka_unit_test(test_fatal_producer_is_replaced),
        cmocka_unit_test(test_broker_down_answers_503_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
