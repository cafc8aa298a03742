/* trialog audit keygen | audit verify | db secure: the archive's trust
 * (docs/SECURITY.md "The audit archive").
 *
 * verify reads the whole archive once, in chain order, and checks:
 *   1. every partition's chain: offsets from 0 without a hole, each row's
 *      prev_hash, each row's hash over its content (and, for version 2
 *      rows, over every column the audit API shows);
 *   2. every row's columns against its own message, decoded again;
 *   3. every checkpoint: its signature with the public key only, and that
 *      each head it signed is archived with the signed hash;
 *   4. against the broker: every partition of every topic the broker holds
 *      is archived to its end (no missing tail, no missing partition), not
 *      beyond it, and with the same key, headers, value and timestamp for
 *      every offset the broker still has.
 * It prints each problem as it finds it, the first one first, and exits 1
 * when there is any (2 when it cannot run). */
#include "audit_cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "audit_store.h"
#include "ingest_consumer.h"
#include "tl_codec.h"
#include "tl_consumer.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_migrations.h"
#include "tl_secret.h"
#include "tl_topics.h"

#define PAGE 5000
#define PARTS_MAX 4096
#define PROBLEMS_SHOWN 50

typedef struct {
    char topic[250];
    int32_t partition;
    int64_t last; /* the last archived offset */
} part_t;

typedef struct {
    tl_audit_head_t head;
    char where[300]; /* the checkpoint that signed it */
} signed_head_t;

typedef struct {
    tl_pg_t *pg;
    tl_registry_t *registry;
    tl_sign_key_t *pub;
    char key_id[TL_SHA256_STRLEN];
    part_t *parts;
    size_t nparts;
    signed_head_t *heads;
    size_t nheads, heads_cap;
    long rows, checkpoints, problems;
    char first[600];
} verify_t;

static void problem(verify_t *v, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!v->problems)
        snprintf(v->first, sizeof v->first, "%s", msg);
    if (v->problems++ < PROBLEMS_SHOWN)
        printf("PROBLEM %s\n", msg);
}

/* ---- 1 and 2: the chains and the columns ---- */

typedef struct {
    char topic[250];
    int32_t partition;
    int64_t offset; /* of the last row seen; -1 before the first */
    unsigned char hash[TL_AUDIT_HASH_LEN];
    bool broken;
    bool v2; /* a version 2 row was seen: no version 1 row may follow */
} chain_t;

static const char *const sql_rows =
    "SELECT topic, partition, \"offset\", key, headers::text, value, prev_hash, hash,"
    " hash_version, event_type, event_id::text, actor_id, actor_role, site_id::text, reason,"
    " (extract(epoch FROM occurred_at) * 1000000)::bigint,"
    " (extract(epoch FROM recorded_at) * 1000000)::bigint,"
    " (extract(epoch FROM logged_at) * 1000000)::bigint"
    " FROM audit_log WHERE (topic, partition, \"offset\") > ($1, $2, $3)"
    " ORDER BY topic, partition, \"offset\" LIMIT 5000";

static int64_t time_col(const tl_pg_res_t *res, int r, int c)
{
    return tl_pg_get(res, r, c) ? tl_pg_get_int(res, r, c) : TL_AUDIT_NO_TIME;
}

/* The row's columns as stored. */
static void stored_cols(const tl_pg_res_t *res, int r, tl_audit_cols_t *c)
{
    memset(c, 0, sizeof *c);
    c->event_type = tl_pg_get(res, r, 9);
    snprintf(c->event_id, sizeof c->event_id, "%s", tl_pg_get(res, r, 10) ? tl_pg_get(res, r, 10) : "");
    c->actor_id = tl_pg_get(res, r, 11);
    c->actor_role = tl_pg_get(res, r, 12);
    snprintf(c->site_id, sizeof c->site_id, "%s", tl_pg_get(res, r, 13) ? tl_pg_get(res, r, 13) : "");
    c->reason = tl_pg_get(res, r, 14);
    c->occurred_at_us = time_col(res, r, 15);
    c->recorded_at_us = time_col(res, r, 16);
    c->logged_at_us = time_col(res, r, 17);
}

static void add_head(verify_t *v, const tl_audit_head_t *h, const char *where)
{
    if (v->nheads == v->heads_cap) {
        size_t cap = v->heads_cap ? 2 * v->heads_cap : 1024;
        signed_head_t *more = realloc(v->heads, cap * sizeof *more);
        if (!more) {
            problem(v, "%s: out of memory: its heads were not checked", where);
            return;
        }
        v->heads = more;
        v->heads_cap = cap;
    }
    v->heads[v->nheads].head = *h;
    snprintf(v->heads[v->nheads++].where, sizeof v->heads[0].where, "%s", where);
}

