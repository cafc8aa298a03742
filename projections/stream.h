/* stream: the one decision every fold of the participant stream makes alike.
 *
 * Several projections fold trialog.participant.v1 (participants, schedules),
 * each in its own consumer group. DESIGN.md §2 needs them all to accept and
 * refuse exactly the same events, or their stream versions drift apart. So
 * whether an event applies is decided here, from the event and the state
 * every such fold keeps (exists, version, status, study), and nowhere else;
 * a fold only works out the effect of an event this function accepted.
 *
 * Rules that need more state (a visit's window, "baseline first") are the
 * gateway's: it validates a command against version N and the event it
 * produces applies only at N + 1, so what it checked still holds. */
#ifndef TL_STREAM_H
#define TL_STREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tl_uuid.h"

#define TL_CODE_MAX 32        /* characters of a participant or site code */
#define TL_PROTOCOL_ID_MAX 64 /* characters */
#define TL_NAME_MAX 200
#define TL_DESCRIPTION_MAX 2000
#define TL_REASON_MAX 500 /* characters of a reason for change */
#define TL_NOTES_MAX 2000
/* Buffers hold up to 4 UTF-8 bytes per character. */
#define TL_BYTES(chars) ((chars)*4 + 1)
#define TL_ACTOR_ID_MAX 100     /* bytes of an event's actor_id a fold keeps */
#define TL_DISPLAY_NAME_MAX 128 /* characters of a printed name (a principal's display name) */

typedef struct {
    bool exists;
    int64_t version;
    const char *status;   /* "enrolled", ... */
    const char *study_id; /* canonical */
} tl_stream_state_t;

/* NULL when ev (of short type name `type`) applies to the stream in state
 * st, with *next the version it makes; else the reason it is refused, a
 * stable snake_case word: version_conflict, unknown_participant,
 * invalid_event, consent_required, wrong_study, reason_required,
 * participant_not_active. Event types it does not know apply (they take
 * their version and change nothing), so older programs agree with newer. */
const char *tl_stream_decide(const tl_stream_state_t *st, const char *type, const json_t *ev,
                             int64_t *next);

/* The stream alone, for a fold that keeps nothing else of the participant
 * (forms): whether it exists, where it belongs, its status and version. */
typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    char site_id[TL_UUID_STRLEN];
    char status[16];
    int64_t version;
    int64_t updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_stream_row_t;

/* Applies ev to r if tl_stream_decide accepts it (NULL), else leaves r
 * alone and returns the reason. */
const char *tl_stream_row_apply(tl_stream_row_t *r, const char *type, const json_t *ev);

/* Helpers for folds, over an already accepted event. */
bool tl_ev_copy_str(char *dst, size_t size, const json_t *ev, const char *key);
bool tl_ev_copy_uuid(char dst[TL_UUID_STRLEN], const json_t *ev, const char *key);
int64_t tl_ev_int(const json_t *ev, const char *key);
/* The event's times and a date field are real ones (tl_date.h). */
bool tl_ev_times_ok(const json_t *ev);
bool tl_ev_date_ok(const json_t *ev, const char *key);

#endif
