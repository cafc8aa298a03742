#include "tl_consumer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_store.h"
#include "tl_codec.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_migrations.h"
#include "tl_schemas.h"
#include "tl_topics.h"

#define TYPE_PREFIX "org.trialog."

typedef struct {
    const tl_consumer_cfg_t *cfg;
    const tl_projection_t *proj;
    tl_pg_t *pg;
    tl_registry_t *registry;
    tl_kafka_consumer_t *kafka;
    tl_buf_t *bytes; /* 2 per message: key and value of archive reads */
    void *ctx;       /* the projection's (tl_projection_t.open) */
    volatile sig_atomic_t *stop;
} runtime_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tl_err_t pg_reconnect(runtime_t *rt)
{
    tl_pg_destroy(rt->pg);
    rt->pg = NULL;
    tl_err_t err = tl_pg_connect(rt->cfg->pg_dsn, rt->cfg->pg_schema, rt->proj->name, &rt->pg);
    /* Batch statements look rows up by key, with arrays whose length changes
     * every batch: plan each run for its own arrays (a generic plan, made
     * while a table was still empty, scanned the whole table on every batch
     * later), and cost index probes as what they are here, reads of cached
     * pages (with the default random_page_cost of 4, a batch of 2,000 keys
     * scanned tables of up to ~500,000 rows whole, every batch: a rebuild
     * grew quadratic). */
    if (!err)
        err = tl_pg_exec(rt->pg,
                         "SET plan_cache_mode = force_custom_plan; SET random_page_cost = 1.1", 0,
                         NULL, NULL);
    if (!err && !rt->cfg->sync_commit && rt->proj->async_commit_safe)
        err = tl_pg_exec(rt->pg, "SET synchronous_commit = off", 0, NULL, NULL);
    return err;
}

static tl_err_t start_offset(void *user, const char *topic, int32_t partition, int64_t *offset)
{
    runtime_t *rt = user;
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[] = {rt->proj->name, topic, part};
    tl_pg_res_t *res = NULL;
    /* Make the row exist: batches lock it (FOR UPDATE), so two consumers of
     * one partition, say a zombie after a rebalance, can never interleave. */
    tl_err_t err = tl_pg_exec(rt->pg,
                              "INSERT INTO projection_offsets (projection, topic, partition,"
                              " next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                              3, params, NULL);
    if (!err)
        err = tl_pg_exec(rt->pg,
                         "SELECT next_offset FROM projection_offsets"
                         " WHERE projection = $1 AND topic = $2 AND partition = $3",
                         3, params, &res);
    if (!err) {
        const char *v = tl_pg_get(res, 0, 0);
        *offset = v ? strtoll(v, NULL, 10) : 0;
    }
    tl_pg_res_free(res);
    return err;
}

json_t *tl_consumer_headers_json(const tl_kafka_msg_t *m)
{
    json_t *arr = json_array();
    const char *name;
    const void *value;
    size_t len;
    tl_buf_t b64;
    tl_buf_init(&b64, 4 * 1024 * 1024);
    for (size_t i = 0; arr && tl_kafka_msg_header(m, i, &name, &value, &len); i++) {
        json_t *text = value && !memchr(value, 0, len) ? json_stringn(value, len) : NULL;
        json_t *h = json_pack("{s:s}", "name", name);
        if (!value) {
            json_object_set_new(h, "value", json_null());
        } else if (text) {
            json_object_set_new(h, "value", text);
        } else {
            tl_buf_reset(&b64);
            if (tl_b64_encode(&b64, value, len)) {
                json_decref(h);
                json_decref(arr);
                arr = NULL;
                break;
            }
            json_object_set_new(h, "value_b64", json_string(b64.data ? b64.data : ""));
        }
        json_array_append_new(arr, h);
    }
    tl_buf_cleanup(&b64);
    return arr;
}

/* Decodes every message. A message that is not a valid event (bad frame,
 * unknown schema id, bad Avro) becomes an event without type, which the batch
 * records as refused; any other failure (the store unreachable) fails the
 * whole batch, which is then retried: never a silent skip. */
static tl_err_t decode_all(runtime_t *rt, const tl_kafka_msg_t *msgs, size_t n, tl_event_t *evs)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n; i++) {
        const char *fullname = NULL;
        json_t *data = NULL;
        tl_event_t *e = &evs[i];
        *e = (tl_event_t){.topic = msgs[i].topic,
                          .partition = msgs[i].partition,
                          .offset = msgs[i].offset,
                          .key = msgs[i].key,
                          .key_len = msgs[i].key_len,
                          .value = msgs[i].value,
                          .len = msgs[i].len,
                          .timestamp_ms = msgs[i].timestamp_ms};
        if (rt->proj->raw)
            e->headers = tl_consumer_headers_json(&msgs[i]);
        tl_err_t e2 = tl_registry_decode(rt->registry, rt->pg, msgs[i].value, msgs[i].len, &data,
                                         &fullname);
        if (e2 == TL_OK) {
            e->data = data;
            e->fullname = fullname;
            e->type = strncmp(fullname, TYPE_PREFIX, strlen(TYPE_PREFIX))
                          ? fullname
                          : fullname + strlen(TYPE_PREFIX);
        } else if (e2 != TL_ERR_MALFORMED && e2 != TL_ERR_UNKNOWN_SCHEMA &&
                   e2 != TL_ERR_INVALID && !err) {
            err = e2;
        }
    }
    return err;
}

