/* research_store: the research export consumer (DESIGN.md §3, docs/ANALYSTS.md).
 *
 * It folds the participant stream with the schedules and forms folds
 * (schedules.h, forms.h) into state of its own (migration 13), and after
 * every event it accepts it publishes the rows that event changed, as
 * research.h makes them, to trialog.research.{participants,visits,forms}.v1,
 * keyed by the pseudonym. Per batch: one pipelined load, the fold, the
 * records produced and flushed, then the state written with the offsets in
 * the runtime's transaction. A crash between the flush and the commit
 * publishes the batch's records again, identical (at least once; a sink
 * upserts). A form whose template version has not been read yet (the
 * protocol topic is consumed apart) is held back with its successive rows
 * and published when the version arrives, so every key gets the same
 * sequence of records whatever the order the two topics are read in. */
#ifndef TL_RESEARCH_STORE_H
#define TL_RESEARCH_STORE_H

#include "research.h"
#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"
#include "tl_producer.h"

#define TL_PROJECTION_RESEARCH "research"
#define TL_RESEARCH_SOURCE "trialog-research" /* ce_source of its records */
#define TL_RESEARCH_PENDING_MAX 100 /* rows held back per form; older ones go */
#define TL_RESEARCH_FLUSH_MS 30000

typedef struct tl_research_store tl_research_store_t;

/* cfg is copied; producer is borrowed and must outlive the store. Caller
 * frees with tl_research_store_destroy. */
tl_err_t tl_research_store_new(const tl_research_cfg_t *cfg, tl_producer_t *producer,
                               tl_research_store_t **out);
void tl_research_store_destroy(tl_research_store_t *s);

/* Reads a pseudonym key file: its bytes without trailing white space, at
 * least TL_RESEARCH_KEY_MIN and at most TL_RESEARCH_KEY_MAX of them, from a
 * file only its owner may read. TL_ERR_CONFIG otherwise (logged, without
 * the key). */
tl_err_t tl_research_key_load(const char *path, tl_research_cfg_t *cfg);

/* Folds b and publishes its records (the projection's apply, with the store
 * the catalog keeps in b->ctx). */
tl_err_t tl_research_store_apply(tl_research_store_t *rs, tl_pg_t *pg, tl_batch_t *b);

#endif
