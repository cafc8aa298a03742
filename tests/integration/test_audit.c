/* The archive of the log: complete, exact, append-only, tamper-evident. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "harness.h"
#include "tl_codec.h"

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
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS, want, 30000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS), want);
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
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS " AND headers @>"
                                        " '[{\"name\":\"ce_specversion\",\"value\":\"1.0\"},"
                                        " {\"name\":\"content-type\",\"value\":\"application/avro\"}]'"),
                     want);
    /* the archive signs its heads within a second: a checkpoint covers them */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM audit_log WHERE topic = 'trialog.audit.v1'"
                              " AND archived_at > now() - interval '2 seconds'",
                              1, 20000));
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc)
        fail_msg("audit verify exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "audit verify: ok"));
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
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS),
                     PARTICIPANTS + 2 + TL_STACK_BOOT_EVENTS);
}

/* ---- rewrites by the database superuser, without the signing key ---- */

static tl_pg_t *su;

static void su_exec(const char *sql)
{
    if (tl_pg_exec(su, sql, 0, NULL, NULL))
        fail_msg("as superuser: %s: SQLSTATE %s", sql, tl_pg_sqlstate(su));
}

/* Recomputes one partition's chain as the archive writes it (version 2),
 * after a rewrite: what an insider with the database but not the key can
 * do to make the chain whole again. */
static void rechain(const char *topic, int partition)
{
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[] = {topic, part};
    tl_pg_res_t *res = NULL;
    assert_int_equal(
        tl_pg_exec(su,
                   "SELECT \"offset\", key, headers::text, value, event_type, event_id::text,"
                   " actor_id, actor_role, site_id::text, reason,"
                   " (extract(epoch FROM occurred_at) * 1000000)::bigint,"
                   " (extract(epoch FROM recorded_at) * 1000000)::bigint,"
                   " (extract(epoch FROM logged_at) * 1000000)::bigint"
                   " FROM audit_log WHERE topic = $1 AND partition = $2 ORDER BY \"offset\"",
                   2, params, &res),
        TL_OK);
    unsigned char prev[TL_AUDIT_HASH_LEN] = {0}, hash[TL_AUDIT_HASH_LEN];
    tl_buf_t key, value, lit;
    tl_buf_init(&key, 1 << 20);
    tl_buf_init(&value, 1 << 20);
    tl_buf_init(&lit, 1 << 20);
    for (int r = 0; r < tl_pg_nrows(res); r++) {
        tl_audit_cols_t c = {0};
        c.event_type = tl_pg_get(res, r, 4);
        snprintf(c.event_id, sizeof c.event_id, "%s", tl_pg_get(res, r, 5) ? tl_pg_get(res, r, 5) : "");
        c.actor_id = tl_pg_get(res, r, 6);
        c.actor_role = tl_pg_get(res, r, 7);
        snprintf(c.site_id, sizeof c.site_id, "%s", tl_pg_get(res, r, 8) ? tl_pg_get(res, r, 8) : "");
        c.reason = tl_pg_get(res, r, 9);
        int64_t *t[] = {&c.occurred_at_us, &c.recorded_at_us, &c.logged_at_us};
        for (int i = 0; i < 3; i++)
            *t[i] = tl_pg_get(res, r, 10 + i) ? tl_pg_get_int(res, r, 10 + i) : TL_AUDIT_NO_TIME;
        tl_buf_reset(&key);
        tl_buf_reset(&value);
        const char *k = tl_pg_get(res, r, 1), *v = tl_pg_get(res, r, 3);
        assert_int_equal(k ? tl_bytea_unhex(&key, k) : TL_OK, TL_OK);
        assert_int_equal(v ? tl_bytea_unhex(&value, v) : TL_OK, TL_OK);
        json_t *headers = json_loads(tl_pg_get(res, r, 2), 0, NULL);
        assert_int_equal(tl_audit_hash(prev, topic, partition, tl_pg_get_int(res, r, 0),
                                       k ? key.data : NULL, key.len, headers,
                                       v ? value.data : NULL, value.len, &c, hash),
                         TL_OK);
        json_decref(headers);
        char off[24], ph[80], hh[80];
        tl_buf_reset(&lit);
        tl_bytea_hex(&lit, prev, TL_AUDIT_HASH_LEN);
        snprintf(ph, sizeof ph, "%s", lit.data);
        tl_buf_reset(&lit);
        tl_bytea_hex(&lit, hash, TL_AUDIT_HASH_LEN);
        snprintf(hh, sizeof hh, "%s", lit.data);
        snprintf(off, sizeof off, "%s", tl_pg_get(res, r, 0));
        const char *up[] = {topic, part, off, ph, hh};
        assert_int_equal(tl_pg_exec(su,
                                    "UPDATE audit_log SET prev_hash = $4::bytea, hash = $5::bytea,"
                                    " hash_version = 2 WHERE topic = $1 AND partition = $2::int"
                                    " AND \"offset\" = $3::bigint",
                                    5, up, NULL),
                         TL_OK);
        memcpy(prev, hash, TL_AUDIT_HASH_LEN);
    }
    tl_buf_cleanup(&key);
    tl_buf_cleanup(&value);
    tl_buf_cleanup(&lit);
    tl_pg_res_free(res);
}

