/* research: the de-identified records of the research topics (DESIGN.md §3,
 * docs/ANALYSTS.md), pure.
 *
 * Analysts get one full row per participant, visit and form, keyed by a
 * pseudonym, so a sink can upsert them. What makes them de-identified is
 * decided here and nowhere else:
 *
 *   - the participant id becomes a pseudonym: HMAC-SHA256 of the canonical
 *     id under a key kept outside the log, the first 128 bits in hex. The
 *     participant code never leaves;
 *   - dates become study days (days from the baseline, day 0); with
 *     TL_RESEARCH_SHIFTED they are also given as real dates moved by a
 *     per-participant offset of -182..182 days, derived from the same key;
 *   - the birth year becomes the age at baseline, 90 meaning 90 or older
 *     (HIPAA's Safe Harbor aggregates ages over 89);
 *   - free text is dropped: deviation reasons, notes, reasons for change,
 *     and every text answer unless its template field is research_safe;
 *     the record names the withheld fields instead.
 *
 * Every function is a function of its arguments alone, so replaying the log
 * makes the same records byte for byte. */
#ifndef TL_RESEARCH_H
#define TL_RESEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forms.h"
#include "tl_buf.h"
#include "tl_err.h"
#include "schedules.h"

#define TL_RESEARCH_KEY_MIN 32  /* bytes of the pseudonym key */
#define TL_RESEARCH_KEY_MAX 256
#define TL_PSEUDONYM_STRLEN 33  /* 32 hex digits and NUL */
#define TL_RESEARCH_SHIFT_MAX 182
#define TL_RESEARCH_AGE_CAP 90

typedef enum { TL_RESEARCH_STUDY_DAYS, TL_RESEARCH_SHIFTED } tl_research_dates_t;

typedef struct {
    unsigned char key[TL_RESEARCH_KEY_MAX];
    size_t key_len;
    tl_research_dates_t dates;
} tl_research_cfg_t;

/* "study_days" or "shifted" into *out; false for anything else. */
bool tl_research_dates_parse(const char *s, tl_research_dates_t *out);

/* The pseudonym of a participant id (any spelling of a UUID); false when
 * id is not one. */
bool tl_research_pseudonym(const tl_research_cfg_t *c, const char *participant_id,
                           char out[TL_PSEUDONYM_STRLEN]);
/* The participant's date offset in days, -TL_RESEARCH_SHIFT_MAX to
 * TL_RESEARCH_SHIFT_MAX (0 when id is not a UUID). */
int32_t tl_research_shift(const tl_research_cfg_t *c, const char *participant_id);

/* What the research records keep of a participant besides the schedule
 * (the fold of tl_schedules.h): the demographics of the enrolment, and the
 * stream version of the last event that changed the participant's row. */
typedef struct {
    int32_t birth_year; /* 0: not given */
    char sex[2];        /* "": not given */
    int64_t row_version;
} tl_research_person_t;

/* The records, written straight from the structs (a rebuild makes millions
 * of them) as Avro datums of the built-in schemas org.trialog.research.<Name>
 * (schemas/research.*), appended to out. TL_ERR_INVALID when the ids are
 * not UUIDs; out is left as it was on error. */
tl_err_t tl_research_participant(const tl_research_cfg_t *c, const tl_schedule_t *s,
                                 const tl_research_person_t *p, tl_buf_t *out);
tl_err_t tl_research_visit(const tl_research_cfg_t *c, const tl_schedule_t *s,
                           const tl_visit_t *v, tl_buf_t *out);
/* A form against fields, its template version's normalised field list, with
 * study days counted from baseline (days since 1970-01-01) and site the
 * participant's. */
tl_err_t tl_research_form(const tl_research_cfg_t *c, const tl_form_t *f, const char *site_id,
                          int32_t baseline, const json_t *fields, tl_buf_t *out);

/* A connector's observation (the ObservationRecorded event ev, which the
 * participant of s took), with its study day counted from s's baseline:
 * numbers, integers and booleans by name; text values withheld (free
 * text: a connector's string cannot be judged safe), null values left out;
 * the device never (a device identifier or serial number is one of Safe
 * Harbor's identifiers). */
tl_err_t tl_research_observation(const tl_research_cfg_t *c, const tl_schedule_t *s,
                                 const json_t *ev, tl_buf_t *out);

#endif
