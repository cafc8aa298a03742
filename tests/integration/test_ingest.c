/* Ingest from connectors end to end (issue 8, docs/CONNECTORS.md): a
 * connector registers its schema through /registry and publishes Avro to
 * trialog.ingest.oct.v1; the ingest consumer
 *   - turns a valid record into ObservationRecorded on the participant
 *     stream, with the connector as source and its event id as causation,
 *     and every fold of the stream takes the version;
 *   - gives the same event id no second effect;
 *   - sends malformed Avro, an unknown schema id, an unknown participant
 *     and a value outside the schema's bounds to trialog.ingest.oct.v1.dlq
 *     with headers saying why and where it came from;
 *   - keeps going: a valid record after them is taken;
 *   - holds what a locked study would get (study_locked) until it is sent
 *     again after the unlock (issue 26);
 *   - and what it took can be read back: the observations list, the
 *     history's changes, the audit rows a site's monitor sees. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_consumer.h"
#include "tl_avro.h"
#include "tl_kafka.h"
#include "tl_uuid.h"

#define TOPIC "trialog.ingest.oct.v1"
#define SUBJECT TOPIC "-org.example.oct.TestScan"

static tl_stack_t stack;
static char study[40], site[40], connector[80];
static uint32_t schema_id;
static tl_avro_schema_t *schema;
static tl_kafka_producer_t *kafka;

static const char *const schema_text =
    "{\"type\":\"record\",\"name\":\"TestScan\",\"namespace\":\"org.example.oct\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"protocol_id\",\"type\":\"string\"},"
    "{\"name\":\"participant_code\",\"type\":\"string\"},"
    "{\"name\":\"observed_on\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"device\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"laterality\",\"type\":\"string\"},"
    "{\"name\":\"cst_um\",\"type\":\"int\",\"trialog.min\":100,\"trialog.max\":900},"
    "{\"name\":\"signal_strength\",\"type\":\"double\"}]}";

static void publish_raw(const char *key, const void *value, size_t len)
{
    tl_kafka_pos_t pos;
    assert_int_equal(
        tl_kafka_produce_sync(kafka, TOPIC, key, strlen(key), value, len, NULL, 0, &pos), TL_OK);
}

static void publish(const char *event_id, const char *code, int cst)
{
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:f}", "event_id", event_id, "protocol_id",
                  "ING-2026", "participant_code", code, "observed_on", 20460, "device",
                  "Spectralis", "laterality", "OD", "cst_um", cst, "signal_strength", 31.5);
    unsigned char hdr[TL_FRAME_HEADER_LEN];
    tl_buf_t b;
    tl_buf_init(&b, 1 << 16);
    tl_frame_header(schema_id, hdr);
    assert_int_equal(tl_buf_append(&b, hdr, sizeof hdr), TL_OK);
    assert_int_equal(tl_avro_encode(schema, rec, &b), TL_OK);
    publish_raw(code, b.data, b.len);
    tl_buf_cleanup(&b);
    json_decref(rec);
}

static long long version_of(const char *table, const char *id_col)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT t.version FROM %s.%s t JOIN %s.participants p ON p.id = t.%s"
             " WHERE p.participant_code = 'ING-001'",
             stack.schema, table, stack.schema, id_col);
    return tl_sql_int(&stack, sql);
}

/* Waits until the ingest consumer has read n messages of the topic. */
static void wait_read(long long n)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(sum(next_offset), 0) FROM %s.projection_offsets"
             " WHERE projection = 'ingest' AND topic = '" TOPIC "'",
             stack.schema);
    if (!tl_wait_count(&stack, sql, n, 30000))
        fail_msg("the ingest consumer did not read %lld messages", n);
}

/* The dead letters, one line each: error type, field, original offset. */
static char *dead_letters(void)
{
    char cmd[1024];
    size_t len;
    snprintf(cmd, sizeof cmd,
             "kcat -C -b '%s' -t " TOPIC ".dlq -e -q -f '%%h\\n' 2>/dev/null | sort",
             stack.brokers);
    return tl_run(cmd, &len);
}

