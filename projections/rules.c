#include "rules.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tl_date.h"

/* A detail cut short (it would have been n bytes) ends on a whole UTF-8
 * character: names are UTF-8, and half a character is no JSON string. */
static void cut_utf8(char *buf, size_t size, size_t n)
{
    if (n < size || size < 2)
        return;
    size_t end = size - 1, start = end - 1; /* the text is buf[0, end) */
    while (start && ((unsigned char)buf[start] & 0xC0) == 0x80)
        start--;
    unsigned char lead = (unsigned char)buf[start];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (start + want > end) /* the last character lost its tail */
        buf[start] = '\0';
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool
refuse(tl_verdict_t *out, tl_reason_t why, const char *fmt, ...)
{
    out->why = why;
    out->field = NULL;
    out->nitems = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->detail, sizeof out->detail, fmt, ap);
    va_end(ap);
    cut_utf8(out->detail, sizeof out->detail, n < 0 ? 0 : (size_t)n);
    return false;
}

static bool accept(tl_verdict_t *out)
{
    out->why = TL_REASON_NONE;
    out->detail[0] = '\0';
    out->field = NULL;
    out->nitems = 0;
    return true;
}

static void item(tl_verdict_t *out, const char *field, const char *name)
{
    out->field = field;
    if (out->nitems < TL_VISIT_TYPES_MAX)
        out->items[out->nitems++] = name;
}

/* The code point at s (valid UTF-8: the body parser checked it), its
 * length in *len. */
static unsigned long code_point(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    unsigned long cp = s[0] & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* not UTF-8 after all: a byte as it is */
            *len = 1;
            return s[0];
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *len = n;
    return cp;
}

static bool blank(unsigned long cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x2060 || cp == 0x3000 || cp == 0xFEFF;
}

bool tl_reason_given(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t len = 0; p && *p; p += len)
        if (!blank(code_point(p, &len)))
            return true;
    return false;
}

/* ---- the protocol ---- */

bool tl_rule_protocol_shape(const tl_visit_type_t *vt, const tl_visit_type_t *others,
                            size_t nothers, tl_verdict_t *out)
{
    const char *why = tl_visit_type_check(vt);
    if (why)
        return refuse(out, TL_R(invalid_visit_type), "%s", why);
    size_t n = 0;
    for (size_t i = 0; i < nothers; i++) {
        const tl_visit_type_t *o = &others[i];
        if (!strcmp(o->id, vt->id))
            continue;
        if (!strcasecmp(o->name, vt->name))
            return refuse(out, TL_R(duplicate_visit_type_name),
                          "the study has a visit type with this name");
        if (!o->target_day && !vt->target_day)
            return refuse(out, TL_R(second_baseline),
                          "a study has one baseline visit (target day 0): %s", o->name);
        n++;
    }
    /* a schedule holds every visit type of its study */
    if (n >= TL_VISIT_TYPES_MAX)
        return refuse(out, TL_R(too_many_visit_types), "a study has at most %d visit types",
                      TL_VISIT_TYPES_MAX);
    return accept(out);
}

static bool has_baseline(const tl_visit_type_t *vts, size_t n, const char *except_id)
{
    for (size_t i = 0; i < n; i++)
        if (!vts[i].target_day && strcmp(vts[i].id, except_id))
            return true;
    return false;
}

bool tl_rule_visit_type(const tl_visit_type_t *vt, const tl_protocol_change_t *c, tl_verdict_t *out)
{
    if (!tl_rule_protocol_shape(vt, c->others, c->nothers, out))
        return false;
    const tl_visit_type_t *cur = c->current;
    /* the baseline anchors every date of every schedule: moving it, or
     * making another visit the anchor, would silently re-date visits that
     * took place (DESIGN.md §5) */
    if (cur && !cur->target_day && vt->target_day)
        return refuse(out, TL_R(baseline_fixed),
                      "the baseline visit stays at target day 0; define the protocol's other "
                      "visits around it");
    if (cur && cur->target_day && !vt->target_day)
        return refuse(out, TL_R(baseline_fixed),
                      "no amendment makes a visit the baseline; the baseline is the visit type "
                      "defined at target day 0");
    if (!cur && vt->target_day && !has_baseline(c->others, c->nothers, vt->id))
        return refuse(out, TL_R(no_baseline),
                      "define the baseline visit type (target day 0, window 0/0) first: every "
                      "other visit is dated from it");
    for (size_t i = 0; i < c->nforms; i++) {
        bool found = false;
        for (size_t k = 0; !found && k < c->nknown; k++)
            found = !strcmp(c->forms[i], c->known[k]);
        for (size_t k = 0; !found && k < c->nlisted_before; k++)
            found = !strcmp(c->forms[i], c->listed_before[k]);
        if (!found)
            return refuse(out, TL_R(unknown_form_template),
                          "form_templates: the study has no form template \"%s\"; publish it "
                          "first",
                          c->forms[i]);
    }
    if (c->enrolled > 0 && !c->has_reason)
        return refuse(out, TL_R(reason_required),
                      "the change reschedules %ld enrolled participant%s: a protocol amendment "
                      "needs a reason",
                      c->enrolled, c->enrolled == 1 ? "" : "s");
    return accept(out);
}

