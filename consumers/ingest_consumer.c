#include "ingest_consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "participants_store.h"
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
    int64_t version;
    tl_kafka_pos_t pos;
    bool live; /* produced, fate not known yet */
} item_t;

static void source_of(const char *topic, char out[TL_INGEST_SOURCE_MAX + 1])
{
    size_t n = strlen(topic), pl = strlen(PREFIX), sl = strlen(SUFFIX);
    if (n > pl + sl && n - pl - sl <= TL_INGEST_SOURCE_MAX && !strncmp(topic, PREFIX, pl))
        snprintf(out, TL_INGEST_SOURCE_MAX + 1, "%.*s", (int)(n - pl - sl), topic + pl);
    else
        snprintf(out, TL_INGEST_SOURCE_MAX + 1, "unknown");
}

/* The message, as it came, to <topic>.dlq, with why. */
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
    tl_kafka_pos_t pos;
    tl_err_t err = tl_kafka_produce_sync(c->kafka, topic, e->key, e->key_len, e->value, e->len, h,
                                         field && *field ? 6 : 5, &pos);
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
        return "malformed_avro";
    return tl_registry_resolve(c->registry, pg, id, &s) == TL_ERR_UNKNOWN_SCHEMA ? "unknown_schema"
                                                                                 : "malformed_avro";
}

static const char *const sql_who =
    "SELECT s.id, p.id, p.status, p.version, p.consent_date - date '1970-01-01'"
    " FROM studies s LEFT JOIN participants p"
    "   ON p.study_id = s.id AND p.participant_code = $2"
    " WHERE s.protocol_id = $1";

/* Who the observation is about; NULL, or why it is not accepted. */
static const char *who(tl_pg_t *pg, item_t *it, int64_t *version, tl_err_t *err)
{
    const char *params[] = {it->o.protocol_id, it->o.participant_code};
    tl_pg_res_t *res = NULL;
    const char *why = NULL;
    *err = tl_pg_exec(pg, sql_who, 2, params, &res);
    if (*err)
        return NULL;
    if (!tl_pg_nrows(res))
        why = "unknown_study";
    else if (!tl_pg_get(res, 0, 1))
        why = "unknown_participant";
    else if (strcmp(tl_pg_get(res, 0, 2), "enrolled"))
        why = "participant_not_active";
    else if (tl_pg_get(res, 0, 4) && it->o.observed_on < tl_pg_get_int(res, 0, 4))
        why = "out_of_range"; /* before the participant consented */
    if (!why) {
        tl_col_copy(it->study_id, sizeof it->study_id, tl_pg_get(res, 0, 0));
        tl_col_copy(it->participant_id, sizeof it->participant_id, tl_pg_get(res, 0, 1));
        *version = tl_pg_get_int(res, 0, 3);
    }
    tl_pg_res_free(res);
    return why;
}

/* The version chosen for it before, if any; *done when its fate is known. */
static tl_err_t intent_get(ctx_t *c, item_t *it, bool *found, bool *done)
{
    const char *params[] = {it->id.s};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(
        c->intents, "SELECT status, stream_version FROM ingest_events WHERE event_id = $1", 1,
        params, &res);
    *found = !err && tl_pg_nrows(res);
    *done = *found && strcmp(tl_pg_get(res, 0, 0), "pending");
    if (*found)
        it->version = tl_pg_get_int(res, 0, 1);
    tl_pg_res_free(res);
    return err;
}

static tl_err_t intent_put(ctx_t *c, const item_t *it, const char *status)
{
    char part[16], off[24], ver[24];
    snprintf(part, sizeof part, "%d", it->e->partition);
    snprintf(off, sizeof off, "%lld", (long long)it->e->offset);
    snprintf(ver, sizeof ver, "%lld", (long long)it->version);
    const char *params[] = {it->id.s, it->source, it->e->topic,       part,
                            off,      ver,        it->participant_id, status};
    return tl_pg_exec(
        c->intents,
        "INSERT INTO ingest_events (event_id, source, topic, partition, \"offset\","
        "  stream_version, participant_id, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (event_id) DO UPDATE SET stream_version = EXCLUDED.stream_version,"
        "  status = EXCLUDED.status, updated_at = now()",
        8, params, NULL);
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
                            .correlation_id = o->event_id,
                            .causation_id = o->event_id,
                            .source = it->source,
                            .stream_version = it->version};
    tl_err_t err = payload ? tl_producer_send(c->producer, "ObservationRecorded",
                                              it->participant_id, payload, &meta, &it->pos)
                           : TL_ERR_NOMEM;
    json_decref(payload);
    it->live = !err;
    return err == TL_ERR_INVALID ? TL_ERR_INTERNAL : err;
}

/* ---- what became of them ---- */

/* Until the participants projection and the archive have read every live
 * item's message. */
static tl_err_t wait_read(tl_pg_t *pg, const item_t *items, size_t n)
{
    struct timespec nap = {0, 20 * 1000000L};
    for (size_t i = 0; i < n; i++) {
        if (!items[i].live)
            continue;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", items[i].pos.partition);
        snprintf(off, sizeof off, "%lld", (long long)items[i].pos.offset);
        const char *params[] = {TL_TOPIC_PARTICIPANT, part, off};
        bool ok = false;
        for (int waited = 0; !ok && waited < TL_INGEST_WAIT_MS; waited += 20) {
            tl_pg_res_t *res = NULL;
            tl_err_t err = tl_pg_exec(pg,
                                      "SELECT count(*) FROM projection_offsets"
                                      " WHERE projection IN ('participants', 'audit')"
                                      " AND topic = $1 AND partition = $2 AND next_offset > $3",
                                      3, params, &res);
            ok = !err && tl_pg_get_int(res, 0, 0) == 2;
            tl_pg_res_free(res);
            if (err)
                return err;
            if (!ok)
                nanosleep(&nap, NULL);
        }
        if (!ok)
            return TL_ERR_UNAVAILABLE; /* the batch runs again; the same events */
    }
    return TL_OK;
}

