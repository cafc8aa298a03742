/* trialog rebuild: a projection replayed from offset 0 into fresh tables and
 * swapped in while the live one keeps running equals the live one, row for
 * row, and the live consumer carries on after the swap. The rebuild runs
 * several workers (TRIALOG_REBUILD_WORKERS, 2 by default); the lock that
 * keeps them apart is tested at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N 120

static tl_stack_t stack;
static char study[40], site[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "rebuild");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static long enrol(int i, bool async)
{
    char path[128], body[300];
    const char *h[] = {"Prefer: respond-async", NULL};
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"RB-%03d\",\"site_id\":\"%s\",\"birth_year\":%d,"
             "\"sex\":\"M\",\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-0%d\"}",
             i, site, 1940 + i % 40, 1 + i % 9);
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, async ? h : NULL, true);
    long st = r.status;
    tl_http_free(&r);
    return st;
}

#define SAME(a, b)                                                                               \
    "SELECT count(*) FROM ((SELECT * FROM " a " EXCEPT SELECT * FROM " b ") UNION ALL"           \
    " (SELECT * FROM " b " EXCEPT SELECT * FROM " a ")) d"

static void test_rebuild_equals_live(void **state)
{
    (void)state;
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies",
                               "{\"protocol_id\":\"RB-1\",\"name\":\"Rebuild\",\"description\":"
                               "\"with a description\"}",
                               NULL, true);
    assert_int_equal(r.status, 201);
    snprintf(study, sizeof study, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    r = tl_http(&stack, "POST", path, "{\"code\":\"S1\",\"name\":\"One\"}", NULL, true);
    assert_int_equal(r.status, 201);
    snprintf(site, sizeof site, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
    r = tl_http(&stack, "POST", "/v1/studies", "{\"protocol_id\":\"RB-2\",\"name\":\"Other\"}",
                NULL, true);
    assert_int_equal(r.status, 201);
    tl_http_free(&r);
    for (int i = 0; i < N; i++)
        assert_int_equal(enrol(i, i % 2), i % 2 ? 202 : 201);
    /* something the projection refuses, to compare rejections too */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "printf 'junk' | kcat -P -b '%s' -t trialog.participant.v1 -k 0190a1b2-c3d4-7e5f-"
             "8a9b-0c1d2e3f4a5b",
             stack.brokers);
    free(tl_run(cmd, NULL));
    long long want = N;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", want, 30000));
    /* every fold of the stream refuses the junk, each in its own time: wait
     * for the one this test compares */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM projection_rejections"
                              " WHERE projection = 'participants'",
                              1, 30000));
    tl_sql_int(&stack, "CREATE TABLE snap_participants AS SELECT * FROM participants;"
                       " CREATE TABLE snap_studies AS SELECT * FROM studies;"
                       " CREATE TABLE snap_sites AS SELECT * FROM sites;"
                       " CREATE TABLE snap_rejections AS SELECT topic, partition, \"offset\","
                       " event_id, event_type, aggregate_id, reason FROM projection_rejections"
                       " WHERE projection = 'participants'; SELECT 1");

    tl_indexes_snap(&stack, "snap_indexes");

    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild participants", &out);
    if (rc != 0 || !strstr(out, "swapped in") || !strstr(out, "2 read indexes built"))
        fail_msg("rebuild failed (%d):\n%s", rc, out);
    /* two workers, each on its own share of the partitions, in no group */
    if (!strstr(out, "\"member\":0,\"members\":2") || !strstr(out, "\"member\":1,\"members\":2"))
        fail_msg("the rebuild's workers did not split the partitions:\n%s", out);
    free(out);
    tl_indexes_same(&stack, "snap_indexes");

    assert_int_equal(tl_sql_int(&stack, SAME("participants", "snap_participants")), 0);
    assert_int_equal(tl_sql_int(&stack, SAME("studies", "snap_studies")), 0);
    assert_int_equal(tl_sql_int(&stack, SAME("sites", "snap_sites")), 0);
    assert_int_equal(tl_sql_int(&stack,
                                SAME("(SELECT topic, partition, \"offset\", event_id, event_type,"
                                     " aggregate_id, reason FROM projection_rejections WHERE"
                                     " projection = 'participants') x",
                                     "snap_rejections")),
                     0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), N);
    /* the shadow schema is gone; the live consumer goes on */
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM pg_namespace WHERE nspname = '%s_rebuild'",
             stack.schema);
    assert_int_equal(tl_sql_int(&stack, q), 0);
    assert_int_equal(enrol(N, false), 201);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), N + 1);
}

