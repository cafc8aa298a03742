/* schedules: visit schedules (DESIGN.md §5), pure.
 *
 * A visit type of the protocol gives each participant one visit: due on
 * baseline + target_day, in window from due - before to due + after, both
 * ends inclusive. The dates are computed once, by the gateway, and travel in
 * the participant's events (ParticipantEnrolled.schedule, BaselineChanged and
 * VisitScheduleChanged .visits), so a replay never depends on the protocol
 * as it is later. The fold below keeps one participant's schedule. */
#ifndef TL_SCHEDULES_H
#define TL_SCHEDULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tl_uuid.h"

#define TL_VISIT_TYPES_MAX 64  /* visit types of a study */
#define TL_VISIT_NAME_MAX 100  /* characters */
#define TL_TARGET_DAY_MAX 3660 /* ten years of follow-up */
#define TL_WINDOW_DAYS_MAX 365
#define TL_FORMS_PER_VISIT_MAX 32

typedef struct {
    char id[TL_UUID_STRLEN];
    char name[TL_BYTES(TL_VISIT_NAME_MAX)];
    int32_t target_day, window_before, window_after;
    bool required;
} tl_visit_type_t;

/* Checks one visit type's numbers: NULL or the problem, a sentence. */
const char *tl_visit_type_check(const tl_visit_type_t *vt);
/* Checks a protocol's visit types together: names unique (ignoring case)
 * and at most one baseline (target day 0). NULL or the problem. */
const char *tl_visit_types_check(const tl_visit_type_t *vts, size_t n);

typedef enum {
    TL_VISIT_SCHEDULED,
    TL_VISIT_COMPLETED,
    TL_VISIT_MISSED,
    TL_VISIT_CANCELLED, /* the participant left or finished before it */
} tl_visit_state_t;

const char *tl_visit_state_name(tl_visit_state_t s);
/* -1 when name is none of them */
int tl_visit_state_parse(const char *name);

typedef struct {
    char visit_type_id[TL_UUID_STRLEN];
    char name[TL_BYTES(TL_VISIT_NAME_MAX)];
    int32_t target_day;
    bool required;
    int32_t due, window_start, window_end; /* days since 1970-01-01 */
    tl_visit_state_t state;
    int32_t actual_date;                            /* completed: when */
    bool in_window;                                 /* completed: actual_date within the window */
    char *deviation_reason, *missed_reason, *notes; /* owned; NULL: none */
    int64_t version;                                /* the stream version that last changed it */
    int64_t updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_visit_t;

/* Fills the visit of vt for a baseline: id, name, target day, required and
 * the dates; state scheduled. */
void tl_visit_plan(const tl_visit_type_t *vt, int32_t baseline, tl_visit_t *v);
bool tl_visit_in_window(const tl_visit_t *v, int32_t date);
/* The visits as events carry them: [{visit_type_id, name, target_day,
 * required, due_date, window_start, window_end}]. New reference. */
json_t *tl_visits_event_json(const tl_visit_t *v, size_t n);
/* Whether a visits array of an event is well formed: at most
 * TL_VISIT_TYPES_MAX visits of distinct ids, real dates, window_start <= due
 * <= window_end. */
bool tl_visits_event_valid(const json_t *arr);

/* One participant's schedule. */
typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    char site_id[TL_UUID_STRLEN];
    char code[TL_BYTES(TL_CODE_MAX)];
    char status[16];
    int32_t baseline_date;
    bool has_consent;
    int32_t consent_date; /* has_consent: the latest consent recorded */
    int32_t end_date;     /* withdrawn or completed: when; else 0 */
    int64_t version;
    int64_t updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
    tl_visit_t *visits; /* owned, in target day order */
    size_t nvisits;
} tl_schedule_t;

void tl_schedule_cleanup(tl_schedule_t *s);
/* Deep copy; false when out of memory (dst then holds no visits and must
 * not be used). */
bool tl_schedule_copy(tl_schedule_t *dst, const tl_schedule_t *src);
tl_visit_t *tl_schedule_visit(tl_schedule_t *s, const char *visit_type_id);

/* The fold. NULL: applied; else *s is unchanged and the reason is returned
 * (those of tl_stream_decide, or "out_of_memory"). *skipped is set when the
 * stream accepted the event but a visit it names cannot take it (unknown
 * visit, visit not scheduled): the version advances like in every other
 * projection, the visit stays as it was, and the caller records why. */
const char *tl_schedule_apply(tl_schedule_t *s, const char *type, const json_t *ev,
                              const char **skipped);

#endif