/* ---- a participant's commands ---- */

/* Which commands a participant takes in each status (docs/SCHEDULES.md):
 * after withdrawal or completion, what took place can still be corrected
 * (visit dates, forms), and nothing new happens. */
static bool allowed_after_end(tl_act_t k)
{
    return k == TL_ACT_VISIT_CORRECT || k == TL_ACT_FORM;
}

bool tl_rule_participant_open(const tl_participant_facts_t *f, tl_act_t k, tl_verdict_t *out)
{
    if (f->locked)
        return refuse(out, TL_R(study_locked),
                      "the study is locked: no data changes until an admin unlocks it with a "
                      "reason");
    if (!strcmp(f->s->status, "enrolled") || allowed_after_end(k))
        return accept(out);
    return refuse(out, TL_R(participant_not_active),
                  "the participant is %s: only visit dates and forms of what took place are "
                  "corrected",
                  f->s->status);
}

bool tl_rule_event_date(const tl_participant_facts_t *f, int32_t date, const char *field,
                        tl_verdict_t *out)
{
    char d[TL_DATE_STRLEN];
    if (date > f->today + TL_RULE_FUTURE_SLACK_DAYS)
        return refuse(out, TL_R(date_in_future), "%s is in the future", field);
    if (f->s->has_consent && date < f->s->consent_date) {
        tl_date_format(f->s->consent_date, d);
        return refuse(out, TL_R(date_before_consent), "%s is before consent (%s)", field, d);
    }
    /* what took place did so before the participant left or finished */
    if (f->s->end_date && date > f->s->end_date) {
        tl_date_format(f->s->end_date, d);
        return refuse(out, TL_R(date_out_of_order), "%s is after the participant %s (%s)", field,
                      !strcmp(f->s->status, "withdrawn") ? "was withdrawn" : "completed the study",
                      d);
    }
    return accept(out);
}

static const tl_visit_t *baseline_of(const tl_schedule_t *s)
{
    for (size_t i = 0; i < s->nvisits; i++)
        if (!s->visits[i].target_day)
            return &s->visits[i];
    return NULL;
}

static bool window_fits(const tl_visit_t *v, int32_t actual, bool has_deviation_reason,
                        tl_verdict_t *out)
{
    if (tl_visit_in_window(v, actual) || has_deviation_reason)
        return accept(out);
    char ws[TL_DATE_STRLEN], we[TL_DATE_STRLEN];
    tl_date_format(v->window_start, ws);
    tl_date_format(v->window_end, we);
    return refuse(out, TL_R(deviation_reason_required),
                  "actual_date is outside the visit window %s to %s: a protocol deviation needs "
                  "a deviation_reason",
                  ws, we);
}

/* A follow-up's date against the baseline visit's: not before it. */
static bool after_baseline(const tl_participant_facts_t *f, const tl_visit_t *v, int32_t actual,
                           tl_verdict_t *out)
{
    const tl_visit_t *b = baseline_of(f->s);
    char d[TL_DATE_STRLEN];
    if (!b || b == v || b->state != TL_VISIT_COMPLETED || actual >= b->actual_date)
        return accept(out);
    tl_date_format(b->actual_date, d);
    return refuse(out, TL_R(date_out_of_order),
                  "actual_date is before the baseline visit took place (%s)", d);
}

