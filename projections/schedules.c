#include "schedules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reasons.h"
#include "tl_date.h"

static const char *const state_names[] = {"scheduled", "completed", "missed", "cancelled"};

const char *tl_visit_state_name(tl_visit_state_t s)
{
    return (unsigned)s < 4 ? state_names[s] : "scheduled";
}

int tl_visit_state_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, state_names[i]))
            return i;
    return -1;
}

const char *tl_visit_type_check(const tl_visit_type_t *vt)
{
    if (vt->target_day < 0 || vt->target_day > TL_TARGET_DAY_MAX)
        return "target_day must be from 0 to 3660";
    if (vt->window_before < 0 || vt->window_before > TL_WINDOW_DAYS_MAX || vt->window_after < 0 ||
        vt->window_after > TL_WINDOW_DAYS_MAX)
        return "window days must be from 0 to 365";
    if (vt->target_day == 0 && (vt->window_before || vt->window_after))
        return "the baseline visit (target day 0) has a window of 0/0";
    if (vt->window_before > vt->target_day)
        return "the window must not open before baseline";
    return NULL;
}

const char *tl_visit_types_check(const tl_visit_type_t *vts, size_t n)
{
    if (n > TL_VISIT_TYPES_MAX)
        return "a study has at most 64 visit types";
    for (size_t i = 0; i < n; i++) {
        const char *why = tl_visit_type_check(&vts[i]);
        if (why)
            return why;
        for (size_t j = 0; j < i; j++) {
            if (!strcasecmp(vts[i].name, vts[j].name))
                return "visit type names must be unique";
            if (!vts[i].target_day && !vts[j].target_day)
                return "a study has at most one baseline visit (target day 0)";
        }
    }
    return NULL;
}

void tl_visit_plan(const tl_visit_type_t *vt, int32_t baseline, tl_visit_t *v)
{
    memset(v, 0, sizeof *v);
    memcpy(v->visit_type_id, vt->id, sizeof v->visit_type_id);
    memcpy(v->name, vt->name, sizeof v->name);
    v->target_day = vt->target_day;
    v->required = vt->required;
    v->due = baseline + vt->target_day;
    v->window_start = v->due - vt->window_before;
    v->window_end = v->due + vt->window_after;
    v->state = TL_VISIT_SCHEDULED;
}

bool tl_visit_in_window(const tl_visit_t *v, int32_t date)
{
    return date >= v->window_start && date <= v->window_end;
}

json_t *tl_visits_event_json(const tl_visit_t *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *o =
            json_pack("{s:s, s:s, s:i, s:b, s:i, s:i, s:i}", "visit_type_id", v[i].visit_type_id,
                      "name", v[i].name, "target_day", (int)v[i].target_day, "required",
                      v[i].required, "due_date", (int)v[i].due, "window_start",
                      (int)v[i].window_start, "window_end", (int)v[i].window_end);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* Reads one visit of an event's visits array; false when malformed. */
static bool visit_from_event(const json_t *o, tl_visit_t *v)
{
    memset(v, 0, sizeof *v);
    const json_t *req = json_object_get(o, "required");
    const char *keys[] = {"due_date", "window_start", "window_end"};
    int32_t *dst[] = {&v->due, &v->window_start, &v->window_end};
    if (!json_is_object(o) || !tl_ev_copy_uuid(v->visit_type_id, o, "visit_type_id") ||
        !tl_ev_copy_str(v->name, sizeof v->name, o, "name") || !v->name[0] || !json_is_boolean(req))
        return false;
    for (int i = 0; i < 3; i++) {
        if (!tl_ev_date_ok(o, keys[i]))
            return false;
        *dst[i] = (int32_t)tl_ev_int(o, keys[i]);
    }
    int64_t td = tl_ev_int(o, "target_day");
    if (!json_is_integer(json_object_get(o, "target_day")) || td < 0 || td > TL_TARGET_DAY_MAX)
        return false;
    v->target_day = (int32_t)td;
    v->required = json_is_true(req);
    v->state = TL_VISIT_SCHEDULED;
    return v->window_start <= v->due && v->due <= v->window_end;
}

bool tl_visits_event_valid(const json_t *arr)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n > TL_VISIT_TYPES_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        tl_visit_t v;
        if (!visit_from_event(json_array_get(arr, i), &v))
            return false;
        for (size_t j = 0; j < i; j++) {
            tl_uuid_t other;
            tl_uuid_parse(
                json_string_value(json_object_get(json_array_get(arr, j), "visit_type_id")),
                &other);
            if (!strcmp(other.s, v.visit_type_id))
                return false;
        }
    }
    return true;
}