static void free_event(tl_event_t *e)
{
    json_decref(e->data);
    json_decref(e->headers);
    e->data = e->headers = NULL;
}

static void free_events(tl_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free_event(&evs[i]);
}

/* Whether the batch holds anything but events of the projection's per-key
 * topic (tl_projection_t.per_key_topic). */
static bool batch_is_shared(const tl_projection_t *p, const tl_kafka_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!p->per_key_topic || strcmp(msgs[i].topic, p->per_key_topic))
            return true;
    return false;
}

/* Opens the batch's transaction, in one round trip:
 * - the projection's lock (TL_PROJECTION_LOCK_KEY): shared for a batch of
 *   per-key events only, exclusive otherwise. The members of one group (a
 *   rebuild's workers) fold participants side by side, but a study's facts
 *   (a form template, say) never fold beside a batch that reads them, which
 *   could then miss them both ways (each transaction not seeing the other);
 * - the stored next offsets of the batch's partitions, locked, so that a
 *   second consumer of one partition (a zombie after a rebalance) cannot
 *   interleave; only the batch's own rows, in key order like every other
 *   locker of them. */
static tl_err_t begin_batch(runtime_t *rt, const tl_kafka_msg_t *msgs, size_t n,
                            tl_map_t *stored, tl_pg_res_t **res)
{
    tl_map_t seen;
    tl_cols_t c;
    tl_map_init(&seen);
    tl_cols_init(&c, 3);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i++) {
        char key[300], part[16];
        snprintf(key, sizeof key, "%s:%d", msgs[i].topic, msgs[i].partition);
        if (tl_map_get(&seen, key))
            continue;
        snprintf(part, sizeof part, "%d", msgs[i].partition);
        const char *row[] = {rt->proj->name, msgs[i].topic, part};
        err = tl_map_put(&seen, key, (void *)1);
        if (!err)
            err = tl_cols_add_row(&c, row, 3);
    }
    if (!err)
        err = tl_cols_end(&c);
    const char *name[] = {rt->proj->name};
    const char *cols[] = {c.col[0].data, c.col[1].data, c.col[2].data};
    tl_pg_stmt_t q[] = {
        {"BEGIN", 0, NULL, NULL, false},
        {batch_is_shared(rt->proj, msgs, n)
             ? "SELECT pg_advisory_xact_lock(" TL_PROJECTION_LOCK_KEY ")"
             : "SELECT pg_advisory_xact_lock_shared(" TL_PROJECTION_LOCK_KEY ")",
         1, name, NULL, false},
        {"SELECT o.topic || ':' || o.partition, o.next_offset FROM projection_offsets o"
         " JOIN unnest($1::text[], $2::text[], $3::int[]) AS b(projection, topic, partition)"
         " USING (projection, topic, partition)"
         " ORDER BY o.topic, o.partition FOR UPDATE OF o",
         3, cols, NULL, true}};
    if (!err)
        err = tl_pg_pipeline(rt->pg, q, sizeof q / sizeof q[0]);
    *res = q[2].res;
    for (int r = 0; !err && r < tl_pg_nrows(*res); r++)
        err = tl_map_put(stored, tl_pg_get(*res, r, 0), (void *)tl_pg_get(*res, r, 1));
    tl_cols_cleanup(&c);
    tl_map_cleanup(&seen);
    return err;
}