bool tl_rule_visit_complete(const tl_participant_facts_t *f, const tl_visit_t *v, int32_t actual,
                            bool has_deviation_reason, tl_verdict_t *out)
{
    if (!tl_rule_participant_open(f, TL_ACT_VISIT_COMPLETE, out))
        return false;
    if (v->state == TL_VISIT_COMPLETED)
        return refuse(out, TL_R(visit_already_completed),
                      "a completed visit is corrected with its own command and a reason");
    if (v->state == TL_VISIT_MISSED)
        return refuse(out, TL_R(visit_not_scheduled),
                      "the visit was recorded as missed: reopen it with a reason first");
    if (v->state != TL_VISIT_SCHEDULED)
        return refuse(out, TL_R(visit_not_scheduled), "the visit was cancelled");
    const tl_visit_t *b = baseline_of(f->s);
    if (v->target_day > 0 && b && b->state != TL_VISIT_COMPLETED)
        return refuse(out, TL_R(baseline_not_completed), "%s",
                      b->state == TL_VISIT_MISSED
                          ? "the baseline visit was recorded as missed: reopen it with a reason "
                            "and complete it, or withdraw the participant"
                          : "the baseline visit must be completed before any follow-up");
    /* a schedule planned before the protocol had a baseline has none:
     * nothing is a follow-up of nothing */
    if (v->target_day > 0 && !b)
        return refuse(out, TL_R(baseline_not_completed),
                      "the participant's schedule has no baseline visit");
    return tl_rule_event_date(f, actual, "actual_date", out) && after_baseline(f, v, actual, out) &&
           window_fits(v, actual, has_deviation_reason, out);
}

bool tl_rule_visit_correct(const tl_participant_facts_t *f, const tl_visit_t *v, int32_t actual,
                           bool has_deviation_reason, tl_verdict_t *out)
{
    if (!tl_rule_participant_open(f, TL_ACT_VISIT_CORRECT, out))
        return false;
    if (v->state != TL_VISIT_COMPLETED)
        return refuse(out, TL_R(visit_not_completed),
                      "only a completed visit is corrected; complete it instead");
    if (!tl_rule_event_date(f, actual, "actual_date", out) || !after_baseline(f, v, actual, out))
        return false;
    /* the baseline's own date: not after a follow-up that took place */
    for (size_t i = 0; !v->target_day && i < f->s->nvisits; i++) {
        const tl_visit_t *o = &f->s->visits[i];
        if (o->target_day > 0 && o->state == TL_VISIT_COMPLETED && o->actual_date < actual)
            return refuse(out, TL_R(date_out_of_order),
                          "actual_date is after the follow-up visit %s took place", o->name);
    }
    return window_fits(v, actual, has_deviation_reason, out);
}

bool tl_rule_visit_miss(const tl_participant_facts_t *f, const tl_visit_t *v, tl_verdict_t *out)
{
    if (!tl_rule_participant_open(f, TL_ACT_VISIT_MISS, out))
        return false;
    if (v->state == TL_VISIT_COMPLETED)
        return refuse(out, TL_R(visit_already_completed), "the visit took place");
    if (v->state != TL_VISIT_SCHEDULED)
        return refuse(out, TL_R(visit_not_scheduled), "%s",
                      v->state == TL_VISIT_MISSED ? "the visit was recorded as missed"
                                                  : "the visit was cancelled");
    return accept(out);
}

bool tl_rule_visit_reopen(const tl_participant_facts_t *f, const tl_visit_t *v, tl_verdict_t *out)
{
    if (!tl_rule_participant_open(f, TL_ACT_VISIT_REOPEN, out))
        return false;
    if (v->state != TL_VISIT_MISSED)
        return refuse(out, TL_R(visit_not_missed),
                      "only a visit recorded as missed is reopened; this one is %s",
                      tl_visit_state_name(v->state));
    return accept(out);
}

