/* Process-wide gateway state: the database connection pool and the command
 * locks. Request threads outnumber database connections (a thread per HTTP
 * connection, most of them waiting on the log), so a thread holds a
 * connection for one statement at a time.
 *
 * A command's own statements (its checks, its outcome: lookups of a few
 * rows by key) go through tl_gw_exec_quick, which combines them: a thread
 * that finds a pipeline free leads, taking every statement queued so far
 * (its own among them) to the database in one round trip (tl_pg_batch,
 * each statement in its own transaction) and handing each its result; the
 * others wait for theirs. At most LEADERS round trips are under way at
 * once, so under load the queue grows while they are, and one backend
 * wake-up serves many requests instead of one each; a lone request leads
 * itself and runs as it would alone. Anything that may take long (lists,
 * aggregates, history) runs alone on a connection of its own (tl_gw_exec):
 * in a combined round trip it would hold up every statement after it. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "gateway.h"
#include "tl_map.h"

#define POOL_WAIT_S 5 /* a request waits this long for a free connection, then 503 */
#define BATCH_MAX 32  /* statements a leader takes in one round trip */
/* Combined round trips under way at once. Two: the statements of one run
 * one after another in one backend, so two keep the development machine's
 * two cores busy; more left each batch smaller and cost more (a gateway
 * A/B with 2 against 8 connections, docs/BENCHMARKS.md). */
#define LEADERS 2

/* A statement waiting in the queue for a leader; on its caller's stack. */
typedef struct job {
    const char *sql;
    int n;
    const char *const *params;
    tl_pg_res_t *res;
    tl_err_t err;
    bool taken, done;
    pthread_cond_t cond;
    struct job *next;
} job_t;

struct tl_gw_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    tl_pg_t **idle;
    int nidle, open, max;
    job_t *head, *tail;               /* statements waiting for a leader, oldest first */
    int leaders;                      /* combined round trips under way */
    uint64_t statements, round_trips; /* of tl_gw_exec_quick, since start */
};

/* A condition variable whose timed waits count on the monotonic clock (the
 * deadlines here are CLOCK_MONOTONIC). */
static void cond_init(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

tl_err_t tl_gw_init(tl_gw_t *gw)
{
    struct tl_gw_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->idle = calloc((size_t)gw->cfg.pg_pool, sizeof *p->idle))) {
        free(p);
        return TL_ERR_NOMEM;
    }
    p->max = (int)gw->cfg.pg_pool;
    pthread_mutex_init(&p->lock, NULL);
    cond_init(&p->freed);
    gw->pool = p;
    for (int i = 0; i < TL_LOCK_STRIPES; i++)
        pthread_mutex_init(&gw->stripes[i], NULL);
    tl_err_t err = tl_auth_init(gw);
    if (!err)
        err = tl_sign_guard_init(gw);
    return err ? err : tl_vtcache_init(gw);
}

void tl_gw_cleanup(tl_gw_t *gw)
{
    struct tl_gw_pool *p = gw->pool;
    tl_auth_cleanup(gw);
    tl_sign_guard_cleanup(gw);
    tl_vtcache_cleanup(gw);
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        tl_pg_destroy(p->idle[i]);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
    gw->pool = NULL;
}

/* Whether a queued statement's thread may lead a round trip now. */
static bool can_lead(const struct tl_gw_pool *p)
{
    return p->leaders < LEADERS && (p->nidle || p->open < p->max);
}

/* Wakes the oldest queued statement's thread when it may lead. Every change
 * that may let one (a connection given back, a leader done, the head
 * leaving or taken) calls this, so the queue never waits with a pipeline
 * and a connection free. Called with the lock held. */
static void wake_head(struct tl_gw_pool *p)
{
    if (p->head && can_lead(p))
        pthread_cond_signal(&p->head->cond);
}

/* Gives pg back (NULL or broken: its place is free again) and wakes who
 * may use it: a thread waiting in pool_get, and the oldest queued
 * statement's, which may lead. Called with the lock held. */
static void pool_return_locked(struct tl_gw_pool *p, tl_pg_t *pg)
{
    if (pg && !tl_pg_broken(pg))
        p->idle[p->nidle++] = pg;
    else
        p->open--;
    pthread_cond_signal(&p->freed);
    wake_head(p);
}

/* A connection: an idle one, a new one while under the limit, or the next
 * one returned. NULL: the database is unavailable or the pool stayed busy. */
static tl_pg_t *pool_get(tl_gw_t *gw)
{
    struct tl_gw_pool *p = gw->pool;
    if (!p)
        return NULL;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += POOL_WAIT_S;
    tl_pg_t *pg = NULL;
    bool make = false;
    pthread_mutex_lock(&p->lock);
    while (!p->nidle && p->open == p->max)
        if (pthread_cond_timedwait(&p->freed, &p->lock, &until))
            break;
    if (p->nidle)
        pg = p->idle[--p->nidle];
    else if (p->open < p->max)
        make = ++p->open > 0;
    pthread_mutex_unlock(&p->lock);
    if (make && tl_pg_connect(gw->cfg.pg_dsn, gw->cfg.pg_schema, "gateway", &pg)) {
        pthread_mutex_lock(&p->lock);
        pool_return_locked(p, NULL);
        pthread_mutex_unlock(&p->lock);
        pg = NULL;
    }
    return pg;
}

