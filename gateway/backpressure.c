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

#define TOPICS_MAX 16

struct tl_bp {
    tl_kafka_producer_t *kafka;
    const char *brokers, *dsn, *schema;
    long max_lag;
    tl_bp_retention_t retention[TOPICS_MAX]; /* of tl_topics_all[i]; monitor thread only */
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

bool tl_bp_must_wait(const tl_bp_retention_t *r, const tl_bp_partition_t *p, int64_t now_ms,
                     long max_lag)
{
    if (p->lag <= 0)
        return false;
    if (max_lag > 0 && p->lag > max_lag)
        return true;
    if (r->bytes >= 0 && p->lag > r->bytes / 2 / TL_BP_EVENT_BYTES)
        return true;
    /* nothing archived yet: the oldest message's age is unknown */
    if (r->ms >= 0 && (p->last_archived_ms < 0 || now_ms - p->last_archived_ms > r->ms / 2))
        return true;
    return false;
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

/* Each log topic's retention.ms and retention.bytes from the cluster. One
 * that cannot be read keeps what it was; until first read it counts as 0
 * (any unarchived message makes commands wait: cannot tell, so be safe). */
static void refresh_retention(tl_bp_t *bp)
{
    for (size_t t = 0; t < tl_topics_count && t < TOPICS_MAX; t++) {
        char ms[32], bytes[32];
        const char *const names[] = {"retention.ms", "retention.bytes"};
        char *const values[] = {ms, bytes};
        if (tl_kafka_topic_config(bp->brokers, tl_topics_all[t], 2, names, values, sizeof ms,
                                  2000))
            continue;
        tl_bp_retention_t r = {strtoll(ms, NULL, 10), strtoll(bytes, NULL, 10)};
        if (r.ms != bp->retention[t].ms || r.bytes != bp->retention[t].bytes)
            tl_log_info("backpressure_retention",
                        json_pack("{s:s, s:I, s:I}", "topic", tl_topics_all[t], "retention_ms",
                                  (json_int_t)r.ms, "retention_bytes", (json_int_t)r.bytes));
        bp->retention[t] = r;
    }
}

static const tl_bp_retention_t *retention_of(const tl_bp_t *bp, const char *key)
{
    static const tl_bp_retention_t unknown = {0, 0};
    size_t len = strcspn(key, ":");
    for (size_t t = 0; t < tl_topics_count && t < TOPICS_MAX; t++)
        if (strlen(tl_topics_all[t]) == len && !strncmp(tl_topics_all[t], key, len))
            return &bp->retention[t];
    return &unknown;
}

/* Worst lag over all known partitions into *worst, and whether any of them
 * makes commands wait; false with *worst -1 when the archive cannot be read. */
static bool look(tl_bp_t *bp, tl_pg_t *pg, int64_t *worst)
{
    tl_pg_res_t *res = NULL;
    const char *params[] = {TL_PROJECTION_AUDIT};
    *worst = -1;
    if (tl_pg_exec(pg,
                   "SELECT o.topic || ':' || o.partition, o.next_offset,"
                   " COALESCE((SELECT (extract(epoch FROM a.logged_at) * 1000)::bigint"
                   "   FROM audit_log a WHERE a.topic = o.topic AND a.partition = o.partition"
                   "   AND a.\"offset\" = o.next_offset - 1), -1)"
                   " FROM projection_offsets o WHERE o.projection = $1",
                   1, params, &res))
        return false;
    tl_map_t archived;
    tl_map_init(&archived);
    for (int r = 0; r < tl_pg_nrows(res); r++)
        tl_map_put(&archived, tl_pg_get(res, r, 0), (void *)(intptr_t)(r + 1)); /* 0: none */
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    bool wait = false;
    *worst = 0;
    pthread_mutex_lock(&bp->lock);
    for (size_t i = 0; i < bp->end.cap; i++) {
        if (!bp->end.keys[i])
            continue;
        tl_bp_partition_t p = {(intptr_t)bp->end.vals[i], -1};
        int row = (int)(intptr_t)tl_map_get(&archived, bp->end.keys[i]) - 1;
        if (row >= 0) {
            p.lag -= strtoll(tl_pg_get(res, row, 1), NULL, 10);
            p.last_archived_ms = strtoll(tl_pg_get(res, row, 2), NULL, 10);
        }
        if (p.lag > *worst)
            *worst = p.lag;
        wait = wait || tl_bp_must_wait(retention_of(bp, bp->end.keys[i]), &p, now_ms,
                                       bp->max_lag);
    }
    pthread_mutex_unlock(&bp->lock);
    tl_map_cleanup(&archived);
    tl_pg_res_free(res);
    return wait;
}

static void *monitor(void *arg)
{
    tl_bp_t *bp = arg;
    tl_pg_t *pg = NULL;
    int rounds = 0;
    while (!atomic_load(&bp->stop)) {
        if (!pg && tl_pg_connect(bp->dsn, bp->schema, "gateway-backpressure", &pg))
            pg = NULL;
        if (rounds % (TL_BP_RETENTION_PERIOD_MS / TL_BP_PERIOD_MS) == 0)
            refresh_retention(bp);
        if (rounds++ % 5 == 0) /* the broker's view, for writes of other producers */
            refresh_ends(bp);
        int64_t worst = -1;
        bool now = pg ? look(bp, pg, &worst) : false;
        if (worst < 0) {
            /* cannot tell how far the archive is: be safe */
            tl_pg_destroy(pg);
            pg = NULL;
            worst = INT64_MAX;
            now = true;
        }
        bool was = atomic_load(&bp->engaged);
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

tl_err_t tl_bp_new(tl_kafka_producer_t *kafka, const char *brokers, const char *dsn,
                   const char *schema, long max_lag, tl_bp_t **out)
{
    tl_bp_t *bp = calloc(1, sizeof *bp);
    if (!bp)
        return TL_ERR_NOMEM;
    bp->kafka = kafka;
    bp->brokers = brokers;
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