/* Drops messages below the stored offset (already applied: a redelivery) and
 * refuses a batch that would skip or repeat an offset. */
static tl_err_t filter_applied(const tl_map_t *stored, tl_kafka_msg_t *msgs, size_t n,
                               tl_event_t *evs, size_t *kept)
{
    tl_map_t next; /* "topic:partition" -> next offset expected (intptr_t) */
    tl_map_init(&next);
    tl_err_t err = TL_OK;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char key[300];
        snprintf(key, sizeof key, "%s:%d", msgs[i].topic, msgs[i].partition);
        int64_t want = (intptr_t)tl_map_get(&next, key);
        if (!tl_map_get(&next, key)) {
            const char *s = tl_map_get(stored, key);
            want = s ? strtoll(s, NULL, 10) : 0;
        }
        if (err || msgs[i].offset < want) {
            free_event(&evs[i]);
            continue;
        }
        if (msgs[i].offset > want) {
            tl_log_error("offset_gap", json_pack("{s:s, s:i, s:I, s:I}", "topic", msgs[i].topic,
                                                 "partition", msgs[i].partition, "expected",
                                                 (json_int_t)want, "got",
                                                 (json_int_t)msgs[i].offset));
            err = TL_ERR_LOG_GAP;
            free_event(&evs[i]);
            continue;
        }
        /* offsets start at 0, so next >= 1 and never looks like "absent" */
        if (!err)
            err = tl_map_put(&next, key, (void *)(intptr_t)(want + 1));
        evs[k++] = evs[i];
    }
    tl_map_cleanup(&next);
    *kept = k;
    return err;
}

static tl_err_t add_bookkeeping(runtime_t *rt, tl_batch_t *b, tl_buf_t *notify)
{
    tl_err_t err = TL_OK;
    if (b->nrej) {
        tl_cols_t c;
        tl_cols_init(&c, 8);
        for (size_t i = 0; i < b->nrej && !err; i++)
            err = tl_cols_add(&c, 0, rt->proj->name);
        for (int i = 0; i < 7 && !err; i++) {
            err = tl_buf_append(&c.col[i + 1], b->rej[i].data + 1, b->rej[i].len - 1);
            tl_buf_reset(&b->rej[i]);
        }
        if (err) {
            tl_cols_cleanup(&c);
            return err;
        }
        /* col[1..7] already hold "{a,b,...": the arrays of the batch. */
        err = tl_batch_add_cols(
            b,
            "INSERT INTO projection_rejections (projection, topic, partition, \"offset\","
            " event_id, event_type, aggregate_id, reason)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::uuid[],"
            "                      $6::text[], $7::uuid[], $8::text[])"
            " ON CONFLICT DO NOTHING",
            &c);
    }
    /* next offset per partition = last offset in the batch + 1 */
    tl_map_t last;
    tl_map_init(&last);
    for (size_t i = 0; i < b->n && !err; i++) {
        char key[300];
        snprintf(key, sizeof key, "%s:%d", b->events[i].topic, b->events[i].partition);
        err = tl_map_put(&last, key, &b->events[i]);
    }
    tl_cols_t o;
    tl_cols_init(&o, 4);
    err = err ? err : tl_buf_puts(notify, rt->proj->name);
    for (size_t i = 0; i < last.cap && !err; i++) {
        const tl_event_t *e = last.vals[i];
        if (!last.keys[i])
            continue;
        char part[16], next[24];
        snprintf(part, sizeof part, "%d", e->partition);
        snprintf(next, sizeof next, "%lld", (long long)e->offset + 1);
        const char *v[] = {rt->proj->name, e->topic, part, next};
        for (int j = 0; j < 4 && !err; j++)
            err = tl_cols_add(&o, j, v[j]);
        /* NOTIFY payloads are bounded: past the cap the waiters' periodic
         * re-read of the offsets covers the rest */
        if (!err && notify->len + strlen(e->topic) + 40 < notify->max)
            err = tl_buf_printf(notify, " %s:%s:%s", e->topic, part, next);
    }
    tl_map_cleanup(&last);
    if (err) {
        tl_cols_cleanup(&o);
        return err;
    }
    err = tl_batch_add_cols(
        b,
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[])"
        " ON CONFLICT (projection, topic, partition) DO UPDATE"
        " SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        &o);
    const char *np[] = {TL_NOTIFY_CHANNEL, notify->data};
    if (!err)
        /* tagged with the schema written to: other deployments (and a
         * rebuild's shadow schema) in the same database notify on the same
         * channel, and their offsets are not ours */
        err = tl_batch_add(b, "SELECT pg_notify($1, current_schema() || ' ' || $2)", 2, np);
    if (!err && !rt->proj->before_commit)
        err = tl_batch_add(b, "COMMIT", 0, NULL);
    return err;
}

