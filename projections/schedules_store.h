/* schedules_store: the I/O around the schedules fold (schedules.h). For one
 * batch it loads the schedules of the participants the events name (one
 * pipelined round trip), folds the events in log order, and appends array
 * upserts of the changed participants and visits to the batch. */
#ifndef TL_SCHEDULES_STORE_H
#define TL_SCHEDULES_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_SCHEDULES "schedules"

tl_err_t tl_schedules_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
