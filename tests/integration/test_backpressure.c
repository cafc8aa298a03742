/* Back-pressure on a real broker, with the archive stopped:
 * - topics that keep everything (the default): commands are never refused
 *   for the archive's lag;
 * - an operator's cap (TRIALOG_ARCHIVE_MAX_LAG): the gateway stops taking
 *   commands before any partition runs further ahead of the archive;
 * - topics with a finite retention.bytes (a stack of its own): the same,
 *   from the topics' own settings, with no cap configured.
 * After the archive restarts it catches up, the chain verifies, commands
 * flow again. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_LAG 200
/* retention.bytes leaving room for 100 unarchived messages a partition:
 * half of it, at TL_BP_EVENT_BYTES (4096) each */
#define RETENTION_BYTES (100 * 2 * 4096)
#define RETENTION_LAG 100

static tl_stack_t stack;
static char site[40], study[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "backpressure");
    tl_stack_study(&stack, "BP-1", study, site);
    return 0;
}

static int setup_retention(void **state)
{
    (void)state;
    snprintf(stack.topics_env, sizeof stack.topics_env, "TRIALOG_KAFKA_RETENTION_BYTES=%d",
             RETENTION_BYTES);
    tl_stack_start(&stack, "bp_retention");
    tl_stack_study(&stack, "BP-2", study, site);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static tl_http_resp_t enrol(int i)
{
    char path[128], body[300];
    const char *h[] = {"Prefer: respond-async", NULL};
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"BP-%05d\",\"site_id\":\"%s\",\"consent_date\":\"2026-01-01\","
             "\"baseline_date\":\"2026-01-01\"}",
             i, site);
    return tl_http(&stack, "POST", path, body, h, true);
}

static bool ready(tl_stack_t *s, void *arg)
{
    (void)arg;
    tl_http_resp_t r = tl_http(s, "GET", "/readyz", NULL, NULL, false);
    long st = r.status;
    tl_http_free(&r);
    return st == 200;
}

/* worst lag of any participant partition against the archive */
static long long worst_lag(void)
{
    return tl_sql_int(&stack, "SELECT max(p.next_offset - COALESCE(a.next_offset, 0))"
                              " FROM projection_offsets p LEFT JOIN projection_offsets a"
                              " ON a.projection = 'audit' AND a.topic = p.topic"
                              " AND a.partition = p.partition"
                              " WHERE p.projection = 'participants'");
}

/* Enrols until 20 are refused (503 log-back-pressure, nothing else), then
 * checks that no partition ran further ahead of the archive than limit and
 * what can arrive between two looks (200 ms); the archive comes back, the
 * chain verifies, commands flow again. */
static void engages_before(long limit, int first)
{
    assert_int_equal(tl_stack_kill(&stack.audit, SIGTERM), 0);
    int accepted = 0, refused = 0;
    for (int i = first; i < first + 5000 && refused < 20; i++) {
        tl_http_resp_t r = enrol(i);
        if (r.status == 202) {
            accepted++;
        } else {
            assert_int_equal(r.status, 503);
            assert_string_equal(json_string_value(json_object_get(r.body, "type")),
                                "/problems/log-back-pressure");
            refused++;
        }
        tl_http_free(&r);
    }
    assert_int_equal(refused, 20);
    long long worst = worst_lag();
    if (worst <= limit || worst >= 2 * limit)
        fail_msg("worst lag %lld, limit %ld", worst, limit);
    tl_http_resp_t r = tl_http(&stack, "GET", "/readyz", NULL, NULL, false);
    assert_int_equal(r.status, 503);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.body, "checks"),
                                                          "archive")),
                        "lagging");
    tl_http_free(&r);

    tl_stack_start_audit(&stack);
    assert_true(tl_wait_for(ready, &stack, NULL, 60000));
    r = enrol(first + 9999);
    assert_int_equal(r.status, 202);
    tl_http_free(&r);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    free(out);
    (void)accepted;
}

/* The log topics keep everything: however far the archive trails, nothing
 * acknowledged can leave the broker, so nothing is refused. */
static void test_infinite_retention_never_refuses(void **state)
{
    (void)state;
    assert_int_equal(tl_stack_kill(&stack.audit, SIGTERM), 0);
    for (int i = 0; i < 1500; i++) {
        tl_http_resp_t r = enrol(i);
        assert_int_equal(r.status, 202);
        tl_http_free(&r);
    }
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", 1500, 60000));
    assert_true(worst_lag() > MAX_LAG);
    tl_http_resp_t r = tl_http(&stack, "GET", "/readyz", NULL, NULL, false);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
    tl_stack_start_audit(&stack);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS,
                              1500 + 2 + TL_STACK_BOOT_EVENTS, 60000));
}

static void test_operators_cap_engages(void **state)
{
    (void)state;
    snprintf(stack.gateway_env[0], sizeof stack.gateway_env[0], "TRIALOG_ARCHIVE_MAX_LAG=%d",
             MAX_LAG);
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    tl_stack_start_gateway(&stack);
    engages_before(MAX_LAG, 2000);
}

/* no cap configured: the topics' retention.bytes is the limit */
static void test_finite_retention_engages(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "topics ensure", &out), 0);
    assert_non_null(strstr(out, "retention.bytes " "819200"));
    free(out);
    engages_before(RETENTION_LAG, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_infinite_retention_never_refuses, setup, NULL),
        cmocka_unit_test_setup_teardown(test_operators_cap_engages, NULL, teardown),
        cmocka_unit_test_setup_teardown(test_finite_retention_engages, setup_retention,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
