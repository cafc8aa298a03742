/* access_store: the I/O around the access fold. For one batch it loads the
 * principals and tokens the events touch (one pipelined round trip), folds
 * the events in log order, and appends array upserts of the changed rows. */
#ifndef TL_ACCESS_STORE_H
#define TL_ACCESS_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_ACCESS "access"

tl_err_t tl_access_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
