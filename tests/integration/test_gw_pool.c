/* The gateway's statements against real PostgreSQL (gateway/context.c):
 * tl_pg_batch runs independent statements in one round trip and a failing
 * one spoils none of the others; tl_gw_exec_quick called by many threads
 * at once hands each thread its own result (and its own error), combining
 * the queued statements into fewer round trips than statements, beside
 * tl_gw_exec's statements on connections of their own; a statement that
 * finds no pipeline free within 5 s gives up; an unreachable database
 * answers TL_ERR_UNAVAILABLE to both. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "harness.h"
#include "tl_pg.h"

#define THREADS 48
#define PER_THREAD 40

static char schema[64];
static const char *dsn;
static tl_pg_t *pg;

static void sql(const char *q)
{
    assert_int_equal(tl_pg_exec(pg, q, 0, NULL, NULL), TL_OK);
}

static int setup(void **state)
{
    (void)state;
    dsn = getenv("TRIALOG_TEST_PG_DSN");
    assert_non_null(dsn);
    snprintf(schema, sizeof schema, "gwpool_%d", (int)getpid());
    assert_int_equal(tl_pg_connect(dsn, schema, "test", &pg), TL_OK);
    sql("CREATE TABLE t (k int PRIMARY KEY, v text NOT NULL)");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char q[128];
    snprintf(q, sizeof q, "DROP SCHEMA %s CASCADE", schema);
    sql(q);
    tl_pg_destroy(pg);
    return 0;
}

/* A duplicate key and a division by zero amid good statements: each gets
 * its own outcome, the good ones their results and effects. */
static void test_batch_isolates_failures(void **state)
{
    (void)state;
    const char *a[] = {"1", "one"}, *b[] = {"1", "again"}, *c[] = {"0"}, *d[] = {"2", "two"},
               *e[] = {"2"};
    tl_pg_stmt_t st[] = {
        {"INSERT INTO t VALUES ($1::int, $2) RETURNING k", 2, a, NULL, true},
        {"INSERT INTO t VALUES ($1::int, $2)", 2, b, NULL, true},
        {"SELECT 10 / $1::int", 1, c, NULL, true},
        {"INSERT INTO t VALUES ($1::int, $2)", 2, d, NULL, true},
        {"SELECT v FROM t WHERE k = $1::int", 1, e, NULL, true},
        {"SELECT count(*) FROM t", 0, NULL, NULL, true},
    };
    tl_err_t errs[6];
    assert_int_equal(tl_pg_batch(pg, st, errs, 6), TL_OK);
    assert_int_equal(errs[0], TL_OK);
    assert_string_equal(tl_pg_get(st[0].res, 0, 0), "1");
    assert_int_equal(errs[1], TL_ERR_CONFLICT);
    assert_null(st[1].res);
    assert_int_equal(errs[2], TL_ERR_DB);
    assert_null(st[2].res);
    assert_int_equal(errs[3], TL_OK);
    assert_int_equal(errs[4], TL_OK);
    assert_string_equal(tl_pg_get(st[4].res, 0, 0), "two"); /* sees the statement before */
    assert_int_equal(errs[5], TL_OK);
    assert_string_equal(tl_pg_get(st[5].res, 0, 0), "2");
    for (int i = 0; i < 6; i++)
        tl_pg_res_free(st[i].res);
    /* the connection is usable as before, out of pipeline mode */
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(pg, "SELECT v FROM t WHERE k = 1", 0, NULL, &res), TL_OK);
    assert_string_equal(tl_pg_get(res, 0, 0), "one");
    tl_pg_res_free(res);
    tl_pg_stmt_t many[TL_PG_BATCH_MAX + 1];
    tl_err_t merrs[TL_PG_BATCH_MAX + 1];
    for (int i = 0; i <= TL_PG_BATCH_MAX; i++)
        many[i] = (tl_pg_stmt_t){"SELECT 1", 0, NULL, NULL, true};
    assert_int_equal(tl_pg_batch(pg, many, merrs, TL_PG_BATCH_MAX + 1), TL_ERR_INVALID);
    sql("DELETE FROM t");
}

typedef struct {
    tl_gw_t *gw;
    int id;
    atomic_int *wrong;
} worker_t;

/* Each thread asks for values only it knows, some of them failing on
 * purpose, and checks every answer is its own. */
static void *worker(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char x[32], want[48];
        snprintf(x, sizeof x, "%d", w->id * 1000 + i);
        const char *params[] = {x};
        tl_pg_res_t *res = NULL;
        if (i % 10 == 9) { /* a statement that fails: its error, no result */
            const char *zero[] = {"0"};
            tl_err_t err = tl_gw_exec_quick(w->gw, "SELECT $1::int / 0", 1, zero, &res);
            if (err != TL_ERR_DB || res)
                atomic_fetch_add(w->wrong, 1);
            tl_pg_res_free(res);
            continue;
        }
        tl_err_t err =
            tl_gw_exec_quick(w->gw, "SELECT 'v' || $1::int, pg_sleep(0.001)", 1, params, &res);
        snprintf(want, sizeof want, "v%s", x);
        const char *got = err ? NULL : tl_pg_get(res, 0, 0);
        if (!got || strcmp(got, want))
            atomic_fetch_add(w->wrong, 1);
        tl_pg_res_free(res);
    }
    return NULL;
}

