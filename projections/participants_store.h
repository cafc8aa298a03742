/* participants_store: the I/O around the participants fold. For one batch it
 * loads the rows the events touch (one pipelined round trip), folds the
 * events in log order, and appends array upserts of the changed rows to the
 * batch; the consumer runtime commits them with the offsets. */
#ifndef TL_PARTICIPANTS_STORE_H
#define TL_PARTICIPANTS_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_PARTICIPANTS "participants"

tl_err_t tl_participants_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