/* A checkpoint event: its signature, and its heads for step 3. */
static void check_checkpoint(verify_t *v, const char *where, const json_t *data)
{
    const char *key_id = json_string_value(json_object_get(data, "key_id"));
    const char *sig64 = json_string_value(json_object_get(data, "signature"));
    const json_t *heads = json_object_get(data, "heads");
    const json_t *at = json_object_get(data, "occurred_at");
    size_t n = json_array_size(heads);
    v->checkpoints++;
    if (!key_id || !sig64 || !json_is_integer(at)) {
        problem(v, "%s: a checkpoint without key, signature or time", where);
        return;
    }
    if (strcmp(key_id, v->key_id)) {
        problem(v, "%s: a checkpoint signed by key %.16s…, not by the public key given (%.16s…)",
                where, key_id, v->key_id);
        return;
    }
    tl_audit_head_t *hs = calloc(n ? n : 1, sizeof *hs);
    tl_buf_t text, sig, hash;
    tl_buf_init(&text, 1024 * 1024);
    tl_buf_init(&sig, 256);
    tl_buf_init(&hash, 64);
    bool ok = hs != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        const json_t *h = json_array_get(heads, i);
        const char *topic = json_string_value(json_object_get(h, "topic"));
        const char *hex = json_string_value(json_object_get(h, "hash"));
        char lit[2 * TL_AUDIT_HASH_LEN + 3];
        tl_buf_reset(&hash);
        ok = topic && hex && strlen(hex) == 2 * TL_AUDIT_HASH_LEN && strlen(topic) < 250;
        snprintf(lit, sizeof lit, "\\x%s", ok ? hex : "");
        ok = ok && !tl_bytea_unhex(&hash, lit) && hash.len == TL_AUDIT_HASH_LEN;
        if (ok) {
            snprintf(hs[i].topic, sizeof hs[i].topic, "%s", topic);
            hs[i].partition = (int32_t)json_integer_value(json_object_get(h, "partition"));
            hs[i].offset = json_integer_value(json_object_get(h, "offset"));
            memcpy(hs[i].hash, hash.data, TL_AUDIT_HASH_LEN);
        }
    }
    ok = ok && !tl_audit_checkpoint_text(key_id, json_integer_value(at), hs, n, &text) &&
         !tl_b64_decode(&sig, sig64);
    if (!ok)
        problem(v, "%s: a malformed checkpoint", where);
    else if (!tl_ed25519_verify(v->pub, text.data, text.len, (const unsigned char *)sig.data,
                                sig.len))
        problem(v, "%s: the checkpoint's signature does not verify (forged or altered)", where);
    else
        for (size_t i = 0; i < n; i++)
            add_head(v, &hs[i], where);
    tl_buf_cleanup(&text);
    tl_buf_cleanup(&sig);
    tl_buf_cleanup(&hash);
    free(hs);
}

/* The columns as the message says, against those stored. */
static void check_columns(verify_t *v, const char *where, const tl_audit_cols_t *stored,
                          const void *value, size_t len)
{
    json_t *data = NULL;
    const char *fullname = NULL;
    tl_err_t err = tl_registry_decode(v->registry, v->pg, value, len, &data, &fullname);
    if (err && err != TL_ERR_MALFORMED && err != TL_ERR_UNKNOWN_SCHEMA && err != TL_ERR_INVALID) {
        problem(v, "%s: could not decode the message (%s)", where, tl_err_name(err));
        return;
    }
    tl_audit_cols_t derived;
    tl_audit_cols(fullname, data, -1, &derived);
    derived.logged_at_us = stored->logged_at_us; /* the broker's: step 4 */
    if (!tl_audit_cols_equal(&derived, stored))
        problem(v, "%s: the row's columns (type, event id, actor, role, site, reason, times)"
                   " are not what its message says (changed after archiving)",
                where);
    else if (data && !strcmp(fullname, "org.trialog.AuditCheckpoint"))
        check_checkpoint(v, where, data);
    else if (!strncmp(where, TL_TOPIC_AUDIT "/", strlen(TL_TOPIC_AUDIT) + 1))
        problem(v, "%s: not a signed checkpoint, on the checkpoints' topic", where);
    json_decref(data);
}