/* ---- the schedule of one participant ---- */

static void visit_free(tl_visit_t *v)
{
    free(v->deviation_reason);
    free(v->missed_reason);
    free(v->notes);
    v->deviation_reason = v->missed_reason = v->notes = NULL;
}

void tl_schedule_cleanup(tl_schedule_t *s)
{
    for (size_t i = 0; s->visits && i < s->nvisits; i++)
        visit_free(&s->visits[i]);
    free(s->visits);
    memset(s, 0, sizeof *s);
}

static bool dup_str(char **dst, const char *src)
{
    *dst = NULL;
    return !src || (*dst = strdup(src)) != NULL;
}

/* A copy with room for extra more visits. */
static bool copy_with_room(tl_schedule_t *dst, const tl_schedule_t *src, size_t extra)
{
    *dst = *src;
    dst->nvisits = 0;
    if (!(dst->visits = calloc(src->nvisits + extra + 1, sizeof *dst->visits)))
        return false;
    for (size_t i = 0; i < src->nvisits; i++) {
        tl_visit_t *d = &dst->visits[i];
        const tl_visit_t *v = &src->visits[i];
        *d = *v;
        dst->nvisits = i + 1;
        if (!dup_str(&d->deviation_reason, v->deviation_reason) ||
            !dup_str(&d->missed_reason, v->missed_reason) || !dup_str(&d->notes, v->notes)) {
            tl_schedule_cleanup(dst);
            return false;
        }
    }
    return true;
}

bool tl_schedule_copy(tl_schedule_t *dst, const tl_schedule_t *src)
{
    return copy_with_room(dst, src, 0);
}

tl_visit_t *tl_schedule_visit(tl_schedule_t *s, const char *visit_type_id)
{
    tl_uuid_t u;
    if (tl_uuid_parse(visit_type_id, &u))
        return NULL;
    for (size_t i = 0; i < s->nvisits; i++)
        if (!strcmp(s->visits[i].visit_type_id, u.s))
            return &s->visits[i];
    return NULL;
}

static int by_target_day(const void *a, const void *b)
{
    const tl_visit_t *x = a, *y = b;
    if (x->target_day != y->target_day)
        return x->target_day < y->target_day ? -1 : 1;
    return strcmp(x->visit_type_id, y->visit_type_id);
}

static void stamp(tl_visit_t *v, const tl_schedule_t *s)
{
    v->version = s->version;
    v->updated_at_us = s->updated_at_us;
    memcpy(v->last_event_id, s->last_event_id, sizeof v->last_event_id);
}

/* Applies an event's visits array: visits it does not have are added;
 * visits not completed take the new dates; completed visits either keep
 * everything (an amendment) or take the new window and are judged against
 * it (a baseline change, rejudge). The array is valid (tl_stream_decide). */
