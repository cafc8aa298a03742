/* Three Kafka nodes (three JVMs on loopback, each broker and controller),
 * every topic replicated 3 times with min.insync.replicas 2, acks=all.
 * Under a steady load of enrolments (Prefer: respond-async, each with an
 * Idempotency-Key): the leader of a participant partition is killed
 * (SIGKILL) and later restarted; then all three are restarted one after
 * the other (SIGTERM). Afterwards:
 * - every command answered 202 is in the log once and in the projections;
 * - every command answered 503, sent again with its key, ends accepted,
 *   and exactly once: a 503 never left an effect the client was not told of;
 * - the participants projection equals a rebuild; `audit verify` is ok.
 * How long commands saw 503 in each failover is printed (the issue's
 * report; docs/KAFKA.md quotes it). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "tl_kafka.h"
#include "tl_topics.h"

#define MAX_REQ 20000
#define SAME(a, b)                                                                               \
    "SELECT count(*) FROM ((SELECT * FROM " a " EXCEPT SELECT * FROM " b ") UNION ALL"           \
    " (SELECT * FROM " b " EXCEPT SELECT * FROM " a ")) d"

typedef struct {
    long status;
    double t0, t1; /* s, monotonic */
} rec_t;

static tl_stack_t stack;
static char study[40], site[40];
static rec_t recs[MAX_REQ];
static atomic_int nrec;
static atomic_bool stop_load;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
    (void)state;
    stack.nodes = 3;
    tl_stack_start(&stack, "cluster");
    tl_stack_study(&stack, "CLUSTER-1", study, site);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static long enrol(int i)
{
    char path[128], body[300], key[64];
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"CL-%05d\",\"site_id\":\"%s\",\"consent_date\":\"2026-01-01\","
             "\"baseline_date\":\"2026-01-01\"}",
             i, site);
    snprintf(key, sizeof key, "Idempotency-Key: cluster-%05d", i);
    const char *h[] = {"Prefer: respond-async", key, NULL};
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, h, true);
    long st = r.status;
    tl_http_free(&r);
    return st;
}

static void *load(void *arg)
{
    (void)arg;
    for (int i = 0; i < MAX_REQ && !atomic_load(&stop_load); i++) {
        double t0 = now_s();
        long st = enrol(i);
        recs[i] = (rec_t){st, t0, now_s()};
        atomic_store(&nrec, i + 1);
    }
    return NULL;
}

/* The commands that saw 503 between from and to (s): how many, and the
 * span from the first one's start to the last one's answer. */
static void report(const char *what, double from, double to)
{
    int n = atomic_load(&nrec), refused = 0, ok = 0;
    double first = 0, last = 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].t0 < from || recs[i].t0 > to)
            continue;
        if (recs[i].status == 503) {
            if (!refused++)
                first = recs[i].t0;
            last = recs[i].t1;
        } else {
            ok++;
        }
    }
    printf("failover: %-34s %4d answered 503 over %6.0f ms, %5d accepted meanwhile\n", what,
           refused, refused ? (last - first) * 1000 : 0.0, ok);
    fflush(stdout);
}

/* Until every partition of the log topics has 3 in-sync replicas again. */
static void await_in_sync(void)
{
    for (int i = 0; i < 600; i++) {
        bool all = true;
        for (size_t t = 0; all && t < tl_topics_count; t++)
            all = tl_kafka_topic_in_sync(stack.brokers, tl_topics_all[t], 3, 5000);
        if (all)
            return;
        tl_sleep_ms(200);
    }
    fail_msg("the restarted node did not catch up in 120 s");
}

static void test_failover_loses_nothing_and_doubles_nothing(void **state)
{
    (void)state;
    pthread_t loader;
    assert_int_equal(pthread_create(&loader, NULL, load, NULL), 0);
    tl_sleep_ms(3000);

    /* the leader of a participant partition dies */
    int leader = tl_kafka_partition_leader(stack.brokers, TL_TOPIC_PARTICIPANT, 0, 5000);
    assert_true(leader >= 1 && leader <= 3);
    double t = now_s();
    assert_int_equal(tl_stack_kill(&stack.broker[leader - 1], SIGKILL), 128 + SIGKILL);
    tl_sleep_ms(15000);
    double back = now_s();
    report("SIGKILL of the leader", t, back);
    tl_stack_start_node(&stack, leader - 1);
    await_in_sync();
    report("its restart", back, now_s());

    /* a rolling restart of all three */
    for (int i = 0; i < 3; i++) {
        char what[64];
        t = now_s();
        int st = tl_stack_kill(&stack.broker[i], SIGTERM);
        assert_true(st == 0 || st == 128 + SIGTERM);
        tl_stack_start_node(&stack, i);
        await_in_sync();
        snprintf(what, sizeof what, "rolling restart of node %d", i + 1);
        report(what, t, now_s());
    }
    tl_sleep_ms(2000);
    atomic_store(&stop_load, true);
    pthread_join(loader, NULL);

    /* every 503 sent again with its key until answered */
    int n = atomic_load(&nrec), refused = 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].status == 503) {
            refused++;
            long st = 503;
            for (int tries = 0; tries < 60 && st == 503; tries++) {
                st = enrol(i);
                if (st == 503)
                    tl_sleep_ms(500);
            }
            recs[i].status = st;
        }
        if (recs[i].status < 200 || recs[i].status > 299)
            fail_msg("command %d ended %ld", i, recs[i].status);
    }
    printf("failover: %d commands, %d answered 503 at first, all accepted on a retry\n", n,
           refused);
    assert_true(n > 100);

    /* each exactly once, in the log and in the projection */
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", n, 120000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), n);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(DISTINCT participant_code) FROM participants"
                                        " WHERE participant_code LIKE 'CL-%'"),
                     n);
    char want[200];
    snprintf(want, sizeof want,
             "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.ParticipantEnrolled'");
    assert_true(tl_wait_count(&stack, want, n, 60000));
    long long logged = tl_sql_int(&stack, want);
    long long distinct = tl_sql_int(&stack, "SELECT count(DISTINCT event_id) FROM audit_log"
                                            " WHERE event_type = 'org.trialog.ParticipantEnrolled'");
    printf("failover: %lld enrolment events in the log, %lld distinct\n", logged, distinct);
    assert_int_equal(distinct, n);
    /* a 503 whose event landed after all and was sent again is the same
     * event (same id, from the key): the fold applied it once */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE projection = 'participants'"
                                        " AND reason <> 'version_conflict'"
                                        " AND reason <> 'duplicate_event'"),
                     0);

    /* the projection equals a rebuild; the archive's chains verify */
    char *out = NULL;
    tl_sql_int(&stack, "CREATE TABLE snap AS SELECT * FROM participants; SELECT 1");
    int rc = tl_stack_cli(&stack, "rebuild participants", &out);
    if (rc || !strstr(out, "swapped in"))
        fail_msg("rebuild (%d):\n%s", rc, out);
    free(out);
    assert_int_equal(tl_sql_int(&stack, SAME("participants", "snap")), 0);
    rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc)
        fail_msg("audit verify (%d):\n%s", rc, out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_loses_nothing_and_doubles_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
