/* audit_store: writes a batch of raw log messages to audit_log with their
 * hash chain (see audit.h), as one array insert. */
#ifndef TL_AUDIT_STORE_H
#define TL_AUDIT_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_kafka.h"
#include "tl_pg.h"

tl_err_t tl_audit_store_apply(tl_pg_t *pg, tl_batch_t *b);

/* The archive tier's read: up to max archived messages of one partition from
 * offset `from` on, in order, as consumer messages (rkm NULL). Key and value
 * bytes live in bytes[2i] and bytes[2i+1] (2 * max buffers, caller's).
 * A hole in the offsets -> TL_ERR_LOG_GAP. */
tl_err_t tl_audit_read(tl_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                       size_t max, tl_kafka_msg_t *msgs, tl_buf_t *bytes, size_t *n);

#endif
