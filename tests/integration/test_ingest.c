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
 *   - keeps going: a valid record after them is taken. */
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
                          "trialog_original_topic=" TOPIC,
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
                                       cmocka_unit_test(test_ingest_after_broker_restart)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
