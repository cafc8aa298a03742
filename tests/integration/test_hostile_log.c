/* Whatever lands on the log, valid or not, is archived, and a projection
 * records what it refuses and keeps going: no poison pill stops it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tl_kafka.h"
#include "tl_producer.h"
#include "forms.h"
#include "tl_schemas.h"
#include "tl_uuid.h"

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "hostile");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static void send_event(tl_producer_t *prod, const char *pid, const char *event_id,
                       long long consent, long long stream_version)
{
    json_t *payload = json_pack("{s:s, s:s, s:s, s:n, s:n, s:I, s:i, s:[]}", "participant_id", pid,
                                "study_id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                /* a code of its own: the partitions are consumed in
                                 * any order, and a shared code would make one
                                 * participant's enrolment refuse the other's */
                                "participant_code", pid + 24, "birth_year", "sex",
                                "consent_date", (json_int_t)consent, "baseline_date", 20454, "schedule");
    tl_event_meta_t meta = {.actor_id = "connector-x", .actor_role = "connector",
                            .site_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                            .correlation_id = "c", .stream_version = stream_version};
    snprintf(meta.event_id.s, sizeof meta.event_id.s, "%s", event_id);
    assert_int_equal(tl_producer_send(prod, "ParticipantEnrolled", pid, payload, &meta, NULL),
                     TL_OK);
    json_decref(payload);
}

/* A form a connector submits: its actor is a name, not a principal's uuid. */
static void send_form(tl_producer_t *prod, const char *pid, const char *form_id,
                      const char *template_name, const char *actor, long long stream_version)
{
    json_t *payload = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:{s:i}}", "participant_id", pid, "study_id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "visit_type_id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "form_id", form_id, "template_id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e", "template_name", template_name,
        "template_version", 1, "answers", "iop_right", 15);
    tl_event_meta_t meta = {.actor_id = actor, .actor_role = "connector",
                            .site_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                            .correlation_id = "c", .stream_version = stream_version};
    assert_int_equal(tl_uuid_v7(&meta.event_id), TL_OK);
    assert_int_equal(tl_producer_send(prod, "FormSubmitted", pid, payload, &meta, NULL), TL_OK);
    json_decref(payload);
}

static void test_bad_events_are_refused_and_recorded(void **state)
{
    (void)state;
    tl_registry_t *reg = NULL;
    tl_kafka_producer_t *kafka = NULL;
    tl_producer_t *prod = NULL;
    assert_int_equal(tl_registry_open(stack.pg, &reg), TL_OK);
    assert_int_equal(tl_kafka_producer_new(stack.brokers, 10000, &kafka), TL_OK);
    assert_int_equal(tl_producer_new(kafka, reg, &prod), TL_OK);
    const char *pid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a50";
    /* not framed, unknown schema id, truncated Avro */
    const unsigned char garbage[] = "not an event";
    const unsigned char unknown_id[] = {0, 0x7f, 0, 0, 1, 2, 3};
    const unsigned char truncated[] = {0, 0, 0, 0, 3, 0x48};
    assert_int_equal(tl_kafka_produce_async(kafka, "trialog.participant.v1", -1, pid, strlen(pid),
                                            garbage, sizeof garbage - 1, NULL, 0, NULL),
                     TL_OK);
    assert_int_equal(tl_kafka_produce_async(kafka, "trialog.participant.v1", -1, pid, strlen(pid),
                                            unknown_id, sizeof unknown_id, NULL, 0, NULL),
                     TL_OK);
    assert_int_equal(tl_kafka_produce_async(kafka, "trialog.participant.v1", -1, pid, strlen(pid),
                                            truncated, sizeof truncated, NULL, 0, NULL),
                     TL_OK);
    /* well-formed Avro, but: an event id that is no UUID; a date no calendar
     * has; a version from nowhere */
    send_event(prod, pid, "not-a-uuid", 20454, 1);
    send_event(prod, pid, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a51", 2147483000LL, 1);
    send_event(prod, pid, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a52", 20454, 7);
    /* a participant a connector enrols and fills a form for, once under its
     * name and once under a name too long for the form to keep: the first
     * lands with that name, the second is skipped by the forms fold alone
     * (the stream took it) and nothing wedges */
    const char *pid2 = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60";
    char long_actor[TL_ACTOR_ID_MAX + 2];
    memset(long_actor, 'a', sizeof long_actor - 1);
    long_actor[sizeof long_actor - 1] = '\0';
    send_event(prod, pid2, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61", 20454, 1);
    send_form(prod, pid2, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a62", "device_reading",
              "connector-x", 2);
    send_form(prod, pid2, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a63", "other_reading",
              long_actor, 3);
    assert_int_equal(tl_kafka_producer_flush(kafka, 10000), TL_OK);
    tl_producer_destroy(prod);
    tl_kafka_producer_destroy(kafka);
    tl_registry_destroy(reg);

    long long want = 6;
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM projection_rejections"
                              " WHERE projection = 'participants'",
                              want, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE reason = 'undecodable' AND projection = 'participants'"),
                     3);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE reason = 'invalid_event' AND projection = 'participants'"),
                     2);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE reason = 'version_conflict' AND projection = 'participants'"),
                     1);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants WHERE version = 3", 1,
                              20000));
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM form_participants WHERE version = 3",
                              1, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms WHERE submitted_by = 'connector-x'"
                                        " AND site_id = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c'"),
                     1);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), 1);
    /* the schedules projection refused exactly the same events, for the
     * same reasons (one decision for every fold of the stream) */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM projection_rejections"
                              " WHERE projection = 'schedules'",
                              want, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM (SELECT partition, \"offset\", reason"
                                        " FROM projection_rejections WHERE projection = 'schedules'"
                                        " EXCEPT SELECT partition, \"offset\", reason"
                                        " FROM projection_rejections"
                                        " WHERE projection = 'participants') d"),
                     0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM schedule_participants"), 1);
    /* the archive keeps every message, exactly */
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS,
                              want + 3 + TL_STACK_BOOT_EVENTS, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE event_type IS NULL"),
                     3);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    free(out);

    /* and the pipeline still works */
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies",
                               "{\"protocol_id\":\"AFTER-1\",\"name\":\"After\"}", NULL, true);
    assert_int_equal(r.status, 201);
    tl_http_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_events_are_refused_and_recorded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
