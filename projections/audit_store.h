/* audit_store: writes a batch of raw log messages to audit_log with their
 * hash chain (see audit.h), as one array insert. */
#ifndef TL_AUDIT_STORE_H
#define TL_AUDIT_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_kafka.h"
#include "tl_pg.h"

#include "audit.h"

/* Where the archive tells its chain heads (b->ctx, or NULL for nobody): the
 * checkpoints (consumers/audit_checkpoint.c). begin at the start of a batch,
 * then head once per partition with the batch's last row of it; the batch
 * may still roll back. */
typedef struct tl_audit_sink {
    void (*begin)(struct tl_audit_sink *s);
    void (*head)(struct tl_audit_sink *s, const tl_audit_head_t *h, size_t rows);
} tl_audit_sink_t;

tl_err_t tl_audit_store_apply(tl_pg_t *pg, tl_batch_t *b);

/* Whether the archive is secured (`trialog db secure`): audit_log lives in
 * a schema of its own, owned by a role that cannot log in, and this
 * connection's role may not UPDATE, DELETE or TRUNCATE it. false: why into
 * why (why_size bytes); TL_ERR_* when it could not be asked. */
tl_err_t tl_audit_store_secured(tl_pg_t *pg, bool *secured, char *why, size_t why_size);

/* The archive tier's read: up to max archived messages of one partition from
 * offset `from` on, in order, as consumer messages (rkm NULL). Key and value
 * bytes live in bytes[2i] and bytes[2i+1] (2 * max buffers, caller's).
 * A hole in the offsets -> TL_ERR_LOG_GAP. */
tl_err_t tl_audit_read(tl_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                       size_t max, tl_kafka_msg_t *msgs, tl_buf_t *bytes, size_t *n);

#endif
