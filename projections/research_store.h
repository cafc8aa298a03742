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
/* The export's settings: dates ("study_days" or "shifted") and the key
 * (tl_research_key_load). TL_ERR_CONFIG, logged, for either wrong. */
tl_err_t tl_research_cfg_load(const char *key_file, const char *dates, tl_research_cfg_t *cfg);

/* Folds b and produces its records without waiting (the projection's
 * apply, with the store the catalog keeps in b->ctx). */
tl_err_t tl_research_store_apply(tl_research_store_t *rs, tl_pg_t *pg, tl_batch_t *b);
/* Waits until every record produced since the last call arrived; before
 * the batch commits (tl_projection_t.before_commit), so a committed state
 * never stands for a record the log lacks. TL_ERR_UNAVAILABLE: the batch
 * runs again, and its records are produced again, identical. */
tl_err_t tl_research_store_flush(tl_research_store_t *rs);

/* ---- the same fold in memory, for dataset releases ----
 *
 * consumers/release_export.c folds the log up to a release's cut with it:
 * the template versions first, then each participant's stream in turn. It
 * needs neither the database nor a producer, and it holds one participant
 * at a time besides the template versions, so memory stays flat whatever
 * the study's size. */
typedef struct tl_research_fold tl_research_fold_t;

/* cfg is copied. Caller frees with tl_research_fold_destroy. */
tl_err_t tl_research_fold_new(const tl_research_cfg_t *cfg, tl_research_fold_t **out);
void tl_research_fold_destroy(tl_research_fold_t *f); /* NULL is a no-op */
/* Folds a template version (protocol topic) or a participant stream event;
 * what the projections refuse changes nothing here either. e is borrowed. */
tl_err_t tl_research_fold_event(tl_research_fold_t *f, const tl_event_t *e);

/* One record of a participant folded: type is "ResearchParticipant",
 * "ResearchVisit" or "ResearchForm"; visit_name the form's visit's (NULL for
 * the others). Borrowed; returning an error stops the walk. */
typedef tl_err_t (*tl_research_record_fn)(void *user, const char *type, const json_t *record,
                                          const char *visit_name);
/* Hands over the final records of the participants folded since the last
 * call that belong to study_id (ordered by participant id; the
 * participant, its visits in schedule order, its forms in the order they
 * were first submitted), then forgets them; the template versions stay.
 * *held counts the forms left out because their template version is not
 * known (added to). */
tl_err_t tl_research_fold_flush(tl_research_fold_t *f, const char *study_id,
                                tl_research_record_fn fn, void *user, size_t *held);

#endif
