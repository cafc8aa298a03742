#include "tl_consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_codec.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_migrations.h"
#include "tl_schemas.h"

#define TYPE_PREFIX "org.trialog."

typedef struct {
    const tl_consumer_cfg_t *cfg;
    const tl_projection_t *proj;
    tl_pg_t *pg;
    tl_registry_t *registry;
    tl_kafka_consumer_t *kafka;
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
    return tl_pg_connect(rt->cfg->pg_dsn, rt->cfg->pg_schema, rt->proj->name, &rt->pg);
}

static tl_err_t start_offset(void *user, const char *topic, int32_t partition, int64_t *offset)
{
    runtime_t *rt = user;
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[] = {rt->proj->name, topic, part};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(rt->pg,
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

/* Headers as the archive keeps them: [{"name": ..., "value": base64|null}]. */
static json_t *headers_json(const tl_kafka_msg_t *m)
{
    json_t *arr = json_array();
    const char *name;
    const void *value;
    size_t len;
    tl_buf_t b64;
    tl_buf_init(&b64, 4 * 1024 * 1024);
    for (size_t i = 0; arr && tl_kafka_msg_header(m, i, &name, &value, &len); i++) {
        tl_buf_reset(&b64);
        if (value && tl_b64_encode(&b64, value, len)) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        json_array_append_new(arr, json_pack("{s:s, s:s?}", "name", name, "value",
                                             value ? (b64.data ? b64.data : "") : NULL));
    }
    tl_buf_cleanup(&b64);
    return arr;
}

static void decode_all(runtime_t *rt, const tl_kafka_msg_t *msgs, size_t n, tl_event_t *evs)
{
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
            e->headers = headers_json(&msgs[i]);
        if (tl_registry_decode(rt->registry, rt->pg, msgs[i].value, msgs[i].len, &data,
                               &fullname) == TL_OK) {
            e->data = data;
            e->fullname = fullname;
            e->type = strncmp(fullname, TYPE_PREFIX, strlen(TYPE_PREFIX))
                          ? fullname
                          : fullname + strlen(TYPE_PREFIX);
        }
    }
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

/* Stored next offsets of this projection, locked for the transaction so a
 * second instance (a zombie after a rebalance) cannot interleave. */
static tl_err_t lock_offsets(runtime_t *rt, tl_map_t *stored, tl_pg_res_t **res)
{
    const char *params[] = {rt->proj->name};
    tl_err_t err = tl_pg_exec(rt->pg,
                              "SELECT topic || ':' || partition, next_offset FROM projection_offsets"
                              " WHERE projection = $1 FOR UPDATE",
                              1, params, res);
    for (int r = 0; !err && r < tl_pg_nrows(*res); r++)
        err = tl_map_put(stored, tl_pg_get(*res, r, 0), (void *)tl_pg_get(*res, r, 1));
    return err;
}

/* Drops messages below the stored offset (already applied: a redelivery) and
 * refuses a batch that would skip offsets. Returns how many remain. */
static tl_err_t filter_applied(const tl_map_t *stored, tl_kafka_msg_t *msgs, size_t n,
                               tl_event_t *evs, size_t *kept)
{
    tl_map_t next;
    tl_map_init(&next);
    tl_err_t err = TL_OK;
    size_t k = 0;
    static char marker;
    for (size_t i = 0; i < n && !err; i++) {
        char key[300];
        snprintf(key, sizeof key, "%s:%d", msgs[i].topic, msgs[i].partition);
        const char *s = tl_map_get(stored, key);
        int64_t want = s ? strtoll(s, NULL, 10) : 0;
        if (msgs[i].offset < want) {
            free_event(&evs[i]);
            continue;
        }
        if (msgs[i].offset > want && !tl_map_get(&next, key)) {
            tl_log_error("offset_gap", json_pack("{s:s, s:i, s:I, s:I}", "topic", msgs[i].topic,
                                                 "partition", msgs[i].partition, "expected",
                                                 (json_int_t)want, "got",
                                                 (json_int_t)msgs[i].offset));
            err = TL_ERR_LOG_GAP;
            break;
        }
        err = tl_map_put(&next, key, &marker);
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
        if (!err)
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
        err = tl_batch_add(b, "SELECT pg_notify($1, $2)", 2, np);
    if (!err)
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
    decode_all(rt, msgs, n, evs);
    tl_err_t err = tl_pg_exec(rt->pg, "BEGIN", 0, NULL, NULL);
    if (!err)
        err = lock_offsets(rt, &stored, &offs);
    if (!err)
        err = filter_applied(&stored, msgs, n, evs, &kept);
    else
        free_events(evs, n);
    tl_batch_init(&b, evs, kept);
    if (!err && kept) {
        for (size_t i = 0; i < kept && !err; i++)
            if (!evs[i].type)
                err = tl_batch_reject(&b, &evs[i], NULL, "undecodable");
        if (!err)
            err = rt->proj->apply(rt->pg, &b);
        if (!err)
            err = add_bookkeeping(rt, &b, &notify);
        if (!err)
            err = tl_pg_pipeline(rt->pg, b.stmts, b.nstmts);
    } else if (!err) {
        err = tl_pg_exec(rt->pg, "COMMIT", 0, NULL, NULL);
    }
    if (err && !tl_pg_broken(rt->pg))
        tl_pg_exec(rt->pg, "ROLLBACK", 0, NULL, NULL);
    if (!err && kept)
        tl_log(TL_LOG_DEBUG, "batch_committed",
               json_pack("{s:i, s:i}", "events", (int)kept, "rejected", (int)b.nrej));
    tl_batch_cleanup(&b);
    free_events(evs, kept);
    tl_pg_res_free(offs);
    tl_map_cleanup(&stored);
    tl_buf_cleanup(&notify);
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

tl_err_t tl_consumer_run(const tl_consumer_cfg_t *cfg, const tl_projection_t *proj,
                         volatile sig_atomic_t *stop)
{
    runtime_t rt = {.cfg = cfg, .proj = proj};
    tl_kafka_msg_t *msgs = calloc((size_t)cfg->batch_max, sizeof *msgs);
    tl_event_t *evs = calloc((size_t)cfg->batch_max, sizeof *evs);
    char group[128];
    snprintf(group, sizeof group, "trialog-%s", proj->name);
    tl_err_t err = msgs && evs ? connect_pg(&rt, stop) : TL_ERR_NOMEM;
    if (!err)
        err = tl_migrate(rt.pg);
    if (!err)
        err = tl_registry_open(rt.pg, &rt.registry);
    if (!err)
        err = tl_kafka_consumer_new(cfg->brokers, group, proj->topics, proj->ntopics, start_offset,
                                    &rt, &rt.kafka);
    if (!err)
        tl_log_info("consumer_started", json_pack("{s:s, s:s}", "projection", proj->name,
                                                  "group", group));
    while (!err && !*stop) {
        size_t n = 0;
        err = tl_kafka_consumer_poll(rt.kafka, msgs, (size_t)cfg->batch_max, (int)cfg->poll_ms, &n);
        if (err || !n)
            continue;
        /* A batch is retried until it commits or fails for good: never skipped. */
        for (long backoff = 100;;) {
            err = apply_batch(&rt, msgs, n, evs);
            if (!err || !tl_err_is_retriable(err) || *stop)
                break;
            tl_log_warn("batch_retry", json_pack("{s:s, s:s}", "error", tl_err_name(err),
                                                 "sqlstate", tl_pg_sqlstate(rt.pg)));
            sleep_ms(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            if (tl_pg_broken(rt.pg))
                pg_reconnect(&rt);
        }
        if (!err)
            tl_kafka_consumer_commit_info(rt.kafka, msgs, n);
        tl_kafka_msgs_release(msgs, n);
    }
    if (err)
        tl_log_error("consumer_stopped", json_pack("{s:s, s:s}", "projection", proj->name, "error",
                                                   tl_err_name(err)));
    tl_kafka_consumer_destroy(rt.kafka);
    tl_registry_destroy(rt.registry);
    tl_pg_destroy(rt.pg);
    free(msgs);
    free(evs);
    return err;
}