static void check_row(verify_t *v, chain_t *c, const tl_pg_res_t *res, int r, tl_buf_t *bufs)
{
    tl_buf_t *key = &bufs[0], *value = &bufs[1], *prev = &bufs[2], *hash = &bufs[3];
    unsigned char want[TL_AUDIT_HASH_LEN];
    const char *k = tl_pg_get(res, r, 3), *val = tl_pg_get(res, r, 5);
    int64_t off = tl_pg_get_int(res, r, 2);
    char where[300];
    snprintf(where, sizeof where, "%s/%d at offset %lld", c->topic, c->partition, (long long)off);
    for (int i = 0; i < 4; i++)
        tl_buf_reset(&bufs[i]);
    if ((k && tl_bytea_unhex(key, k)) || (val && tl_bytea_unhex(value, val)) ||
        tl_bytea_unhex(prev, tl_pg_get(res, r, 6)) || tl_bytea_unhex(hash, tl_pg_get(res, r, 7)) ||
        prev->len != TL_AUDIT_HASH_LEN || hash->len != TL_AUDIT_HASH_LEN) {
        problem(v, "%s: a malformed row", where);
        c->broken = true;
        return;
    }
    if (off != c->offset + 1) {
        problem(v, "%s: %s", where,
                c->offset < 0 ? "the archive of this partition does not start at offset 0"
                              : "offsets are missing before this row");
        c->broken = true;
        return;
    }
    tl_audit_cols_t cols;
    stored_cols(res, r, &cols);
    long version = tl_pg_get_int(res, r, 8);
    json_t *headers = json_loads(tl_pg_get(res, r, 4), 0, NULL);
    tl_err_t err = tl_audit_hash(c->hash, c->topic, c->partition, off, k ? key->data : NULL,
                                 key->len, headers, val ? value->data : NULL, value->len,
                                 version >= 2 ? &cols : NULL, want);
    json_decref(headers);
    if (memcmp(prev->data, c->hash, TL_AUDIT_HASH_LEN))
        problem(v, "%s: prev_hash is not the hash of the row before", where);
    else if (version < 2 && c->v2)
        problem(v, "%s: a version 1 row after version 2 ones (its columns' hash dropped)", where);
    else if (err || version < 1 || version > TL_AUDIT_HASH_VERSION)
        problem(v, "%s: malformed headers or hash version", where);
    else if (memcmp(want, hash->data, TL_AUDIT_HASH_LEN))
        problem(v, "%s: content does not match its hash (changed after archiving)", where);
    else
        check_columns(v, where, &cols, val ? value->data : NULL, value->len);
    c->v2 = c->v2 || version >= 2;
    /* the chain goes on from the stored hash: one changed row is one problem */
    memcpy(c->hash, hash->data, TL_AUDIT_HASH_LEN);
    c->offset = off;
}

static void end_chain(verify_t *v, const chain_t *c)
{
    if (c->partition < 0 || v->nparts == PARTS_MAX)
        return;
    part_t *p = &v->parts[v->nparts++];
    snprintf(p->topic, sizeof p->topic, "%s", c->topic);
    p->partition = c->partition;
    p->last = c->offset;
}

static tl_err_t check_chains(verify_t *v)
{
    chain_t c = {.offset = -1, .partition = -1};
    char after_part[16] = "-1", after_off[24] = "-1", after_topic[256] = "";
    tl_buf_t bufs[4];
    for (int i = 0; i < 4; i++)
        tl_buf_init(&bufs[i], 64 * 1024 * 1024);
    tl_err_t err = TL_OK;
    for (;;) {
        const char *params[] = {after_topic, after_part, after_off};
        tl_pg_res_t *res = NULL;
        if ((err = tl_pg_exec(v->pg, sql_rows, 3, params, &res)))
            break;
        int n = tl_pg_nrows(res);
        for (int r = 0; r < n; r++) {
            const char *topic = tl_pg_get(res, r, 0);
            int32_t part = (int32_t)tl_pg_get_int(res, r, 1);
            if (strcmp(topic, c.topic) || part != c.partition) {
                end_chain(v, &c);
                memset(&c, 0, sizeof c);
                snprintf(c.topic, sizeof c.topic, "%s", topic);
                c.partition = part;
                c.offset = -1;
            }
            v->rows++;
            if (!c.broken)
                check_row(v, &c, res, r, bufs);
            else
                c.offset = tl_pg_get_int(res, r, 2);
        }
        if (n) {
            snprintf(after_topic, sizeof after_topic, "%s", tl_pg_get(res, n - 1, 0));
            snprintf(after_part, sizeof after_part, "%s", tl_pg_get(res, n - 1, 1));
            snprintf(after_off, sizeof after_off, "%s", tl_pg_get(res, n - 1, 2));
        }
        tl_pg_res_free(res);
        if (n < PAGE)
            break;
    }
    end_chain(v, &c);
    for (int i = 0; i < 4; i++)
        tl_buf_cleanup(&bufs[i]);
    return err;
}

