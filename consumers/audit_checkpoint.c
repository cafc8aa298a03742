#include "audit_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_store.h"
#include "tl_codec.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_producer.h"
#include "tl_secret.h"
#include "tl_topics.h"

#define HEADS_MAX 4096 /* partitions of every archived topic together */

typedef struct {
    tl_audit_sink_t sink; /* first: the archive's b->ctx */
    tl_sign_key_t *key;
    char key_id[TL_SHA256_STRLEN];
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
    long every, seconds;
    /* heads archived since the last checkpoint (pending), and those of
     * the batch in progress (staged: pending once it commits) */
    tl_audit_head_t pending[HEADS_MAX], staged[HEADS_MAX];
    size_t npending, nstaged;
    size_t since, staged_rows; /* messages archived since the last checkpoint */
    int64_t oldest_us;         /* when the oldest of them was archived; 0 none */
    bool started;              /* every head was loaded at start */
    int64_t secured_us;        /* when the archive was last found secured */
} ckpt_t;

static void sink_begin(tl_audit_sink_t *s)
{
    ckpt_t *c = (ckpt_t *)s;
    c->nstaged = c->staged_rows = 0;
}

static void sink_head(tl_audit_sink_t *s, const tl_audit_head_t *h, size_t rows)
{
    ckpt_t *c = (ckpt_t *)s;
    if (!strcmp(h->topic, TL_TOPIC_AUDIT) || c->nstaged == HEADS_MAX)
        return;
    c->staged[c->nstaged++] = *h;
    c->staged_rows += rows;
}

/* The head of (topic, partition) among pending, replaced or added. */
static void pend(ckpt_t *c, const tl_audit_head_t *h)
{
    for (size_t i = 0; i < c->npending; i++)
        if (c->pending[i].partition == h->partition && !strcmp(c->pending[i].topic, h->topic)) {
            if (h->offset > c->pending[i].offset)
                c->pending[i] = *h;
            return;
        }
    if (c->npending < HEADS_MAX)
        c->pending[c->npending++] = *h;
}

static int head_order(const void *a, const void *b)
{
    const tl_audit_head_t *x = a, *y = b;
    int t = strcmp(x->topic, y->topic);
    return t ? t : (x->partition > y->partition) - (x->partition < y->partition);
}

tl_err_t tl_audit_checkpoint_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry,
                                  void **out)
{
    ckpt_t *c = calloc(1, sizeof *c);
    tl_err_t err = c ? TL_OK : TL_ERR_NOMEM;
    *out = NULL;
    if (!err && (err = tl_ed25519_load(cfg->audit_key_file, true, &c->key)))
        tl_log_error("audit_signing_key_unusable",
                     json_pack("{s:s}", "fix",
                               "TRIALOG_AUDIT_SIGNING_KEY: an Ed25519 private key, PEM, mode 0600"
                               " (trialog audit keygen)"));
    if (!err)
        err = tl_ed25519_id(c->key, c->key_id);
    if (!err)
        err = tl_kafka_producer_new(cfg->brokers, 30000, &c->kafka);
    if (!err)
        err = tl_producer_new(c->kafka, registry, &c->producer);
    if (err) {
        tl_audit_checkpoint_close(c);
        return err;
    }
    c->sink = (tl_audit_sink_t){.begin = sink_begin, .head = sink_head};
    c->every = cfg->audit_checkpoint_every > 0 ? cfg->audit_checkpoint_every : 10000;
    c->seconds = cfg->audit_checkpoint_seconds > 0 ? cfg->audit_checkpoint_seconds : 30;
    *out = c;
    return TL_OK;
}

void tl_audit_checkpoint_close(void *ctx)
{
    ckpt_t *c = ctx;
    if (!c)
        return;
    tl_producer_destroy(c->producer);
    tl_kafka_producer_destroy(c->kafka);
    tl_ed25519_free(c->key);
    free(c);
}

/* Every partition's head, from the archive's own offsets and its rows. */
static tl_err_t load_heads(ckpt_t *c, tl_pg_t *pg)
{
    tl_pg_res_t *res = NULL;
    const char *params[] = {TL_PROJECTION_AUDIT, TL_TOPIC_AUDIT};
    tl_err_t err = tl_pg_exec(pg,
                              "SELECT a.topic, a.partition, a.\"offset\", a.hash"
                              "  FROM projection_offsets o JOIN audit_log a"
                              "    ON a.topic = o.topic AND a.partition = o.partition"
                              "   AND a.\"offset\" = o.next_offset - 1"
                              " WHERE o.projection = $1 AND o.topic <> $2",
                              2, params, &res);
    tl_buf_t h;
    tl_buf_init(&h, 64);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        tl_audit_head_t head = {.partition = (int32_t)tl_pg_get_int(res, r, 1),
                                .offset = tl_pg_get_int(res, r, 2)};
        snprintf(head.topic, sizeof head.topic, "%s", tl_pg_get(res, r, 0));
        tl_buf_reset(&h);
        err = tl_bytea_unhex(&h, tl_pg_get(res, r, 3));
        if (!err && h.len != TL_AUDIT_HASH_LEN)
            err = TL_ERR_DB;
        if (!err) {
            memcpy(head.hash, h.data, TL_AUDIT_HASH_LEN);
            pend(c, &head);
        }
    }
    tl_buf_cleanup(&h);
    tl_pg_res_free(res);
    return err;
}

