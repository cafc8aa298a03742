#include "stream.h"

#include <stdio.h>
#include <string.h>

#include "forms.h"
#include "reasons.h"
#include "schedules.h"
#include "tl_date.h"

bool tl_ev_copy_str(char *dst, size_t size, const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    if (!s || strlen(s) >= size)
        return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

bool tl_ev_copy_uuid(char dst[TL_UUID_STRLEN], const json_t *ev, const char *key)
{
    tl_uuid_t u;
    if (tl_uuid_parse(json_string_value(json_object_get(ev, key)), &u))
        return false;
    memcpy(dst, u.s, TL_UUID_STRLEN);
    return true;
}

int64_t tl_ev_int(const json_t *ev, const char *key)
{
    return json_integer_value(json_object_get(ev, key));
}

/* Times and dates an event carries must be real ones (tl_date.h), or the
 * event is refused: a projection never stores what it cannot format. */
bool tl_ev_times_ok(const json_t *ev)
{
    return tl_ts_valid(tl_ev_int(ev, "occurred_at")) && tl_ts_valid(tl_ev_int(ev, "recorded_at"));
}

bool tl_ev_date_ok(const json_t *ev, const char *key)
{
    return json_is_integer(json_object_get(ev, key)) && tl_date_valid(tl_ev_int(ev, key));
}

static bool uuid_ok(const json_t *ev, const char *key)
{
    return tl_uuid_valid(json_string_value(json_object_get(ev, key)));
}

/* An optional text: absent, null, or a string of at most max bytes. */
static bool text_ok(const json_t *ev, const char *key, size_t max)
{
    const json_t *v = json_object_get(ev, key);
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) <= max);
}

static bool has_reason(const json_t *ev)
{
    const char *r = json_string_value(json_object_get(ev, "reason"));
    return r && *r && strlen(r) < TL_BYTES(TL_REASON_MAX);
}

static const char *decide_enrolment(const tl_stream_state_t *st, const json_t *ev)
{
    if (st->exists)
        return TL_RN(version_conflict);
    if (!uuid_ok(ev, "participant_id") || !uuid_ok(ev, "study_id") || !uuid_ok(ev, "site_id") ||
        !uuid_ok(ev, "event_id"))
        return TL_RN(invalid_event);
    const char *code = json_string_value(json_object_get(ev, "participant_code"));
    if (!code || strlen(code) >= TL_BYTES(TL_CODE_MAX))
        return TL_RN(invalid_event);
    if (!json_is_integer(json_object_get(ev, "consent_date")))
        return TL_RN(consent_required);
    if (!tl_ev_times_ok(ev) || !tl_ev_date_ok(ev, "consent_date") ||
        !tl_ev_date_ok(ev, "baseline_date"))
        return TL_RN(invalid_event);
    const char *sex = json_string_value(json_object_get(ev, "sex"));
    if (sex && (strlen(sex) != 1 || !strchr("MFOU", sex[0])))
        return TL_RN(invalid_event);
    /* events from before schedules existed have none */
    const json_t *sched = json_object_get(ev, "schedule");
    if (sched && !tl_visits_event_valid(sched))
        return TL_RN(invalid_event);
    return NULL;
}

/* A baseline change's deviation reasons: absent, null, or at most one per
 * visit of [{visit_type_id, reason}], each reason said in at most
 * TL_REASON_MAX characters. */
static bool deviations_ok(const json_t *arr)
{
    if (!arr || json_is_null(arr))
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > TL_VISIT_TYPES_MAX)
        return false;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *d = json_array_get(arr, i);
        const char *r = json_string_value(json_object_get(d, "reason"));
        if (!uuid_ok(d, "visit_type_id") || !r || !*r || strlen(r) >= TL_BYTES(TL_REASON_MAX))
            return false;
    }
    return true;
}