/* ---- 3: what the checkpoints signed is what the archive holds ---- */

static tl_err_t check_heads(verify_t *v)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < v->nheads && !err; i++) {
        const tl_audit_head_t *h = &v->heads[i].head;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", h->partition);
        snprintf(off, sizeof off, "%lld", (long long)h->offset);
        const char *params[] = {h->topic, part, off};
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(v->pg,
                         "SELECT hash FROM audit_log WHERE topic = $1 AND partition = $2"
                         " AND \"offset\" = $3",
                         3, params, &res);
        tl_buf_t got;
        tl_buf_init(&got, 64);
        if (!err && tl_pg_nrows(res) != 1)
            problem(v, "%s/%d at offset %lld: signed by the checkpoint at %s, but not archived",
                    h->topic, h->partition, (long long)h->offset, v->heads[i].where);
        else if (!err && (tl_bytea_unhex(&got, tl_pg_get(res, 0, 0)) ||
                          got.len != TL_AUDIT_HASH_LEN ||
                          memcmp(got.data, h->hash, TL_AUDIT_HASH_LEN)))
            problem(v, "%s/%d at offset %lld: the archive's hash is not the one the checkpoint at"
                       " %s signed (rewritten after the checkpoint)",
                    h->topic, h->partition, (long long)h->offset, v->heads[i].where);
        tl_buf_cleanup(&got);
        tl_pg_res_free(res);
    }
    return err;
}

/* ---- 4: the archive against the broker ---- */

static tl_err_t start_at(void *user, const char *topic, int32_t partition, int64_t *offset)
{
    (void)topic;
    (void)partition;
    *offset = *(const int64_t *)user;
    return TL_OK;
}

/* One Kafka message against the archived row r of res. NULL when equal. */
static const char *differs(const tl_kafka_msg_t *m, const tl_pg_res_t *res, int r, tl_buf_t *b)
{
    const char *k = tl_pg_get(res, r, 1), *val = tl_pg_get(res, r, 2);
    tl_buf_reset(b);
    if (!k != !m->key || (k && (tl_bytea_unhex(b, k) || b->len != m->key_len ||
                                (b->len && memcmp(b->data, m->key, b->len)))))
        return "key";
    tl_buf_reset(b);
    if (!val != !m->value || (val && (tl_bytea_unhex(b, val) || b->len != m->len ||
                                      (b->len && memcmp(b->data, m->value, b->len)))))
        return "value";
    json_t *stored = json_loads(tl_pg_get(res, r, 3), 0, NULL), *got = tl_consumer_headers_json(m);
    bool same = stored && got && json_equal(stored, got);
    json_decref(stored);
    json_decref(got);
    if (!same)
        return "headers";
    const char *ts = tl_pg_get(res, r, 4);
    if (m->timestamp_ms >= 0 && (!ts || strtoll(ts, NULL, 10) != m->timestamp_ms))
        return "timestamp";
    return NULL;
}

/* Offsets from..to-1 of one partition, broker against archive. */
static tl_err_t compare_bytes(verify_t *v, const char *brokers, const char *topic, int32_t p,
                              int nparts, int64_t from, int64_t to)
{
    tl_kafka_consumer_t *kc = NULL;
    const char *topics[] = {topic};
    int64_t start = from;
    tl_err_t err = tl_kafka_consumer_new_member(brokers, topics, 1, p, nparts, false, start_at,
                                                &start, &kc);
    tl_kafka_msg_t msgs[500];
    tl_buf_t b;
    tl_buf_init(&b, 64 * 1024 * 1024);
    int64_t next = from;
    int idle = 0;
    while (!err && next < to && idle < 100) {
        size_t n = 0;
        if ((err = tl_kafka_consumer_poll(kc, msgs, 500, 100, &n)))
            break;
        idle = n ? 0 : idle + 1;
        tl_pg_res_t *res = NULL;
        char part[16], off[24], lim[16];
        snprintf(part, sizeof part, "%d", p);
        snprintf(off, sizeof off, "%lld", (long long)next);
        snprintf(lim, sizeof lim, "%zu", n);
        const char *params[] = {topic, part, off, lim};
        if (n)
            err = tl_pg_exec(v->pg,
                             "SELECT \"offset\", key, value, headers::text,"
                             " (extract(epoch FROM logged_at) * 1000)::bigint FROM audit_log"
                             " WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3"
                             " ORDER BY \"offset\" LIMIT $4",
                             4, params, &res);
        for (size_t i = 0; !err && i < n && next < to; i++) {
            const char *what = (int)i < tl_pg_nrows(res) &&
                                       tl_pg_get_int(res, (int)i, 0) == msgs[i].offset &&
                                       msgs[i].offset == next
                                   ? differs(&msgs[i], res, (int)i, &b)
                                   : "offset";
            if (what) {
                problem(v, "%s/%d at offset %lld: the archive's %s is not the broker's", topic, p,
                        (long long)msgs[i].offset, what);
                next = to; /* the first difference of a partition is enough */
                break;
            }
            next++;
        }
        tl_pg_res_free(res);
        tl_kafka_msgs_release(msgs, n);
    }
    if (!err && next < to)
        problem(v, "%s/%d: the broker did not give offsets %lld..%lld to compare", topic, p,
                (long long)next, (long long)to - 1);
    tl_buf_cleanup(&b);
    tl_kafka_consumer_destroy(kc);
    return err;
}


