/* trialog: the operator's command line.
 *
 *   trialog audit verify    check the archive: every chain, every row's columns,
 *                           every signed checkpoint, and the broker's log against
 *                           it; name the first problem; exit 1 if any
 *                           (tools/audit_cli.c)
 *   trialog audit keygen PRIV PUB
 *                           the checkpoints' Ed25519 key pair
 *   trialog db secure       as the superuser (TRIALOG_PG_SUPER_DSN): the archive
 *                           into its own schema, owned by a role that cannot log
 *                           in; the application may SELECT and INSERT only
 *   trialog reseed          give an empty broker its log back from the archive:
 *                           every partition re-produced in order, so offsets
 *                           continue exactly where they were (DESIGN.md §7)
 *   trialog rebuild NAME    replay projection NAME from offset 0 (archive, then
 *                           broker) into fresh tables beside the live ones, and
 *                           swap them in atomically once caught up
 *   trialog admin ...       principals, bearer tokens, signing credentials
 *                           (tools/admin.c; `trialog admin` lists them)
 *   trialog topics ensure [--wait-brokers N]
 *                           create every topic the deployment needs (the log,
 *                           dead letters, research, configured ingest sources)
 *                           and check those that exist: partitions, replicas,
 *                           retention, min.insync.replicas; exit 1 on a
 *                           mismatch (docs/KAFKA.md)
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "audit.h"
#include "audit_cli.h"
#include "ingest_consumer.h"
#include "tl_codec.h"
#include "tl_config.h"
#include "tl_consumer.h"
#include "tl_migrations.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_pg.h"
#include "tl_topics.h"

static int usage(void)
{
    fprintf(stderr, "usage: trialog [--print-config] audit verify | audit keygen PRIV PUB |"
                    " db secure | reseed | rebuild NAME | admin ... |"
                    " topics ensure [--wait-brokers N]\n");
    return 2;
}

/* ---- rebuild ---- */

#define REBUILD_WORKERS_MAX 16

typedef struct rebuilder rebuilder_t;

typedef struct {
    rebuilder_t *rb; /* borrowed */
    tl_consumer_cfg_t cfg; /* the rebuilder's, as member i of nworkers */
    pthread_t th;
    bool started;
    volatile sig_atomic_t done;
    tl_err_t err;
} rebuild_worker_t;

/* The rebuild's consumers, each with its own connection (a consumer and its
 * database backend take turns; several pairs keep the cores busy). They
 * split each topic's partitions among themselves (p % nworkers) instead of
 * joining a consumer group: the shadow is theirs alone, and a group's join
 * costs seconds of the broker's initial rebalance delay. */
struct rebuilder {
    tl_consumer_cfg_t cfg;
    const tl_projection_t *proj;
    volatile sig_atomic_t stop;
    int nworkers;
    rebuild_worker_t workers[REBUILD_WORKERS_MAX];
};

static void *rebuild_thread(void *arg)
{
    rebuild_worker_t *w = arg;
    w->err = tl_consumer_run(&w->cfg, w->rb->proj, &w->rb->stop);
    w->done = 1;
    return NULL;
}

/* Whether any worker has stopped; *err is then the first such worker's error
 * (TL_OK when it stopped without one). */
static bool rebuild_any_done(const rebuilder_t *rb, tl_err_t *err)
{
    for (int i = 0; i < rb->nworkers; i++)
        if (rb->workers[i].done) {
            *err = rb->workers[i].err;
            return true;
        }
    return false;
}

static void rebuild_stop(rebuilder_t *rb)
{
    rb->stop = 1;
    for (int i = 0; i < rb->nworkers; i++)
        if (rb->workers[i].started) {
            pthread_join(rb->workers[i].th, NULL);
            rb->workers[i].started = false;
        }
}

static double now_s(void)
{
    return tl_log_mono_ms() / 1e3;
}

/* The integer a query made from fmt (quoted identifiers only) answers, with
 * name as $1; -1 on failure. */