/* A partition of the participant topic with the most rows, into topic/part. */
static int busiest(void)
{
    return (int)tl_sql_int(&stack, "SELECT partition FROM audit_log"
                                   " WHERE topic = 'trialog.participant.v1'"
                                   " GROUP BY partition ORDER BY count(*) DESC LIMIT 1");
}

/* verify after a rewrite: it fails and names it. */
static void caught(const char *what, const char *needle)
{
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc != 1 || !strstr(out, needle))
        fail_msg("%s: verify exited %d without \"%s\":\n%s", what, rc, needle, out);
    printf("caught: %s\n", what);
    free(out);
    /* the archive as it was, for the next rewrite */
    su_exec("SET session_replication_role = replica; DELETE FROM audit_log;"
            " INSERT INTO audit_log SELECT * FROM pg_temp.before;"
            " SET session_replication_role = origin");
}

static void test_rewrites_are_caught(void **state)
{
    (void)state;
    const char *dsn = getenv("TRIALOG_TEST_PG_SUPER_DSN");
    assert_non_null(dsn);
    assert_int_equal(tl_pg_connect(dsn, stack.schema, "test-superuser", &su), TL_OK);
    /* the trigger refuses even the superuser, unless triggers are bypassed */
    assert_int_not_equal(tl_pg_exec(su, "UPDATE audit_log SET reason = 'x'", 0, NULL, NULL),
                         TL_OK);
    /* the last heads signed (a second at most), then nothing more is
     * archived meanwhile; the archive as it is now */
    tl_sleep_ms(2500);
    assert_int_equal(tl_stack_kill(&stack.audit, SIGTERM), 0);
    su_exec("CREATE TEMP TABLE before AS SELECT * FROM audit_log");
    int p = busiest();
    char sql[1200];
    assert_true(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE topic ="
                                   " 'trialog.participant.v1'") > 6);

    /* 1. the last rows of a partition deleted */
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica; DELETE FROM audit_log WHERE topic ="
             " 'trialog.participant.v1' AND partition = %d AND \"offset\" >= (SELECT max(\"offset\")"
             " - 1 FROM audit_log WHERE topic = 'trialog.participant.v1' AND partition = %d)",
             p, p);
    su_exec(sql);
    caught("the last rows of a partition deleted", "(a missing tail)");

    /* 2. a whole partition deleted */
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica; DELETE FROM audit_log WHERE topic ="
             " 'trialog.participant.v1' AND partition = %d",
             p);
    su_exec(sql);
    caught("a whole partition deleted", "the archive none of this partition");

    /* 3. two rows swapped, the chain recomputed */
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica;"
             " UPDATE audit_log a SET key = b.key, headers = b.headers, value = b.value,"
             "  event_id = b.event_id, occurred_at = b.occurred_at, recorded_at = b.recorded_at"
             " FROM pg_temp.before b WHERE a.topic = b.topic AND a.partition = b.partition"
             "  AND a.topic = 'trialog.participant.v1' AND a.partition = %d"
             "  AND ((a.\"offset\" = 1 AND b.\"offset\" = 2) OR (a.\"offset\" = 2 AND b.\"offset\" = 1))",
             p);
    su_exec(sql);
    rechain("trialog.participant.v1", p);
    caught("two rows swapped and the chain recomputed", "is not the broker's");
    su_exec(sql);
    rechain("trialog.participant.v1", p);
    caught("two rows swapped and the chain recomputed (checkpoint)",
           "rewritten after the checkpoint");

    /* 4. a byte flipped, the chain recomputed */
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica; UPDATE audit_log"
             " SET value = set_byte(value, length(value) - 1, get_byte(value, length(value) - 1) # 1)"
             " WHERE topic = 'trialog.participant.v1' AND partition = %d AND \"offset\" = 1",
             p);
    su_exec(sql);
    rechain("trialog.participant.v1", p);
    caught("a byte flipped and the chain recomputed", "the archive's value is not the broker's");

    /* 5-8. what the audit API shows, edited, the chain recomputed */
    const char *const edits[] = {"actor_id = 'someone-else'", "actor_role = 'coordinator'",
                                 "reason = 'a better story'",
                                 "event_type = 'org.trialog.ParticipantWithdrawn'"};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SET session_replication_role = replica; UPDATE audit_log SET %s"
                 " WHERE topic = 'trialog.participant.v1' AND partition = %d AND \"offset\" = 1",
                 edits[i], p);
        su_exec(sql);
        /* unchained: the row's hash covers the column */
        caught(edits[i], "content does not match its hash");
        su_exec(sql);
        rechain("trialog.participant.v1", p);
        caught(edits[i], "are not what its message says");
    }

    /* 9. TRUNCATE */
    su_exec("SET session_replication_role = replica; TRUNCATE audit_log");
    caught("TRUNCATE", "the archive none of this partition");

    /* as it was: verify is content again */
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc)
        fail_msg("restored archive: verify exited %d:\n%s", rc, out);
    free(out);
    tl_pg_destroy(su);
    su = NULL;
    tl_stack_start_audit(&stack);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_archived_exactly),
        cmocka_unit_test(test_application_role_cannot_change_the_archive),
        cmocka_unit_test(test_rewrites_are_caught),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
