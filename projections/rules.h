/* rules: the protocol's decisions on commands, as pure functions.
 *
 * A gateway handler loads the state a command is judged on (the study's
 * visit types, the participant's schedule, consent and lock), calls the
 * command's rule, and produces the event only when the rule says yes; a
 * fold calls the same function where the log itself must hold the rule
 * (tl_rule_protocol_shape). Every refusal is a reason of reasons.h with a
 * detail sentence for this occurrence. docs/SCHEDULES.md states each rule;
 * tests/unit/test_rules.c covers each one without a broker or a database.
 *
 * Dates are days since 1970-01-01 (tl_date.h); 0 in a consent date means
 * none recorded. "today" is passed in, so a rule never reads a clock. */
#ifndef TL_RULES_H
#define TL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reasons.h"
#include "schedules.h"

/* Why not, for this occurrence: the reason and a sentence (no PHI: names of
 * visit types and dates of the protocol only). */
typedef struct {
    tl_reason_t why;
    char detail[320];
    /* the visits a refusal is about (required visits still open, visits a
     * baseline change puts out of window), each its own field error in the
     * answer: field names the member, items the visits' names (borrowed
     * from the schedule judged) */
    const char *field;
    const char *items[TL_VISIT_TYPES_MAX];
    size_t nitems;
} tl_verdict_t;

/* Whether a reason (UTF-8, NULL: none) says anything: a character that is
 * not a space of any kind (ASCII blanks, NBSP, the Unicode spaces, zero
 * width ones, the BOM, NEL). One test for every route's reason. */
bool tl_reason_given(const char *s);

/* A day of slack for time zones east of UTC: "today" at a site may be
 * tomorrow in UTC. */
#define TL_RULE_FUTURE_SLACK_DAYS 1

/* ---- the protocol: visit types ---- */

/* The shape every study's protocol keeps, which the fold enforces too:
 * vt's own numbers, names unique (ignoring case), at most one visit type
 * at target day 0 and at most TL_VISIT_TYPES_MAX of them. others: the
 * study's visit types (vt's own entry, same id, is skipped). */
bool tl_rule_protocol_shape(const tl_visit_type_t *vt, const tl_visit_type_t *others,
                            size_t nothers, tl_verdict_t *out);

/* Defining (current NULL) or amending (current: as it is) a visit type,
 * beyond the shape: the baseline is the one visit type at target day 0,
 * defined first, and no amendment moves it or makes another one;
 * form_templates names only templates the study has (known, nknown); a
 * change that reschedules enrolled participants carries a reason. */
typedef struct {
    const tl_visit_type_t *current; /* NULL: a new visit type */
    const tl_visit_type_t *others;  /* the study's other visit types */
    size_t nothers;
    const char *const *forms; /* the templates vt lists */
    size_t nforms;
    const char *const *known; /* the study's template names */
    size_t nknown;
    /* the templates current lists already: a protocol from before this
     * rule may list one that does not exist, and an amendment that leaves
     * it alone is not refused for it */
    const char *const *listed_before;
    size_t nlisted_before;
    long enrolled;   /* enrolled participants the change reschedules */
    bool has_reason; /* a non-blank reason came with it */
} tl_protocol_change_t;

bool tl_rule_visit_type(const tl_visit_type_t *vt, const tl_protocol_change_t *c,
                        tl_verdict_t *out);

/* ---- a participant's commands ---- */

typedef enum {
    TL_ACT_VISIT_COMPLETE,
    TL_ACT_VISIT_MISS,
    TL_ACT_VISIT_REOPEN,
    TL_ACT_VISIT_CORRECT,
    TL_ACT_BASELINE_CHANGE,
    TL_ACT_WITHDRAW,
    TL_ACT_FINISH,
    TL_ACT_FORM, /* enter, amend or sign a form */
    TL_ACT_COUNT
} tl_act_t;

/* What the participant's commands are judged on. */
typedef struct {
    const tl_schedule_t *s; /* status, baseline, consent and end dates, visits (borrowed) */
    bool locked;            /* the study is locked */
    int32_t today;
} tl_participant_facts_t;

/* Whether a command of kind k may change this participant at all: the
 * study lock holds everything; a withdrawn or completed participant takes
 * corrections of what took place (visit dates, forms) and nothing new. */
bool tl_rule_participant_open(const tl_participant_facts_t *f, tl_act_t k, tl_verdict_t *out);

/* A date of something that happened (a visit, a withdrawal): not in the
 * future, not before consent. field names it in the detail. */
bool tl_rule_event_date(const tl_participant_facts_t *f, int32_t date, const char *field,
                        tl_verdict_t *out);

/* Completing visit v on actual (a date): v scheduled; the baseline first,
 * and completed; actual not before consent, the baseline's date, or in the
 * future; outside the window only with a deviation reason. */
bool tl_rule_visit_complete(const tl_participant_facts_t *f, const tl_visit_t *v, int32_t actual,
                            bool has_deviation_reason, tl_verdict_t *out);
/* Correcting a completed visit's date: the same date rules; the baseline's
 * date not after a completed follow-up's. */
bool tl_rule_visit_correct(const tl_participant_facts_t *f, const tl_visit_t *v, int32_t actual,
                           bool has_deviation_reason, tl_verdict_t *out);
bool tl_rule_visit_miss(const tl_participant_facts_t *f, const tl_visit_t *v, tl_verdict_t *out);
/* A missed visit back to scheduled (with a reason, which the route needs). */
bool tl_rule_visit_reopen(const tl_participant_facts_t *f, const tl_visit_t *v, tl_verdict_t *out);

/* A baseline change to nb. Fills moved (f->s's visits, nvisits of them,
 * caller's array) with the visits' new dates; completed visits keep theirs
 * and are judged against their new window: each one the change puts out
 * of window (that was in it) needs a deviation reason, looked up by
 * has_reason(ctx, visit); the names of those without one are listed in
 * out->detail. A reason for any other visit is refused
 * (deviation_reason_unneeded): it would overwrite another deviation's
 * reason or explain one that is not there. */
bool tl_rule_baseline_change(const tl_participant_facts_t *f, int32_t nb,
                             bool (*has_reason)(const void *ctx, const tl_visit_t *v),
                             const void *ctx, tl_visit_t *moved, tl_verdict_t *out);

/* Withdrawal on date: not in the future, not before consent or a completed
 * visit's date. */
bool tl_rule_withdraw(const tl_participant_facts_t *f, int32_t date, tl_verdict_t *out);
/* Completion of the study on date: the same, and no required visit still
 * scheduled (named in the detail). */
bool tl_rule_finish(const tl_participant_facts_t *f, int32_t date, tl_verdict_t *out);

/* ---- enrolment ---- */

bool tl_rule_enrol(bool locked, bool site_in_study, bool has_consent, int32_t consent,
                   int32_t baseline, int32_t today, tl_verdict_t *out);

#endif