__attribute__((format(printf, 3, 4))) static int64_t query_int(tl_pg_t *pg, const char *name,
                                                               const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    const char *params[] = {name};
    tl_pg_res_t *res = NULL;
    int64_t n = -1;
    if (len > 0 && (size_t)len < sizeof sql && !tl_pg_exec(pg, sql, 1, params, &res) &&
        tl_pg_get(res, 0, 0))
        n = strtoll(tl_pg_get(res, 0, 0), NULL, 10);
    tl_pg_res_free(res);
    return n;
}

/* Sum of the next offsets the shadow projection stored. */
static int64_t shadow_applied(tl_pg_t *pg, const char *shadow_q, const char *name)
{
    return query_int(pg, name,
                     "SELECT COALESCE(sum(next_offset), 0) FROM %s.projection_offsets"
                     " WHERE projection = $1",
                     shadow_q);
}

/* Sum of the log's end offsets over the projection's topics. */
static int64_t log_end(tl_kafka_producer_t *kafka, const tl_projection_t *p)
{
    int64_t total = 0;
    for (size_t t = 0; t < p->ntopics; t++) {
        int n = tl_kafka_producer_partitions(kafka, p->topics[t], 5000);
        for (int i = 0; i < n; i++) {
            int64_t lo = 0, hi = 0;
            if (tl_kafka_producer_watermarks(kafka, p->topics[t], i, &lo, &hi, 5000))
                return -1;
            total += hi;
        }
        if (n < 0)
            return -1;
    }
    return total;
}

/* Partitions where the shadow is behind the live offsets (locked by the
 * caller's transaction). */
static int64_t shadow_behind_live(tl_pg_t *pg, const char *shadow_q, const char *name)
{
    return query_int(pg, name,
                     "SELECT count(*) FROM projection_offsets m LEFT JOIN %s.projection_offsets s"
                     " ON s.projection = m.projection AND s.topic = m.topic"
                     " AND s.partition = m.partition"
                     " WHERE m.projection = $1 AND m.next_offset > COALESCE(s.next_offset, 0)",
                     shadow_q);
}

/* Runs SQL made from fmt (only quoted identifiers go in), with name as $1. */
__attribute__((format(printf, 3, 4))) static tl_err_t exec_fmt(tl_pg_t *pg, const char *name,
                                                               const char *fmt, ...)
{
    char sql[1024];
    const char *params[] = {name};
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof sql)
        return TL_ERR_INTERNAL;
    return tl_pg_exec(pg, sql, name ? 1 : 0, params, NULL);
}

/* Drops the shadow's read indexes (tl_projection_t.read_indexes), keeping
 * each one's definition in defs[i] (caller frees each) for build_indexes. An
 * index the projection names but its migrations do not make is an error. */
static tl_err_t defer_indexes(tl_pg_t *pg, const tl_projection_t *p, const char *shadow,
                              const char *shadow_q, char **defs)
{
    tl_err_t err = TL_OK;
    tl_buf_t iq;
    tl_buf_init(&iq, 256);
    for (size_t i = 0; i < p->nread_indexes && !err; i++) {
        const char *params[] = {shadow, p->read_indexes[i]};
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(pg,
                         "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
                         2, params, &res);
        const char *def = err ? NULL : tl_pg_get(res, 0, 0);
        if (!err && !def) {
            fprintf(stderr, "rebuild %s: its tables have no index %s\n", p->name,
                    p->read_indexes[i]);
            err = TL_ERR_INTERNAL;
        }
        if (!err && !(defs[i] = strdup(def)))
            err = TL_ERR_NOMEM;
        tl_pg_res_free(res);
        tl_buf_reset(&iq);
        if (!err)
            err = tl_pg_ident(pg, p->read_indexes[i], &iq);
        if (!err)
            err = exec_fmt(pg, NULL, "DROP INDEX %s.%s", shadow_q, iq.data);
    }
    tl_buf_cleanup(&iq);
    return err;
}

/* Builds the indexes defer_indexes dropped, each in its own transaction: the
 * workers keep applying, and one waits for a table's index only while that
 * table's is built, so neither holds a lock the other waits for. */
