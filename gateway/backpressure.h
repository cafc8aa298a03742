/* backpressure: the gateway refuses new commands (503, Retry-After) before an
 * event the archive has not stored could leave the broker (DESIGN.md §7):
 * the topics' own retention settings (retention.ms, retention.bytes, read
 * from the cluster) say when that could be, so topics that keep everything
 * never make it refuse; TRIALOG_ARCHIVE_MAX_LAG adds a cap of the
 * operator's on how far the archive may trail.
 *
 * Lag per partition = the log's end (from this gateway's own produces and a
 * periodic watermark query, for other producers) minus the archive's stored
 * next offset. A monitor thread refreshes both every TL_BP_PERIOD_MS; a
 * command checks a flag. The decision is tl_bp_must_wait, a pure function
 * (docs/DURABLE_LOG.md). */
#ifndef TL_BACKPRESSURE_H
#define TL_BACKPRESSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_err.h"
#include "tl_kafka.h"

#define TL_BP_PERIOD_MS 200
#define TL_BP_RETENTION_PERIOD_MS 60000 /* the topics' retention is read again */
/* Bytes counted for each unarchived message against retention.bytes: about
 * seven times an enrolment with its headers (~550), room for a large form. */
#define TL_BP_EVENT_BYTES 4096

/* A topic's retention as the cluster reports it; -1: unlimited. */
typedef struct {
    int64_t ms, bytes;
} tl_bp_retention_t;

/* One partition against the archive. */
typedef struct {
    int64_t lag;              /* messages the archive has not stored yet */
    int64_t last_archived_ms; /* log time of the last archived one; -1 none */
} tl_bp_partition_t;

/* Whether commands must wait for this partition: its oldest unarchived
 * message could leave the broker within half of the topic's retention
 * (time: counted from the last archived message's log time, which the
 * oldest unarchived one is not older than; bytes: TL_BP_EVENT_BYTES a
 * message), or the lag passes max_lag (0: no cap of its own). No lag, no
 * wait. Pure. */
bool tl_bp_must_wait(const tl_bp_retention_t *r, const tl_bp_partition_t *p, int64_t now_ms,
                     long max_lag);

typedef struct tl_bp tl_bp_t;

/* kafka, brokers, dsn and schema are borrowed and must outlive the monitor.
 * max_lag: 0 for none. */
tl_err_t tl_bp_new(tl_kafka_producer_t *kafka, const char *brokers, const char *dsn,
                   const char *schema, long max_lag, tl_bp_t **out);
void tl_bp_destroy(tl_bp_t *bp);
/* A produce landed: the log's end is at least offset + 1. */
void tl_bp_produced(tl_bp_t *bp, const char *topic, int32_t partition, int64_t offset);
/* True while commands must wait; *lag is the worst partition's lag (messages). */
bool tl_bp_engaged(tl_bp_t *bp, int64_t *lag);

#endif
