#include "backpressure.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_pg.h"
#include "tl_topics.h"

struct tl_bp {
    tl_kafka_producer_t *kafka;
    const char *dsn, *schema;
    long max_lag;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool engaged;
    atomic_llong worst;
    pthread_mutex_t lock;
    tl_map_t end; /* "topic:partition" -> log end offset (intptr_t), guarded by lock */
};

static void key_of(char *out, size_t size, const char *topic, int32_t partition)
{
    snprintf(out, size, "%s:%d", topic, partition);
}

static void raise_end(tl_bp_t *bp, const char *key, int64_t end)
{
    pthread_mutex_lock(&bp->lock);
    if ((intptr_t)tl_map_get(&bp->end, key) < end)
        tl_map_put(&bp->end, key, (void *)(intptr_t)end);
    pthread_mutex_unlock(&bp->lock);
}

void tl_bp_produced(tl_bp_t *bp, const char *topic, int32_t partition, int64_t offset)
{
    char key[300];
    key_of(key, sizeof key, topic, partition);
    raise_end(bp, key, offset + 1);
}

bool tl_bp_engaged(tl_bp_t *bp, int64_t *lag)
{
    *lag = atomic_load(&bp->worst);
    return atomic_load(&bp->engaged);
}

/* Log ends of every topic the archive takes, from the broker. */
static void refresh_ends(tl_bp_t *bp)
{
    for (size_t t = 0; t < tl_topics_count; t++) {
        int n = tl_kafka_producer_partitions(bp->kafka, tl_topics_all[t], 1000);
        for (int p = 0; p < n; p++) {
            int64_t lo = 0, hi = 0;
            char key[300];
            if (tl_kafka_producer_watermarks(bp->kafka, tl_topics_all[t], p, &lo, &hi, 1000))
                continue;
            key_of(key, sizeof key, tl_topics_all[t], p);
            raise_end(bp, key, hi);
        }
    }
}

/* Worst lag over all known partitions; -1 when the archive cannot be read. */
static int64_t worst_lag(tl_bp_t *bp, tl_pg_t *pg)
{
    tl_pg_res_t *res = NULL;
    const char *params[] = {TL_PROJECTION_AUDIT};
    if (tl_pg_exec(pg,
                   "SELECT topic || ':' || partition, next_offset FROM projection_offsets"
                   " WHERE projection = $1",
                   1, params, &res))
        return -1;
    tl_map_t archived;
    tl_map_init(&archived);
    for (int r = 0; r < tl_pg_nrows(res); r++)
        tl_map_put(&archived, tl_pg_get(res, r, 0),
                   (void *)(intptr_t)strtoll(tl_pg_get(res, r, 1), NULL, 10));
    int64_t worst = 0;
    pthread_mutex_lock(&bp->lock);
    for (size_t i = 0; i < bp->end.cap; i++) {
        if (!bp->end.keys[i])
            continue;
        int64_t lag = (intptr_t)bp->end.vals[i] - (intptr_t)tl_map_get(&archived, bp->end.keys[i]);
        if (lag > worst)
            worst = lag;
    }
    pthread_mutex_unlock(&bp->lock);
    tl_map_cleanup(&archived);
    tl_pg_res_free(res);
    return worst;
}

static void *monitor(void *arg)
{
    tl_bp_t *bp = arg;
    tl_pg_t *pg = NULL;
    int rounds = 0;
    while (!atomic_load(&bp->stop)) {
        if (!pg && tl_pg_connect(bp->dsn, bp->schema, "gateway-backpressure", &pg))
            pg = NULL;
        if (rounds++ % 5 == 0) /* the broker's view, for writes of other producers */
            refresh_ends(bp);
        int64_t worst = pg ? worst_lag(bp, pg) : -1;
        if (worst < 0) {
            /* cannot tell how far the archive is: be safe */
            tl_pg_destroy(pg);
            pg = NULL;
            worst = INT64_MAX;
        }
        bool was = atomic_load(&bp->engaged), now = worst > bp->max_lag;
        atomic_store(&bp->worst, worst);
        atomic_store(&bp->engaged, now);
        if (was != now)
            tl_log_warn(now ? "backpressure_on" : "backpressure_off",
                        json_pack("{s:I, s:i}", "worst_lag", (json_int_t)(worst == INT64_MAX ? -1 : worst),
                                  "max_lag", (int)bp->max_lag));
        struct timespec ts = {0, TL_BP_PERIOD_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    tl_pg_destroy(pg);
    return NULL;
}

tl_err_t tl_bp_new(tl_kafka_producer_t *kafka, const char *dsn, const char *schema,
                   long max_lag, tl_bp_t **out)
{
    tl_bp_t *bp = calloc(1, sizeof *bp);
    if (!bp)
        return TL_ERR_NOMEM;
    bp->kafka = kafka;
    bp->dsn = dsn;
    bp->schema = schema;
    bp->max_lag = max_lag;
    atomic_store(&bp->engaged, true); /* until the first look at the archive */
    atomic_store(&bp->worst, -1);
    pthread_mutex_init(&bp->lock, NULL);
    tl_map_init(&bp->end);
    if (pthread_create(&bp->thread, NULL, monitor, bp)) {
        tl_map_cleanup(&bp->end);
        free(bp);
        return TL_ERR_INTERNAL;
    }
    *out = bp;
    return TL_OK;
}

void tl_bp_destroy(tl_bp_t *bp)
{
    if (!bp)
        return;
    atomic_store(&bp->stop, true);
    pthread_join(bp->thread, NULL);
    tl_map_cleanup(&bp->end);
    pthread_mutex_destroy(&bp->lock);
    free(bp);
}