static void test_access_rebuild_equals_live(void **state)
{
    (void)state;
    char body[300], path[300], id[40], token_id[40];
    snprintf(body, sizeof body,
             "{\"name\":\"rb.coord\",\"role\":\"coordinator\",\"site_ids\":[\"%s\"]}", site);
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/principals", body, NULL, true);
    assert_int_equal(r.status, 201);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/principals/%s/tokens", id);
    for (int i = 0; i < 2; i++) {
        r = tl_http(&stack, "POST", path, "{\"label\":\"rb\"}", NULL, true);
        assert_int_equal(r.status, 201);
        snprintf(token_id, sizeof token_id, "%s", json_string_value(json_object_get(r.body, "id")));
        tl_http_free(&r);
    }
    snprintf(path, sizeof path, "/v1/principals/%s/tokens/%s/revoke", id, token_id);
    r = tl_http(&stack, "POST", path, "{\"reason\":\"rotated\"}", NULL, true);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/principals/%s", id);
    snprintf(body, sizeof body,
             "{\"role\":\"analyst\",\"study_ids\":[\"%s\"],\"reason\":\"moved\"}", study);
    r = tl_http(&stack, "PATCH", path, body, NULL, true); /* its grant names a study */
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
    tl_sql_int(&stack, "CREATE TABLE snap_principals AS SELECT * FROM principals;"
                       " CREATE TABLE snap_tokens AS SELECT * FROM access_tokens; SELECT 1");
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild access", &out);
    if (rc != 0 || !strstr(out, "swapped in"))
        fail_msg("rebuild failed (%d):\n%s", rc, out);
    free(out);
    assert_int_equal(tl_sql_int(&stack, SAME("principals", "snap_principals")), 0);
    assert_int_equal(tl_sql_int(&stack, SAME("access_tokens", "snap_tokens")), 0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM access_tokens"), 3);
    /* the admin's token still works, from the rebuilt tables */
    r = tl_http(&stack, "GET", "/v1/me", NULL, NULL, true);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
}

/* The key every participants batch locks (TL_PROJECTION_LOCK_KEY), held here
 * at session level from a connection of the test's own. */
#define LOCK_KEY "hashtext(current_schema() || ' projection ' || 'participants')"

static void lock_exec(tl_pg_t *pg, const char *sql)
{
    assert_int_equal(tl_pg_exec(pg, sql, 0, NULL, NULL), TL_OK);
}

/* A rebuild's workers fold participants side by side, but never beside a
 * study's facts: a batch of participant events takes the projection's lock
 * shared, any other batch exclusive (tl_projection_t.per_key_topic). */
static void test_batches_take_the_projection_lock(void **state)
{
    (void)state;
    tl_pg_t *holder = NULL;
    assert_int_equal(tl_pg_connect(getenv("TRIALOG_TEST_PG_DSN"), stack.schema, "lock-holder",
                                   &holder),
                     TL_OK);
    long long parts = tl_sql_int(&stack, "SELECT count(*) FROM participants");
    long long studies = tl_sql_int(&stack, "SELECT count(*) FROM studies");

    /* held exclusive (as a batch with a study's facts holds it): a batch of
     * participant events waits for it */
    lock_exec(holder, "SELECT pg_advisory_lock(" LOCK_KEY ")");
    assert_int_equal(enrol(N + 1, true), 202);
    tl_sleep_ms(1500);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), parts);
    lock_exec(holder, "SELECT pg_advisory_unlock(" LOCK_KEY ")");
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", parts + 1, 30000));

    /* held shared (as another worker's participant batch holds it): a batch
     * of participant events goes on, a study's facts wait */
    lock_exec(holder, "SELECT pg_advisory_lock_shared(" LOCK_KEY ")");
    assert_int_equal(enrol(N + 2, true), 202);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", parts + 2, 30000));
    const char *async[] = {"Prefer: respond-async", NULL};
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies",
                               "{\"protocol_id\":\"RB-3\",\"name\":\"Locked out\"}", async, true);
    assert_int_equal(r.status, 202);
    tl_http_free(&r);
    tl_sleep_ms(1500);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM studies"), studies);
    lock_exec(holder, "SELECT pg_advisory_unlock_shared(" LOCK_KEY ")");
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM studies", studies + 1, 30000));
    tl_pg_destroy(holder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebuild_equals_live),
        cmocka_unit_test(test_access_rebuild_equals_live),
        cmocka_unit_test(test_batches_take_the_projection_lock),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
