/* participants: the pure fold of studies, sites and participants.
 *
 * apply(state, event) -> state, no I/O: each function either applies the
 * event to *state and returns NULL, or leaves *state unchanged and returns
 * the reason the event is refused (a stable snake_case word). Uniqueness
 * across aggregates (codes) is checked by the caller, which sees them all. */
#ifndef TL_PARTICIPANTS_H
#define TL_PARTICIPANTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "schedules.h"
#include "stream.h"
#include "tl_json.h"
#include "tl_uuid.h"

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char protocol_id[TL_BYTES(TL_PROTOCOL_ID_MAX)];
    char name[TL_BYTES(TL_NAME_MAX)];
    char description[TL_BYTES(TL_DESCRIPTION_MAX)];
    bool has_description;
    int64_t registered_at_us;
    bool locked;
    char lock_reason[TL_BYTES(TL_REASON_MAX)]; /* of the last lock or unlock */
    int64_t lock_changed_at_us;                /* 0: never locked */
    char last_event_id[TL_UUID_STRLEN];
} tl_study_t;

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    char code[TL_BYTES(TL_CODE_MAX)];
    char name[TL_BYTES(TL_NAME_MAX)];
    int64_t added_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_site_t;

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    char site_id[TL_UUID_STRLEN];
    char code[TL_BYTES(TL_CODE_MAX)];
    char status[16];    /* enrolled, completed, withdrawn */
    int32_t birth_year; /* 0: unknown */
    char sex[2];        /* "" : unknown */
    bool has_consent;
    int32_t consent_date; /* days since 1970-01-01 */
    int32_t baseline_date;
    int32_t end_date; /* withdrawn or completed: the withdrawal or completion date; else 0 */
    int64_t enrolled_at_us;
    int64_t updated_at_us;
    int64_t version;
    char last_event_id[TL_UUID_STRLEN];
} tl_participant_t;

/* A visit type of a study's protocol, as the participants projection keeps
 * it (the gateway plans schedules from these). */
typedef struct {
    bool exists;
    tl_visit_type_t vt;
    char study_id[TL_UUID_STRLEN];
    char forms[TL_FORMS_PER_VISIT_MAX][TL_JSON_NAME_MAX + 1];
    size_t nforms;
    int32_t revision; /* 1 when defined, + 1 per amendment */
    int64_t defined_at_us, updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_visit_type_row_t;

/* VisitTypeDefined / VisitTypeAmended. Unique names and the single baseline
 * of a study are checked by the caller, which sees all its visit types. */
const char *tl_visit_type_apply(tl_visit_type_row_t *r, const char *type, const json_t *ev);
const char *tl_study_apply(tl_study_t *s, const char *type, const json_t *ev);
const char *tl_site_apply(tl_site_t *s, const char *type, const json_t *ev);
const char *tl_participant_apply(tl_participant_t *p, const char *type, const json_t *ev);

/* The aggregate an event belongs to (borrowed from ev), or NULL. */
const char *tl_participants_aggregate(const char *type, const json_t *ev);

#endif