static tl_err_t apply_batch(runtime_t *rt, tl_kafka_msg_t *msgs, size_t n, tl_event_t *evs)
{
    tl_map_t stored;
    tl_pg_res_t *offs = NULL;
    tl_batch_t b;
    tl_buf_t notify;
    size_t kept = 0;
    tl_map_init(&stored);
    tl_buf_init(&notify, 7000); /* NOTIFY payloads must stay under 8000 bytes */
    double t[6]; /* for the debug log: where a batch's time goes */
    t[0] = tl_log_mono_ms();
    tl_err_t err = decode_all(rt, msgs, n, evs);
    t[1] = tl_log_mono_ms();
    if (!err)
        err = begin_batch(rt, msgs, n, &stored, &offs);
    t[2] = t[3] = t[4] = tl_log_mono_ms();
    if (!err)
        err = filter_applied(&stored, msgs, n, evs, &kept);
    else
        free_events(evs, n);
    tl_batch_init(&b, evs, kept);
    b.ctx = rt->ctx;
    if (!err && kept) {
        /* the archive keeps what is not an event too; projections refuse it */
        for (size_t i = 0; i < kept && !err && !rt->proj->raw; i++)
            if (!evs[i].type)
                err = tl_batch_reject(&b, &evs[i], NULL, "undecodable");
        if (!err)
            err = rt->proj->apply(rt->pg, &b);
        if (!err)
            err = add_bookkeeping(rt, &b, &notify);
        t[3] = tl_log_mono_ms();
        if (!err)
            err = tl_pg_pipeline(rt->pg, b.stmts, b.nstmts);
        t[4] = tl_log_mono_ms();
        if (!err && rt->proj->before_commit && !(err = rt->proj->before_commit(rt->ctx)))
            err = tl_pg_exec(rt->pg, "COMMIT", 0, NULL, NULL);
    } else if (!err) {
        err = tl_pg_exec(rt->pg, "COMMIT", 0, NULL, NULL);
    }
    if (err && !tl_pg_broken(rt->pg))
        tl_pg_exec(rt->pg, "ROLLBACK", 0, NULL, NULL);
    t[5] = tl_log_mono_ms();
    if (!err && kept)
        tl_log(TL_LOG_DEBUG, "batch_committed",
               json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "events", (int)kept, "rejected",
                         (int)b.nrej, "decode_ms", t[1] - t[0], "begin_ms", t[2] - t[1],
                         "apply_ms", t[3] - t[2], "write_ms", t[4] - t[3], "commit_ms",
                         t[5] - t[4]));
    tl_batch_cleanup(&b);
    free_events(evs, kept);
    tl_pg_res_free(offs);
    tl_map_cleanup(&stored);
    tl_buf_cleanup(&notify);
    return err;
}

/* The archive is written only where the application role cannot rewrite
 * it (`trialog db secure`). */
static tl_err_t archive_secured(tl_pg_t *pg)
{
    bool secured = false;
    char why[200];
    tl_err_t err = tl_audit_store_secured(pg, &secured, why, sizeof why);
    if (!err && !secured) {
        tl_log_error("archive_not_secured",
                     json_pack("{s:s, s:s}", "why", why, "fix",
                               "run `trialog db secure` with TRIALOG_PG_SUPER_DSN"));
        err = TL_ERR_CONFIG;
    }
    return err;
}

static tl_err_t connect_pg(runtime_t *rt, volatile sig_atomic_t *stop)
{
    tl_err_t err;
    for (int attempt = 0;; attempt++) {
        err = pg_reconnect(rt);
        if (!err || !tl_err_is_retriable(err) || *stop || attempt == 60)
            return err;
        sleep_ms(500);
    }
}