/* Why the participants projection refused the item's message (NULL: it
 * did not), and whether a copy of the same event was accepted before. */
static tl_err_t fate(tl_pg_t *pg, const item_t *it, char why[64], bool *copy_applied)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", it->pos.partition);
    snprintf(off, sizeof off, "%lld", (long long)it->pos.offset);
    const char *params[] = {TL_TOPIC_PARTICIPANT, part, off, it->id.s, it->participant_id};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(
        pg,
        "SELECT (SELECT reason FROM projection_rejections WHERE projection = 'participants'"
        "   AND topic = $1 AND partition = $2 AND \"offset\" = $3),"
        " EXISTS (SELECT 1 FROM audit_log a WHERE a.topic = $1"
        "   AND a.key = convert_to($5, 'UTF8') AND a.event_id = $4::uuid"
        "   AND NOT EXISTS (SELECT 1 FROM projection_rejections r"
        "     WHERE r.projection = 'participants' AND r.topic = a.topic"
        "     AND r.partition = a.partition AND r.\"offset\" = a.\"offset\"))",
        5, params, &res);
    why[0] = '\0';
    if (!err && tl_pg_get(res, 0, 0))
        snprintf(why, 64, "%s", tl_pg_get(res, 0, 0));
    *copy_applied = !err && tl_pg_get(res, 0, 1) && !strcmp(tl_pg_get(res, 0, 1), "t");
    tl_pg_res_free(res);
    return err;
}

static tl_err_t current_version(tl_pg_t *pg, const char *participant_id, int64_t *v)
{
    const char *params[] = {participant_id};
    tl_pg_res_t *res = NULL;
    tl_err_t err =
        tl_pg_exec(pg, "SELECT version FROM participants WHERE id = $1", 1, params, &res);
    if (!err)
        *v = tl_pg_get_int(res, 0, 0);
    tl_pg_res_free(res);
    return err;
}

/* One round: settles what it can; *again when an item must be produced
 * once more at a new version (done here). */
static tl_err_t settle(ctx_t *c, tl_pg_t *pg, item_t *items, size_t n, bool *again)
{
    tl_err_t err = wait_read(pg, items, n);
    *again = false;
    for (size_t i = 0; i < n && !err; i++) {
        item_t *it = &items[i];
        char why[64];
        bool copy = false;
        if (!it->live)
            continue;
        if ((err = fate(pg, it, why, &copy)))
            break;
        it->live = false;
        if (!why[0] || copy) {
            err = intent_put(c, it, "applied"); /* or a copy was: no second effect */
        } else if (!strcmp(why, "version_conflict")) {
            /* another writer took the version: the next one, now that the
             * projection has read past this message */
            err = current_version(pg, it->participant_id, &it->version);
            it->version++;
            if (!err)
                err = intent_put(c, it, "pending");
            if (!err)
                err = produce(c, it);
            *again = true;
        } else {
            err = dead_letter(c, it->e, why, NULL);
            if (!err)
                err = intent_put(c, it, "rejected");
        }
    }
    return err;
}

/* ---- the batch ---- */

static tl_err_t take(ctx_t *c, tl_pg_t *pg, item_t *it, tl_map_t *last)
{
    static const tl_uuid_t ns = {.s = "9a3f2c1e-64b7-5d08-a1f3-5c2e7b9d4a60"};
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
    if ((err = tl_uuid_v5(&ns, name, (size_t)n, &it->id)))
        return err;
    bool found = false, done = false;
    int64_t version = 0;
    if ((err = intent_get(c, it, &found, &done)) || done)
        return err; /* seen before, and settled: no second effect */
    why = who(pg, it, &version, &err);
    if (err)
        return err;
    if (why)
        return dead_letter(c, e, why, !strcmp(why, "out_of_range") ? "observed_on" : NULL);
    /* the highest version this batch gave the participant so far */
    int64_t *given = tl_map_get(last, it->participant_id);
    if (!given) {
        if (!(given = malloc(sizeof *given)) ||
            (err = tl_map_put(last, it->participant_id, given))) {
            free(given);
            return err ? err : TL_ERR_NOMEM;
        }
        *given = 0;
    }
    if (!found) {
        it->version = (*given > version ? *given : version) + 1;
        if ((err = intent_put(c, it, "pending")))
            return err;
    }
    if (it->version > *given)
        *given = it->version;
    return produce(c, it);
}

tl_err_t tl_ingest_apply(tl_pg_t *pg, tl_batch_t *b)
{
    ctx_t *c = b->ctx;
    item_t *items = b->n ? calloc(b->n, sizeof *items) : NULL;
    tl_map_t last;
    tl_map_init(&last);
    tl_err_t err = b->n && !items ? TL_ERR_NOMEM : TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        items[i].e = &b->events[i];
        err = take(c, pg, &items[i], &last);
    }
    bool again = !err;
    for (int round = 0; again && !err; round++) {
        if (round == TL_INGEST_ROUNDS)
            err = TL_ERR_TRANSIENT; /* busy participants: the batch runs again */
        else
            err = settle(c, pg, items, b->n, &again);
    }
    for (size_t i = 0; items && i < b->n; i++)
        tl_observation_cleanup(&items[i].o);
    for (size_t i = 0; i < last.cap; i++)
        if (last.keys[i])
            free(last.vals[i]);
    tl_map_cleanup(&last);
    free(items);
    return err;
}