/* The fields of each later event type, and whether it needs a reason. */
static const char *decide_fields(const char *type, const json_t *ev, bool *known)
{
    *known = true;
    if (!strcmp(type, "ConsentRecorded"))
        return tl_ev_date_ok(ev, "consent_date") ? NULL : "invalid_event";
    if (!strcmp(type, "VisitCompleted") || !strcmp(type, "VisitCorrected")) {
        if (!uuid_ok(ev, "visit_type_id") || !tl_ev_date_ok(ev, "actual_date") ||
            !text_ok(ev, "deviation_reason", TL_BYTES(TL_REASON_MAX) - 1) ||
            !text_ok(ev, "notes", TL_BYTES(TL_NOTES_MAX) - 1))
            return TL_RN(invalid_event);
        return strcmp(type, "VisitCorrected") || has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "VisitMissed") || !strcmp(type, "VisitReopened")) {
        if (!uuid_ok(ev, "visit_type_id"))
            return TL_RN(invalid_event);
        return has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "BaselineChanged")) {
        if (!tl_ev_date_ok(ev, "baseline_date") || !tl_ev_date_ok(ev, "previous_baseline_date") ||
            !tl_visits_event_valid(json_object_get(ev, "visits")) ||
            !deviations_ok(json_object_get(ev, "deviation_reasons")))
            return TL_RN(invalid_event);
        return has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "VisitScheduleChanged")) {
        if (!tl_visits_event_valid(json_object_get(ev, "visits")))
            return TL_RN(invalid_event);
        return has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "ParticipantWithdrawn")) {
        if (!tl_ev_date_ok(ev, "withdrawal_date"))
            return TL_RN(invalid_event);
        return has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "ParticipantCompleted"))
        return tl_ev_date_ok(ev, "completion_date") ? NULL : "invalid_event";
    /* forms (forms.h): what the form itself can take is each fold's own
     * business; the stream only needs the form's id and, for a change, why */
    if (!strcmp(type, "FormSubmitted"))
        return uuid_ok(ev, "form_id") && uuid_ok(ev, "visit_type_id") &&
                       uuid_ok(ev, "template_id") && json_is_object(json_object_get(ev, "answers"))
                   ? NULL
                   : "invalid_event";
    if (!strcmp(type, "FormAmended")) {
        if (!uuid_ok(ev, "form_id") || !json_array_size(json_object_get(ev, "changes")))
            return TL_RN(invalid_event);
        return has_reason(ev) ? NULL : "reason_required";
    }
    if (!strcmp(type, "FormSigned"))
        return uuid_ok(ev, "form_id") && json_is_string(json_object_get(ev, "meaning"))
                   ? NULL
                   : "invalid_event";
    /* a connector's observation (ingest.h): its own fields were checked by
     * the ingest consumer; the stream needs them well formed */
    if (!strcmp(type, "ObservationRecorded"))
        return tl_ev_date_ok(ev, "observed_on") && json_is_string(json_object_get(ev, "kind")) &&
                       json_is_object(json_object_get(ev, "values"))
                   ? NULL
                   : "invalid_event";
    *known = false;
    return NULL;
}

const char *tl_stream_decide(const tl_stream_state_t *st, const char *type, const json_t *ev,
                             int64_t *next)
{
    /* DESIGN.md §2: an event applies only at exactly version + 1; a
     * connector event without a version takes the next one. */
    const json_t *v = json_object_get(ev, "stream_version");
    *next = st->version + 1;
    if (json_is_integer(v) && json_integer_value(v) != *next)
        return TL_RN(version_conflict);
    if (!strcmp(type, "ParticipantEnrolled"))
        return decide_enrolment(st, ev);
    if (!st->exists)
        return TL_RN(unknown_participant);
    if (!uuid_ok(ev, "event_id") || !tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    bool known = false;
    const char *why = decide_fields(type, ev, &known);
    if (why || !known)
        return why;
    tl_uuid_t study;
    if (tl_uuid_parse(json_string_value(json_object_get(ev, "study_id")), &study))
        return TL_RN(invalid_event);
    if (strcmp(study.s, st->study_id))
        return TL_RN(wrong_study);
    /* consent can be recorded again whatever the status, and what took
     * place (visit dates, forms) is corrected, entered, amended and signed
     * after the participant left or finished (rules.h
     * tl_rule_participant_open); nothing else changes such a participant */
    if (strcmp(type, "ConsentRecorded") && strcmp(type, "VisitCorrected") && !tl_form_event(type) &&
        strcmp(st->status, "enrolled"))
        return TL_RN(participant_not_active);
    return NULL;
}

const char *tl_stream_row_apply(tl_stream_row_t *r, const char *type, const json_t *ev)
{
    int64_t next;
    tl_stream_state_t st = {r->exists, r->version, r->status, r->study_id};
    const char *why = tl_stream_decide(&st, type, ev, &next);
    if (why)
        return why;
    if (!strcmp(type, "ParticipantEnrolled")) {
        tl_stream_row_t n = {.exists = true};
        tl_ev_copy_uuid(n.id, ev, "participant_id");
        tl_ev_copy_uuid(n.study_id, ev, "study_id");
        tl_ev_copy_uuid(n.site_id, ev, "site_id");
        snprintf(n.status, sizeof n.status, "enrolled");
        *r = n;
    } else if (!strcmp(type, "ParticipantWithdrawn")) {
        snprintf(r->status, sizeof r->status, "withdrawn");
    } else if (!strcmp(type, "ParticipantCompleted")) {
        snprintf(r->status, sizeof r->status, "completed");
    }
    r->version = next;
    r->updated_at_us = tl_ev_int(ev, "recorded_at");
    tl_ev_copy_uuid(r->last_event_id, ev, "event_id");
    return NULL;
}
