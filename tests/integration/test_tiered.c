/* The archive tier: once archived, the start of every partition leaves the
 * broker (DeleteRecords moves its log start, as retention would on a cluster
 * whose retention is finite); then a projection rebuilt from offset 0 reads
 * the archive and hands over to the broker, reaching exactly the state of
 * the projection that kept up. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tl_kafka.h"
#include "tl_producer.h"
#include "tl_schemas.h"
#include "tl_topics.h"

#define TOTAL 20000
#define CHUNK 5000

static tl_stack_t stack;
static char study[40], site[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "tiered");
    tl_stack_study(&stack, "TIER-1", study, site);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* Enrolments straight to the log, paced like the gateway's back-pressure:
 * each chunk waits until the archive has it. */
static void produce_enrolments(void)
{
    tl_registry_t *reg = NULL;
    tl_kafka_producer_t *kafka = NULL;
    tl_producer_t *prod = NULL;
    assert_int_equal(tl_registry_open(stack.pg, &reg), TL_OK);
    assert_int_equal(tl_kafka_producer_new(stack.brokers, 30000, &kafka), TL_OK);
    assert_int_equal(tl_producer_new(kafka, reg, &prod), TL_OK);
    for (int i = 0; i < TOTAL; i++) {
        tl_uuid_t pid;
        char code[32];
        tl_uuid_v7(&pid);
        snprintf(code, sizeof code, "T-%06d", i);
        json_t *payload = json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:[]}", "participant_id",
                                    pid.s, "study_id", study, "participant_code", code,
                                    "birth_year", 1940 + i % 50, "sex", "F", "consent_date", 20454,
                                    "baseline_date", 20454, "schedule");
        tl_event_meta_t meta = {.actor_id = "loader", .actor_role = "admin", .site_id = site,
                                .correlation_id = pid.s, .stream_version = 1};
        tl_uuid_v7(&meta.event_id);
        assert_int_equal(tl_producer_send(prod, "ParticipantEnrolled", pid.s, payload, &meta, NULL),
                         TL_OK);
        json_decref(payload);
        if ((i + 1) % CHUNK == 0) {
            assert_int_equal(tl_kafka_producer_flush(kafka, 60000), TL_OK);
            long long want = i + 1 + 2 + TL_STACK_BOOT_EVENTS;
            assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS, want, 120000));
        }
    }
    tl_producer_destroy(prod);
    tl_kafka_producer_destroy(kafka);
    tl_registry_destroy(reg);
}

static const char *const compare =
    "SELECT count(*) FROM ((SELECT id, study_id, site_id, participant_code, status, birth_year,"
    "  sex, consent_date, baseline_date, enrolled_at, updated_at, version, last_event_id"
    "  FROM participants EXCEPT SELECT id, study_id, site_id, participant_code, status,"
    "  birth_year, sex, consent_date, baseline_date, enrolled_at, updated_at, version,"
    "  last_event_id FROM live_copy)"
    " UNION ALL (SELECT id, study_id, site_id, participant_code, status, birth_year, sex,"
    "  consent_date, baseline_date, enrolled_at, updated_at, version, last_event_id"
    "  FROM live_copy EXCEPT SELECT id, study_id, site_id, participant_code, status,"
    "  birth_year, sex, consent_date, baseline_date, enrolled_at, updated_at, version,"
    "  last_event_id FROM participants)) d";

static void test_replay_from_zero_through_the_archive(void **state)
{
    (void)state;
    produce_enrolments();
    long long want = TOTAL + 0;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", want, 180000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), TOTAL);

    /* the broker lets go of what the archive has: all of the protocol
     * topic, the first half of each participant partition */
    tl_kafka_producer_t *kafka = NULL;
    assert_int_equal(tl_kafka_producer_new(stack.brokers, 10000, &kafka), TL_OK);
    const char *topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
    for (int t = 0; t < 2; t++) {
        int parts = tl_kafka_producer_partitions(kafka, topics[t], 10000);
        assert_true(parts > 0);
        for (int p = 0; p < parts; p++) {
            int64_t lo = 0, hi = 0;
            assert_int_equal(tl_kafka_producer_watermarks(kafka, topics[t], p, &lo, &hi, 10000),
                             TL_OK);
            int64_t before = t == 0 ? hi : hi / 2;
            assert_int_equal(tl_kafka_delete_records(stack.brokers, topics[t], p, before, 10000),
                             TL_OK);
            assert_int_equal(tl_kafka_producer_watermarks(kafka, topics[t], p, &lo, &hi, 10000),
                             TL_OK);
            assert_int_equal(lo, before);
        }
    }
    tl_kafka_producer_destroy(kafka);

    /* keep what the live projection has, then rebuild it from offset 0 */
    assert_int_equal(tl_stack_kill(&stack.projector, SIGTERM), 0);
    tl_sql_int(&stack, "CREATE TABLE live_copy AS SELECT * FROM participants;"
                       " CREATE TABLE live_studies AS SELECT * FROM studies; SELECT 1");
    tl_sql_int(&stack, "TRUNCATE participants, studies, sites;"
                       " DELETE FROM projection_offsets WHERE projection = 'participants';"
                       " DELETE FROM projection_rejections WHERE projection = 'participants';"
                       " SELECT 1");
    tl_stack_start_projector(&stack);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", want, 180000));
    /* the broker had lost the start of the log: the archive served it */
    assert_true(tl_stack_log_contains(&stack, "participants", "archive_handover"));
    assert_int_equal(tl_sql_int(&stack, compare), 0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), TOTAL);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"), 0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM studies s JOIN live_studies l"
                                        " USING (id, protocol_id, name, registered_at)"),
                     1);
    assert_int_equal(tl_sql_int(&stack, "SELECT sum(next_offset) FROM projection_offsets WHERE"
                                        " projection = 'participants'"
                                        " AND topic = 'trialog.participant.v1'"),
                     TOTAL);

    /* and the operator's rebuild, beside the live projection, through the
     * archive tier too */
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild participants", &out);
    if (rc || !strstr(out, "swapped in") || !strstr(out, "archive_handover")) {
        fprintf(stderr, "%s\n", out);
        fail_msg("rebuild exited %d without swapping in through the archive", rc);
    }
    free(out);
    assert_int_equal(tl_sql_int(&stack, compare), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_from_zero_through_the_archive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