static void test_ingest(void **state)
{
    (void)state;
    char path[256];
    tl_stack_study(&stack, "ING-2026", study, site);
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    tl_stack_post(&stack, path,
                  "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                  "\"window_after_days\":0,\"required\":true}",
                  201, NULL);
    assert_int_equal(tl_stack_enrol(&stack, study, site, "ING-001", false), 201);

    /* the connector registers its schema */
    json_t *reg = json_pack("{s:s}", "schema", schema_text);
    char *body = json_dumps(reg, JSON_COMPACT);
    tl_http_resp_t r = tl_http_as(&stack, connector, "POST",
                                  "/registry/subjects/" SUBJECT "/versions", body, NULL);
    assert_int_equal(r.status, 200);
    schema_id = (uint32_t)json_integer_value(json_object_get(r.body, "id"));
    tl_http_free(&r);
    free(body);
    json_decref(reg);
    assert_int_equal(tl_avro_schema_parse(schema_text, strlen(schema_text), &schema), TL_OK);
    assert_int_equal(tl_kafka_producer_new(stack.brokers, 10000, &kafka), TL_OK);

    const char *e1 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01";
    publish(e1, "ING-001", 250);
    wait_read(1);
    assert_int_equal(version_of("participants", "id"), 2); /* enrolled, then observed */

    publish(e1, "ING-001", 250);                 /* the same event again */
    publish_raw("ING-001", "not avro", 8);       /* no frame */
    publish_raw("ING-001", "\0\0\0\x7f\x01", 5); /* an id nobody registered */
    publish("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02", "ING-404", 250);
    publish("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a03", "ING-001", 50);  /* below trialog.min */
    publish("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a04", "ING-001", 310); /* and it goes on */
    wait_read(7);
    assert_int_equal(version_of("participants", "id"), 3);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT version FROM %s.schedule_participants WHERE participant_code = 'ING-001'",
             stack.schema);
    if (!tl_wait_count(&stack, sql, 3, 10000))
        fail_msg("the schedules fold did not take the observations' versions");

    /* two observations in the log, from the connector, caused by its ids */
    snprintf(
        sql, sizeof sql,
        "SELECT count(*) FROM %s_archive.audit_log WHERE event_type = 'org.trialog.ObservationRecorded'"
        " AND actor_role = 'connector' AND actor_id = 'connector:oct'",
        stack.schema);
    assert_true(tl_wait_count(&stack, sql, 2, 10000));
    assert_int_equal(tl_sql_int(&stack, sql), 2);

    char *dlq = dead_letters();
    const char *want[] = {"trialog_error_type=malformed_avro",
                          "trialog_error_type=unknown_schema",
                          "trialog_error_type=unknown_participant",
                          "trialog_error_type=out_of_range",
                          "trialog_error_field=cst_um",
                          ("trialog_original_topic=" TOPIC),
                          "trialog_original_offset=",
                          "trialog_source=oct"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(dlq, want[i]))
            fail_msg("no dead letter with %s in:\n%s", want[i], dlq);
    long lines = 0;
    for (const char *p = dlq; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    free(dlq);

    /* the example connector: two eyes, twice; each scan is taken once (the
     * registry named as every program names it, then by the connector's
     * earlier name) */
    char cmd[2048];
    size_t len;
    snprintf(cmd, sizeof cmd,
             "cd %s && for v in TRIALOG_SCHEMA_REGISTRY_URL TRIALOG_REGISTRY_URL; do"
             " env TRIALOG_KAFKA_BROKERS='%s' $v=http://127.0.0.1:%d/registry"
             " TRIALOG_CONNECTOR_TOKEN_FILE=%s/connector.token %s/trialog-connector-oct ING-2026"
             " ING-001 || exit 1; done",
             stack.dir, stack.brokers, stack.port, stack.dir, TL_BIN_DIR);
    free(tl_run(cmd, &len));
    wait_read(11);
    assert_int_equal(version_of("participants", "id"), 5);
}

/* The version the consumer chose is taken by the time its event arrives
 * (another writer was first): the projection refuses it, and the consumer
 * produces it again at the next version. And a record whose event went out
 * before a crash (its choice still pending) is produced again identically:
 * the copy is refused and nothing changes twice. */
