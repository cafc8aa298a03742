#include "tl_producer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_buf.h"

/* Bounds one framed event; Kafka's default message.max.bytes is ~1 MB. */
#define TL_EVENT_MAX_BYTES (900 * 1024)

struct tl_producer {
    tl_kafka_producer_t *kafka;
    const tl_registry_t *registry;
};

int64_t tl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

tl_err_t tl_producer_new(tl_kafka_producer_t *kafka, const tl_registry_t *registry,
                         tl_producer_t **out)
{
    tl_producer_t *p = calloc(1, sizeof *p);
    if (!p)
        return TL_ERR_NOMEM;
    p->kafka = kafka;
    p->registry = registry;
    *out = p;
    return TL_OK;
}

void tl_producer_destroy(tl_producer_t *p)
{
    free(p);
}

static json_t *nullable(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *event_record(const json_t *payload, const tl_event_meta_t *m, int64_t now)
{
    json_t *r = json_deep_copy(payload);
    if (!r)
        return NULL;
    json_object_set_new(r, "event_id", json_string(m->event_id.s));
    json_object_set_new(r, "occurred_at", json_integer(m->occurred_at_us ? m->occurred_at_us : now));
    json_object_set_new(r, "recorded_at", json_integer(now));
    json_object_set_new(r, "actor_id", json_string(m->actor_id));
    json_object_set_new(r, "actor_role", json_string(m->actor_role));
    json_object_set_new(r, "site_id", nullable(m->site_id));
    json_object_set_new(r, "reason", nullable(m->reason));
    json_object_set_new(r, "correlation_id", json_string(m->correlation_id));
    json_object_set_new(r, "causation_id", nullable(m->causation_id));
    json_object_set_new(r, "source", json_string(m->source ? m->source : "gateway"));
    json_object_set_new(r, "stream_version",
                        m->stream_version ? json_integer(m->stream_version) : json_null());
    return r;
}

static void iso_time(int64_t us, char out[32])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", (long)(us % 1000000));
}

/* Frames an encoded datum as type t (Confluent V0) in buf (which holds the
 * frame header already) and produces it with headers: waiting for its
 * delivery when pos is given, else with receipt (may be NULL). */
static tl_err_t produce(tl_producer_t *p, const tl_event_type_t *t, const char *key,
                        const tl_buf_t *buf, const tl_kafka_header_t *headers, size_t nh,
                        tl_kafka_pos_t *pos, tl_kafka_receipt_t *receipt)
{
    return pos ? tl_kafka_produce_sync(p->kafka, t->topic, key, strlen(key), buf->data, buf->len,
                                       headers, nh, pos)
               : tl_kafka_produce_async(p->kafka, t->topic, -1, key, strlen(key), buf->data,
                                        buf->len, headers, nh, receipt);
}

static tl_err_t frame_begin(const tl_event_type_t *t, tl_buf_t *buf)
{
    unsigned char hdr[TL_FRAME_HEADER_LEN];
    tl_buf_init(buf, TL_EVENT_MAX_BYTES);
    tl_frame_header(t->id, hdr);
    return tl_buf_append(buf, hdr, sizeof hdr);
}

/* Encodes rec as type t, then produce(). */
static tl_err_t send_framed(tl_producer_t *p, const tl_event_type_t *t, const char *key,
                            const json_t *rec, const tl_kafka_header_t *headers, size_t nh,
                            tl_kafka_pos_t *pos, tl_kafka_receipt_t *receipt)
{
    tl_buf_t buf;
    tl_err_t err = frame_begin(t, &buf);
    if (!err)
        err = tl_avro_encode(t->schema, rec, &buf);
    if (!err)
        err = produce(p, t, key, &buf, headers, nh, pos, receipt);
    tl_buf_cleanup(&buf);
    return err;
}

static tl_err_t send_event(tl_producer_t *p, const char *type, const char *key,
                           const json_t *payload, const tl_event_meta_t *meta,
                           tl_kafka_pos_t *pos, tl_kafka_receipt_t *receipt)
{
    const tl_event_type_t *t = tl_registry_type(p->registry, type);
    if (!t || !meta->actor_id || !meta->actor_role || !meta->correlation_id)
        return TL_ERR_INVALID;
    int64_t now = tl_now_us();
    json_t *rec = event_record(payload, meta, now);
    if (!rec)
        return TL_ERR_NOMEM;
    char when[32];
    iso_time(meta->occurred_at_us ? meta->occurred_at_us : now, when);
    const char *src = meta->source ? meta->source : "gateway";
    const tl_kafka_header_t headers[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", meta->event_id.s, strlen(meta->event_id.s)},
        {"ce_type", t->fullname, strlen(t->fullname)},
        {"ce_source", src, strlen(src)},
        {"ce_time", when, strlen(when)},
        {"content-type", "application/avro", 16},
        {"trialog_correlation_id", meta->correlation_id, strlen(meta->correlation_id)},
    };
    tl_err_t err =
        send_framed(p, t, key, rec, headers, sizeof headers / sizeof headers[0], pos, receipt);
    json_decref(rec);
    return err;
}

tl_err_t tl_producer_send(tl_producer_t *p, const char *type, const char *key,
                          const json_t *payload, const tl_event_meta_t *meta,
                          tl_kafka_pos_t *pos)
{
    return send_event(p, type, key, payload, meta, pos, NULL);
}

tl_err_t tl_producer_send_async(tl_producer_t *p, const char *type, const char *key,
                                const json_t *payload, const tl_event_meta_t *meta,
                                tl_kafka_receipt_t *receipt)
{
    return send_event(p, type, key, payload, meta, NULL, receipt);
}

tl_err_t tl_producer_send_datum(tl_producer_t *p, const char *type, const char *key,
                                const void *datum, size_t len, const char *ce_id,
                                const char *source)
{
    const tl_event_type_t *t = tl_registry_type(p->registry, type);
    if (!t || !ce_id || !source)
        return TL_ERR_INVALID;
    const tl_kafka_header_t headers[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", ce_id, strlen(ce_id)},
        {"ce_type", t->fullname, strlen(t->fullname)},
        {"ce_source", source, strlen(source)},
        {"content-type", "application/avro", 16},
    };
    tl_buf_t buf;
    tl_err_t err = frame_begin(t, &buf);
    if (!err)
        err = tl_buf_append(&buf, datum, len);
    if (!err)
        err = produce(p, t, key, &buf, headers, sizeof headers / sizeof headers[0], NULL, NULL);
    tl_buf_cleanup(&buf);
    return err;
}

tl_err_t tl_producer_flush(tl_producer_t *p, int timeout_ms)
{
    return tl_kafka_producer_flush(p->kafka, timeout_ms);
}