/* Signs and publishes the pending heads. */
static tl_err_t publish(ckpt_t *c)
{
    qsort(c->pending, c->npending, sizeof c->pending[0], head_order);
    tl_event_meta_t meta = {.actor_id = "trialog-audit", .actor_role = "system",
                            .source = "audit"};
    tl_err_t err = tl_uuid_v7(&meta.event_id);
    meta.correlation_id = meta.event_id.s;
    meta.occurred_at_us = tl_now_us();
    tl_buf_t text, sig64;
    tl_buf_init(&text, 1024 * 1024);
    tl_buf_init(&sig64, 256);
    unsigned char sig[TL_ED25519_SIG_LEN];
    if (!err)
        err = tl_audit_checkpoint_text(c->key_id, meta.occurred_at_us, c->pending, c->npending,
                                       &text);
    if (!err)
        err = tl_ed25519_sign(c->key, text.data, text.len, sig);
    if (!err)
        err = tl_b64_encode(&sig64, sig, sizeof sig);
    json_t *heads = json_array(), *payload = NULL;
    for (size_t i = 0; !err && i < c->npending; i++) {
        char hex[2 * TL_AUDIT_HASH_LEN + 1];
        for (int j = 0; j < TL_AUDIT_HASH_LEN; j++)
            snprintf(hex + 2 * j, 3, "%02x", c->pending[i].hash[j]);
        json_array_append_new(heads, json_pack("{s:s, s:i, s:I, s:s}", "topic",
                                               c->pending[i].topic, "partition",
                                               c->pending[i].partition, "offset",
                                               (json_int_t)c->pending[i].offset, "hash", hex));
    }
    if (!err)
        payload = json_pack("{s:s, s:O, s:s%}", "key_id", c->key_id, "heads", heads, "signature",
                            sig64.data, sig64.len);
    tl_kafka_pos_t pos;
    if (!err)
        err = payload ? tl_producer_send(c->producer, "AuditCheckpoint", c->key_id, payload,
                                         &meta, &pos)
                      : TL_ERR_NOMEM;
    if (!err)
        tl_log_info("audit_checkpoint", json_pack("{s:i, s:i, s:I}", "heads", (int)c->npending,
                                                  "partition", pos.partition, "offset",
                                                  (json_int_t)pos.offset));
    json_decref(payload);
    json_decref(heads);
    tl_buf_cleanup(&text);
    tl_buf_cleanup(&sig64);
    return err;
}

/* The table written to is the archive its owner holds, not one the
 * application made in its own schema to shadow it. */
static tl_err_t still_secured(ckpt_t *c, tl_pg_t *pg, int64_t now)
{
    if (now - c->secured_us < 60 * 1000000LL)
        return TL_OK;
    bool secured = false;
    char why[200];
    tl_err_t err = tl_audit_store_secured(pg, &secured, why, sizeof why);
    if (!err && !secured) {
        tl_log_error("archive_not_secured", json_pack("{s:s}", "why", why));
        return TL_ERR_CONFIG;
    }
    if (!err)
        c->secured_us = now;
    return TL_OK;
}

tl_err_t tl_audit_checkpoint_turn(void *ctx, tl_pg_t *pg, bool committed)
{
    ckpt_t *c = ctx;
    int64_t now = tl_now_us();
    tl_err_t serr = still_secured(c, pg, now);
    if (serr)
        return serr;
    if (committed) {
        for (size_t i = 0; i < c->nstaged; i++)
            pend(c, &c->staged[i]);
        if (c->staged_rows && !c->oldest_us)
            c->oldest_us = now;
        c->since += c->staged_rows;
        c->nstaged = c->staged_rows = 0;
    }
    if (!c->started) {
        tl_err_t err = load_heads(c, pg);
        if (err) {
            tl_log_warn("audit_checkpoint_failed", json_pack("{s:s}", "error", tl_err_name(err)));
            return TL_OK;
        }
        c->started = true;
        if (c->npending && !c->oldest_us)
            c->oldest_us = 1; /* at once */
    }
    bool due = c->npending && ((long)c->since >= c->every ||
                               (c->oldest_us && now - c->oldest_us >= c->seconds * 1000000LL));
    if (!due)
        return TL_OK;
    tl_err_t err = publish(c);
    if (err) { /* tried again at the next turn; archiving goes on */
        tl_log_warn("audit_checkpoint_failed", json_pack("{s:s}", "error", tl_err_name(err)));
        return TL_OK;
    }
    c->npending = c->since = 0;
    c->oldest_us = 0;
    return TL_OK;
}