static void merge_visits(tl_schedule_t *s, const json_t *arr, bool rejudge)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        tl_visit_t in;
        visit_from_event(json_array_get(arr, i), &in);
        tl_visit_t *v = tl_schedule_visit(s, in.visit_type_id);
        if (!v) {
            /* the caller made room for every visit of arr */
            v = &s->visits[s->nvisits++];
            *v = in;
        } else if (v->state == TL_VISIT_COMPLETED && !rejudge) {
            continue;
        } else {
            memcpy(v->name, in.name, sizeof v->name);
            v->target_day = in.target_day;
            v->required = in.required;
            v->due = in.due;
            v->window_start = in.window_start;
            v->window_end = in.window_end;
            if (v->state == TL_VISIT_COMPLETED)
                v->in_window = tl_visit_in_window(v, v->actual_date);
        }
        stamp(v, s);
    }
    qsort(s->visits, s->nvisits, sizeof *s->visits, by_target_day);
}

/* A baseline change's reasons for the completed visits it put out of
 * window ([{visit_type_id, reason}] or null): each becomes the visit's
 * deviation reason. false: out of memory. */
static bool deviations(tl_schedule_t *s, const json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *d = json_array_get(arr, i);
        tl_visit_t *v =
            tl_schedule_visit(s, json_string_value(json_object_get(d, "visit_type_id")));
        const char *reason = json_string_value(json_object_get(d, "reason"));
        if (!v || v->state != TL_VISIT_COMPLETED || !reason)
            continue;
        char *r = strdup(reason);
        if (!r)
            return false;
        free(v->deviation_reason);
        v->deviation_reason = r;
        stamp(v, s);
    }
    return true;
}

/* Visits not yet done when the participant leaves or finishes. */
static void cancel_open(tl_schedule_t *s)
{
    for (size_t i = 0; i < s->nvisits; i++)
        if (s->visits[i].state == TL_VISIT_SCHEDULED) {
            s->visits[i].state = TL_VISIT_CANCELLED;
            stamp(&s->visits[i], s);
        }
}

/* A correction of a completed visit: the new date (judged against the
 * window again) and deviation reason; the notes only when it brings some. */
static const char *correct(tl_schedule_t *s, tl_visit_t *v, const json_t *ev)
{
    const char *notes = json_string_value(json_object_get(ev, "notes"));
    char *dev = NULL, *nn = NULL;
    if (!dup_str(&dev, json_string_value(json_object_get(ev, "deviation_reason"))) ||
        !dup_str(&nn, notes)) {
        free(dev);
        return TL_RN(out_of_memory);
    }
    free(v->deviation_reason);
    v->deviation_reason = dev;
    if (notes) {
        free(v->notes);
        v->notes = nn;
    }
    v->actual_date = (int32_t)tl_ev_int(ev, "actual_date");
    v->in_window = tl_visit_in_window(v, v->actual_date);
    stamp(v, s);
    return NULL;
}

static const char *visit_change(tl_schedule_t *s, const char *type, const json_t *ev)
{
    tl_visit_t *v = tl_schedule_visit(s, json_string_value(json_object_get(ev, "visit_type_id")));
    if (!v)
        return TL_RN(unknown_visit);
    if (!strcmp(type, "VisitCorrected"))
        return v->state == TL_VISIT_COMPLETED ? correct(s, v, ev) : TL_RN(visit_not_completed);
    if (!strcmp(type, "VisitReopened")) {
        if (v->state != TL_VISIT_MISSED)
            return TL_RN(visit_not_missed);
        free(v->missed_reason);
        v->missed_reason = NULL;
        v->state = TL_VISIT_SCHEDULED;
        stamp(v, s);
        return NULL;
    }
    if (v->state != TL_VISIT_SCHEDULED)
        return v->state == TL_VISIT_COMPLETED ? TL_RN(visit_already_completed)
                                              : TL_RN(visit_not_scheduled);
    if (!strcmp(type, "VisitCompleted")) {
        v->actual_date = (int32_t)tl_ev_int(ev, "actual_date");
        v->in_window = tl_visit_in_window(v, v->actual_date);
        if (!dup_str(&v->deviation_reason,
                     json_string_value(json_object_get(ev, "deviation_reason"))) ||
            !dup_str(&v->notes, json_string_value(json_object_get(ev, "notes"))))
            return TL_RN(out_of_memory);
        v->state = TL_VISIT_COMPLETED;
    } else {
        if (!dup_str(&v->missed_reason, json_string_value(json_object_get(ev, "reason"))))
            return TL_RN(out_of_memory);
        v->state = TL_VISIT_MISSED;
    }
    stamp(v, s);
    return NULL;
}

