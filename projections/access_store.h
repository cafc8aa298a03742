/* access_store: the I/O around the access fold. For one batch it loads the
 * principals and tokens the events touch (one pipelined round trip), folds
 * the events in log order, and appends array upserts of the changed rows. */
#ifndef TL_ACCESS_STORE_H
#define TL_ACCESS_STORE_H

#include "access.h"
#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_ACCESS "access"

tl_err_t tl_access_store_apply(tl_pg_t *pg, tl_batch_t *b);

/* A principal's row as tl_principal_read reads it: 21 columns of the
 * principals table, aliased p. */
#define TL_SQL_PRINCIPAL_COLS                                                                      \
    "p.id, p.name, p.role, p.site_ids::text, p.active, p.signing_credential_id,"                   \
    " (extract(epoch FROM p.created_at) * 1000000)::bigint,"                                      \
    " (extract(epoch FROM p.updated_at) * 1000000)::bigint, p.last_event_id, p.display_name,"     \
    " p.granted_by, (extract(epoch FROM p.signing_expires_at) * 1000000)::bigint,"               \
    " p.signing_failures, p.signing_locked, p.enrolment_state, p.enrolment_id,"                   \
    " p.enrolment_opened_by, p.enrolment_approved_by, p.enrolment_code_sha256,"                   \
    " (extract(epoch FROM p.enrolment_code_expires_at) * 1000000)::bigint, p.study_ids::text"
#define TL_SQL_PRINCIPAL_NCOLS 21
/* Row r of res, from column c on, into p (exists). */
void tl_principal_read(const tl_pg_res_t *res, int r, int c, tl_principal_t *p);

#endif
