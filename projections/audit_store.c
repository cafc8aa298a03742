#include "audit_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "tl_date.h"
#include "tl_codec.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_uuid.h"

typedef struct {
    unsigned char hash[TL_AUDIT_HASH_LEN];
    const char *topic; /* the batch's */
    int32_t partition;
    int64_t offset; /* of the row whose hash it is, once the batch has one */
    size_t rows;    /* of the batch */
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
        l->topic = e->topic;
        l->partition = e->partition;
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
    tl_pg_res_t *res = NULL;
    if (!err && want)
        err = tl_cols_exec(pg,
                           "SELECT topic, partition, hash FROM audit_log"
                           " WHERE (topic, partition, \"offset\") IN"
                           "  (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]))",
                           &q, &res);
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


/* Rows go in with COPY in PostgreSQL's binary format: no text parsing on
 * the server, bytes sent as they are (the archive's write rate is bounded by
 * this path; see bench/archive.c). */
static const char *const sql_copy =
    "COPY audit_log (topic, partition, \"offset\", key, headers, value, event_type, event_id,"
    " actor_id, actor_role, site_id, reason, occurred_at, recorded_at, logged_at, prev_hash,"
    " hash, hash_version) FROM STDIN (FORMAT binary)";
#define AUDIT_COLUMNS 18
/* PostgreSQL's binary timestamps count microseconds from 2000-01-01 */
#define PG_EPOCH_US 946684800000000LL

static tl_err_t put_be(tl_buf_t *b, uint64_t v, int bytes)
{
    unsigned char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return tl_buf_append(b, x, (size_t)bytes);
}

/* One field: its length, then its bytes; data NULL is SQL NULL. */
static tl_err_t put_field(tl_buf_t *b, const void *data, size_t len)
{
    if (!data)
        return put_be(b, 0xFFFFFFFFu, 4);
    tl_err_t err = put_be(b, (uint32_t)len, 4);
    return err ? err : tl_buf_append(b, data, len);
}

static tl_err_t put_text(tl_buf_t *b, const char *s)
{
    return put_field(b, s, s ? strlen(s) : 0);
}

static tl_err_t put_int(tl_buf_t *b, uint64_t v, int bytes)
{
    tl_err_t err = put_be(b, (uint32_t)bytes, 4);
    return err ? err : put_be(b, v, bytes);
}

static tl_err_t put_uuid(tl_buf_t *b, const char *s)
{
    tl_uuid_t u;
    if (!s || tl_uuid_parse(s, &u))
        return put_field(b, NULL, 0);
    unsigned char raw[16];
    for (int i = 0, j = 0; i < 16; j++) {
        if (u.s[j] == '-')
            continue;
        raw[i++] = (unsigned char)(tl_hex_digit(u.s[j]) << 4 | tl_hex_digit(u.s[j + 1]));
        j++;
    }
    return put_field(b, raw, 16);
}

/* A time of the row's columns, or NULL. */
static tl_err_t put_time(tl_buf_t *b, int64_t us)
{
    if (us == TL_AUDIT_NO_TIME)
        return put_field(b, NULL, 0); /* kept in the raw value; the column only holds real times */
    return put_int(b, (uint64_t)(us - PG_EPOCH_US), 8);
}

static tl_err_t put_opt_uuid(tl_buf_t *b, const char *s)
{
    return put_uuid(b, s[0] ? s : NULL);
}

static tl_err_t put_jsonb(tl_buf_t *b, const char *text)
{
    size_t len = strlen(text);
    tl_err_t err = put_be(b, (uint32_t)(len + 1), 4);
    if (!err)
        err = tl_buf_append(b, "\1", 1); /* jsonb binary format version */
    return err ? err : tl_buf_append(b, text, len);
}

static tl_err_t add_row(tl_buf_t *out, const tl_event_t *e, link_t *l)
{
    unsigned char hash[TL_AUDIT_HASH_LEN];
    tl_audit_cols_t cols;
    tl_audit_cols(e->fullname, e->data, e->timestamp_ms, &cols);
    char *headers = json_dumps(e->headers, JSON_COMPACT);
    tl_err_t err = headers ? tl_audit_hash(l->hash, e->topic, e->partition, e->offset, e->key,
                                           e->key_len, e->headers, e->value, e->len, &cols, hash)
                           : TL_ERR_NOMEM;
    if (!err)
        err = put_be(out, AUDIT_COLUMNS, 2);
    if (!err)
        err = put_text(out, e->topic);
    if (!err)
        err = put_int(out, (uint32_t)e->partition, 4);
    if (!err)
        err = put_int(out, (uint64_t)e->offset, 8);
    if (!err)
        err = put_field(out, e->key, e->key_len);
    if (!err)
        err = put_jsonb(out, headers);
    if (!err)
        err = put_field(out, e->value, e->len);
    if (!err)
        err = put_text(out, cols.event_type);
    if (!err)
        err = put_opt_uuid(out, cols.event_id);
    if (!err)
        err = put_text(out, cols.actor_id);
    if (!err)
        err = put_text(out, cols.actor_role);
    if (!err)
        err = put_opt_uuid(out, cols.site_id);
    if (!err)
        err = put_text(out, cols.reason);
    if (!err)
        err = put_time(out, cols.occurred_at_us);
    if (!err)
        err = put_time(out, cols.recorded_at_us);
    if (!err)
        err = put_time(out, cols.logged_at_us);
    if (!err)
        err = put_field(out, l->hash, TL_AUDIT_HASH_LEN);
    if (!err)
        err = put_field(out, hash, TL_AUDIT_HASH_LEN);
    if (!err)
        err = put_int(out, TL_AUDIT_HASH_VERSION, 2);
    if (!err) {
        memcpy(l->hash, hash, TL_AUDIT_HASH_LEN);
        l->offset = e->offset;
        l->rows++;
    }
    free(headers);
    return err;
}

/* Tells the sink each partition's head after the batch. */
static void tell_heads(tl_audit_sink_t *sink, tl_map_t *links)
{
    for (size_t i = 0; sink && i < links->cap; i++) {
        link_t *l = links->vals[i];
        if (!links->keys[i] || !l->rows)
            continue;
        tl_audit_head_t h = {.partition = l->partition, .offset = l->offset};
        snprintf(h.topic, sizeof h.topic, "%s", l->topic);
        memcpy(h.hash, l->hash, TL_AUDIT_HASH_LEN);
        sink->head(sink, &h, l->rows);
    }
}

#define COPY_CHUNK (256 * 1024)

tl_err_t tl_audit_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    static const char signature[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    tl_map_t links;
    tl_buf_t rows;
    bool copying = false;
    link_t *store = calloc(b->n ? b->n : 1, sizeof *store);
    tl_map_init(&links);
    tl_buf_init(&rows, 64u * 1024 * 1024);
    tl_audit_sink_t *sink = b->ctx;
    if (sink)
        sink->begin(sink);
    tl_err_t err = store ? load_links(pg, b, &links, store) : TL_ERR_NOMEM;
    /* inside the consumer's transaction, before its offsets and commit */
    if (!err && b->n && !(err = tl_pg_copy_begin(pg, sql_copy)))
        copying = true;
    if (!err && copying)
        err = tl_buf_append(&rows, signature, sizeof signature - 1);
    for (size_t i = 0; i < b->n && !err; i++) {
        char k[300];
        part_key(k, sizeof k, b->events[i].topic, b->events[i].partition);
        err = add_row(&rows, &b->events[i], tl_map_get(&links, k));
        if (!err && rows.len >= COPY_CHUNK) {
            err = tl_pg_copy_put(pg, rows.data, rows.len);
            tl_buf_reset(&rows);
        }
    }
    if (!err && copying)
        err = put_be(&rows, 0xFFFF, 2); /* end of data */
    if (!err && copying)
        err = tl_pg_copy_put(pg, rows.data, rows.len);
    if (copying) {
        tl_err_t end = tl_pg_copy_end(pg, !err);
        err = err ? err : end;
    }
    if (!err)
        tell_heads(sink, &links);
    tl_buf_cleanup(&rows);
    tl_map_cleanup(&links);
    free(store);
    return err;
}

tl_err_t tl_audit_store_secured(tl_pg_t *pg, bool *secured, char *why, size_t why_size)
{
    tl_pg_res_t *res = NULL;
    *secured = false;
    tl_err_t err = tl_pg_exec(
        pg,
        "SELECT n.nspname LIKE '%" TL_ARCHIVE_SCHEMA_SUFFIX "', o.rolname <> current_user,"
        "  NOT o.rolcanlogin, NOT (has_table_privilege(c.oid, 'UPDATE')"
        "   OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE')"
        "   OR pg_has_role(current_user, c.relowner, 'MEMBER'))"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_roles o ON o.oid = c.relowner WHERE c.oid = to_regclass('audit_log')",
        0, NULL, &res);
    if (err) {
        tl_pg_res_free(res);
        return err;
    }
    static const char *const reasons[] = {
        "audit_log is not in the archive's own schema",
        "the application role owns audit_log",
        "audit_log's owner can log in",
        "the application role may change or empty audit_log, or become its owner",
    };
    const char *w = tl_pg_nrows(res) != 1 ? "there is no audit_log" : NULL;
    for (int c = 0; !w && c < 4; c++)
        if (strcmp(tl_pg_get(res, 0, c), "t"))
            w = reasons[c];
    *secured = !w;
    snprintf(why, why_size, "%s", w ? w : "");
    tl_pg_res_free(res);
    return TL_OK;
}

tl_err_t tl_audit_read(tl_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                       size_t max, tl_kafka_msg_t *msgs, tl_buf_t *bytes, size_t *n)
{
    char part[16], off[24], lim[24];
    snprintf(part, sizeof part, "%d", partition);
    snprintf(off, sizeof off, "%lld", (long long)from);
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[] = {topic, part, off, lim};
    tl_pg_res_t *res = NULL;
    *n = 0;
    tl_err_t err = tl_pg_exec(pg,
                              "SELECT \"offset\", key, value,"
                              " (extract(epoch FROM logged_at) * 1000)::bigint FROM audit_log"
                              " WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3"
                              " ORDER BY \"offset\" LIMIT $4",
                              4, params, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        tl_buf_t *kb = &bytes[2 * r], *vb = &bytes[2 * r + 1];
        const char *k = tl_pg_get(res, r, 1), *v = tl_pg_get(res, r, 2), *ts = tl_pg_get(res, r, 3);
        tl_buf_reset(kb);
        tl_buf_reset(vb);
        if ((k && tl_bytea_unhex(kb, k)) || (v && tl_bytea_unhex(vb, v))) {
            err = TL_ERR_DB;
            break;
        }
        msgs[r] = (tl_kafka_msg_t){.topic = topic,
                                   .partition = partition,
                                   .offset = tl_pg_get_int(res, r, 0),
                                   .key = k ? (kb->data ? kb->data : "") : NULL,
                                   .key_len = kb->len,
                                   .value = v ? (vb->data ? vb->data : "") : NULL,
                                   .len = vb->len,
                                   .timestamp_ms = ts ? strtoll(ts, NULL, 10) : -1};
        if (msgs[r].offset != from + r) {
            tl_log_error("archive_gap", json_pack("{s:s, s:i, s:I}", "topic", topic, "partition",
                                                  partition, "missing_offset",
                                                  (json_int_t)(from + r)));
            err = TL_ERR_LOG_GAP;
            break;
        }
        (*n)++;
    }
    tl_pg_res_free(res);
    return err;
}
