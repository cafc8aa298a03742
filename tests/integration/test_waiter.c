/* The gateway's waiter (read-your-writes) against real PostgreSQL
 * notifications: a request thread is woken when the offset it waits for is
 * reached and not before, a timeout leaves the others waiting, progress of
 * another schema is ignored, a lost notification is made up by the periodic
 * re-read, and a projection's epoch moves with its own progress only. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tl_consumer.h"
#include "tl_pg.h"
#include "waiter.h"

#define THREADS 24
#define TOPIC "trialog.participant.v1"

static char schema[64];
static tl_pg_t *pg;
static tl_waiter_t *waiter;

static void sql(const char *q)
{
    assert_int_equal(tl_pg_exec(pg, q, 0, NULL, NULL), TL_OK);
}

/* progress as a projection's consumer announces it, in schema s */
static void notify_on(const char *s, const char *proj, const char *topic, int partition, long next)
{
    char payload[256];
    snprintf(payload, sizeof payload, "%s %s %s:%d:%ld", s, proj, topic, partition, next);
    const char *params[] = {TL_NOTIFY_CHANNEL, payload};
    assert_int_equal(tl_pg_exec(pg, "SELECT pg_notify($1, $2)", 2, params, NULL), TL_OK);
}

static void notify(const char *s, const char *proj, int partition, long next)
{
    notify_on(s, proj, TOPIC, partition, next);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int setup(void **state)
{
    (void)state;
    const char *dsn = getenv("TRIALOG_TEST_PG_DSN");
    assert_non_null(dsn);
    snprintf(schema, sizeof schema, "waiter_%d", (int)getpid());
    assert_int_equal(tl_pg_connect(dsn, schema, "test", &pg), TL_OK);
    sql("CREATE TABLE projection_offsets (projection text, topic text, partition int,"
        " next_offset bigint, PRIMARY KEY (projection, topic, partition))");
    assert_int_equal(tl_waiter_new(dsn, schema, &waiter), TL_OK);
    /* the listener has connected once the periodic re-read sees a row */
    sql("INSERT INTO projection_offsets VALUES ('probe', '" TOPIC "', 0, 1)");
    for (int i = 0; i < 100 && !tl_waiter_epoch(waiter, "probe", NULL); i++)
        usleep(50 * 1000);
    assert_int_equal(tl_waiter_epoch(waiter, "probe", NULL), 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_waiter_destroy(waiter);
    char q[128];
    snprintf(q, sizeof q, "DROP SCHEMA %s CASCADE", schema);
    sql(q);
    tl_pg_destroy(pg);
    return 0;
}

typedef struct {
    pthread_t thread;
    const char *proj;
    int partition;
    long offset;
    int timeout_ms;
    atomic_int result; /* -1 while waiting */
    double waited_ms;
} waiter_arg_t;

static void *wait_thread(void *p)
{
    waiter_arg_t *a = p;
    double t0 = now_ms();
    tl_err_t err = tl_waiter_wait(waiter, a->proj, TOPIC, a->partition, a->offset, a->timeout_ms);
    a->waited_ms = now_ms() - t0;
    atomic_store(&a->result, (int)err);
    return NULL;
}

static void start(waiter_arg_t *a, const char *proj, int partition, long offset, int timeout_ms)
{
    a->proj = proj;
    a->partition = partition;
    a->offset = offset;
    a->timeout_ms = timeout_ms;
    atomic_store(&a->result, -1);
    assert_int_equal(pthread_create(&a->thread, NULL, wait_thread, a), 0);
}

static int finished(waiter_arg_t *a, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++)
        done += atomic_load(&a[i].result) >= 0;
    return done;
}

/* until n of them have finished, at most 5 s */
static void until_finished(waiter_arg_t *a, int n, int want)
{
    for (int i = 0; i < 500 && finished(a, n) < want; i++)
        usleep(10 * 1000);
    assert_int_equal(finished(a, n), want);
}

static void test_each_thread_wakes_when_its_offset_is_reached(void **state)
{
    (void)state;
    /* threads on two partitions, offsets 0..11 each */
    static waiter_arg_t a[THREADS];
    for (int i = 0; i < THREADS; i++)
        start(&a[i], "participants", i % 2, i / 2, 10000);
    usleep(100 * 1000);
    assert_int_equal(finished(a, THREADS), 0);
    /* partition 0 has applied offsets 0..4: their five threads, no other */
    notify(schema, "participants", 0, 5);
    until_finished(a, THREADS, 5);
    usleep(100 * 1000);
    assert_int_equal(finished(a, THREADS), 5);
    for (int i = 0; i < THREADS; i++)
        if (i % 2 == 0 && i / 2 < 5)
            assert_int_equal(atomic_load(&a[i].result), TL_OK);
        else
            assert_int_equal(atomic_load(&a[i].result), -1);
    /* another projection's progress on partition 1 wakes nobody */
    notify(schema, "schedules", 1, 100);
    usleep(100 * 1000);
    assert_int_equal(finished(a, THREADS), 5);
    notify(schema, "participants", 1, 100);
    notify(schema, "participants", 0, 100);
    until_finished(a, THREADS, THREADS);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(a[i].thread, NULL);
        assert_int_equal(atomic_load(&a[i].result), TL_OK);
    }
    /* reached already: no wait at all */
    assert_int_equal(tl_waiter_wait(waiter, "participants", TOPIC, 0, 99, 0), TL_OK);
}

typedef struct {
    pthread_t thread;
    atomic_int result; /* -1 while waiting */
} all_arg_t;

