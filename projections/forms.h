/* forms: case report forms (DESIGN.md §5 Forms), pure.
 *
 * A form template is a study's versioned list of typed fields; a form is one
 * participant's answers to one template at one visit, entered against one
 * template version and kept on that version for good. This module checks
 * templates and answers (the gateway's validation and the fuzz target's
 * subject), and folds the form events of the participant stream
 * (FormSubmitted, FormAmended, FormSigned) into a form and its field-level
 * history. No I/O.
 *
 * Templates and answers are plain JSON throughout, as the API takes them
 * and the events carry them, so there is one representation to get right:
 *
 *   field:  {"name", "label"?, "type", "required"?, ...type's own keys}
 *     number   "unit"?, "decimals"? (0-6), "min"?, "max"? (numbers)
 *     integer  "unit"?, "min"?, "max"? (integers)
 *     text     "max_length"? (1-TL_TEXT_ANSWER_MAX characters), "research_safe"?
 *              (true: the research topics export its answers; free text is
 *              withheld otherwise, docs/ANALYSTS.md)
 *     date     "min"?, "max"? ("YYYY-MM-DD")
 *     choice   "options" (one answer of them)
 *     checkbox "options" (any number of distinct answers of them)
 *   answer: {"<field name>": number | "text" | "YYYY-MM-DD" | "option" |
 *            ["option", ...] | null}; null and absent both mean unanswered.
 *
 * A member whose value is null counts as absent everywhere, because an
 * event decoded from Avro spells every optional member out as null. */
#ifndef TL_FORMS_H
#define TL_FORMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tl_json.h"
#include "tl_uuid.h"

#define TL_TEMPLATE_FIELDS_MAX 200 /* fields of one template */
#define TL_TEMPLATE_VERSIONS_MAX 1000
#define TL_FIELD_LABEL_MAX 200 /* characters */
#define TL_FIELD_UNIT_MAX 32   /* characters */
#define TL_FIELD_DECIMALS_MAX 6
#define TL_FIELD_OPTIONS_MAX 100 /* options of a choice or checkbox field */
#define TL_FIELD_OPTION_MAX 100  /* characters of one option */
#define TL_TEXT_ANSWER_MAX 4000  /* characters of a text answer */
#define TL_NUMBER_ABS_MAX 1e12   /* bounds and answers of number fields */

/* Checks a template's field list (a JSON array) and appends one error per
 * problem to errors ({"field": "fields[2].max", "code", "detail"}): unique
 * names, known types, only the type's own keys, options present and
 * distinct, min <= max, sizes within the limits above. Returns the list
 * normalised (members in a fixed order, nulls dropped; a new reference)
 * when there is no error, else NULL. */
json_t *tl_template_fields_check(const json_t *fields, json_t *errors);

/* Checks answers (a JSON object) against fields (as the function above
 * returns them). Appends one error per problem to errors, each named
 * "answers.<field>" with a stable code: required, unknown_field,
 * not_a_number, not_an_integer, below_min, above_max, too_many_decimals,
 * not_text, empty, too_long, invalid_text, not_a_date, not_an_option,
 * not_a_list, duplicate_option. Returns how many it appended. */
size_t tl_answers_check(const json_t *fields, const json_t *answers, json_t *errors);

/* answers without its null members (new reference), as a form keeps them. */
json_t *tl_answers_compact(const json_t *answers);

/* The answers after an amendment: current with each member of patch
 * replacing its own (null: removing it). *changes gets [{field, before,
 * after}] for every member that changes something, in patch's order.
 * New references; NULL when out of memory. */
json_t *tl_answers_merge(const json_t *current, const json_t *patch, json_t **changes);

/* ---- the form commands' rules (pure: a handler loads, decides, produces) ---- */

/* Whether a visit type's form_templates (a JSON array of names, as the
 * visit type carries it) lists the template name: the forms a visit takes. */
bool tl_form_template_listed(const json_t *form_templates, const char *name);

/* An amendment of a form (PATCH /v1/forms/{id}), over the form as loaded.
 * All borrowed. */
typedef struct {
    const json_t *answers;       /* the form's answers now */
    int32_t version;             /* the template version the form is on */
    const json_t *fields;        /* that version's fields */
    int32_t latest_version;      /* the template's latest version */
    const json_t *latest_fields; /* its fields (NULL when it is the form's own) */
    const json_t *patch;         /* the answers the amendment names (NULL: none) */
    int32_t to_version;          /* the version it moves the form to (0: none) */
} tl_amend_t;

typedef struct {
    json_t *answers; /* the answers after it (new reference) */
    json_t *changes; /* [{field, before, after}] (new reference) */
    int32_t version; /* the version the form is on after it */
} tl_amended_t;

/* The decision on an amendment. A form moves to another template version
 * only upward and only to the latest (to_version 0 or the form's own: it
 * stays), and the whole answer set, as the amendment leaves it, must satisfy
 * the version the form ends on, every problem appended to errors at once
 * (as tl_answers_check names them). NULL: allowed, *out filled (the caller
 * frees its members); else out is zeroed and the reason is
 * template_version_not_latest, nothing_to_amend (no answer changes and no
 * version move), invalid_answers (errors says which) or out_of_memory. */
const char *tl_form_amend_check(const tl_amend_t *a, tl_amended_t *out, json_t *errors);