static tl_err_t build_indexes(tl_pg_t *pg, const tl_projection_t *p, char **defs)
{
    double t0 = now_s();
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < p->nread_indexes && !err; i++)
        err = tl_pg_exec(pg, defs[i], 0, NULL, NULL);
    if (!err && p->nread_indexes) {
        printf("rebuild %s: %zu read indexes built in %.1f s\n", p->name, p->nread_indexes,
               now_s() - t0);
        fflush(stdout);
    }
    return err;
}

/* Under a lock on the live offsets, lets the shadow pass the live position,
 * stops it, and swaps tables, offsets and rejections in one transaction. */
static tl_err_t swap_in(tl_pg_t *pg, rebuilder_t *rb, const char *shadow_q, const char *main_q)
{
    const tl_projection_t *p = rb->proj;
    const char *params[] = {p->name};
    tl_err_t err = tl_pg_exec(pg, "BEGIN", 0, NULL, NULL);
    /* the live consumer now waits at its next batch */
    if (!err)
        err = tl_pg_exec(pg,
                         "SELECT next_offset FROM projection_offsets WHERE projection = $1"
                         " ORDER BY topic, partition FOR UPDATE",
                         1, params, NULL);
    for (int i = 0; !err; i++) {
        int64_t behind = shadow_behind_live(pg, shadow_q, p->name);
        tl_err_t werr = TL_OK;
        if (behind == 0)
            break;
        if (behind < 0)
            err = TL_ERR_DB;
        else if (rebuild_any_done(rb, &werr))
            err = werr ? werr : TL_ERR_UNAVAILABLE;
        else if (i == 600)
            err = TL_ERR_TIMEOUT;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    rebuild_stop(rb);
    for (size_t t = 0; t < p->ntables && !err; t++) {
        err = exec_fmt(pg, NULL, "DROP TABLE %s", p->tables[t]);
        if (!err) {
            char sql[512];
            snprintf(sql, sizeof sql, "ALTER TABLE %s.%s SET SCHEMA %s", shadow_q, p->tables[t],
                     main_q);
            err = tl_pg_exec(pg, sql, 0, NULL, NULL);
        }
    }
    if (!err)
        err = exec_fmt(pg, p->name,
                       "UPDATE projection_offsets o SET next_offset = s.next_offset,"
                       " updated_at = now() FROM %s.projection_offsets s"
                       " WHERE o.projection = s.projection AND o.topic = s.topic"
                       " AND o.partition = s.partition AND o.projection = $1",
                       shadow_q);
    if (!err)
        err = exec_fmt(pg, p->name,
                       "INSERT INTO projection_offsets SELECT * FROM %s.projection_offsets"
                       " WHERE projection = $1 ON CONFLICT DO NOTHING",
                       shadow_q);
    if (!err)
        err = tl_pg_exec(pg, "DELETE FROM projection_rejections WHERE projection = $1", 1, params,
                         NULL);
    if (!err)
        err = exec_fmt(pg, p->name,
                       "INSERT INTO projection_rejections SELECT * FROM %s.projection_rejections"
                       " WHERE projection = $1",
                       shadow_q);
    if (!err)
        err = tl_pg_exec(pg, "COMMIT", 0, NULL, NULL);
    if (err)
        tl_pg_exec(pg, "ROLLBACK", 0, NULL, NULL);
    return err;
}

static int rebuild(tl_pg_t *pg, const char *dsn, const char *schema, const char *brokers,
                   const tl_registry_cfg_t *registry, const tl_consumer_cfg_t *research,
                   int workers, const char *name)
{
    const tl_projection_t *p = tl_projection_find(name);
    if (!p || !p->ntables) {
        fprintf(stderr, "rebuild: no projection '%s' to rebuild (participants, schedules, access,"
                " forms, research)\n", name);
        return 2;
    }
    char shadow[64], path[200];
    if (snprintf(shadow, sizeof shadow, "%s_rebuild", schema) >= (int)sizeof shadow) {
        fprintf(stderr, "rebuild: schema name too long\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s,%s", shadow, schema);
    tl_buf_t sq, mq;
    tl_buf_init(&sq, 256);
    tl_buf_init(&mq, 256);
    rebuilder_t rb = {.proj = p,
                      .nworkers = workers,
                      .cfg = {.brokers = brokers, .pg_dsn = dsn, .pg_schema = path,
                              .batch_max = 2000, .poll_ms = 100, .no_migrate = true,
                              .sync_commit = true,
                              .registry = *registry,
                              .research_key_file = research->research_key_file,
                              .research_dates = research->research_dates}};
    tl_kafka_producer_t *kafka = NULL;
    tl_pg_t *spg = NULL;
    int rc = 2;
    char **index_defs = calloc(p->nread_indexes + 1, sizeof *index_defs);
    tl_err_t err = index_defs ? tl_pg_ident(pg, shadow, &sq) : TL_ERR_NOMEM;
    if (!err)
        err = tl_pg_ident(pg, schema, &mq);
    if (!err)
        err = exec_fmt(pg, NULL, "DROP SCHEMA IF EXISTS %s CASCADE", sq.data);
    /* the shadow tables: the projection's own migrations, in the shadow schema */
    if (!err)
        err = tl_pg_connect(dsn, path, "trialog-rebuild", &spg);
    if (!err)
        err = tl_migrations_replay(spg, p->migrations, p->nmigrations);
    tl_pg_destroy(spg);
    if (!err)
        err = defer_indexes(pg, p, shadow, sq.data, index_defs);
    if (!err)
        err = tl_kafka_producer_new(brokers, 10000, &kafka);
    for (int i = 0; i < rb.nworkers && !err; i++) {
        rebuild_worker_t *w = &rb.workers[i];
        w->rb = &rb;
        w->cfg = rb.cfg;
        w->cfg.member = i;
        w->cfg.members = rb.nworkers;
        if (!(w->started = !pthread_create(&w->th, NULL, rebuild_thread, w)))
            err = TL_ERR_INTERNAL;
    }
    double t0 = now_s(), last = t0;
    int64_t prev = 0, end = 0;
    /* progress once a second; whether it is done five times a second (the
     * log's end, a broker round trip per partition, only when the shadow
     * seems to have reached the last one seen, or for the progress line) */
    for (int tick = 1; !err; tick++) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        bool progress = tick % 5 == 0;
        int64_t applied = shadow_applied(pg, sq.data, p->name);
        if (progress || applied >= end)
            end = log_end(kafka, p);
        double t = now_s();
        tl_err_t werr = TL_OK;
        if (rebuild_any_done(&rb, &werr) || applied < 0 || end < 0) {
            err = werr ? werr : TL_ERR_UNAVAILABLE;
            break;
        }
        if (!progress && applied < end)
            continue;
        printf("rebuild %s: %lld of %lld events, %.0f events/s, %lld remaining\n", p->name,
               (long long)applied, (long long)end, (double)(applied - prev) / (t - last),
               (long long)(end - applied));
        fflush(stdout);
        prev = applied;
        last = t;
        if (applied >= end)
            break;
    }
    if (!err)
        err = build_indexes(pg, p, index_defs);
    if (!err)
        err = swap_in(pg, &rb, sq.data, mq.data);
    rebuild_stop(&rb);
    if (!err) {
        exec_fmt(pg, NULL, "DROP SCHEMA %s CASCADE", sq.data);
        double secs = now_s() - t0;
        printf("rebuild %s: done, %lld events in %.1f s (%.0f events/s), swapped in\n", p->name,
               (long long)prev, secs, (double)prev / (secs > 0 ? secs : 1));
        rc = 0;
    } else {
        if (sq.len) /* what it built so far is of no use to anyone */
            exec_fmt(pg, NULL, "DROP SCHEMA IF EXISTS %s CASCADE", sq.data);
        fprintf(stderr, "rebuild %s: failed (%s); the live projection is unchanged\n", p->name,
                tl_err_name(err));
    }
    tl_kafka_producer_destroy(kafka);
    for (size_t i = 0; index_defs && i < p->nread_indexes; i++)
        free(index_defs[i]);
    free(index_defs);
    tl_buf_cleanup(&sq);
    tl_buf_cleanup(&mq);
    return rc;
}

#define RESEED_PAGE 5000

/* Re-produces one partition's archive, rows [0, next), in order. */
static tl_err_t reseed_partition(tl_pg_t *pg, tl_kafka_producer_t *kafka, const char *topic,
                                 int32_t partition, int64_t next)
{
    char part[16], from[24], page[16];
    snprintf(part, sizeof part, "%d", partition);
    snprintf(page, sizeof page, "%d", RESEED_PAGE);
    tl_buf_t key, value, hv[32];
    tl_buf_init(&key, 64 * 1024 * 1024);
    tl_buf_init(&value, 64 * 1024 * 1024);
    for (int i = 0; i < 32; i++)
        tl_buf_init(&hv[i], 1024 * 1024);
    tl_err_t err = TL_OK;
    for (int64_t at = 0; at < next && !err;) {
        snprintf(from, sizeof from, "%lld", (long long)at);
        const char *params[] = {topic, part, from, page};
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(pg,
                         "SELECT \"offset\", key, value, headers::text,"
                         " COALESCE((extract(epoch FROM logged_at) * 1000)::bigint, 0)"
                         " FROM audit_log"
                         " WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3"
                         " ORDER BY \"offset\" LIMIT $4",
                         4, params, &res);
        int n = err ? 0 : tl_pg_nrows(res);
        if (!err && !n)
            err = TL_ERR_LOG_GAP;
        for (int r = 0; r < n && !err; r++) {
            const char *k = tl_pg_get(res, r, 1), *v = tl_pg_get(res, r, 2);
            json_t *headers = json_loads(tl_pg_get(res, r, 3), 0, NULL);
            tl_kafka_header_t hs[32];
            size_t nh = json_array_size(headers);
            tl_buf_reset(&key);
            tl_buf_reset(&value);
            if (strtoll(tl_pg_get(res, r, 0), NULL, 10) != at || nh > 32 ||
                (k && tl_bytea_unhex(&key, k)) || (v && tl_bytea_unhex(&value, v)))
                err = TL_ERR_LOG_GAP;
            for (size_t h = 0; h < nh && !err; h++) {
                const json_t *x = json_array_get(headers, h);
                bool present = false;
                err = tl_audit_header_value(x, &hv[h], &present);
                hs[h] = (tl_kafka_header_t){json_string_value(json_object_get(x, "name")),
                                            present ? (hv[h].data ? hv[h].data : "") : NULL,
                                            hv[h].len};
                if (!hs[h].name)
                    err = TL_ERR_MALFORMED;
            }
            if (!err)
                /* with the time the broker first logged it, so that the
                 * log is what it was (`trialog audit verify` compares) */
                err = tl_kafka_produce_at(kafka, topic, partition, k ? key.data : NULL, key.len,
                                          v ? (value.data ? value.data : "") : NULL, value.len,
                                          hs, nh, tl_pg_get_int(res, r, 4), NULL);
            json_decref(headers);
            at++;
        }
        tl_pg_res_free(res);
    }
    if (!err)
        err = tl_kafka_producer_flush(kafka, 120000);
    tl_buf_cleanup(&key);
    tl_buf_cleanup(&value);
    for (int i = 0; i < 32; i++)
        tl_buf_cleanup(&hv[i]);
    return err;
}

static int reseed(tl_pg_t *pg, const char *brokers)
{
    tl_kafka_producer_t *kafka = NULL;
    tl_pg_res_t *res = NULL;
    int rc = 0;
    long restored = 0;
    if (!brokers || !*brokers) {
        fprintf(stderr, "reseed: TRIALOG_KAFKA_BROKERS is not set\n");
        return 2;
    }
    if (tl_kafka_producer_new(brokers, 30000, &kafka) ||
        tl_pg_exec(pg,
                   "SELECT topic, partition, max(\"offset\") + 1, count(*) FROM audit_log"
                   " GROUP BY topic, partition ORDER BY topic, partition",
                   0, NULL, &res)) {
        fprintf(stderr, "reseed: cannot reach the broker or the archive\n");
        tl_kafka_producer_destroy(kafka);
        return 2;
    }
    for (int r = 0; r < tl_pg_nrows(res) && rc != 2; r++) {
        const char *topic = tl_pg_get(res, r, 0);
        int32_t part = (int32_t)strtol(tl_pg_get(res, r, 1), NULL, 10);
        int64_t next = strtoll(tl_pg_get(res, r, 2), NULL, 10);
        int64_t count = strtoll(tl_pg_get(res, r, 3), NULL, 10), lo = 0, hi = 0;
        if (tl_kafka_producer_partitions(kafka, topic, 10000) <= part ||
            tl_kafka_producer_watermarks(kafka, topic, part, &lo, &hi, 10000)) {
            printf("FAILED  %s/%d: the broker has no such partition\n", topic, part);
            rc = 2;
        } else if (hi >= next) {
            printf("ok      %s/%d: the broker has offsets up to %lld (archive %lld)\n", topic,
                   part, (long long)hi, (long long)next);
        } else if (hi > 0) {
            printf("FAILED  %s/%d: the broker has %lld messages, the archive %lld: something "
                   "was produced before the re-seed; stop all producers, reset the broker, "
                   "and re-seed again\n",
                   topic, part, (long long)hi, (long long)next);
            rc = 1;
        } else if (count != next) {
            printf("FAILED  %s/%d: the archive has %lld of offsets 0..%lld\n", topic, part,
                   (long long)count, (long long)next - 1);
            rc = 1;
        } else if (reseed_partition(pg, kafka, topic, part, next) ||
                   tl_kafka_producer_watermarks(kafka, topic, part, &lo, &hi, 10000) ||
                   hi != next) {
            printf("FAILED  %s/%d: re-producing stopped before offset %lld\n", topic, part,
                   (long long)next);
            rc = 2;
        } else {
            printf("seeded  %s/%d: %lld messages, offsets continue at %lld\n", topic, part,
                   (long long)next, (long long)next);
            restored += (long)next;
        }
    }
    printf("%s: %ld messages re-produced\n", rc ? "reseed FAILED" : "reseed done", restored);
    tl_pg_res_free(res);
    tl_kafka_producer_destroy(kafka);
    return rc;
}

/* ---- topics ---- */

typedef struct {
    long partitions, replication, min_isr, retention_ms, retention_bytes;
    const char *ingest_sources;
} topics_cfg_t;

#define TOPICS_MAX (64 + 2 * TL_INGEST_SOURCES_MAX)

static int topics_ensure(const char *brokers, const topics_cfg_t *cfg, int argc, char **argv)
{
    long want_brokers = 1;
    char ingest[TL_INGEST_SOURCES_MAX][TL_INGEST_TOPIC_LEN];
    char dlq[TL_INGEST_SOURCES_MAX][TL_INGEST_TOPIC_LEN + 8];
    tl_kafka_topic_spec_t specs[TOPICS_MAX];
    char isr[24], ret_ms[24], ret_bytes[24], *end = NULL;
    size_t n = 0;
    int count = 0;
    if (argc == 2 && !strcmp(argv[0], "--wait-brokers"))
        want_brokers = strtol(argv[1], &end, 10);
    if ((argc != 0 && argc != 2) || (argc == 2 && (*end || want_brokers < 1 || want_brokers > 64)))
        return usage();
    if (!brokers || !*brokers) {
        fprintf(stderr, "topics: TRIALOG_KAFKA_BROKERS is not set\n");
        return 2;
    }
    int nsources = tl_ingest_topics(cfg->ingest_sources, ingest, TL_INGEST_SOURCES_MAX);
    if (nsources < 0) {
        fprintf(stderr, "topics: TRIALOG_INGEST_SOURCES: 0 to %d source names (a-z 0-9 _ -),"
                        " comma-separated\n",
                TL_INGEST_SOURCES_MAX);
        return 2;
    }
    /* the cluster must be all there before a replication factor is chosen */
    tl_err_t werr = tl_kafka_cluster_wait(brokers, (int)want_brokers, 60000, &count);
    if (werr == TL_ERR_CONFIG) {
        fprintf(stderr, "topics: the cluster refused this client (authentication or TLS):"
                        " check TRIALOG_KAFKA_CONFIG_FILE\n");
        return 2;
    } else if (werr) {
        fprintf(stderr, "topics: the cluster lists %d of %ld brokers after 60 s\n", count,
                want_brokers);
        return 2;
    }
    int rf = cfg->replication ? (int)cfg->replication : count < 3 ? count : 3;
    long min_isr = cfg->min_isr ? cfg->min_isr : rf >= 3 ? 2 : 1;
    if (min_isr > rf) {
        fprintf(stderr, "topics: min.insync.replicas %ld is more than the replication factor %d\n",
                min_isr, rf);
        return 2;
    }
    if (!cfg->retention_ms || !cfg->retention_bytes) {
        fprintf(stderr, "topics: a retention of 0 would delete the log: -1 (keep everything),"
                        " or a positive number\n");
        return 2;
    }
    snprintf(isr, sizeof isr, "%ld", min_isr);
    snprintf(ret_ms, sizeof ret_ms, "%ld", cfg->retention_ms);
    snprintf(ret_bytes, sizeof ret_bytes, "%ld", cfg->retention_bytes);
    /* The log is the audit trail: kept whole (unless the operator chose a
     * finite retention, the archive then being the only complete copy),
     * never led by a replica that missed writes, and written to at least
     * min_isr replicas (acks=all). */
    const tl_kafka_kv_t configs[] = {{"cleanup.policy", "delete"},
                                     {"retention.ms", ret_ms},
                                     {"retention.bytes", ret_bytes},
                                     {"min.insync.replicas", isr},
                                     {"unclean.leader.election.enable", "false"}};
    const tl_kafka_topic_spec_t base = {NULL, (int)cfg->partitions, rf, configs,
                                        sizeof configs / sizeof configs[0]};
    for (size_t i = 0; i < tl_topics_owned_count; i++) {
        specs[n] = base;
        specs[n++].name = tl_topics_owned[i];
    }
    for (int i = 0; i < nsources; i++) {
        snprintf(dlq[i], sizeof dlq[i], "%.*s.dlq", TL_INGEST_TOPIC_LEN - 1, ingest[i]);
        specs[n] = base;
        specs[n++].name = ingest[i];
        specs[n] = base;
        specs[n++].name = dlq[i];
    }
    printf("topics: %zu, %ld partitions, replication factor %d, min.insync.replicas %ld,"
           " retention.ms %ld, retention.bytes %ld (%d brokers)\n",
           n, cfg->partitions, rf, min_isr, cfg->retention_ms, cfg->retention_bytes, count);
    tl_err_t err = tl_kafka_topics_ensure(brokers, specs, n, 30000, stdout);
    printf("%s\n", !err                    ? "topics ok"
                   : err == TL_ERR_CONFLICT ? "topics MISMATCH: existing topics differ from the"
                                              " deployment's settings (nothing was changed)"
                                            : "topics FAILED");
    return !err ? 0 : err == TL_ERR_CONFLICT ? 1 : 2;
}

int main(int argc, char **argv)
{
    const char *dsn = NULL, *schema = NULL, *brokers = NULL, *kafka_config = NULL;
    const char *super_dsn = NULL, *public_key = NULL;
    bool debug = false;
    topics_cfg_t topics = {0};
    long workers = 2;
    tl_registry_cfg_t registry = {0};
    tl_consumer_cfg_t research = {0};
    const tl_config_var_t vars[] = {
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true,
         "libpq connection string", &dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, TL_PG_SCHEMA_MAX, false,
         "database schema", &schema},
        {"TRIALOG_PG_SUPER_DSN", TL_CFG_STR, "", 0, 2000, true,
         "a superuser's libpq connection string (db secure only)", &super_dsn},
        {"TRIALOG_AUDIT_PUBLIC_KEY", TL_CFG_STR, "", 0, 4000, false,
         "the checkpoints' Ed25519 public key, PEM (audit verify)", &public_key},
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, "", 0, 1000, false,
         "Kafka bootstrap servers (reseed, admin)", &brokers},
        TL_REGISTRY_CONFIG_VARS(&registry),
        TL_RESEARCH_CONFIG_VARS(&research),
        {"TRIALOG_DEBUG", TL_CFG_BOOL, "false", 0, 0, false, "debug logs (rebuild)", &debug},
        {"TRIALOG_REBUILD_WORKERS", TL_CFG_INT, "2", 1, REBUILD_WORKERS_MAX, false,
         "consumers a rebuild runs, each on its own share of the partitions", &workers},
        TL_KAFKA_CONFIG_VAR(&kafka_config),
        {"TRIALOG_KAFKA_PARTITIONS", TL_CFG_INT, "6", 1, 1000, false,
         "partitions of each topic (topics ensure; never changed once made)", &topics.partitions},
        {"TRIALOG_KAFKA_REPLICATION", TL_CFG_INT, "0", 0, 16, false,
         "replication factor (topics ensure); 0: min(3, brokers)", &topics.replication},
        {"TRIALOG_KAFKA_MIN_ISR", TL_CFG_INT, "0", 0, 16, false,
         "min.insync.replicas (topics ensure); 0: 2 when replicated 3 times or more, else 1",
         &topics.min_isr},
        {"TRIALOG_INGEST_SOURCES", TL_CFG_STR, "", 0, 1000, false,
         "connectors whose ingest topics exist (topics ensure)", &topics.ingest_sources},
        {"TRIALOG_KAFKA_RETENTION_MS", TL_CFG_INT, "-1", -1, 1000000000000000L, false,
         "retention.ms of every topic (topics ensure); -1: forever", &topics.retention_ms},
        {"TRIALOG_KAFKA_RETENTION_BYTES", TL_CFG_INT, "-1", -1, 1000000000000000L, false,
         "retention.bytes of every partition (topics ensure); -1: no limit",
         &topics.retention_bytes},
    };
    const size_t nvars = sizeof vars / sizeof vars[0];
    tl_log_init("cli", TL_LOG_WARN);
    if (tl_config_load(vars, nvars, NULL, stderr))
        return 2;
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        tl_config_print(vars, nvars, stdout);
        return 0;
    }
    if (tl_kafka_client_init("cli", kafka_config, stderr))
        return 2;
    if (argc >= 3 && !strcmp(argv[1], "topics") && !strcmp(argv[2], "ensure")) {
        int rc = topics_ensure(brokers, &topics, argc - 3, argv + 3);
        tl_kafka_client_cleanup();
        return rc;
    }
    if (argc >= 3 && !strcmp(argv[1], "audit") && !strcmp(argv[2], "keygen"))
        return tl_audit_cli_keygen(argc - 3, argv + 3);
    bool verify = argc == 3 && !strcmp(argv[1], "audit") && !strcmp(argv[2], "verify");
    bool secure = argc == 3 && !strcmp(argv[1], "db") && !strcmp(argv[2], "secure");
    bool seed = argc == 2 && !strcmp(argv[1], "reseed");
    bool re = argc == 3 && !strcmp(argv[1], "rebuild");
    bool admin = argc >= 2 && !strcmp(argv[1], "admin");
    if (!verify && !secure && !seed && !re && !admin)
        return usage();
    tl_pg_t *pg = NULL;
    if (tl_pg_connect(dsn, schema, "trialog-cli", &pg)) {
        fprintf(stderr, "trialog: could not connect to PostgreSQL\n");
        return 2;
    }
    if (re) /* the rebuild's consumer tells where it reads from */
        tl_log_init("rebuild", debug ? TL_LOG_DEBUG : TL_LOG_INFO);
    const tl_audit_cli_cfg_t audit = {brokers, public_key, topics.ingest_sources, &registry};
    int rc = verify   ? tl_audit_cli_verify(pg, &audit)
             : secure ? tl_db_secure(pg, super_dsn)
             : seed ? reseed(pg, brokers)
             : admin ? tl_admin_main(pg, brokers, &registry, argc - 2, argv + 2)
                    : rebuild(pg, dsn, schema, brokers, &registry, &research, (int)workers,
                              argv[2]);
    tl_pg_destroy(pg);
    tl_kafka_client_cleanup();
    return rc;
}
