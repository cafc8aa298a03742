/* schedules_store: the I/O around the schedules fold (schedules.h). For one
 * batch it loads the schedules of the participants the events name (one
 * pipelined round trip), folds the events in log order, and appends array
 * upserts of the changed participants and visits to the batch. */
#ifndef TL_SCHEDULES_STORE_H
#define TL_SCHEDULES_STORE_H

#include "schedules.h"
#include "tl_batch.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_SCHEDULES "schedules"

tl_err_t tl_schedules_store_apply(tl_pg_t *pg, tl_batch_t *b);

/* One participant's schedule as rows, one per visit (a participant without
 * visits: one row whose visit columns are NULL), over
 * schedule_participants p LEFT JOIN participant_visits v: the one way a
 * schedule is loaded, by this projection and by the gateway's commands. */
#define TL_SQL_SCHEDULE_COLS                                                                       \
    " p.id, p.study_id, p.site_id, p.participant_code, p.status,"                                  \
    " p.baseline_date - date '1970-01-01', p.version,"                                             \
    " (extract(epoch FROM p.updated_at) * 1000000)::bigint, p.last_event_id,"                      \
    " p.consent_date - date '1970-01-01', p.end_date - date '1970-01-01',"                         \
    " v.visit_type_id, v.name, v.target_day, v.required,"                                          \
    " v.due_date - date '1970-01-01', v.window_start - date '1970-01-01',"                         \
    " v.window_end - date '1970-01-01', v.state, v.actual_date - date '1970-01-01', v.in_window,"  \
    " v.deviation_reason, v.missed_reason, v.notes, v.version,"                                    \
    " (extract(epoch FROM v.updated_at) * 1000000)::bigint, v.last_event_id"
#define TL_SQL_SCHEDULE_FROM                                                                       \
    " FROM schedule_participants p"                                                                \
    " LEFT JOIN participant_visits v ON v.participant_id = p.id"
/* Fills s (cleaned up first by the caller; tl_schedule_cleanup frees it)
 * from rows from..to-1 of res, the schedule's columns starting at col. */
tl_err_t tl_schedule_read(tl_schedule_t *s, const tl_pg_res_t *res, int col, int from, int to);

#endif
