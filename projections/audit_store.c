#include "audit_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "tl_date.h"
#include "tl_codec.h"
#include "tl_map.h"
#include "tl_uuid.h"

typedef struct {
    unsigned char hash[TL_AUDIT_HASH_LEN];
} link_t;

static void part_key(char *out, size_t size, const char *topic, int32_t partition)
{
    snprintf(out, size, "%s:%d", topic, partition);
}

/* The hash each partition's first message chains to: the archived row just
 * before it, or zeros at offset 0. A missing predecessor is a gap. */
static tl_err_t load_links(tl_pg_t *pg, tl_batch_t *b, tl_map_t *links, link_t *store)
{
    tl_cols_t q;
    tl_err_t err = TL_OK;
    size_t nlinks = 0, want = 0;
    tl_cols_init(&q, 3);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        char k[300], part[16], off[24];
        part_key(k, sizeof k, e->topic, e->partition);
        if (tl_map_get(links, k))
            continue;
        link_t *l = &store[nlinks++];
        memset(l, 0, sizeof *l);
        err = tl_map_put(links, k, l);
        if (err || e->offset == 0)
            continue;
        snprintf(part, sizeof part, "%d", e->partition);
        snprintf(off, sizeof off, "%lld", (long long)e->offset - 1);
        err = tl_cols_add(&q, 0, e->topic);
        if (!err)
            err = tl_cols_add(&q, 1, part);
        if (!err)
            err = tl_cols_add(&q, 2, off);
        want++;
    }
    for (int j = 0; j < 3 && !err; j++)
        err = tl_pg_array_end(&q.col[j]);
    tl_pg_res_t *res = NULL;
    const char *params[] = {q.col[0].data, q.col[1].data, q.col[2].data};
    if (!err && want)
        err = tl_pg_exec(pg,
                         "SELECT topic, partition, hash FROM audit_log"
                         " WHERE (topic, partition, \"offset\") IN"
                         "  (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]))",
                         3, params, &res);
    if (!err && (size_t)tl_pg_nrows(res) != want)
        err = TL_ERR_LOG_GAP; /* a predecessor is not archived */
    tl_buf_t h;
    tl_buf_init(&h, 64);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        char k[300];
        part_key(k, sizeof k, tl_pg_get(res, r, 0), (int32_t)strtol(tl_pg_get(res, r, 1), NULL, 10));
        link_t *l = tl_map_get(links, k);
        tl_buf_reset(&h);
        err = tl_bytea_unhex(&h, tl_pg_get(res, r, 2));
        if (!err && (!l || h.len != TL_AUDIT_HASH_LEN))
            err = TL_ERR_DB;
        if (!err)
            memcpy(l->hash, h.data, TL_AUDIT_HASH_LEN);
    }
    tl_buf_cleanup(&h);
    tl_pg_res_free(res);
    tl_cols_cleanup(&q);
    return err;
}

static const char *meta(const tl_event_t *e, const char *key)
{
    return e->data ? json_string_value(json_object_get(e->data, key)) : NULL;
}

static const char *meta_uuid(const tl_event_t *e, const char *key)
{
    const char *v = meta(e, key);
    return tl_uuid_valid(v) ? v : NULL;
}

static const char *meta_ts(const tl_event_t *e, const char *key, char out[40])
{
    const json_t *v = e->data ? json_object_get(e->data, key) : NULL;
    if (!json_is_integer(v) || !tl_ts_valid(json_integer_value(v)))
        return NULL; /* kept in the raw value; the column only holds real times */
    tl_ts_format(json_integer_value(v), out);
    return out;
}

enum { C_TOPIC, C_PART, C_OFF, C_KEY, C_HEADERS, C_VALUE, C_TYPE, C_EVENT, C_ACTOR, C_ROLE,
       C_SITE, C_REASON, C_OCCURRED, C_RECORDED, C_LOGGED, C_PREV, C_HASH, C_NCOLS };