/* What the broker held when verify began: every partition of every topic,
 * with its watermarks. */
typedef struct {
    const char *topic; /* borrowed from v->topics */
    int32_t partition;
    int nparts;
    int64_t lo, hi;
} held_t;

typedef struct {
    char (*names)[250];
    size_t n;
    held_t *held;
    size_t nheld;
} broker_t;

static void add_topic(broker_t *bk, const char *topic)
{
    for (size_t j = 0; j < bk->n; j++)
        if (!strcmp(bk->names[j], topic))
            return;
    if (bk->n < PARTS_MAX)
        snprintf(bk->names[bk->n++], sizeof bk->names[0], "%s", topic);
}

/* The topics: the log's, the configured sources', and those archived (one
 * index probe per topic). */
static tl_err_t broker_topics(verify_t *v, broker_t *bk, const char *ingest_sources)
{
    for (size_t i = 0; i < tl_topics_count; i++)
        add_topic(bk, tl_topics_all[i]);
    char ingest[TL_INGEST_SOURCES_MAX][TL_INGEST_TOPIC_LEN];
    int ns = tl_ingest_topics(ingest_sources, ingest, TL_INGEST_SOURCES_MAX);
    for (int i = 0; i < ns; i++) {
        char dlq[TL_INGEST_TOPIC_LEN + 8];
        snprintf(dlq, sizeof dlq, "%.*s.dlq", TL_INGEST_TOPIC_LEN - 1, ingest[i]);
        add_topic(bk, ingest[i]);
        add_topic(bk, dlq);
    }
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(v->pg,
                              "WITH RECURSIVE t AS (SELECT min(topic) AS topic FROM audit_log"
                              " UNION ALL SELECT (SELECT min(topic) FROM audit_log"
                              " WHERE topic > t.topic) FROM t WHERE t.topic IS NOT NULL)"
                              " SELECT topic FROM t WHERE topic IS NOT NULL",
                              0, NULL, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++)
        add_topic(bk, tl_pg_get(res, r, 0));
    tl_pg_res_free(res);
    return err;
}

static tl_err_t broker_snapshot(verify_t *v, broker_t *bk, const char *brokers,
                                const char *ingest_sources)
{
    tl_kafka_producer_t *kafka = NULL;
    tl_err_t err = broker_topics(v, bk, ingest_sources);
    if (!err)
        err = tl_kafka_producer_new(brokers, 10000, &kafka);
    for (size_t t = 0; !err && t < bk->n; t++) {
        int nparts = tl_kafka_producer_partitions(kafka, bk->names[t], 10000);
        for (int32_t p = 0; !err && p < nparts && bk->nheld < PARTS_MAX; p++) {
            held_t *h = &bk->held[bk->nheld++];
            *h = (held_t){.topic = bk->names[t], .partition = p, .nparts = nparts};
            err = tl_kafka_producer_watermarks(kafka, bk->names[t], p, &h->lo, &h->hi, 10000);
        }
    }
    tl_kafka_producer_destroy(kafka);
    return err;
}

/* The archive of a running system trails the broker by a moment: wait
 * until it holds what the broker held at the start, or until it has not
 * moved for 5 s (a tail that will not come), 60 s at most. */
