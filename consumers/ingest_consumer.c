#include "ingest_consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "participants_store.h"
#include "reasons.h"
#include "tl_date.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_producer.h"
#include "tl_topics.h"

#define PREFIX TL_TOPIC_INGEST_PREFIX
#define SUFFIX ".v1"

int tl_ingest_topics(const char *sources, char topics[][TL_INGEST_TOPIC_LEN], int max)
{
    int n = 0;
    const char *p = sources ? sources : "";
    while (*p) {
        size_t len = strcspn(p, ",");
        if (!len || len > TL_INGEST_SOURCE_MAX || n == max)
            return -1;
        for (size_t i = 0; i < len; i++)
            if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_' ||
                  p[i] == '-'))
                return -1;
        snprintf(topics[n++], TL_INGEST_TOPIC_LEN, PREFIX "%.*s" SUFFIX, (int)len, p);
        p += len + (p[len] == ',');
    }
    return n;
}

typedef struct {
    tl_registry_t *registry;
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
    tl_pg_t *intents; /* its own connection: a choice is written before the produce */
} ctx_t;

void tl_ingest_close(void *p)
{
    ctx_t *c = p;
    if (!c)
        return;
    tl_producer_destroy(c->producer);
    tl_kafka_producer_destroy(c->kafka);
    tl_pg_destroy(c->intents);
    free(c);
}

tl_err_t tl_ingest_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry, void **out)
{
    ctx_t *c = calloc(1, sizeof *c);
    tl_err_t err = c ? TL_OK : TL_ERR_NOMEM;
    if (!err && !cfg->ntopics) {
        tl_log_error("ingest_sources_missing", json_pack("{s:s}", "set", "TRIALOG_INGEST_SOURCES"));
        err = TL_ERR_CONFIG;
    }
    if (!err) {
        c->registry = registry;
        err = tl_pg_connect(cfg->pg_dsn, cfg->pg_schema, "trialog-ingest", &c->intents);
    }
    if (!err)
        err = tl_kafka_producer_new(cfg->brokers, 30000, &c->kafka);
    if (!err)
        err = tl_producer_new(c->kafka, registry, &c->producer);
    /* a producer's metadata request creates a topic where the cluster lets
     * it (the local broker does): the ingest topics exist before anything
     * is published to them, so the subscription finds them at once */
    for (size_t i = 0; !err && i < cfg->ntopics; i++) {
        char dlq[TL_INGEST_TOPIC_LEN + 8];
        snprintf(dlq, sizeof dlq, "%s.dlq", cfg->topics[i]);
        if (tl_kafka_producer_partitions(c->kafka, cfg->topics[i], 10000) <= 0 ||
            tl_kafka_producer_partitions(c->kafka, dlq, 10000) <= 0)
            tl_log_warn("ingest_topic_missing", json_pack("{s:s}", "topic", cfg->topics[i]));
    }
    if (err) {
        tl_ingest_close(c);
        c = NULL;
    }
    *out = c;
    return err;
}

/* ---- one record ---- */

typedef struct {
    const tl_event_t *e;
    char source[TL_INGEST_SOURCE_MAX + 1];
    tl_observation_t o;
    tl_uuid_t id; /* the canonical event's */
    char participant_id[TL_UUID_STRLEN], study_id[TL_UUID_STRLEN];
    char site_id[TL_UUID_STRLEN]; /* the participant's: the audit's site scope */
    int64_t version;
    tl_kafka_receipt_t receipt;
    bool valid;         /* an observation to take: read, about a participant, not settled */
    bool found;         /* a version was chosen for it before (ingest_events) */
    bool send;          /* to be produced (again) in this round */
    bool live;          /* produced, fate not known yet */
    const char *status; /* to write to ingest_events at the end of this round */
} item_t;

static void source_of(const char *topic, char out[TL_INGEST_SOURCE_MAX + 1])
{
    size_t n = strlen(topic), pl = strlen(PREFIX), sl = strlen(SUFFIX);
    if (n > pl + sl && n - pl - sl <= TL_INGEST_SOURCE_MAX && !strncmp(topic, PREFIX, pl))
        snprintf(out, TL_INGEST_SOURCE_MAX + 1, "%.*s", (int)(n - pl - sl), topic + pl);
    else
        snprintf(out, TL_INGEST_SOURCE_MAX + 1, "unknown");
}