bool tl_rule_baseline_change(const tl_participant_facts_t *f, int32_t nb,
                             bool (*has_reason)(const void *ctx, const tl_visit_t *v),
                             const void *ctx, tl_visit_t *moved, tl_verdict_t *out)
{
    const tl_schedule_t *s = f->s;
    char d[TL_DATE_STRLEN];
    if (!tl_rule_participant_open(f, TL_ACT_BASELINE_CHANGE, out))
        return false;
    if (nb == s->baseline_date)
        return refuse(out, TL_R(baseline_unchanged), "baseline_date is the current baseline");
    if (f->s->has_consent && nb < f->s->consent_date) {
        tl_date_format(f->s->consent_date, d);
        return refuse(out, TL_R(date_before_consent), "baseline_date is before consent (%s)", d);
    }
    /* every visit moves with the baseline, keeping its own window; a
     * completed one keeps its date and is judged against its new window */
    size_t len = 0;
    int missing = 0;
    accept(out);
    for (size_t i = 0; i < s->nvisits; i++) {
        const tl_visit_t *v = &s->visits[i];
        tl_visit_t *m = &moved[i];
        *m = *v;
        m->deviation_reason = m->missed_reason = m->notes = NULL; /* borrowed from none */
        int32_t before = v->due - v->window_start, after = v->window_end - v->due;
        m->due = nb + v->target_day;
        m->window_start = m->due - before;
        m->window_end = m->due + after;
        bool needed = v->state == TL_VISIT_COMPLETED && v->in_window &&
                      !tl_visit_in_window(m, v->actual_date);
        bool given = has_reason && has_reason(ctx, v);
        /* a reason for a visit the change leaves as it is would overwrite
         * a deviation reason, or invent a deviation, that is not this one */
        if (given && !needed)
            return refuse(out, TL_R(deviation_reason_unneeded),
                          "deviation_reasons names %s, which this change does not put outside "
                          "its window",
                          v->name);
        if (!needed || given)
            continue;
        item(out, "deviation_reasons", v->name);
        if (!missing++)
            len = (size_t)snprintf(out->detail, sizeof out->detail,
                                   "the new baseline puts completed visits outside their "
                                   "windows; give a deviation_reasons entry for each:");
        if (len < sizeof out->detail)
            len += (size_t)snprintf(out->detail + len, sizeof out->detail - len, "%s %s",
                                    missing > 1 ? "," : "", v->name);
    }
    if (missing) {
        cut_utf8(out->detail, sizeof out->detail, len);
        out->why = TL_R(deviations_need_reasons);
        return false;
    }
    return accept(out);
}

/* The completed visit that took place last, or NULL. */
static const tl_visit_t *last_visit(const tl_schedule_t *s)
{
    const tl_visit_t *last = NULL;
    for (size_t i = 0; i < s->nvisits; i++)
        if (s->visits[i].state == TL_VISIT_COMPLETED &&
            (!last || s->visits[i].actual_date > last->actual_date))
            last = &s->visits[i];
    return last;
}

/* The date a participant leaves or finishes on: after what took place. */
static bool leaving_date(const tl_participant_facts_t *f, int32_t date, const char *field,
                         tl_verdict_t *out)
{
    if (!tl_rule_event_date(f, date, field, out))
        return false;
    const tl_visit_t *last = last_visit(f->s);
    if (last && date < last->actual_date)
        return refuse(out, TL_R(date_out_of_order), "%s is before the visit %s took place", field,
                      last->name);
    return accept(out);
}

bool tl_rule_withdraw(const tl_participant_facts_t *f, int32_t date, tl_verdict_t *out)
{
    return tl_rule_participant_open(f, TL_ACT_WITHDRAW, out) &&
           leaving_date(f, date, "withdrawal_date", out);
}

bool tl_rule_finish(const tl_participant_facts_t *f, int32_t date, tl_verdict_t *out)
{
    if (!tl_rule_participant_open(f, TL_ACT_FINISH, out))
        return false;
    size_t len = 0;
    int open = 0;
    accept(out);
    for (size_t i = 0; i < f->s->nvisits; i++) {
        const tl_visit_t *v = &f->s->visits[i];
        if (!v->required || v->state != TL_VISIT_SCHEDULED)
            continue;
        item(out, "visits", v->name);
        if (!open++)
            len =
                (size_t)snprintf(out->detail, sizeof out->detail, "complete or mark missed first:");
        if (len < sizeof out->detail)
            len += (size_t)snprintf(out->detail + len, sizeof out->detail - len, "%s %s",
                                    open > 1 ? "," : "", v->name);
    }
    if (open) {
        cut_utf8(out->detail, sizeof out->detail, len);
        out->why = TL_R(required_visits_open);
        return false;
    }
    return leaving_date(f, date, "completion_date", out);
}

/* ---- enrolment ---- */

bool tl_rule_enrol(bool locked, bool site_in_study, bool has_consent, int32_t consent,
                   int32_t baseline, int32_t today, tl_verdict_t *out)
{
    if (locked)
        return refuse(out, TL_R(study_locked),
                      "the study is locked: no data changes until an admin unlocks it with a "
                      "reason");
    if (!has_consent)
        return refuse(out, TL_R(consent_required),
                      "a participant is enrolled only with informed consent recorded "
                      "(consent_date)");
    if (consent > today + TL_RULE_FUTURE_SLACK_DAYS)
        return refuse(out, TL_R(date_in_future), "consent_date is in the future");
    if (baseline < consent)
        return refuse(out, TL_R(date_before_consent), "baseline_date is before consent_date");
    if (!site_in_study)
        return refuse(out, TL_R(unknown_site), "site_id is not a site of this study");
    return accept(out);
}