static tl_err_t await_archive(verify_t *v, const broker_t *bk)
{
    int64_t total_before = -1;
    int still = 0;
    for (int round = 0; round < 600; round++) {
        int64_t total = 0;
        bool behind = false;
        for (size_t i = 0; i < bk->nheld; i++) {
            const held_t *h = &bk->held[i];
            char part[16];
            snprintf(part, sizeof part, "%d", h->partition);
            const char *params[] = {h->topic, part};
            tl_pg_res_t *res = NULL;
            tl_err_t err = tl_pg_exec(v->pg,
                                      "SELECT COALESCE(max(\"offset\"), -1) FROM audit_log"
                                      " WHERE topic = $1 AND partition = $2",
                                      2, params, &res);
            int64_t last = err ? -1 : tl_pg_get_int(res, 0, 0);
            tl_pg_res_free(res);
            if (err)
                return err;
            total += last;
            behind = behind || last < h->hi - 1;
        }
        if (!behind)
            return TL_OK;
        still = total == total_before ? still + 1 : 0;
        total_before = total;
        if (still >= 50)
            return TL_OK;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return TL_OK;
}

static const part_t *archived(const verify_t *v, const char *topic, int32_t p)
{
    for (size_t i = 0; i < v->nparts; i++)
        if (v->parts[i].partition == p && !strcmp(v->parts[i].topic, topic))
            return &v->parts[i];
    return NULL;
}

/* Offsets archived past what the broker holds now, at the end: never
 * logged, so forged (the application may INSERT). */
static tl_err_t check_beyond(verify_t *v, const char *brokers)
{
    tl_kafka_producer_t *kafka = NULL;
    tl_err_t err = tl_kafka_producer_new(brokers, 10000, &kafka);
    for (size_t i = 0; !err && i < v->nparts; i++) {
        int64_t lo = 0, hi = 0;
        if (tl_kafka_producer_watermarks(kafka, v->parts[i].topic, v->parts[i].partition, &lo,
                                         &hi, 10000))
            continue; /* no such partition: check_broker says so */
        if (v->parts[i].last >= hi)
            problem(v, "%s/%d: the archive holds offsets %lld..%lld the broker never had",
                    v->parts[i].topic, v->parts[i].partition, (long long)hi,
                    (long long)v->parts[i].last);
    }
    tl_kafka_producer_destroy(kafka);
    return err;
}

static tl_err_t check_broker(verify_t *v, const broker_t *bk, const char *brokers)
{
    tl_err_t err = check_beyond(v, brokers);
    for (size_t i = 0; i < v->nparts; i++) {
        bool held = false;
        for (size_t j = 0; j < bk->nheld && !held; j++)
            held = bk->held[j].partition == v->parts[i].partition &&
                   !strcmp(bk->held[j].topic, v->parts[i].topic);
        if (!held)
            problem(v, "%s/%d: archived, but the broker has no such partition", v->parts[i].topic,
                    v->parts[i].partition);
    }
    for (size_t i = 0; i < bk->nheld && !err; i++) {
        const held_t *h = &bk->held[i];
        const part_t *a = archived(v, h->topic, h->partition);
        int64_t last = a ? a->last : -1;
        if (h->hi > 0 && !a)
            problem(v, "%s/%d: the broker holds offsets %lld..%lld, the archive none of this"
                       " partition",
                    h->topic, h->partition, (long long)h->lo, (long long)h->hi - 1);
        else if (last < h->hi - 1)
            problem(v, "%s/%d: the archive ends at offset %lld, the broker holds up to %lld"
                       " (a missing tail)",
                    h->topic, h->partition, (long long)last, (long long)h->hi - 1);
        int64_t to = h->hi < last + 1 ? h->hi : last + 1;
        if (h->lo < to)
            err = compare_bytes(v, brokers, h->topic, h->partition, h->nparts, h->lo, to);
    }
    return err;
}

/* ---- the command ---- */

static tl_err_t check_duplicates(verify_t *v)
{
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(v->pg,
                              "SELECT event_id::text, count(*) FROM audit_log"
                              " WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1"
                              " LIMIT 20",
                              0, NULL, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++)
        problem(v, "event id %s appears %s times in the log (two events must never share an id)",
                tl_pg_get(res, r, 0), tl_pg_get(res, r, 1));
    tl_pg_res_free(res);
    return err;
}

int tl_audit_cli_verify(tl_pg_t *pg, const tl_audit_cli_cfg_t *cfg)
{
    verify_t v = {.pg = pg};
    if (!cfg->brokers || !*cfg->brokers) {
        fprintf(stderr, "audit verify: TRIALOG_KAFKA_BROKERS is not set (the archive is checked"
                        " against the broker)\n");
        return 2;
    }
    if (tl_ed25519_load(cfg->public_key_file, false, &v.pub) || tl_ed25519_id(v.pub, v.key_id)) {
        fprintf(stderr, "audit verify: TRIALOG_AUDIT_PUBLIC_KEY: the checkpoints' Ed25519 public"
                        " key (PEM), as `trialog audit keygen` wrote it\n");
        tl_ed25519_free(v.pub);
        return 2;
    }
    v.parts = calloc(PARTS_MAX, sizeof *v.parts);
    broker_t bk = {.names = calloc(PARTS_MAX, sizeof *bk.names),
                   .held = calloc(PARTS_MAX, sizeof *bk.held)};
    tl_err_t err = v.parts && bk.names && bk.held
                       ? tl_registry_open_with(pg, cfg->registry, &v.registry)
                       : TL_ERR_NOMEM;
    bool secured = false;
    char why[200] = "";
    if (!err)
        err = tl_audit_store_secured(pg, &secured, why, sizeof why);
    if (!err && !secured)
        problem(&v, "audit_log as this connection finds it is not the secured archive: %s", why);
    if (!err)
        err = broker_snapshot(&v, &bk, cfg->brokers, cfg->ingest_sources);
    if (!err)
        err = await_archive(&v, &bk);
    if (!err)
        err = check_chains(&v);
    if (!err)
        err = check_heads(&v);
    if (!err)
        err = check_duplicates(&v);
    if (!err)
        err = check_broker(&v, &bk, cfg->brokers);
    free(bk.names);
    free(bk.held);
    int rc = err ? 2 : v.problems ? 1 : 0;
    if (err)
        fprintf(stderr, "audit verify: could not finish (%s; SQLSTATE %s)\n", tl_err_name(err),
                tl_pg_sqlstate(pg));
    else if (v.problems)
        printf("audit verify: %ld problem(s) in %ld rows, %ld checkpoints; the first: %s\n",
               v.problems, v.rows, v.checkpoints, v.first);
    else
        printf("audit verify: ok: %ld rows in %zu partitions, %ld checkpoints (%zu heads) signed"
               " by key %.16s…, every partition as the broker holds it\n",
               v.rows, v.nparts, v.checkpoints, v.nheads, v.key_id);
    tl_registry_destroy(v.registry);
    tl_ed25519_free(v.pub);
    free(v.parts);
    free(v.heads);
    return rc;
}

int tl_audit_cli_keygen(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trialog audit keygen PRIVATE.pem PUBLIC.pem\n");
        return 2;
    }
    if (tl_ed25519_keygen(argv[0], argv[1])) {
        fprintf(stderr, "audit keygen: could not write %s and %s (they must not exist)\n",
                argv[0], argv[1]);
        return 2;
    }
    printf("audit keygen: the signing key (mode 0600) is %s; give %s to whoever verifies\n",
           argv[0], argv[1]);
    return 0;
}



