/* releases_store: the releases table (migration 14), folded from the
 * release events of the protocol topic by the participants projection, so
 * that the gateway answers a request for a release read-your-writes like
 * every study command. What a release holds is cut by the export worker
 * (consumers/release_export.c); its status follows tl_release_advance. */
#ifndef TL_RELEASES_STORE_H
#define TL_RELEASES_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

/* Folds the batch's release events; other events are left alone. */
tl_err_t tl_releases_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