static void enrol(tl_schedule_t *n, const json_t *ev)
{
    tl_ev_copy_uuid(n->id, ev, "participant_id");
    tl_ev_copy_uuid(n->study_id, ev, "study_id");
    tl_ev_copy_uuid(n->site_id, ev, "site_id");
    tl_ev_copy_str(n->code, sizeof n->code, ev, "participant_code");
    snprintf(n->status, sizeof n->status, "enrolled");
    n->baseline_date = (int32_t)tl_ev_int(ev, "baseline_date");
    n->has_consent = tl_ev_date_ok(ev, "consent_date");
    n->consent_date = n->has_consent ? (int32_t)tl_ev_int(ev, "consent_date") : 0;
    n->exists = true;
    merge_visits(n, json_object_get(ev, "schedule"), false);
}

const char *tl_schedule_apply(tl_schedule_t *s, const char *type, const json_t *ev,
                              const char **skipped)
{
    int64_t next;
    *skipped = NULL;
    tl_stream_state_t st = {s->exists, s->version, s->status, s->study_id};
    const char *why = tl_stream_decide(&st, type, ev, &next);
    if (why)
        return why;
    /* work on a copy, with room for the visits the event may add: a
     * failure leaves *s as it was */
    bool enrolment = !strcmp(type, "ParticipantEnrolled");
    const json_t *arr = json_object_get(ev, enrolment ? "schedule" : "visits");
    tl_schedule_t n, none = {0};
    if (!copy_with_room(&n, enrolment ? &none : s, json_array_size(arr)))
        return TL_RN(out_of_memory);
    n.version = next;
    n.updated_at_us = tl_ev_int(ev, "recorded_at");
    tl_ev_copy_uuid(n.last_event_id, ev, "event_id");
    if (enrolment) {
        enrol(&n, ev);
    } else if (!strcmp(type, "VisitCompleted") || !strcmp(type, "VisitMissed") ||
               !strcmp(type, "VisitCorrected") || !strcmp(type, "VisitReopened")) {
        /* a visit that cannot take it stays as it was; the stream moves on */
        *skipped = visit_change(&n, type, ev);
        if (*skipped && !strcmp(*skipped, "out_of_memory")) {
            tl_schedule_cleanup(&n);
            *skipped = NULL;
            return TL_RN(out_of_memory);
        }
    } else if (!strcmp(type, "BaselineChanged")) {
        n.baseline_date = (int32_t)tl_ev_int(ev, "baseline_date");
        merge_visits(&n, arr, true);
        if (!deviations(&n, json_object_get(ev, "deviation_reasons"))) {
            tl_schedule_cleanup(&n);
            return TL_RN(out_of_memory);
        }
    } else if (!strcmp(type, "VisitScheduleChanged")) {
        merge_visits(&n, arr, false);
    } else if (!strcmp(type, "ParticipantWithdrawn")) {
        snprintf(n.status, sizeof n.status, "withdrawn");
        n.end_date = (int32_t)tl_ev_int(ev, "withdrawal_date");
        cancel_open(&n);
    } else if (!strcmp(type, "ParticipantCompleted")) {
        snprintf(n.status, sizeof n.status, "completed");
        n.end_date = (int32_t)tl_ev_int(ev, "completion_date");
        cancel_open(&n);
    } else if (!strcmp(type, "ConsentRecorded")) {
        n.has_consent = true;
        n.consent_date = (int32_t)tl_ev_int(ev, "consent_date");
    }
    tl_schedule_cleanup(s);
    *s = n;
    return NULL;
}