static void *wait_all_thread(void *p)
{
    all_arg_t *a = p;
    const char *projs[] = {"all_a", "all_b", "all_c"};
    atomic_store(&a->result, (int)tl_waiter_wait_all(waiter, projs, 3, TOPIC, 2, 5, 10000));
    return NULL;
}

static void test_wait_all_wakes_when_the_last_projection_has_it(void **state)
{
    (void)state;
    static all_arg_t a;
    atomic_store(&a.result, -1);
    assert_int_equal(pthread_create(&a.thread, NULL, wait_all_thread, &a), 0);
    notify(schema, "all_b", 2, 6);
    notify(schema, "all_a", 2, 9);
    notify(schema, "all_c", 2, 5); /* not past offset 5 yet */
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&a.result), -1);
    notify(schema, "all_c", 2, 6);
    pthread_join(a.thread, NULL);
    assert_int_equal(atomic_load(&a.result), TL_OK);
    /* reached already: no wait; one behind: a timeout */
    const char *projs[] = {"all_a", "all_b", "all_c", "all_d"};
    assert_int_equal(tl_waiter_wait_all(waiter, projs, 3, TOPIC, 2, 5, 0), TL_OK);
    assert_int_equal(tl_waiter_wait_all(waiter, projs, 4, TOPIC, 2, 5, 200), TL_ERR_TIMEOUT);
    assert_int_equal(
        tl_waiter_wait_all(waiter, projs, TL_WAITER_PROJECTIONS_MAX + 1, TOPIC, 2, 5, 0),
        TL_ERR_INTERNAL);
}

static void test_a_timeout_leaves_the_others_waiting(void **state)
{
    (void)state;
    static waiter_arg_t a[3];
    start(&a[0], "forms", 0, 10, 200);
    start(&a[1], "forms", 0, 10, 10000);
    start(&a[2], "forms", 0, 11, 10000);
    until_finished(a, 3, 1);
    pthread_join(a[0].thread, NULL);
    assert_int_equal(atomic_load(&a[0].result), TL_ERR_TIMEOUT);
    assert_true(a[0].waited_ms >= 190);
    notify(schema, "forms", 0, 11);
    until_finished(a, 3, 2);
    pthread_join(a[1].thread, NULL);
    assert_int_equal(atomic_load(&a[1].result), TL_OK);
    notify(schema, "forms", 0, 12);
    until_finished(a, 3, 3);
    pthread_join(a[2].thread, NULL);
    assert_int_equal(atomic_load(&a[2].result), TL_OK);
}

static void test_progress_of_another_schema_is_not_ours(void **state)
{
    (void)state;
    notify("some_other_schema", "access", 0, 50);
    assert_int_equal(tl_waiter_wait(waiter, "access", TOPIC, 0, 0, 300), TL_ERR_TIMEOUT);
}

static void test_a_lost_notification_is_made_up_by_the_reread(void **state)
{
    (void)state;
    /* committed without a NOTIFY: the listener re-reads about every second */
    sql("INSERT INTO projection_offsets VALUES ('audit', '" TOPIC "', 3, 7)");
    double t0 = now_ms();
    assert_int_equal(tl_waiter_wait(waiter, "audit", TOPIC, 3, 6, 5000), TL_OK);
    assert_true(now_ms() - t0 < 4000);
}

static void test_epoch_moves_with_its_projection_only(void **state)
{
    (void)state;
    int64_t access = tl_waiter_epoch(waiter, "access_x", NULL);
    int64_t participants = tl_waiter_epoch(waiter, "participants_x", NULL);
    notify(schema, "participants_x", 0, 40);
    notify(schema, "participants_x", 1, 2);
    assert_int_equal(tl_waiter_wait(waiter, "participants_x", TOPIC, 1, 1, 5000), TL_OK);
    assert_int_equal(tl_waiter_epoch(waiter, "participants_x", NULL), participants + 42);
    assert_int_equal(tl_waiter_epoch(waiter, "access_x", NULL), access);
    /* progress that goes backwards (an older notification) changes nothing */
    notify(schema, "participants_x", 0, 30);
    notify(schema, "participants_x", 1, 3);
    assert_int_equal(tl_waiter_wait(waiter, "participants_x", TOPIC, 1, 2, 5000), TL_OK);
    assert_int_equal(tl_waiter_epoch(waiter, "participants_x", NULL), participants + 43);
    /* and by topic: progress on another topic moves the projection's epoch,
     * not its epoch on this one */
    int64_t on_topic = tl_waiter_epoch(waiter, "participants_x", TOPIC);
    assert_int_equal(on_topic, participants + 43);
    notify_on(schema, "participants_x", "trialog.protocol.v1", 0, 5);
    assert_int_equal(tl_waiter_wait(waiter, "participants_x", "trialog.protocol.v1", 0, 4, 5000),
                     TL_OK);
    assert_int_equal(tl_waiter_epoch(waiter, "participants_x", NULL), participants + 48);
    assert_int_equal(tl_waiter_epoch(waiter, "participants_x", TOPIC), on_topic);
    assert_int_equal(tl_waiter_epoch(waiter, "participants_x", "trialog.protocol.v1"), 5);
    assert_int_equal(tl_waiter_epoch(NULL, "participants", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_thread_wakes_when_its_offset_is_reached),
        cmocka_unit_test(test_wait_all_wakes_when_the_last_projection_has_it),
        cmocka_unit_test(test_a_timeout_leaves_the_others_waiting),
        cmocka_unit_test(test_progress_of_another_schema_is_not_ours),
        cmocka_unit_test(test_a_lost_notification_is_made_up_by_the_reread),
        cmocka_unit_test(test_epoch_moves_with_its_projection_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
