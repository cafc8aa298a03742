/* The archive of the log: complete, exact, append-only, tamper-evident. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tl_stack_t stack;
#define PARTICIPANTS 40

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "audit");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static void load_study(void)
{
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies",
                               "{\"protocol_id\":\"AUD-1\",\"name\":\"Audit\"}", NULL, true);
    assert_int_equal(r.status, 201);
    char study[40], site[40], path[128], body[512];
    snprintf(study, sizeof study, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    r = tl_http(&stack, "POST", path, "{\"code\":\"S1\",\"name\":\"One\"}", NULL, true);
    assert_int_equal(r.status, 201);
    snprintf(site, sizeof site, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    for (int i = 0; i < PARTICIPANTS; i++) {
        snprintf(body, sizeof body,
                 "{\"participant_code\":\"AUD-%03d\",\"site_id\":\"%s\",\"consent_date\":"
                 "\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
                 i, site);
        r = tl_http(&stack, "POST", path, body, NULL, true);
        assert_int_equal(r.status, 201);
        tl_http_free(&r);
    }
}

static void test_every_message_archived_exactly(void **state)
{
    (void)state;
    load_study();
    long long want = PARTICIPANTS + 2 + TL_STACK_BOOT_EVENTS;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM audit_log", want, 30000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log"), want);
    /* metadata extracted from the events */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE event_type ="
                                        " 'org.trialog.ParticipantEnrolled' AND actor_id ="
                                        " (SELECT id::text FROM principals WHERE name = 'test-admin')"
                                        " AND actor_role = 'admin' AND site_id IS NOT NULL"
                                        " AND event_id IS NOT NULL AND occurred_at IS NOT NULL"),
                     PARTICIPANTS);
    /* exact bytes: framed value with magic byte, key = aggregate id, headers kept */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE get_byte(value, 0)"
                                        " <> 0"),
                     0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log a JOIN participants p"
                                        " ON convert_from(a.key, 'UTF8') = p.id::text"),
                     PARTICIPANTS);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE headers @>"
                                        " '[{\"name\":\"ce_specversion\",\"value\":\"1.0\"},"
                                        " {\"name\":\"content-type\",\"value\":\"application/avro\"}]'"),
                     want);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    char ok[64];
    snprintf(ok, sizeof ok, "audit chain ok: %lld rows checked", want);
    assert_non_null(strstr(out, ok));
    free(out);
}

static void test_application_role_cannot_change_the_archive(void **state)
{
    (void)state;
    const char *stmts[] = {"UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log",
                           "TRUNCATE audit_log"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_not_equal(tl_pg_exec(stack.pg, stmts[i], 0, NULL, NULL), TL_OK);
        assert_string_equal(tl_pg_sqlstate(stack.pg), "42501");
    }
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log"),
                     PARTICIPANTS + 2 + TL_STACK_BOOT_EVENTS);
}

static void test_tampering_breaks_the_chain(void **state)
{
    (void)state;
    const char *dsn = getenv("TRIALOG_TEST_PG_SUPER_DSN");
    assert_non_null(dsn);
    tl_pg_t *su = NULL;
    assert_int_equal(tl_pg_connect(dsn, stack.schema, "test-superuser", &su), TL_OK);
    /* the trigger refuses even the superuser, unless triggers are bypassed */
    assert_int_not_equal(tl_pg_exec(su, "UPDATE audit_log SET reason = 'x'", 0, NULL, NULL),
                         TL_OK);
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(su,
                                "SET session_replication_role = replica;"
                                " UPDATE audit_log SET value = set_byte(value, 20, 65)"
                                " WHERE (topic, partition, \"offset\") = (SELECT topic, partition,"
                                "  \"offset\" FROM audit_log WHERE \"offset\" = 1 ORDER BY topic,"
                                "  partition LIMIT 1)"
                                " RETURNING topic || '/' || partition || ' at offset ' || \"offset\"",
                                0, NULL, &res),
                     TL_OK);
    char where[300];
    snprintf(where, sizeof where, "BROKEN  %s:", tl_pg_get(res, 0, 0));
    tl_pg_res_free(res);
    tl_pg_destroy(su);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 1);
    if (!strstr(out, where))
        fail_msg("verify did not name %s:\n%s", where, out);
    assert_non_null(strstr(out, "changed after archiving"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_archived_exactly),
        cmocka_unit_test(test_application_role_cannot_change_the_archive),
        cmocka_unit_test(test_tampering_breaks_the_chain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