/* A unique violation the fold did not foresee: another member of the group
 * committed a row this batch's fold could not yet see (one participant code
 * enrolled on two partitions at once). Run again, the fold sees it and
 * decides as it would have in order; more than a few in a row is a bug. */
#define CONFLICT_RETRIES 3

/* A batch is retried until it commits or fails for good: never skipped. */
static tl_err_t apply_with_retry(runtime_t *rt, tl_kafka_msg_t *msgs, size_t n, tl_event_t *evs)
{
    tl_err_t err;
    int conflicts = 0;
    for (long backoff = 100;;) {
        err = apply_batch(rt, msgs, n, evs);
        bool again = tl_err_is_retriable(err) ||
                     (err == TL_ERR_CONFLICT && rt->proj->per_key_topic &&
                      conflicts++ < CONFLICT_RETRIES);
        if (!err || !again || *rt->stop)
            return err;
        tl_log_warn("batch_retry", json_pack("{s:s, s:s}", "error", tl_err_name(err), "sqlstate",
                                             tl_pg_sqlstate(rt->pg)));
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
        if (tl_pg_broken(rt->pg))
            pg_reconnect(rt);
    }
}

static tl_err_t query_int(runtime_t *rt, const char *sql, int n, const char *const *params,
                          int64_t def, int64_t *out)
{
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(rt->pg, sql, n, params, &res);
    const char *v = err ? NULL : tl_pg_get(res, 0, 0);
    *out = v ? strtoll(v, NULL, 10) : def;
    tl_pg_res_free(res);
    return err;
}

/* The archive tier (DESIGN.md §7): applies the next batch of one partition
 * from the archive, in offset order. *behind stays true until the broker has
 * the partition's next offset again. */
static tl_err_t catch_up(runtime_t *rt, const char *topic, int32_t partition,
                         tl_kafka_msg_t *msgs, tl_event_t *evs, bool *behind)
{
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[] = {topic, part};
    int64_t stored = 0, lo = 0, hi = 0, archived = 0;
    size_t n = 0;
    *behind = false;
    tl_err_t err = start_offset(rt, topic, partition, &stored);
    if (!err)
        err = tl_kafka_consumer_watermarks(rt->kafka, topic, partition, &lo, &hi);
    if (err || stored >= lo)
        return err;
    *behind = true;
    err = query_int(rt,
                    "SELECT COALESCE(max(\"offset\") + 1, 0) FROM audit_log"
                    " WHERE topic = $1 AND partition = $2",
                    2, params, 0, &archived);
    if (!err && archived <= stored) {
        tl_log_error("log_lost_before_archiving",
                     json_pack("{s:s, s:i, s:I, s:I, s:I}", "topic", topic, "partition", partition,
                               "next_offset", (json_int_t)stored, "archived_to",
                               (json_int_t)archived, "log_start", (json_int_t)lo));
        err = TL_ERR_LOG_GAP;
    }
    double t0 = tl_log_mono_ms();
    if (!err)
        err = tl_audit_read(rt->pg, topic, partition, stored, (size_t)rt->cfg->batch_max, msgs,
                            rt->bytes, &n);
    if (!err && n)
        tl_log(TL_LOG_DEBUG, "archive_read",
               json_pack("{s:i, s:f}", "messages", (int)n, "read_ms", tl_log_mono_ms() - t0));
    if (!err && n)
        err = apply_with_retry(rt, msgs, n, evs);
    if (!err && stored + (int64_t)n >= lo)
        tl_log_info("archive_handover", json_pack("{s:s, s:i, s:I}", "topic", topic, "partition",
                                                  partition, "next_offset",
                                                  (json_int_t)(stored + (int64_t)n)));
    return err;
}

/* One round over the partitions behind the log start; when all have caught
 * up, the assignment is planned again (which hands them to the broker). */
static tl_err_t catch_up_step(runtime_t *rt, tl_kafka_msg_t *msgs, tl_event_t *evs)
{
    const char *topic;
    int32_t partition;
    bool any = false;
    tl_err_t err = TL_OK;
    size_t n = tl_kafka_consumer_behind(rt->kafka, 0, &topic, &partition);
    for (size_t i = 0; !err && i < n; i++) {
        bool behind = false;
        tl_kafka_consumer_behind(rt->kafka, i, &topic, &partition);
        err = catch_up(rt, topic, partition, msgs, evs, &behind);
        any = any || behind;
    }
    return err || any ? err : tl_kafka_consumer_reassign(rt->kafka);
}