static void pool_put(tl_gw_t *gw, tl_pg_t *pg)
{
    struct tl_gw_pool *p = gw->pool;
    bool broken = tl_pg_broken(pg);
    pthread_mutex_lock(&p->lock);
    pool_return_locked(p, pg);
    pthread_mutex_unlock(&p->lock);
    if (broken)
        tl_pg_destroy(pg);
}

tl_pg_t *tl_gw_pg_acquire(tl_gw_t *gw)
{
    return pool_get(gw);
}

void tl_gw_pg_release(tl_gw_t *gw, tl_pg_t *pg)
{
    if (pg)
        pool_put(gw, pg);
}

/* With the lock held and a connection free: takes it and up to BATCH_MAX
 * queued statements, runs them in one round trip without the lock, hands
 * out the results and gives the connection back. Returns with the lock
 * held. */
static void lead(tl_gw_t *gw, struct tl_gw_pool *p, job_t *self)
{
    job_t *batch[BATCH_MAX];
    tl_pg_stmt_t stmts[BATCH_MAX];
    tl_err_t errs[BATCH_MAX];
    size_t nb = 0;
    tl_pg_t *pg = p->nidle ? p->idle[--p->nidle] : NULL;
    bool make = !pg;
    if (make)
        p->open++;
    p->leaders++;
    p->round_trips++;
    for (; p->head && nb < BATCH_MAX; nb++) {
        batch[nb] = p->head;
        batch[nb]->taken = true;
        if (!(p->head = p->head->next))
            p->tail = NULL;
    }
    p->statements += nb;
    wake_head(p); /* the rest of the queue, if the other pipeline is free */
    pthread_mutex_unlock(&p->lock);
    if (make && tl_pg_connect(gw->cfg.pg_dsn, gw->cfg.pg_schema, "gateway", &pg))
        pg = NULL;
    if (!pg) {
        for (size_t i = 0; i < nb; i++)
            batch[i]->err = TL_ERR_UNAVAILABLE;
    } else {
        /* one statement too: the same protocol whatever the load */
        for (size_t i = 0; i < nb; i++)
            stmts[i] = (tl_pg_stmt_t){batch[i]->sql, batch[i]->n, batch[i]->params, NULL, true};
        tl_pg_batch(pg, stmts, errs, nb);
        for (size_t i = 0; i < nb; i++) {
            batch[i]->err = errs[i];
            batch[i]->res = stmts[i].res;
        }
    }
    bool broken = pg && tl_pg_broken(pg);
    pthread_mutex_lock(&p->lock);
    p->leaders--;
    for (size_t i = 0; i < nb; i++) {
        batch[i]->done = true;
        if (batch[i] != self)
            pthread_cond_signal(&batch[i]->cond);
    }
    pool_return_locked(p, pg);
    if (broken) {
        pthread_mutex_unlock(&p->lock);
        tl_pg_destroy(pg);
        pthread_mutex_lock(&p->lock);
    }
}

/* Takes a queued statement that no leader has taken out of the queue. */
static void unqueue(struct tl_gw_pool *p, job_t *j)
{
    job_t **at = &p->head, *prev = NULL;
    while (*at && *at != j) {
        prev = *at;
        at = &(*at)->next;
    }
    if (!*at)
        return;
    *at = j->next;
    if (p->tail == j)
        p->tail = prev;
    wake_head(p);
}

tl_err_t tl_gw_exec(tl_gw_t *gw, const char *sql, int n, const char *const *params,
                    tl_pg_res_t **res)
{
    tl_pg_t *pg = pool_get(gw);
    if (!pg)
        return TL_ERR_UNAVAILABLE;
    tl_err_t err = tl_pg_exec(pg, sql, n, params, res);
    pool_put(gw, pg);
    return err;
}

tl_err_t tl_gw_exec_quick(tl_gw_t *gw, const char *sql, int n, const char *const *params,
                          tl_pg_res_t **res)
{
    struct tl_gw_pool *p = gw->pool;
    if (!p)
        return TL_ERR_UNAVAILABLE;
    job_t j = {.sql = sql, .n = n, .params = params, .err = TL_ERR_UNAVAILABLE};
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += POOL_WAIT_S;
    cond_init(&j.cond);
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    bool late = false;
    while (!j.done) {
        if (j.taken) /* a leader runs it: done within its round trip */
            pthread_cond_wait(&j.cond, &p->lock);
        else if (can_lead(p))
            lead(gw, p, &j);
        else if (late) { /* no pipeline came free in time: 503 */
            unqueue(p, &j);
            break;
        } else
            late = pthread_cond_timedwait(&j.cond, &p->lock, &until) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&j.cond);
    if (res)
        *res = j.res;
    else
        tl_pg_res_free(j.res);
    return j.err;
}

tl_err_t tl_gw_decode(tl_gw_t *gw, const void *msg, size_t len, json_t **out, const char **fullname)
{
    tl_pg_t *pg = pool_get(gw);
    if (!pg)
        return TL_ERR_UNAVAILABLE;
    tl_err_t err = tl_registry_decode(gw->registry, pg, msg, len, out, fullname);
    pool_put(gw, pg);
    return err;
}

pthread_mutex_t *tl_gw_stripe(tl_gw_t *gw, const char *key)
{
    return &gw->stripes[tl_map_hash(key) % TL_LOCK_STRIPES];
}

void tl_gw_pool_stats(tl_gw_t *gw, uint64_t *statements, uint64_t *round_trips)
{
    struct tl_gw_pool *p = gw->pool;
    *statements = *round_trips = 0;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    *statements = p->statements;
    *round_trips = p->round_trips;
    pthread_mutex_unlock(&p->lock);
}