/* The message, as it came, to <topic>.dlq, with why; delivered by the
 * flush at the end of the batch (a failed one makes the batch run again). */
static tl_err_t dead_letter(ctx_t *c, const tl_event_t *e, const char *why, const char *field)
{
    char topic[TL_INGEST_TOPIC_LEN + 8], part[16], off[24], source[TL_INGEST_SOURCE_MAX + 1];
    snprintf(topic, sizeof topic, "%s.dlq", e->topic);
    snprintf(part, sizeof part, "%d", e->partition);
    snprintf(off, sizeof off, "%lld", (long long)e->offset);
    source_of(e->topic, source);
    tl_kafka_header_t h[] = {
        {"trialog_error_type", why, strlen(why)},
        {"trialog_original_topic", e->topic, strlen(e->topic)},
        {"trialog_original_partition", part, strlen(part)},
        {"trialog_original_offset", off, strlen(off)},
        {"trialog_source", source, strlen(source)},
        {"trialog_error_field", field ? field : "", field ? strlen(field) : 0},
    };
    tl_err_t err = tl_kafka_produce_async(c->kafka, topic, -1, e->key, e->key_len, e->value, e->len,
                                          h, field && *field ? 6 : 5, NULL);
    tl_log_warn("ingest_dead_letter",
                json_pack("{s:s, s:i, s:I, s:s, s:s}", "topic", e->topic, "partition", e->partition,
                          "offset", (json_int_t)e->offset, "error_type", why, "result",
                          err ? tl_err_name(err) : "ok"));
    return err;
}

/* Why a message did not decode: its schema id is unknown, or the bytes
 * are not what a schema says. */
static const char *undecodable(ctx_t *c, tl_pg_t *pg, const tl_event_t *e)
{
    uint32_t id;
    const void *datum;
    size_t len;
    const tl_avro_schema_t *s;
    if (!e->value || tl_frame_parse(e->value, e->len, &id, &datum, &len))
        return TL_RN(malformed_avro);
    return tl_registry_resolve(c->registry, pg, id, &s) == TL_ERR_UNKNOWN_SCHEMA ? "unknown_schema"
                                                                                 : "malformed_avro";
}

/* Reads the record as an observation (it->valid), or sends it to the dead
 * letters. The same event twice in one batch: the first one counts. */
static tl_err_t read_one(ctx_t *c, tl_pg_t *pg, item_t *it, tl_map_t *seen)
{
    static const tl_uuid_t ns = {.s = TL_INGEST_EVENT_NS};
    const tl_event_t *e = it->e;
    char field[64] = "", name[TL_INGEST_SOURCE_MAX + 64];
    const tl_avro_schema_t *schema = NULL;
    uint32_t sid = 0;
    const void *datum;
    size_t dlen;
    source_of(e->topic, it->source);
    if (!e->type)
        return dead_letter(c, e, undecodable(c, pg, e), NULL);
    tl_err_t err = tl_frame_parse(e->value, e->len, &sid, &datum, &dlen);
    if (!err)
        err = tl_registry_resolve(c->registry, pg, sid, &schema);
    if (err)
        return err; /* it decoded a moment ago: the store is unreachable */
    const char *why = tl_ingest_read(e->data, tl_avro_schema_json(schema), tl_date_today(), &it->o,
                                     field, sizeof field);
    if (why)
        return dead_letter(c, e, why, field);
    int n = snprintf(name, sizeof name, "%s/%s", it->source, it->o.event_id);
    if ((err = tl_uuid_v5(&ns, name, (size_t)n, &it->id)) || tl_map_get(seen, it->id.s))
        return err;
    err = tl_map_put(seen, it->id.s, it);
    it->valid = !err;
    return err;
}

