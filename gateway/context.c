/* Process-wide gateway state: the database connection pool and the command
 * locks. Request threads outnumber database connections (a thread per HTTP
 * connection, most of them waiting on the log), so a thread holds a
 * connection for one statement at a time. */
#include <stdlib.h>
#include <time.h>

#include "gateway.h"
#include "tl_map.h"

#define POOL_WAIT_S 5 /* a request waits this long for a free connection, then 503 */

struct tl_gw_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    tl_pg_t **idle;
    int nidle, open, max;
};

tl_err_t tl_gw_init(tl_gw_t *gw)
{
    struct tl_gw_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->idle = calloc((size_t)gw->cfg.pg_pool, sizeof *p->idle))) {
        free(p);
        return TL_ERR_NOMEM;
    }
    p->max = (int)gw->cfg.pg_pool;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &ca);
    pthread_condattr_destroy(&ca);
    gw->pool = p;
    for (int i = 0; i < TL_LOCK_STRIPES; i++)
        pthread_mutex_init(&gw->stripes[i], NULL);
    tl_err_t err = tl_auth_init(gw);
    return err ? err : tl_vtcache_init(gw);
}

void tl_gw_cleanup(tl_gw_t *gw)
{
    struct tl_gw_pool *p = gw->pool;
    tl_auth_cleanup(gw);
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
        p->open--;
        pthread_cond_signal(&p->freed);
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
    if (broken)
        p->open--;
    else
        p->idle[p->nidle++] = pg;
    pthread_cond_signal(&p->freed);
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

tl_err_t tl_gw_decode(tl_gw_t *gw, const void *msg, size_t len, json_t **out,
                      const char **fullname)
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
