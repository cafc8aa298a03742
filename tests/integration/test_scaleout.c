/* Scale-out (DESIGN.md §7): two gateways and two instances of each projector
 * at once, in the same consumer groups, on a real broker.
 * - enrolments through both gateways: every one answered 201 and read back
 *   through the other gateway;
 * - the same command on the same participant through both gateways at the
 *   same moment: one wins, the other answers 409, never both;
 * - one participants projector killed under load: the other takes its
 *   partitions, every event is applied exactly once;
 * - afterwards the participants and schedules projections equal a rebuild,
 *   and the archive's chain verifies. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ENROL 40 /* through each gateway */
#define PAIRS 12 /* concurrent pairs of the same command */
#define LOAD 300 /* enrolments while a projector dies */

static tl_stack_t stack, second; /* second: the other gateway */
static char study[40], site[40];
static pid_t extra[5];
static const char *const extra_names[] = {"participants", "schedules", "access", "forms", "audit"};

#define SAME(a, b)                                                                               \
    "SELECT count(*) FROM ((SELECT * FROM " a " EXCEPT SELECT * FROM " b ") UNION ALL"           \
    " (SELECT * FROM " b " EXCEPT SELECT * FROM " a ")) d"

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "scaleout");
    /* a second instance of every projector and of the archive, same groups */
    for (int i = 0; i < 5; i++) {
        char log[64];
        snprintf(log, sizeof log, "%s-2", extra_names[i]);
        extra[i] = tl_stack_start_consumer(&stack, extra_names[i], log);
    }
    second = stack;
    second.port = tl_free_port();
    second.gateway = 0;
    tl_stack_start_gateway(&second);
    tl_stack_study(&stack, "SCALE-1", study, site);
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    tl_stack_post(&stack, path,
                  "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                  "\"window_after_days\":0,\"required\":true}",
                  201, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int gw = tl_stack_kill(&second.gateway, SIGTERM);
    for (int i = 0; i < 5; i++)
        if (extra[i] && tl_stack_kill(&extra[i], SIGTERM))
            fail_msg("the second %s exited uncleanly", extra_names[i]);
    tl_stack_stop(&stack);
    if (gw)
        fail_msg("the second gateway exited %d", gw);
    return 0;
}

static long enrol_via(tl_stack_t *gw, const char *code, bool async, char *id_out)
{
    return tl_stack_enrol_id(gw, study, site, code, async, id_out);
}

static void test_enrolments_through_both_gateways(void **state)
{
    (void)state;
    for (int i = 0; i < ENROL; i++) {
        char code[32], id[40] = "", path[128];
        tl_stack_t *via = i % 2 ? &second : &stack, *other = i % 2 ? &stack : &second;
        snprintf(code, sizeof code, "SC-%04d", i);
        assert_int_equal(enrol_via(via, code, false, id), 201);
        /* read-your-writes holds through the other gateway too: the
         * projection has it before the 201 */
        snprintf(path, sizeof path, "/v1/participants/%s", id);
        tl_http_resp_t r = tl_http(other, "GET", path, NULL, NULL, true);
        assert_int_equal(r.status, 200);
        tl_http_free(&r);
    }
}

typedef struct {
    tl_stack_t *gw;
    const char *path;
    pthread_barrier_t *go;
    long status;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->go);
    tl_http_resp_t resp =
        tl_http(r->gw, "POST", r->path, "{\"actual_date\":\"2026-01-01\"}", NULL, true);
    r->status = resp.status;
    tl_http_free(&resp);
    return NULL;
}

static void test_same_command_through_both_gateways_one_wins(void **state)
{
    (void)state;
    int conflicts = 0;
    for (int i = 0; i < PAIRS; i++) {
        char code[32], id[40] = "", path[160];
        snprintf(code, sizeof code, "RACE-%03d", i);
        assert_int_equal(enrol_via(&stack, code, false, id), 201);
        snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", id);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer_t a = {&stack, path, &go, 0}, b = {&second, path, &go, 0};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        /* one 200 and one 409: never both, never neither */
        if (!((a.status == 200 && b.status == 409) || (a.status == 409 && b.status == 200)))
            fail_msg("pair %d: %ld and %ld", i, a.status, b.status);
        conflicts++;
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM participant_visits WHERE participant_id = '%s'"
                 " AND name = 'Baseline' AND state = 'completed'",
                 id);
        assert_int_equal(tl_sql_int(&stack, sql), 1);
    }
    assert_int_equal(conflicts, PAIRS);
}

static void test_a_projector_dies_the_other_takes_over(void **state)
{
    (void)state;
    long long before = tl_sql_int(&stack, "SELECT count(*) FROM participants");
    for (int i = 0; i < LOAD; i++) {
        char code[32];
        snprintf(code, sizeof code, "LOAD-%04d", i);
        if (i == LOAD / 3) /* mid-stream: half the partitions lose their reader */
            tl_stack_kill(&extra[0], SIGKILL);
        assert_int_equal(enrol_via(i % 2 ? &second : &stack, code, true, NULL), 202);
    }
    assert_true(
        tl_wait_count(&stack, "SELECT count(*) FROM participants", before + LOAD, 60000));
    assert_true(tl_stack_log_contains(&stack, "participants", "partitions_assigned"));
    /* applied exactly once: no version conflicts, offsets account for every
     * event of the participant topic */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE projection = 'participants'"
                                        " AND reason <> 'version_conflict'"),
                     0);
    long long events = tl_sql_int(&stack, "SELECT count(*) FROM audit_log"
                                          " WHERE topic = 'trialog.participant.v1'");
    assert_true(tl_wait_count(&stack,
                              "SELECT sum(next_offset) FROM projection_offsets"
                              " WHERE projection = 'participants'"
                              " AND topic = 'trialog.participant.v1'",
                              events, 30000));
}

static void test_projections_equal_a_rebuild(void **state)
{
    (void)state;
    char *out = NULL;
    tl_sql_int(&stack, "CREATE TABLE snap_participants AS SELECT * FROM participants;"
                       " CREATE TABLE snap_visits AS SELECT * FROM participant_visits;"
                       " SELECT 1");
    int rc = tl_stack_cli(&stack, "rebuild participants", &out);
    if (rc || !strstr(out, "swapped in"))
        fail_msg("rebuild participants (%d):\n%s", rc, out);
    free(out);
    rc = tl_stack_cli(&stack, "rebuild schedules", &out);
    if (rc || !strstr(out, "swapped in"))
        fail_msg("rebuild schedules (%d):\n%s", rc, out);
    free(out);
    assert_int_equal(tl_sql_int(&stack, SAME("participants", "snap_participants")), 0);
    assert_int_equal(tl_sql_int(&stack, SAME("participant_visits", "snap_visits")), 0);
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrolments_through_both_gateways),
        cmocka_unit_test(test_same_command_through_both_gateways_one_wins),
        cmocka_unit_test(test_a_projector_dies_the_other_takes_over),
        cmocka_unit_test(test_projections_equal_a_rebuild),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