/* What data quality says of one form (borrowed throughout): its answers
 * judged against the version it is on (fields; NULL: not known, skipped),
 * and, when the template has a later version, against the latest
 * (latest_fields). Appends to findings one {field, code, detail,
 * template_version, fix} per problem: field the answer's name (or
 * "answers"), code and detail tl_answers_check's, template_version the
 * version that refuses it, fix "amend" when the form's own version refuses
 * it (correct the answer with a reason) or "upgrade" when only the latest
 * does (amend the form to the latest version with a reason, answering as it
 * asks). A problem both versions find is reported once, as the form's own.
 * Returns how many it appended. */
size_t tl_form_quality(const json_t *answers, int32_t version, const json_t *fields,
                       int32_t latest_version, const json_t *latest_fields, json_t *findings);

/* ---- template versions ---- */

#define TL_TEMPLATE_TITLE_MAX 200 /* characters */

/* A template's latest version, as the forms projection keeps it. */
typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN]; /* one id for all versions of a name */
    char study_id[TL_UUID_STRLEN];
    char name[TL_JSON_NAME_MAX + 1];
    char title[TL_BYTES(TL_TEMPLATE_TITLE_MAX)];
    int32_t version;
    json_t *fields; /* owned, normalised */
    int64_t published_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_template_t;

void tl_template_cleanup(tl_template_t *t);
/* The version publishing title and fields (normalised) makes after latest
 * (exists false: none yet): latest's own when nothing differs, so
 * publishing the same template again makes no new version; else the next. */
int32_t tl_template_next_version(const tl_template_t *latest, const char *title,
                                 const json_t *fields);
/* FormTemplatePublished on the latest version of its name (exists false:
 * none yet). NULL: applied (t is the new version); else t is unchanged and
 * the reason is: version_conflict (not exactly latest + 1), wrong_template
 * (another id or study for the name), invalid_template, invalid_event,
 * out_of_memory. */
const char *tl_template_apply(tl_template_t *t, const json_t *ev);

/* ---- the fold ---- */

typedef enum { TL_FORM_SUBMITTED, TL_FORM_AMENDED, TL_FORM_SIGNED } tl_form_status_t;
const char *tl_form_status_name(tl_form_status_t s);
/* -1 when name is none of them */
int tl_form_status_parse(const char *name);

/* What a signature means (21 CFR 11.50(a)(3)): NULL-terminated. */
extern const char *const tl_signature_meanings[];
/* What a signature signs, as SHA-256 (64 hex digits and NUL into out): the
 * form's id, template version, revision and answers (as the API shows them)
 * in one canonical JSON text, keys sorted, no spaces:
 * {"answers":{...},"form_id":"...","revision":N,"template_version":N}.
 * An auditor recomputes it from GET /v1/forms/{id} (docs/FORMS.md). */
tl_err_t tl_form_content_sha256(const char *form_id, int template_version, int revision,
                                const json_t *answers, char out[65]);
#define TL_MEANING_MAX 16
#define TL_SIGNER_NAME_MAX 64

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char participant_id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    /* not the event's: the caller sets the participant's site, the one
     * source of a participant's site for every projection */
    char site_id[TL_UUID_STRLEN];
    char visit_type_id[TL_UUID_STRLEN];
    char template_id[TL_UUID_STRLEN];
    char template_name[TL_JSON_NAME_MAX + 1];
    int32_t template_version;
    json_t *answers; /* owned; no null members */
    tl_form_status_t status;
    int32_t revision; /* 1 when submitted, + 1 per amendment */
    /* the signature, while there is one (status signed) */
    char signed_by[TL_UUID_STRLEN];
    char signer_name[TL_BYTES(TL_SIGNER_NAME_MAX)];
    char printed_name[TL_BYTES(TL_DISPLAY_NAME_MAX)]; /* "": none in the event */
    char content_sha256[65];                          /* "": none in the event */
    char meaning[TL_MEANING_MAX];
    int64_t signed_at_us;
    /* the actor: a principal's id, or a connector's name */
    char submitted_by[TL_ACTOR_ID_MAX + 1];
    int64_t submitted_at_us, updated_at_us;
    int64_t version; /* the stream version of the event that last changed it */
    char last_event_id[TL_UUID_STRLEN];
} tl_form_t;

void tl_form_cleanup(tl_form_t *f);
/* Whether type is one of the form events. */
bool tl_form_event(const char *type);

/* Whether f (an existing form) holds the place a FormSubmitted event would
 * fill: the same participant, visit and template (a visit has one form of
 * a template). Ids are compared canonically. */
bool tl_form_same_slot(const tl_form_t *f, const json_t *submitted);

/* The history's name for a move of a form to another template version
 * (before and after: the version numbers): not a field name, so it never
 * meets an answer's. */
#define TL_FORM_HISTORY_VERSION "@template_version"

/* Applies a form event the participant stream accepted (tl_stream_decide)
 * to f, the form the event names (exists false when there is none yet).
 * NULL: applied, and history (a JSON array) got one {field, before, after}
 * per field the event set or changed, and one TL_FORM_HISTORY_VERSION entry
 * when a FormAmended moved the form to a later template_version (an
 * amendment may do only that: changes empty). Otherwise f and history are as they
 * were and the reason says why the form cannot take the event:
 * form_exists, unknown_form, wrong_participant, stale_signature,
 * invalid_event, out_of_memory. The gateway never produces such an event
 * (it checked the form at the stream version before); one from elsewhere is
 * skipped, like a visit event a visit cannot take. */
const char *tl_form_apply(tl_form_t *f, const char *type, const json_t *ev, json_t *history);

#endif
