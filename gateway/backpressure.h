/* backpressure: the gateway refuses new commands (503, Retry-After) while the
 * archive lags too far behind the log (DESIGN.md §7), so that no acknowledged
 * event can fall out of a broker's retention before it is archived.
 *
 * Lag per partition = the log's end (from this gateway's own produces and a
 * periodic watermark query, for other producers) minus the archive's stored
 * next offset. A monitor thread refreshes both every TL_BP_PERIOD_MS; a
 * command checks a flag. The threshold must leave room for what arrives
 * between two refreshes (see docs/DURABLE_LOG.md). */
#ifndef TL_BACKPRESSURE_H
#define TL_BACKPRESSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_err.h"
#include "tl_kafka.h"

#define TL_BP_PERIOD_MS 200

typedef struct tl_bp tl_bp_t;

/* kafka, dsn and schema are borrowed and must outlive the monitor. */
tl_err_t tl_bp_new(tl_kafka_producer_t *kafka, const char *dsn, const char *schema,
                   long max_lag, tl_bp_t **out);
void tl_bp_destroy(tl_bp_t *bp);
/* A produce landed: the log's end is at least offset + 1. */
void tl_bp_produced(tl_bp_t *bp, const char *topic, int32_t partition, int64_t offset);
/* True while commands must wait; *lag is the worst partition's lag (messages). */
bool tl_bp_engaged(tl_bp_t *bp, int64_t *lag);

#endif