static void intent_id(const char *connector_event_id, tl_uuid_t *id)
{
    static const tl_uuid_t ns = {.s = TL_INGEST_EVENT_NS};
    char name[128];
    int n = snprintf(name, sizeof name, "oct/%s", connector_event_id);
    assert_int_equal(tl_uuid_v5(&ns, name, (size_t)n, id), TL_OK);
}

static void sql_exec(const char *sql)
{
    assert_int_equal(tl_pg_exec(stack.pg, sql, 0, NULL, NULL), TL_OK);
}

/* How many times the participants projection refused event id as a version
 * conflict. */
static long long conflicts(const tl_uuid_t *id)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s.projection_rejections WHERE projection = 'participants'"
             " AND reason = 'version_conflict' AND event_id = '%s'",
             stack.schema, id->s);
    return tl_sql_int(&stack, sql);
}

static void test_ingest_versions(void **state)
{
    (void)state;
    const char *e1 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01",
               *e6 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a06";
    char sql[1024];
    tl_uuid_t id;
    intent_id(e6, &id);
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.ingest_events (event_id, source, topic, partition, \"offset\","
             " participant_id, stream_version, status)"
             " SELECT '%s', 'oct', '" TOPIC "', 0, 0, id, 3, 'pending' FROM %s.participants"
             " WHERE participant_code = 'ING-001'",
             stack.schema, id.s, stack.schema);
    sql_exec(sql);
    publish(e6, "ING-001", 260);
    wait_read(12);
    assert_int_equal(version_of("participants", "id"), 6);
    snprintf(sql, sizeof sql,
             "SELECT stream_version FROM %s.ingest_events WHERE event_id = '%s'"
             " AND status = 'applied'",
             stack.schema, id.s);
    assert_int_equal(tl_sql_int(&stack, sql), 6);
    assert_int_equal(conflicts(&id), 1);

    /* the first record's choice, as if the consumer had crashed after
     * producing it */
    intent_id(e1, &id);
    snprintf(sql, sizeof sql,
             "UPDATE %s.ingest_events SET status = 'pending' WHERE event_id = '%s'"
             " AND stream_version = 2",
             stack.schema, id.s);
    sql_exec(sql);
    publish(e1, "ING-001", 250);
    wait_read(13);
    assert_int_equal(version_of("participants", "id"), 6);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.ingest_events WHERE status = 'pending'",
             stack.schema);
    assert_int_equal(tl_sql_int(&stack, sql), 0);
    assert_int_equal(conflicts(&id), 1);
}

/* The cluster is lost and a new one formatted: the archive keeps the ingest
 * topic and its dead letters like the rest of the log, so `trialog reseed`
 * gives them back at the same offsets and the ingest consumer carries on
 * from where it stopped. */
static void test_ingest_after_broker_restart(void **state)
{
    (void)state;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s_archive.audit_log WHERE topic IN ('" TOPIC "', '" TOPIC ".dlq')",
             stack.schema);
    if (!tl_wait_count(&stack, sql, 13 + 4, 20000))
        fail_msg("the archive does not hold the ingest topic and its dead letters");

    tl_stack_stop_programs(&stack);
    tl_kafka_producer_destroy(kafka);
    kafka = NULL;
    tl_stack_wipe_broker(&stack);
    tl_stack_start_broker(&stack);

    char *out = NULL;
    if (tl_stack_cli(&stack, "reseed", &out))
        fail_msg("reseed failed:\n%s", out);
    if (!strstr(out, "seeded  " TOPIC "/") || !strstr(out, "seeded  " TOPIC ".dlq/"))
        fail_msg("the ingest topics were not re-seeded:\n%s", out);
    free(out);
    tl_stack_start_projector(&stack);
    tl_stack_start_audit(&stack);
    tl_stack_start_ingest(&stack, "oct");
    tl_stack_start_gateway(&stack);

    assert_int_equal(tl_kafka_producer_new(stack.brokers, 10000, &kafka), TL_OK);
    publish("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a05", "ING-001", 280);
    wait_read(14);
    assert_int_equal(version_of("participants", "id"), 7);
    char *dlq = dead_letters();
    long lines = 0;
    for (const char *p = dlq; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    free(dlq);

    /* the audit API lists Trialog's events: the observations, not the
     * connector's records they came from */
    tl_http_resp_t r = tl_http(&stack, "GET", "/v1/audit?limit=500", NULL, NULL, true);
    assert_int_equal(r.status, 200);
    size_t i;
    json_t *item, *observed = json_object(); /* the observations' event ids */
    json_array_foreach(json_object_get(r.body, "items"), i, item)
    {
        const char *topic = json_string_value(json_object_get(item, "topic"));
        assert_non_null(topic);
        assert_null(strstr(topic, "trialog.ingest."));
        if (!strcmp(json_string_value(json_object_get(item, "type")), "ObservationRecorded"))
            json_object_set(observed, json_string_value(json_object_get(item, "event_id")),
                            json_true());
    }
    /* e1, e4, the connector's two scans, e6 and the one after the restart */
    assert_int_equal(json_object_size(observed), 6);
    json_decref(observed);
    assert_true(json_is_null(json_object_get(r.body, "next")));
    tl_http_free(&r);
}