static tl_err_t produce(ctx_t *c, item_t *it)
{
    const tl_observation_t *o = &it->o;
    json_t *payload = json_pack(
        "{s:s, s:s, s:s, s:i, s:o, s:o, s:O, s:{s:s, s:i, s:I, s:s}}", "participant_id",
        it->participant_id, "study_id", it->study_id, "kind", it->e->fullname, "observed_on",
        (int)o->observed_on, "device", o->device[0] ? json_string(o->device) : json_null(),
        "laterality", o->laterality[0] ? json_string(o->laterality) : json_null(), "values",
        o->values, "ingest", "topic", it->e->topic, "partition", it->e->partition, "offset",
        (json_int_t)it->e->offset, "connector_event_id", o->event_id);
    char actor[TL_INGEST_SOURCE_MAX + 16];
    snprintf(actor, sizeof actor, "connector:%s", it->source);
    tl_event_meta_t meta = {.event_id = it->id,
                            .occurred_at_us = (int64_t)o->observed_on * 86400 * 1000000,
                            .actor_id = actor,
                            .actor_role = "connector",
                            .site_id = it->site_id[0] ? it->site_id : NULL,
                            .correlation_id = o->event_id,
                            .causation_id = o->event_id,
                            .source = it->source,
                            .stream_version = it->version};
    tl_err_t err = payload
                       ? tl_producer_send_async(c->producer, "ObservationRecorded",
                                                it->participant_id, payload, &meta, &it->receipt)
                       : TL_ERR_NOMEM;
    json_decref(payload);
    return err == TL_ERR_INVALID ? TL_ERR_INTERNAL : err;
}

/* ---- the batch, a few statements whatever its size ---- */

/* Which of n items a result row is about: its ordinality (column 0,
 * 1-based) less one; false for none. */
static bool row_index(const tl_pg_res_t *res, int r, size_t n, size_t *i)
{
    int64_t x = tl_pg_get_int(res, r, 0);
    *i = x >= 1 && (uint64_t)x <= n ? (size_t)(x - 1) : 0;
    return x >= 1 && (uint64_t)x <= n;
}

/* The valid items (those still to take), in batch order. */
static size_t valid_items(item_t *items, size_t n, item_t **v)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].valid)
            v[k++] = &items[i];
    return k;
}

/* The versions chosen before: a settled event has no second effect; a
 * pending one is produced again at its version. */
static tl_err_t load_intents(ctx_t *c, item_t *items, size_t n, item_t **v)
{
    size_t k = valid_items(items, n, v);
    tl_cols_t q;
    tl_cols_init(&q, 1);
    tl_pg_res_t *res = NULL;
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < k && !err; i++)
        err = tl_cols_add_row(&q, (const char *const[]){v[i]->id.s}, 1);
    if (!err && k)
        err = tl_cols_exec(c->intents,
                           "SELECT x.i, e.status, e.stream_version"
                           " FROM unnest($1::uuid[]) WITH ORDINALITY AS x(id, i)"
                           " JOIN ingest_events e ON e.event_id = x.id",
                           &q, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        size_t i;
        if (!row_index(res, r, k, &i))
            continue;
        item_t *it = v[i];
        it->found = true;
        it->version = tl_pg_get_int(res, r, 2);
        it->valid = !strcmp(tl_pg_get(res, r, 1), "pending");
    }
    tl_pg_res_free(res);
    tl_cols_cleanup(&q);
    return err;
}

/* The highest version this batch gave the participant so far (a slot that
 * lives as long as the map). */
static tl_err_t given_slot(tl_map_t *given, const char *participant_id, int64_t **slot)
{
    tl_err_t err = TL_OK;
    if (!(*slot = tl_map_get(given, participant_id))) {
        if (!(*slot = calloc(1, sizeof **slot)))
            return TL_ERR_NOMEM;
        if ((err = tl_map_put(given, participant_id, *slot))) {
            free(*slot);
            *slot = NULL;
        }
    }
    return err;
}

/* Frees a map of given_slot slots. */
static void free_slots(tl_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            free(m->vals[i]);
    tl_map_cleanup(m);
}

/* Who each observation is about, in one query; the versions they make, in
 * batch order. One the study or participant does not allow is a dead
 * letter. */
