/* With the archive stopped, the gateway stops taking commands before any
 * partition runs further ahead of the archive than allowed; after the
 * archive restarts it catches up, the chain verifies, commands flow again. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_LAG 200

static tl_stack_t stack;
static char site[40], study[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "backpressure");
    snprintf(stack.gateway_env[0], sizeof stack.gateway_env[0], "TRIALOG_ARCHIVE_MAX_LAG=%d",
             MAX_LAG);
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    tl_stack_start_gateway(&stack);
    tl_stack_study(&stack, "BP-1", study, site);
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

static void test_backpressure_engages_before_the_log_outruns_the_archive(void **state)
{
    (void)state;
    assert_int_equal(tl_stack_kill(&stack.audit, SIGTERM), 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 5000 && refused < 20; i++) {
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
    /* no partition ran further ahead of the archive than the threshold and
     * what can arrive between two looks (200 ms) */
    long long worst = tl_sql_int(&stack,
                                 "SELECT max(p.next_offset - COALESCE(a.next_offset, 0))"
                                 " FROM projection_offsets p LEFT JOIN projection_offsets a"
                                 " ON a.projection = 'audit' AND a.topic = p.topic"
                                 " AND a.partition = p.partition"
                                 " WHERE p.projection = 'participants'");
    assert_true(worst > MAX_LAG);
    assert_true(worst < 2 * MAX_LAG);
    tl_http_resp_t r = tl_http(&stack, "GET", "/readyz", NULL, NULL, false);
    assert_int_equal(r.status, 503);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.body, "checks"),
                                                          "archive")),
                        "lagging");
    tl_http_free(&r);

    tl_stack_start_audit(&stack);
    long long want = accepted + 2 + TL_STACK_BOOT_EVENTS;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM audit_log", want, 60000));
    assert_true(tl_wait_for(ready, &stack, NULL, 10000));
    r = enrol(99999);
    assert_int_equal(r.status, 202);
    tl_http_free(&r);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure_engages_before_the_log_outruns_the_archive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