static const char *const sql_insert =
    "INSERT INTO audit_log (topic, partition, \"offset\", key, headers, value, event_type,"
    " event_id, actor_id, actor_role, site_id, reason, occurred_at, recorded_at, logged_at,"
    " prev_hash, hash)"
    " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::jsonb[],"
    "  $6::bytea[], $7::text[], $8::uuid[], $9::text[], $10::text[], $11::uuid[], $12::text[],"
    "  $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::bytea[], $17::bytea[])";

static tl_err_t add_row(tl_cols_t *c, const tl_event_t *e, link_t *l, tl_buf_t *tmp)
{
    unsigned char hash[TL_AUDIT_HASH_LEN];
    char part[16], off[24], occ[40], rec[40], logged[40];
    char *headers = json_dumps(e->headers, JSON_COMPACT);
    tl_err_t err = headers ? tl_audit_hash(l->hash, e->topic, e->partition, e->offset, e->key,
                                           e->key_len, e->headers, e->value, e->len, hash)
                           : TL_ERR_NOMEM;
    snprintf(part, sizeof part, "%d", e->partition);
    snprintf(off, sizeof off, "%lld", (long long)e->offset);
    bool has_logged = e->timestamp_ms >= 0 && e->timestamp_ms < INT64_MAX / 1000 &&
                      tl_ts_valid(e->timestamp_ms * 1000);
    if (has_logged)
        tl_ts_format(e->timestamp_ms * 1000, logged);
    const char *plain[C_NCOLS] = {
        [C_TOPIC] = e->topic,
        [C_PART] = part,
        [C_OFF] = off,
        [C_HEADERS] = headers,
        [C_TYPE] = e->fullname,
        [C_EVENT] = meta_uuid(e, "event_id"),
        [C_ACTOR] = meta(e, "actor_id"),
        [C_ROLE] = meta(e, "actor_role"),
        [C_SITE] = meta_uuid(e, "site_id"),
        [C_REASON] = meta(e, "reason"),
        [C_OCCURRED] = meta_ts(e, "occurred_at", occ),
        [C_RECORDED] = meta_ts(e, "recorded_at", rec),
        [C_LOGGED] = has_logged ? logged : NULL,
    };
    for (int i = 0; i < C_NCOLS && !err; i++) {
        const void *bytes = NULL;
        size_t len = 0;
        bool is_bytes = true;
        switch (i) {
        case C_KEY: bytes = e->key; len = e->key_len; break;
        case C_VALUE: bytes = e->value; len = e->len; break;
        case C_PREV: bytes = l->hash; len = TL_AUDIT_HASH_LEN; break;
        case C_HASH: bytes = hash; len = TL_AUDIT_HASH_LEN; break;
        default: is_bytes = false;
        }
        if (!is_bytes) {
            err = tl_cols_add(c, i, plain[i]);
            continue;
        }
        tl_buf_reset(tmp);
        if (!bytes) {
            err = tl_cols_add(c, i, NULL);
        } else if (!(err = tl_bytea_hex(tmp, bytes, len))) {
            err = tl_cols_add(c, i, tmp->data);
        }
    }
    if (!err) {
        memcpy(l->hash, hash, TL_AUDIT_HASH_LEN);
        tl_cols_row_done(c);
    }
    free(headers);
    return err;
}

tl_err_t tl_audit_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    tl_map_t links;
    tl_cols_t c;
    tl_buf_t tmp;
    link_t *store = calloc(b->n ? b->n : 1, sizeof *store);
    tl_map_init(&links);
    tl_cols_init(&c, C_NCOLS);
    tl_buf_init(&tmp, 64 * 1024 * 1024);
    tl_err_t err = store ? load_links(pg, b, &links, store) : TL_ERR_NOMEM;
    for (size_t i = 0; i < b->n && !err; i++) {
        char k[300];
        part_key(k, sizeof k, b->events[i].topic, b->events[i].partition);
        err = add_row(&c, &b->events[i], tl_map_get(&links, k), &tmp);
    }
    if (!err && c.nrows)
        err = tl_batch_add_cols(b, sql_insert, &c);
    else
        tl_cols_cleanup(&c);
    tl_buf_cleanup(&tmp);
    tl_map_cleanup(&links);
    free(store);
    return err;
}
