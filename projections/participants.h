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

#include "tl_uuid.h"

#define TL_CODE_MAX 32        /* characters of a participant or site code */
#define TL_PROTOCOL_ID_MAX 64 /* characters */
#define TL_NAME_MAX 200
#define TL_DESCRIPTION_MAX 2000
/* Buffers hold up to 4 UTF-8 bytes per character. */
#define TL_BYTES(chars) ((chars) * 4 + 1)

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char protocol_id[TL_BYTES(TL_PROTOCOL_ID_MAX)];
    char name[TL_BYTES(TL_NAME_MAX)];
    char description[TL_BYTES(TL_DESCRIPTION_MAX)];
    bool has_description;
    int64_t registered_at_us;
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
    char status[16]; /* screened, enrolled, completed, withdrawn, screen_failed */
    int32_t birth_year; /* 0: unknown */
    char sex[2];        /* "" : unknown */
    bool has_consent;
    int32_t consent_date;  /* days since 1970-01-01 */
    int32_t baseline_date;
    int64_t enrolled_at_us;
    int64_t updated_at_us;
    int64_t version;
    char last_event_id[TL_UUID_STRLEN];
} tl_participant_t;

const char *tl_study_apply(tl_study_t *s, const char *type, const json_t *ev);
const char *tl_site_apply(tl_site_t *s, const char *type, const json_t *ev);
const char *tl_participant_apply(tl_participant_t *p, const char *type, const json_t *ev);

/* The aggregate an event belongs to (borrowed from ev), or NULL. */
const char *tl_participants_aggregate(const char *type, const json_t *ev);

#endif