/* ---- db secure ---- */

/* The archive's schema and owner: run by the superuser, once per
 * deployment and again after any upgrade (each statement is idempotent). */
#define SQL_SECURE                                                                                 \
    "BEGIN; SELECT pg_advisory_xact_lock(7201001);" \
    "DO $$ BEGIN" \
    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" TL_ARCHIVE_OWNER "') THEN" \
    "    CREATE ROLE " TL_ARCHIVE_OWNER " NOLOGIN;" \
    "  END IF;" \
    "END $$;" \
    "ALTER ROLE " TL_ARCHIVE_OWNER " NOLOGIN;" \
    /* nobody may become the owner (SET ROLE) */ \
    "DO $$ DECLARE m text; BEGIN" \
    "  FOR m IN SELECT r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.member" \
    "   WHERE a.roleid = '" TL_ARCHIVE_OWNER "'::regrole LOOP" \
    "    EXECUTE format('REVOKE " TL_ARCHIVE_OWNER " FROM %%I', m);" \
    "  END LOOP;" \
    "END $$;" \
    "CREATE SCHEMA IF NOT EXISTS %2$s AUTHORIZATION " TL_ARCHIVE_OWNER ";" \
    "ALTER SCHEMA %2$s OWNER TO " TL_ARCHIVE_OWNER ";" \
    "DO $$ BEGIN" \
    "  IF to_regclass('%1$s.audit_log') IS NOT NULL THEN" \
    "    ALTER TABLE %1$s.audit_log SET SCHEMA %2$s;" \
    "  END IF;" \
    "  IF to_regprocedure('%1$s.audit_log_append_only()') IS NOT NULL THEN" \
    "    ALTER FUNCTION %1$s.audit_log_append_only() SET SCHEMA %2$s;" \
    "  END IF;" \
    "END $$;" \
    "ALTER TABLE %2$s.audit_log OWNER TO " TL_ARCHIVE_OWNER ";" \
    "ALTER FUNCTION %2$s.audit_log_append_only() OWNER TO " TL_ARCHIVE_OWNER ";" \
    /* the archive's own migrations: only this owner may change the table */ \
    "ALTER TABLE %2$s.audit_log ADD COLUMN IF NOT EXISTS hash_version smallint NOT NULL" \
    "  DEFAULT 1;" \
    "CREATE INDEX IF NOT EXISTS audit_log_by_event ON %2$s.audit_log (event_id)" \
    "  WHERE event_id IS NOT NULL;" \
    "REVOKE ALL ON SCHEMA %2$s FROM PUBLIC;" \
    "GRANT USAGE ON SCHEMA %2$s TO %3$s;" \
    "REVOKE ALL ON %2$s.audit_log FROM PUBLIC, %3$s;" \
    "GRANT SELECT, INSERT ON %2$s.audit_log TO %3$s;" \
    "COMMIT"