tl_err_t tl_consumer_run(const tl_consumer_cfg_t *cfg, const tl_projection_t *proj_in,
                         volatile sig_atomic_t *stop)
{
    tl_projection_t all = *proj_in;
    if (cfg->ntopics) { /* the ingest consumer's sources */
        all.topics = cfg->topics;
        all.ntopics = cfg->ntopics;
    }
    if (!all.ntopics) { /* the archive */
        all.topics = tl_topics_archive;
        all.ntopics = tl_topics_archive_count;
    }
    const tl_projection_t *proj = &all;
    runtime_t rt = {.cfg = cfg, .proj = proj, .stop = stop};
    tl_kafka_msg_t *msgs = calloc((size_t)cfg->batch_max, sizeof *msgs);
    tl_event_t *evs = calloc((size_t)cfg->batch_max, sizeof *evs);
    rt.bytes = calloc(2 * (size_t)cfg->batch_max, sizeof *rt.bytes);
    for (size_t i = 0; rt.bytes && i < 2 * (size_t)cfg->batch_max; i++)
        tl_buf_init(&rt.bytes[i], 16 * 1024 * 1024);
    char group[128];
    snprintf(group, sizeof group, "%s%s", cfg->group ? "" : "trialog-",
             cfg->group ? cfg->group : proj->name);
    tl_err_t err = msgs && evs && rt.bytes ? connect_pg(&rt, stop) : TL_ERR_NOMEM;
    if (!err && !cfg->no_migrate)
        err = tl_migrate(rt.pg);
    if (!err)
        err = tl_registry_open_with(rt.pg, &cfg->registry, &rt.registry);
    if (!err && proj->raw)
        err = archive_secured(rt.pg);
    if (!err && proj->open)
        err = proj->open(cfg, rt.registry, &rt.ctx);
    if (!err && cfg->members > 0) {
        err = tl_kafka_consumer_new_member(cfg->brokers, proj->topics, proj->ntopics, cfg->member,
                                           cfg->members, !proj->raw, start_offset, &rt,
                                           &rt.kafka);
        if (!err)
            tl_log_info("consumer_started",
                        json_pack("{s:s, s:i, s:i}", "projection", proj->name, "member",
                                  cfg->member, "members", cfg->members));
    } else if (!err) {
        err = tl_kafka_consumer_new(cfg->brokers, group, proj->topics, proj->ntopics,
                                    !proj->raw, start_offset, &rt, &rt.kafka);
        if (!err)
            tl_log_info("consumer_started", json_pack("{s:s, s:s}", "projection", proj->name,
                                                      "group", group));
    }
    while (!err && !*stop) {
        size_t n = 0;
        const char *topic;
        int32_t partition;
        /* Partitions behind the broker's log start come from the archive, a
         * batch at a time, between polls of the others. */
        bool behind = tl_kafka_consumer_behind(rt.kafka, 0, &topic, &partition) > 0;
        if (behind && (err = catch_up_step(&rt, msgs, evs)))
            continue;
        err = tl_kafka_consumer_poll(rt.kafka, msgs, (size_t)cfg->batch_max,
                                     behind ? 0 : (int)cfg->poll_ms, &n);
        if (!err && n)
            err = apply_with_retry(&rt, msgs, n, evs);
        if (!err && n)
            tl_kafka_consumer_commit_info(rt.kafka, msgs, n);
        if (n)
            tl_kafka_msgs_release(msgs, n);
        if (!err && proj->after_turn)
            err = proj->after_turn(rt.ctx, rt.pg, n > 0);
    }
    if (err)
        tl_log_error("consumer_stopped", json_pack("{s:s, s:s}", "projection", proj->name, "error",
                                                   tl_err_name(err)));
    tl_kafka_consumer_destroy(rt.kafka);
    if (proj->close)
        proj->close(rt.ctx);
    tl_registry_destroy(rt.registry);
    tl_pg_destroy(rt.pg);
    for (size_t i = 0; rt.bytes && i < 2 * (size_t)cfg->batch_max; i++)
        tl_buf_cleanup(&rt.bytes[i]);
    free(rt.bytes);
    free(msgs);
    free(evs);
    return err;
}