static tl_err_t load_who(ctx_t *c, tl_pg_t *pg, item_t *items, size_t n, item_t **v,
                         tl_map_t *given)
{
    size_t k = valid_items(items, n, v);
    int64_t *current = k ? calloc(k, sizeof *current) : NULL;
    bool *seen = k ? calloc(k, sizeof *seen) : NULL;
    tl_cols_t q;
    tl_cols_init(&q, 2);
    tl_pg_res_t *res = NULL;
    tl_err_t err = k && (!current || !seen) ? TL_ERR_NOMEM : TL_OK;
    for (size_t i = 0; i < k && !err; i++)
        err = tl_cols_add_row(
            &q, (const char *const[]){v[i]->o.protocol_id, v[i]->o.participant_code}, 2);
    if (!err && k)
        err =
            tl_cols_exec(pg,
                      "SELECT x.i, s.id, p.id, p.status, p.version,"
                      "  p.consent_date - date '1970-01-01', s.locked, p.site_id"
                      " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(protocol, code, i)"
                      " LEFT JOIN studies s ON s.protocol_id = x.protocol"
                      " LEFT JOIN participants p"
                      "   ON p.study_id = s.id AND p.participant_code = x.code",
                      &q, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        size_t i;
        if (!row_index(res, r, k, &i) || seen[i])
            continue;
        item_t *it = v[i];
        seen[i] = true;
        const char *field = NULL, *status = tl_pg_get(res, r, 3);
        const tl_ingest_target_t t = {
            .study_known = tl_pg_get(res, r, 1) != NULL,
            .study_locked = tl_pg_get(res, r, 6) && !strcmp(tl_pg_get(res, r, 6), "t"),
            .participant_known = tl_pg_get(res, r, 2) != NULL,
            .participant_enrolled = status && !strcmp(status, "enrolled"),
            .has_consent = tl_pg_get(res, r, 5) != NULL,
            .consent_date = (int32_t)tl_pg_get_int(res, r, 5)};
        const char *why = tl_ingest_admit(&t, it->o.observed_on, &field);
        if (why) {
            it->valid = false;
            err = dead_letter(c, it->e, why, field);
            continue;
        }
        tl_col_copy(it->study_id, sizeof it->study_id, tl_pg_get(res, r, 1));
        tl_col_copy(it->participant_id, sizeof it->participant_id, tl_pg_get(res, r, 2));
        tl_col_copy(it->site_id, sizeof it->site_id, tl_pg_get(res, r, 7));
        current[i] = tl_pg_get_int(res, r, 4);
    }
    for (size_t i = 0; i < k && !err; i++) {
        item_t *it = v[i];
        int64_t *g = NULL;
        if (!it->valid)
            continue;
        if (!seen[i]) /* a LEFT JOIN has a row for each: cannot happen */
            err = TL_ERR_INTERNAL;
        if (err || (err = given_slot(given, it->participant_id, &g)))
            break;
        if (!it->found) {
            it->version = (*g > current[i] ? *g : current[i]) + 1;
            it->status = "pending";
        }
        if (it->version > *g)
            *g = it->version;
        it->send = true;
    }
    tl_pg_res_free(res);
    tl_cols_cleanup(&q);
    free(current);
    free(seen);
    return err;
}

/* Writes every item's new status to ingest_events in one statement, on its
 * own connection: a version is written down before it is produced. */
static tl_err_t intents_put(ctx_t *c, item_t *items, size_t n)
{
    tl_cols_t q;
    tl_cols_init(&q, 8);
    tl_pg_res_t *res = NULL;
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i++) {
        item_t *it = &items[i];
        char part[16], off[24], ver[24];
        if (!it->status)
            continue;
        snprintf(part, sizeof part, "%d", it->e->partition);
        snprintf(off, sizeof off, "%lld", (long long)it->e->offset);
        snprintf(ver, sizeof ver, "%lld", (long long)it->version);
        err = tl_cols_add_row(&q,
                              (const char *const[]){it->id.s, it->source, it->e->topic, part, off,
                                                    ver, it->participant_id, it->status},
                              8);
        it->status = NULL;
    }
    if (!err && q.nrows)
        err = tl_cols_exec(
            c->intents,
            "INSERT INTO ingest_events (event_id, source, topic, partition, \"offset\","
            "  stream_version, participant_id, status)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[],"
            "  $5::bigint[], $6::bigint[], $7::uuid[], $8::text[])"
            " ON CONFLICT (event_id) DO UPDATE SET"
            "  stream_version = EXCLUDED.stream_version, status = EXCLUDED.status,"
            "  updated_at = now()",
            &q, &res);
    tl_pg_res_free(res);
    tl_cols_cleanup(&q);
    return err;
}

