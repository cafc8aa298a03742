/* audit_store: writes a batch of raw log messages to audit_log with their
 * hash chain (see audit.h), as one array insert. */
#ifndef TL_AUDIT_STORE_H
#define TL_AUDIT_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

tl_err_t tl_audit_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
