#include "waiter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_consumer.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_pg.h"

/* A request thread waiting for an offset, on its own stack. Each has its
 * own condition variable and is woken only when its offset is reached:
 * with one shared condition broadcast on every projection's every commit,
 * each of hundreds of waiting threads woke, took the lock in turn and slept
 * again, hundreds of thousands of wake-ups a second under load. */
typedef struct waiting {
    struct waiting *prev, *next;
    char (*keys)[400]; /* "projection topic:partition", nkeys of them */
    size_t nkeys;
    int64_t offset;
    bool done; /* set, and unlinked, by whoever saw the offset reached */
    pthread_cond_t cond;
} waiting_t;

struct tl_waiter {
    const char *dsn, *schema;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards everything below */
    tl_map_t next;        /* "projection topic:partition" -> next offset (intptr_t) */
    tl_map_t epoch;       /* "projection" and "projection topic" -> sum of next offsets */
    waiting_t *waiting;   /* request threads waiting, a doubly linked list */
};

static void unlink_waiting(tl_waiter_t *w, waiting_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        w->waiting = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* Under the lock. The epochs move first: an offset never counts as
 * applied (waking a request) while its projection's epoch, which tells
 * caches their answers are stale, stands still. */
static void set_next(tl_waiter_t *w, const char *key, int64_t next)
{
    intptr_t cur = (intptr_t)tl_map_get(&w->next, key);
    if (next <= cur)
        return;
    /* the projection's epoch, then its epoch on the topic */
    char k[400];
    size_t lens[] = {strcspn(key, " "), strcspn(key, ":")};
    for (size_t i = 0; i < 2; i++) {
        if (lens[i] >= sizeof k)
            return;
        memcpy(k, key, lens[i]);
        k[lens[i]] = '\0';
        if (tl_map_put(&w->epoch, k, (void *)((intptr_t)tl_map_get(&w->epoch, k) + next - cur)))
            return;
    }
    tl_map_put(&w->next, key, (void *)(intptr_t)next);
}

/* Under the lock, after progress: wakes the threads whose offset it reached. */
/* Under the lock: whether every projection n waits for is past its offset. */
static bool reached(const tl_waiter_t *w, const waiting_t *n)
{
    for (size_t i = 0; i < n->nkeys; i++)
        if ((intptr_t)tl_map_get(&w->next, n->keys[i]) <= n->offset)
            return false;
    return true;
}

static void wake_reached(tl_waiter_t *w)
{
    for (waiting_t *n = w->waiting, *after; n; n = after) {
        after = n->next;
        if (reached(w, n)) {
            unlink_waiting(w, n);
            n->done = true;
            pthread_cond_signal(&n->cond);
        }
    }
}

/* payload: "<schema> <projection> <topic>:<partition>:<next> ..."; the
 * progress of projections in other schemas of the database is not ours */
static void on_notify(void *user, const char *channel, const char *payload)
{
    tl_waiter_t *w = user;
    (void)channel;
    char schema[64], proj[64], item[300];
    int used = 0;
    if (sscanf(payload, "%63s %63s%n", schema, proj, &used) != 2)
        return;
    /* our schema: the first of the configured search path */
    size_t len = strcspn(w->schema, ",");
    if (strlen(schema) != len || strncmp(schema, w->schema, len))
        return;
    const char *p = payload + used;
    pthread_mutex_lock(&w->lock);
    while (sscanf(p, " %299s%n", item, &used) == 1) {
        p += used;
        char *last = strrchr(item, ':');
        if (!last)
            break;
        *last = '\0';
        char key[400];
        snprintf(key, sizeof key, "%s %s", proj, item);
        set_next(w, key, strtoll(last + 1, NULL, 10));
    }
    wake_reached(w);
    pthread_mutex_unlock(&w->lock);
}

static tl_err_t reread(tl_waiter_t *w, tl_pg_t *pg)
{
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(pg,
                              "SELECT projection || ' ' || topic || ':' || partition, next_offset"
                              " FROM projection_offsets",
                              0, NULL, &res);
    if (!err) {
        pthread_mutex_lock(&w->lock);
        for (int r = 0; r < tl_pg_nrows(res); r++)
            set_next(w, tl_pg_get(res, r, 0), strtoll(tl_pg_get(res, r, 1), NULL, 10));
        wake_reached(w);
        pthread_mutex_unlock(&w->lock);
    }
    tl_pg_res_free(res);
    return err;
}

static void *listen_loop(void *arg)
{
    tl_waiter_t *w = arg;
    tl_pg_t *pg = NULL;
    while (!atomic_load(&w->stop)) {
        if (!pg) {
            if (tl_pg_connect(w->dsn, w->schema, "gateway-waiter", &pg) ||
                tl_pg_listen(pg, TL_NOTIFY_CHANNEL)) {
                tl_pg_destroy(pg);
                pg = NULL;
                struct timespec ts = {0, 500000000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        /* LISTEN first, then read, so no progress falls between the two. */
        tl_err_t err = reread(w, pg);
        for (int i = 0; i < 10 && !err && !atomic_load(&w->stop); i++)
            err = tl_pg_wait_notify(pg, 100, on_notify, w);
        if (err) {
            tl_pg_destroy(pg);
            pg = NULL;
        }
    }
    tl_pg_destroy(pg);
    return NULL;
}

tl_err_t tl_waiter_new(const char *dsn, const char *schema, tl_waiter_t **out)
{
    tl_waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return TL_ERR_NOMEM;
    w->dsn = dsn;
    w->schema = schema;
    pthread_mutex_init(&w->lock, NULL);
    tl_map_init(&w->next);
    tl_map_init(&w->epoch);
    if (pthread_create(&w->thread, NULL, listen_loop, w)) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        return TL_ERR_INTERNAL;
    }
    *out = w;
    return TL_OK;
}

void tl_waiter_destroy(tl_waiter_t *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    tl_map_cleanup(&w->next);
    tl_map_cleanup(&w->epoch);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

tl_err_t tl_waiter_wait_all(tl_waiter_t *w, const char *const *projections, size_t nproj,
                            const char *topic, int32_t partition, int64_t offset, int timeout_ms)
{
    char keys[TL_WAITER_PROJECTIONS_MAX][400];
    if (nproj > TL_WAITER_PROJECTIONS_MAX)
        return TL_ERR_INTERNAL;
    for (size_t i = 0; i < nproj; i++)
        snprintf(keys[i], sizeof keys[i], "%s %s:%d", projections[i], topic, partition);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    tl_err_t err = TL_OK;
    waiting_t me = {.keys = keys, .nkeys = nproj, .offset = offset};
    pthread_mutex_lock(&w->lock);
    if (reached(w, &me))
        goto out;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&me.cond, &ca);
    pthread_condattr_destroy(&ca);
    me.next = w->waiting;
    if (me.next)
        me.next->prev = &me;
    w->waiting = &me;
    while (!me.done)
        if (pthread_cond_timedwait(&me.cond, &w->lock, &until) && !me.done) {
            unlink_waiting(w, &me);
            err = TL_ERR_TIMEOUT;
            break;
        }
    /* whoever set done signalled under the lock, which this thread holds
     * again: nobody touches me any more */
    pthread_cond_destroy(&me.cond);
out:
    pthread_mutex_unlock(&w->lock);
    return err;
}

tl_err_t tl_waiter_wait(tl_waiter_t *w, const char *projection, const char *topic,
                        int32_t partition, int64_t offset, int timeout_ms)
{
    return tl_waiter_wait_all(w, &projection, 1, topic, partition, offset, timeout_ms);
}

int64_t tl_waiter_epoch(tl_waiter_t *w, const char *projection, const char *topic)
{
    char key[400];
    if (!w)
        return 0;
    snprintf(key, sizeof key, "%s%s%s", projection, topic ? " " : "", topic ? topic : "");
    pthread_mutex_lock(&w->lock);
    int64_t sum = (intptr_t)tl_map_get(&w->epoch, key);
    pthread_mutex_unlock(&w->lock);
    return sum;
}