static bool plain_ident(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

int tl_db_secure(tl_pg_t *app, const char *super_dsn)
{
    if (!super_dsn || !*super_dsn) {
        fprintf(stderr, "db secure: TRIALOG_PG_SUPER_DSN is not set (a superuser's libpq"
                        " connection string: the archive's owner is made by the superuser)\n");
        return 2;
    }
    /* the application's own schema first: its migrations made audit_log */
    tl_pg_res_t *res = NULL;
    if (tl_migrate(app) || tl_pg_exec(app, "SELECT current_user, current_schema()", 0, NULL, &res)) {
        fprintf(stderr, "db secure: could not migrate as the application role (SQLSTATE %s)\n",
                tl_pg_sqlstate(app));
        tl_pg_res_free(res);
        return 2;
    }
    char role[128], app_schema[128], archive[160];
    snprintf(role, sizeof role, "%s", tl_pg_get(res, 0, 0) ? tl_pg_get(res, 0, 0) : "");
    snprintf(app_schema, sizeof app_schema, "%s", tl_pg_get(res, 0, 1) ? tl_pg_get(res, 0, 1) : "");
    tl_pg_res_free(res);
    /* the names go into SQL run as the superuser: plain identifiers only */
    if (!plain_ident(role, 63) || !plain_ident(app_schema, TL_PG_SCHEMA_MAX)) {
        fprintf(stderr, "db secure: the application role and schema must be plain names"
                        " (a-z, 0-9, _; the schema at most %d bytes)\n",
                TL_PG_SCHEMA_MAX);
        return 2;
    }
    snprintf(archive, sizeof archive, "%s" TL_ARCHIVE_SCHEMA_SUFFIX, app_schema);
    tl_pg_t *su = NULL;
    if (tl_pg_connect(super_dsn, NULL, "trialog-db-secure", &su)) {
        fprintf(stderr, "db secure: could not connect with TRIALOG_PG_SUPER_DSN\n");
        return 2;
    }
    char *ident[3] = {tl_pg_quote_ident(su, app_schema), tl_pg_quote_ident(su, archive),
                      tl_pg_quote_ident(su, role)};
    tl_buf_t sql;
    tl_buf_init(&sql, 16384);
    int rc = 0;
    if (!ident[0] || !ident[1] || !ident[2] ||
        tl_buf_printf(&sql, SQL_SECURE, ident[0], ident[1], ident[2]) ||
        tl_pg_exec(su, sql.data, 0, NULL, NULL)) {
        fprintf(stderr, "db secure: failed (SQLSTATE %s)\n", tl_pg_sqlstate(su));
        tl_pg_exec(su, "ROLLBACK", 0, NULL, NULL);
        rc = 2;
    }
    bool secured = false;
    char why[200] = "";
    if (!rc && (tl_audit_store_secured(app, &secured, why, sizeof why) || !secured)) {
        fprintf(stderr, "db secure: the archive is still not secured: %s\n", why);
        rc = 2;
    }
    if (!rc)
        printf("db secure: audit_log is in %s, owned by " TL_ARCHIVE_OWNER
               " (cannot log in); %s may SELECT and INSERT only\n",
               archive, role);
    for (int i = 0; i < 3; i++)
        free(ident[i]);
    tl_buf_cleanup(&sql);
    tl_pg_destroy(su);
    return rc;
}