/* Produces every item marked to send, and waits for all of them at once. */
static tl_err_t send_all(ctx_t *c, item_t *items, size_t n)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i++)
        if (items[i].send)
            err = produce(c, &items[i]);
    if (!err)
        err = tl_producer_flush(c->producer, TL_INGEST_WAIT_MS);
    for (size_t i = 0; i < n && !err; i++) {
        if (!items[i].send)
            continue;
        items[i].send = false;
        items[i].live = !(err = items[i].receipt.err);
    }
    return err;
}

/* Until the participants projection and the archive have read every live
 * item's message: one query a poll, polls 2 ms apart at first, then up to
 * 50 ms, for at most TL_INGEST_WAIT_MS. */
static tl_err_t wait_read(tl_pg_t *pg, const item_t *items, size_t n)
{
    const char *params[] = {TL_TOPIC_PARTICIPANT};
    struct timespec start, now;
    long nap_ms = 2;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        tl_pg_res_t *res = NULL;
        tl_err_t err = tl_pg_exec(pg,
                                  "SELECT projection = 'audit', partition, next_offset"
                                  " FROM projection_offsets"
                                  " WHERE projection IN ('participants', 'audit') AND topic = $1",
                                  1, params, &res);
        bool all = !err;
        for (size_t i = 0; all && i < n; i++) {
            int have = 0; /* bit 0: participants, bit 1: the archive */
            for (int r = 0; items[i].live && r < tl_pg_nrows(res); r++)
                if (tl_pg_get_int(res, r, 1) == items[i].receipt.pos.partition &&
                    tl_pg_get_int(res, r, 2) > items[i].receipt.pos.offset)
                    have |= !strcmp(tl_pg_get(res, r, 0), "t") ? 2 : 1;
            all = !items[i].live || have == 3;
        }
        tl_pg_res_free(res);
        if (err || all)
            return err;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
            TL_INGEST_WAIT_MS)
            return TL_ERR_UNAVAILABLE; /* the batch runs again; the same events */
        struct timespec nap = {0, nap_ms * 1000000L};
        nanosleep(&nap, NULL);
        nap_ms = nap_ms < 25 ? nap_ms * 2 : 50;
    }
}

/* What became of every live item: applied, or refused and why (reason in
 * column 1), and whether a copy of the same event was applied before. */
static const char *const sql_fates =
    "SELECT x.i, r.reason,"
    " r.reason IS NOT NULL AND EXISTS (SELECT 1 FROM audit_log a"
    "   WHERE a.topic = '" TL_TOPIC_PARTICIPANT "' AND a.key = convert_to(x.pid, 'UTF8')"
    "   AND a.event_id = x.id AND NOT EXISTS (SELECT 1 FROM projection_rejections r2"
    "     WHERE r2.projection = 'participants' AND r2.topic = a.topic"
    "     AND r2.partition = a.partition AND r2.\"offset\" = a.\"offset\"))"
    " FROM unnest($1::int[], $2::bigint[], $3::uuid[], $4::text[])"
    "   WITH ORDINALITY AS x(part, off, id, pid, i)"
    " LEFT JOIN projection_rejections r ON r.projection = 'participants'"
    "   AND r.topic = '" TL_TOPIC_PARTICIPANT "' AND r.partition = x.part AND r.\"offset\" = x.off";

/* One round: settles what it can, in a few statements; *again when some
 * item was produced once more at a new version (another writer took its
 * version). */
