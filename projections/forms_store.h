/* forms_store: the I/O around the forms fold (forms.h). For one batch it
 * loads what the events name (template versions, the participants' stream
 * state and forms; one pipelined round trip), folds the events in log
 * order, and appends array upserts of what changed plus the new rows of
 * form_templates and form_field_history. */
#ifndef TL_FORMS_STORE_H
#define TL_FORMS_STORE_H

#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_FORMS "forms"

tl_err_t tl_forms_store_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
