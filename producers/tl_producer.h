/* tl_producer: turns a domain event into a framed Avro message with
 * CloudEvents headers and produces it durably (idempotent, acks=all),
 * waiting for the delivery report. */
#ifndef TL_PRODUCER_H
#define TL_PRODUCER_H

#include <jansson.h>
#include <stdint.h>

#include "tl_err.h"
#include "tl_kafka.h"
#include "tl_schemas.h"
#include "tl_uuid.h"

typedef struct tl_producer tl_producer_t;

/* The metadata every event carries (DESIGN.md §3). Strings are borrowed;
 * NULL for the nullable ones means null. */
typedef struct {
    tl_uuid_t event_id;
    int64_t occurred_at_us; /* 0: same as recorded_at */
    const char *actor_id;
    const char *actor_role;
    const char *site_id;
    const char *reason;
    const char *correlation_id;
    const char *causation_id;
    const char *source;     /* NULL: "gateway" */
    int64_t stream_version; /* 0: null (not a participant stream event) */
} tl_event_meta_t;

/* registry and kafka are borrowed and must outlive the producer. */
tl_err_t tl_producer_new(tl_kafka_producer_t *kafka, const tl_registry_t *registry,
                         tl_producer_t **out);
void tl_producer_destroy(tl_producer_t *p);

/* Produces event type `type` (e.g. "StudyRegistered") keyed by aggregate id
 * `key`. payload holds the type's own fields (borrowed, not modified); the
 * metadata is added from meta. Invalid payload -> TL_ERR_INVALID; broker
 * down -> TL_ERR_UNAVAILABLE. pos receives where it landed; with pos NULL the
 * call does not wait (tl_kafka_producer_flush tells whether all arrived). */
tl_err_t tl_producer_send(tl_producer_t *p, const char *type, const char *key,
                          const json_t *payload, const tl_event_meta_t *meta,
                          tl_kafka_pos_t *pos);

/* The same without waiting: receipt (borrowed until then; may be NULL)
 * says where it landed once tl_producer_flush returns. */
tl_err_t tl_producer_send_async(tl_producer_t *p, const char *type, const char *key,
                                const json_t *payload, const tl_event_meta_t *meta,
                                tl_kafka_receipt_t *receipt);

/* Produces a record that is not an event (a research record, whose type
 * carries no event metadata), already encoded as the Avro datum of the
 * type's built-in schema, without waiting: CloudEvents headers without
 * ce_time, so the same record makes the same message. Flush with
 * tl_producer_flush. Borrowed arguments. */
tl_err_t tl_producer_send_datum(tl_producer_t *p, const char *type, const char *key,
                                const void *datum, size_t len, const char *ce_id,
                                const char *source);
/* Waits until every message sent without waiting arrived; fails if one did
 * not (tl_kafka_producer_flush). */
tl_err_t tl_producer_flush(tl_producer_t *p, int timeout_ms);

/* Current time in microseconds since the Unix epoch. */
int64_t tl_now_us(void);

#endif