static tl_err_t settle(ctx_t *c, tl_pg_t *pg, item_t *items, size_t n, item_t **v, bool *again)
{
    tl_map_t given;
    tl_map_init(&given);
    tl_cols_t q, ids;
    tl_cols_init(&q, 4);
    tl_cols_init(&ids, 1);
    tl_pg_res_t *res = NULL, *cur = NULL;
    size_t k = 0;
    bool dead = false;
    tl_err_t err = wait_read(pg, items, n);
    *again = false;
    for (size_t i = 0; i < n && !err; i++) {
        char part[16], off[24];
        if (!items[i].live)
            continue;
        v[k++] = &items[i];
        snprintf(part, sizeof part, "%d", items[i].receipt.pos.partition);
        snprintf(off, sizeof off, "%lld", (long long)items[i].receipt.pos.offset);
        err = tl_cols_add_row(
            &q, (const char *const[]){part, off, items[i].id.s, items[i].participant_id}, 4);
    }
    if (!err && k)
        err = tl_cols_exec(pg, sql_fates, &q, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        size_t i;
        if (!row_index(res, r, k, &i))
            continue;
        item_t *it = v[i];
        const char *why = tl_pg_get(res, r, 1);
        it->live = false;
        if (!why || !strcmp(tl_pg_get(res, r, 2), "t")) {
            it->status = "applied"; /* or a copy was: no second effect */
        } else if (!strcmp(why, "version_conflict")) {
            it->send = true; /* at the next version, now that the projection is past it */
            err = tl_cols_add_row(&ids, (const char *const[]){it->participant_id}, 1);
        } else {
            it->status = "rejected";
            err = dead_letter(c, it->e, why, NULL);
            dead = true;
        }
    }
    /* a choice settled as rejected is never looked at again: its dead
     * letter must be delivered before that is written down */
    if (!err && dead)
        err = tl_producer_flush(c->producer, TL_INGEST_WAIT_MS);
    if (!err && ids.nrows)
        err = tl_cols_exec(pg,
                           "SELECT id::text, version FROM participants WHERE id = ANY($1::uuid[])",
                           &ids, &cur);
    for (size_t i = 0; i < n && !err; i++) {
        item_t *it = &items[i];
        int64_t *g = NULL, now = 0;
        if (!it->send)
            continue;
        for (int r = 0; r < tl_pg_nrows(cur); r++)
            if (!strcmp(tl_pg_get(cur, r, 0), it->participant_id))
                now = tl_pg_get_int(cur, r, 1);
        if ((err = given_slot(&given, it->participant_id, &g)))
            break;
        it->version = (*g > now ? *g : now) + 1;
        *g = it->version;
        it->status = "pending";
        *again = true;
    }
    if (!err)
        err = intents_put(c, items, n);
    if (!err && *again)
        err = send_all(c, items, n);
    free_slots(&given);
    tl_pg_res_free(res);
    tl_pg_res_free(cur);
    tl_cols_cleanup(&q);
    tl_cols_cleanup(&ids);
    return err;
}

tl_err_t tl_ingest_apply(tl_pg_t *pg, tl_batch_t *b)
{
    ctx_t *c = b->ctx;
    item_t *items = b->n ? calloc(b->n, sizeof *items) : NULL;
    item_t **v = b->n ? calloc(b->n, sizeof *v) : NULL;
    tl_map_t seen, given;
    tl_map_init(&seen);
    tl_map_init(&given);
    tl_err_t err = b->n && (!items || !v) ? TL_ERR_NOMEM : TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        items[i].e = &b->events[i];
        err = read_one(c, pg, &items[i], &seen);
    }
    if (!err)
        err = load_intents(c, items, b->n, v);
    if (!err)
        err = load_who(c, pg, items, b->n, v, &given);
    if (!err)
        err = intents_put(c, items, b->n);
    if (!err)
        err = send_all(c, items, b->n); /* the dead letters so far with them */
    bool again = !err;
    for (int round = 0; again && !err; round++) {
        if (round == TL_INGEST_ROUNDS)
            err = TL_ERR_TRANSIENT; /* busy participants: the batch runs again */
        else
            err = settle(c, pg, items, b->n, v, &again);
    }
    if (!err) /* the dead letters of the last round */
        err = tl_producer_flush(c->producer, TL_INGEST_WAIT_MS);
    if (err) /* the batch runs again: no report may still be on its way to items */
        tl_kafka_producer_drain(c->kafka);
    for (size_t i = 0; items && i < b->n; i++)
        tl_observation_cleanup(&items[i].o);
    free_slots(&given);
    tl_map_cleanup(&seen);
    free(items);
    free(v);
    return err;
}