/* The participant's id, by its code. */
static void participant_id(char out[40])
{
    char sql[256];
    tl_pg_res_t *res = NULL;
    snprintf(sql, sizeof sql,
             "SELECT id::text FROM %s.participants WHERE participant_code = 'ING-001'",
             stack.schema);
    assert_int_equal(tl_pg_exec(stack.pg, sql, 0, NULL, &res), TL_OK);
    assert_int_equal(tl_pg_nrows(res), 1);
    snprintf(out, 40, "%s", tl_pg_get(res, 0, 0));
    tl_pg_res_free(res);
}

static long count_lines(const char *s)
{
    long n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Issue 26, hole 7: the study lock holds connector ingest. A record about
 * a locked study goes to the dead letters as study_locked and changes
 * nothing; sent again after the unlock, it is taken. */
static void test_ingest_lock(void **state)
{
    (void)state;
    const char *e8 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a08";
    char path[256];
    snprintf(path, sizeof path, "/v1/studies/%s/lock", study);
    tl_stack_post(&stack, path, "{\"reason\":\"interim analysis\"}", 200, NULL);
    publish(e8, "ING-001", 300);
    wait_read(15);
    assert_int_equal(version_of("participants", "id"), 7);
    char *dlq = dead_letters();
    if (!strstr(dlq, "trialog_error_type=study_locked") || count_lines(dlq) != 5)
        fail_msg("no study_locked dead letter in:\n%s", dlq);
    free(dlq);

    snprintf(path, sizeof path, "/v1/studies/%s/unlock", study);
    tl_stack_post(&stack, path, "{\"reason\":\"interim analysis done\"}", 200, NULL);
    publish(e8, "ING-001", 300); /* the operator sends it again */
    wait_read(16);
    assert_int_equal(version_of("participants", "id"), 8);
}

/* The observations of ING-001 as token sees them, every page of limit. */
static json_t *observations(const char *token, const char *pid, int limit, long want_status)
{
    json_t *all = json_array();
    char path[256], after[32] = "";
    for (int pages = 0; pages < 20; pages++) {
        snprintf(path, sizeof path, "/v1/participants/%s/observations?limit=%d%s%s", pid, limit,
                 after[0] ? "&after=" : "", after);
        tl_http_resp_t r = tl_http_as(&stack, token, "GET", path, NULL, NULL);
        assert_int_equal(r.status, want_status);
        if (want_status != 200) {
            tl_http_free(&r);
            break;
        }
        json_array_extend(all, json_object_get(r.body, "items"));
        const json_t *next = json_object_get(r.body, "next");
        bool last = json_is_null(next);
        if (!last)
            snprintf(after, sizeof after, "%s", json_string_value(next));
        tl_http_free(&r);
        if (last)
            break;
    }
    return all;
}

/* Issue 26, hole 8: what connectors sent can be read back: a paginated,
 * site-scoped list, the history's changes, and audit rows a site's monitor
 * sees. */
static void test_ingest_read_back(void **state)
{
    (void)state;
    char pid[40], mon[80], mon_other[80], other_site[40], path[256];
    participant_id(pid);
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    tl_stack_post(&stack, path, "{\"code\":\"S2\",\"name\":\"Second site\"}", 201, other_site);
    tl_stack_token(&stack, "monitor", site, mon);
    tl_stack_token(&stack, "monitor", other_site, mon_other);

    /* e1, e4, the connector's two scans, e6, e5 and e8: in version order */
    json_t *all = observations(stack.token, pid, 3, 200);
    assert_int_equal(json_array_size(all), 7);
    const json_t *last = json_array_get(all, 6);
    assert_int_equal(json_integer_value(json_object_get(last, "version")), 8);
    assert_string_equal(json_string_value(json_object_get(last, "source")), "oct");
    assert_string_equal(json_string_value(json_object_get(last, "kind")),
                        "org.example.oct.TestScan");
    assert_string_equal(json_string_value(json_object_get(last, "observed_on")), "2026-01-07");
    assert_string_equal(json_string_value(json_object_get(last, "laterality")), "OD");
    assert_string_equal(json_string_value(json_object_get(last, "device")), "Spectralis");
    assert_string_equal(json_string_value(json_object_get(last, "connector_event_id")),
                        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a08");
    const json_t *values = json_object_get(last, "values");
    assert_int_equal(json_integer_value(json_object_get(values, "cst_um")), 300);
    assert_true(json_number_value(json_object_get(values, "signal_strength")) == 31.5);
    char event_id[40];
    snprintf(event_id, sizeof event_id, "%s",
             json_string_value(json_object_get(last, "event_id")));
    json_decref(all);
    all = observations(mon, pid, 100, 200); /* the participant's site's monitor */
    assert_int_equal(json_array_size(all), 7);
    json_decref(all);
    json_decref(observations(mon_other, pid, 100, 404)); /* another site's: as if absent */
    json_decref(observations(connector, pid, 100, 403));
    snprintf(path, sizeof path, "/v1/participants/%s/observations?after=x", pid);
    tl_http_resp_t r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 400);
    tl_http_free(&r);

    /* the history shows the values it brought */
    snprintf(path, sizeof path, "/v1/participants/%s/history?limit=500", pid);
    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 200);
    size_t i, j;
    json_t *item, *ch;
    bool found = false;
    char field[128];
    snprintf(field, sizeof field, "observations.%s.values.cst_um", event_id);
    json_array_foreach(json_object_get(r.body, "items"), i, item)
    {
        if (strcmp(json_string_value(json_object_get(item, "event_id")), event_id))
            continue;
        json_array_foreach(json_object_get(item, "changes"), j, ch)
        {
            if (!strcmp(json_string_value(json_object_get(ch, "field")), field)) {
                assert_true(json_is_null(json_object_get(ch, "before")));
                assert_int_equal(json_integer_value(json_object_get(ch, "after")), 300);
                found = true;
            }
        }
    }
    tl_http_free(&r);
    if (!found)
        fail_msg("the history has no change %s", field);

    /* the audit rows carry the participant's site: its monitor sees them,
     * another site's does not */
    r = tl_http_as(&stack, mon, "GET", "/v1/audit?type=ObservationRecorded&limit=500", NULL,
                   NULL);
    assert_int_equal(r.status, 200);
    json_t *ids = json_object(); /* refused copies are in the log too: distinct ids */
    json_array_foreach(json_object_get(r.body, "items"), i, item)
    {
        assert_string_equal(json_string_value(json_object_get(item, "site_id")), site);
        json_object_set(ids, json_string_value(json_object_get(item, "event_id")), json_true());
    }
    assert_int_equal(json_object_size(ids), 7);
    json_decref(ids);
    tl_http_free(&r);
    r = tl_http_as(&stack, mon_other, "GET", "/v1/audit?type=ObservationRecorded", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 0);
    tl_http_free(&r);
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "ingest");
    tl_stack_start_ingest(&stack, "oct");
    tl_stack_token(&stack, "connector", NULL, connector);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_kafka_producer_destroy(kafka);
    tl_avro_schema_destroy(schema);
    tl_stack_stop(&stack);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ingest),
                                       cmocka_unit_test(test_ingest_versions),
                                       cmocka_unit_test(test_ingest_after_broker_restart),
                                       cmocka_unit_test(test_ingest_lock),
                                       cmocka_unit_test(test_ingest_read_back)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