static void test_exec_combines_statements(void **state)
{
    (void)state;
    tl_gw_t gw = {.cfg = {.pg_dsn = dsn, .pg_schema = schema, .pg_pool = 4}};
    assert_int_equal(tl_gw_init(&gw), TL_OK);
    pthread_t th[THREADS];
    worker_t w[THREADS];
    atomic_int wrong = 0;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){&gw, i + 1, &wrong};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&wrong), 0);
    uint64_t statements = 0, round_trips = 0;
    tl_gw_pool_stats(&gw, &statements, &round_trips);
    assert_int_equal(statements, THREADS * PER_THREAD);
    /* 48 threads, two round trips at a time: the queue fills meanwhile */
    print_message("%llu statements in %llu round trips\n", (unsigned long long)statements,
                  (unsigned long long)round_trips);
    assert_true(round_trips * 2 < statements);
    /* alone, a statement runs by itself; and beside them, on a connection
     * of its own */
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_gw_exec_quick(&gw, "SELECT 1", 0, NULL, &res), TL_OK);
    assert_string_equal(tl_pg_get(res, 0, 0), "1");
    tl_pg_res_free(res);
    assert_int_equal(tl_gw_exec(&gw, "SELECT 2", 0, NULL, &res), TL_OK);
    assert_string_equal(tl_pg_get(res, 0, 0), "2");
    tl_pg_res_free(res);
    tl_gw_cleanup(&gw);
}

typedef struct {
    tl_gw_t *gw;
    const char *sql;
    tl_err_t err;
} one_t;

static void *one(void *arg)
{
    one_t *o = arg;
    o->err = tl_gw_exec_quick(o->gw, o->sql, 0, NULL, NULL);
    return NULL;
}

/* Both pipelines held by slow statements: a statement queued behind them
 * gives up after 5 s with TL_ERR_UNAVAILABLE (and leaves the queue: the
 * next one runs once a pipeline is free). */
static void test_exec_queue_times_out(void **state)
{
    (void)state;
    tl_gw_t gw = {.cfg = {.pg_dsn = dsn, .pg_schema = schema, .pg_pool = 4}};
    assert_int_equal(tl_gw_init(&gw), TL_OK);
    pthread_t th[2];
    one_t slow[2] = {{&gw, "SELECT pg_sleep(6.5)", TL_ERR_INTERNAL},
                     {&gw, "SELECT pg_sleep(6.5)", TL_ERR_INTERNAL}};
    assert_int_equal(pthread_create(&th[0], NULL, one, &slow[0]), 0);
    tl_sleep_ms(300); /* the first leads alone, then the second */
    assert_int_equal(pthread_create(&th[1], NULL, one, &slow[1]), 0);
    tl_sleep_ms(300);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tl_gw_exec_quick(&gw, "SELECT 1", 0, NULL, NULL), TL_ERR_UNAVAILABLE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(waited > 4.5 && waited < 6.0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(slow[i].err, TL_OK);
    }
    assert_int_equal(tl_gw_exec_quick(&gw, "SELECT 1", 0, NULL, NULL), TL_OK);
    uint64_t statements = 0, round_trips = 0;
    tl_gw_pool_stats(&gw, &statements, &round_trips);
    assert_int_equal(statements, 3); /* the one that gave up never ran */
    assert_int_equal(round_trips, 3);
    tl_gw_cleanup(&gw);
}

static void test_exec_database_unreachable(void **state)
{
    (void)state;
    tl_gw_t gw = {.cfg = {.pg_dsn = "host=127.0.0.1 port=1 connect_timeout=2 dbname=none",
                          .pg_schema = schema,
                          .pg_pool = 2}};
    assert_int_equal(tl_gw_init(&gw), TL_OK);
    tl_pg_res_t *res = NULL;
    const char *params[] = {"1"};
    assert_int_equal(tl_gw_exec_quick(&gw, "SELECT $1::int", 1, params, &res), TL_ERR_UNAVAILABLE);
    assert_null(res);
    assert_int_equal(tl_gw_exec(&gw, "SELECT $1::int", 1, params, &res), TL_ERR_UNAVAILABLE);
    assert_null(res);
    tl_gw_cleanup(&gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_isolates_failures),
        cmocka_unit_test(test_exec_combines_statements),
        cmocka_unit_test(test_exec_queue_times_out),
        cmocka_unit_test(test_exec_database_unreachable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
