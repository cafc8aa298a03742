#include "participants.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "reasons.h"
#include "tl_date.h"
#include "tl_json.h"

const char *tl_participants_aggregate(const char *type, const json_t *ev)
{
    if (!type)
        return NULL;
    if (!strcmp(type, "StudyRegistered") || !strcmp(type, "StudyLocked") ||
        !strcmp(type, "StudyUnlocked"))
        return json_string_value(json_object_get(ev, "study_id"));
    if (!strcmp(type, "VisitTypeDefined") || !strcmp(type, "VisitTypeAmended"))
        return json_string_value(json_object_get(ev, "visit_type_id"));
    if (!strcmp(type, "SiteAdded"))
        return json_string_value(json_object_get(ev, "site_id"));
    return json_string_value(json_object_get(ev, "participant_id"));
}

/* A visit type's definition as a protocol event carries it. */
static const char *read_visit_type(tl_visit_type_row_t *n, const json_t *ev)
{
    const json_t *forms = json_object_get(ev, "form_templates");
    const json_t *req = json_object_get(ev, "required");
    if (!tl_ev_copy_uuid(n->vt.id, ev, "visit_type_id") ||
        !tl_ev_copy_uuid(n->study_id, ev, "study_id") ||
        !tl_ev_copy_uuid(n->last_event_id, ev, "event_id") ||
        !tl_ev_copy_str(n->vt.name, sizeof n->vt.name, ev, "name") || !n->vt.name[0] ||
        !json_is_boolean(req) || !json_is_array(forms) ||
        json_array_size(forms) > TL_FORMS_PER_VISIT_MAX || !tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    const char *keys[] = {"target_day", "window_before_days", "window_after_days"};
    int32_t *dst[] = {&n->vt.target_day, &n->vt.window_before, &n->vt.window_after};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(ev, keys[i]);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return TL_RN(invalid_event);
        *dst[i] = (int32_t)json_integer_value(v);
    }
    n->vt.required = json_is_true(req);
    if (tl_visit_type_check(&n->vt))
        return TL_RN(invalid_visit_type);
    n->nforms = json_array_size(forms);
    for (size_t i = 0; i < n->nforms; i++) {
        const char *f = json_string_value(json_array_get(forms, i));
        if (!tl_json_name_ok(f))
            return TL_RN(invalid_event);
        snprintf(n->forms[i], sizeof n->forms[i], "%s", f);
    }
    n->updated_at_us = tl_ev_int(ev, "occurred_at");
    return NULL;
}

const char *tl_visit_type_apply(tl_visit_type_row_t *r, const char *type, const json_t *ev)
{
    bool amend = !strcmp(type, "VisitTypeAmended");
    if (!amend && strcmp(type, "VisitTypeDefined"))
        return NULL;
    if (amend && !r->exists)
        return TL_RN(unknown_visit_type);
    if (!amend && r->exists)
        return TL_RN(duplicate_visit_type);
    const char *reason = json_string_value(json_object_get(ev, "reason"));
    if (amend && (!reason || !*reason))
        return TL_RN(reason_required);
    tl_visit_type_row_t n = {.exists = true};
    const char *why = read_visit_type(&n, ev);
    if (why)
        return why;
    if (amend && (strcmp(n.study_id, r->study_id) || strcmp(n.vt.id, r->vt.id)))
        return TL_RN(wrong_study);
    n.revision = amend ? r->revision + 1 : 1;
    n.defined_at_us = amend ? r->defined_at_us : n.updated_at_us;
    *r = n;
    return NULL;
}

static const char *lock_change(tl_study_t *s, bool lock, const json_t *ev)
{
    if (!s->exists)
        return TL_RN(unknown_study);
    if (!tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    tl_study_t n = *s;
    if (!tl_ev_copy_uuid(n.last_event_id, ev, "event_id") ||
        !tl_ev_copy_str(n.lock_reason, sizeof n.lock_reason, ev, "reason") || !n.lock_reason[0])
        return TL_RN(reason_required);
    if (s->locked == lock)
        return lock ? TL_RN(already_locked) : TL_RN(not_locked);
    n.locked = lock;
    n.lock_changed_at_us = tl_ev_int(ev, "occurred_at");
    *s = n;
    return NULL;
}

const char *tl_study_apply(tl_study_t *s, const char *type, const json_t *ev)
{
    if (!strcmp(type, "StudyLocked") || !strcmp(type, "StudyUnlocked"))
        return lock_change(s, !strcmp(type, "StudyLocked"), ev);
    if (strcmp(type, "StudyRegistered"))
        return NULL; /* other protocol events do not change this row */
    if (s->exists)
        return TL_RN(duplicate_study);
    if (!tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    tl_study_t n = {.exists = true};
    if (!tl_ev_copy_uuid(n.id, ev, "study_id") ||
        !tl_ev_copy_uuid(n.last_event_id, ev, "event_id") ||
        !tl_ev_copy_str(n.protocol_id, sizeof n.protocol_id, ev, "protocol_id") ||
        !tl_ev_copy_str(n.name, sizeof n.name, ev, "name"))
        return TL_RN(invalid_event);
    const json_t *d = json_object_get(ev, "description");
    if (json_is_string(d)) {
        if (!tl_ev_copy_str(n.description, sizeof n.description, ev, "description"))
            return TL_RN(invalid_event);
        n.has_description = true;
    }
    n.registered_at_us = tl_ev_int(ev, "occurred_at");
    *s = n;
    return NULL;
}

const char *tl_site_apply(tl_site_t *s, const char *type, const json_t *ev)
{
    if (strcmp(type, "SiteAdded"))
        return NULL;
    if (s->exists)
        return TL_RN(duplicate_site);
    if (!tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    tl_site_t n = {.exists = true};
    if (!tl_ev_copy_uuid(n.id, ev, "site_id") || !tl_ev_copy_uuid(n.study_id, ev, "study_id") ||
        !tl_ev_copy_uuid(n.last_event_id, ev, "event_id") ||
        !tl_ev_copy_str(n.code, sizeof n.code, ev, "code") ||
        !tl_ev_copy_str(n.name, sizeof n.name, ev, "name"))
        return TL_RN(invalid_event);
    n.added_at_us = tl_ev_int(ev, "occurred_at");
    *s = n;
    return NULL;
}

static void enrol(tl_participant_t *p, const json_t *ev, int64_t version)
{
    tl_participant_t n = {.exists = true, .version = version};
    tl_ev_copy_uuid(n.id, ev, "participant_id");
    tl_ev_copy_uuid(n.study_id, ev, "study_id");
    tl_ev_copy_uuid(n.site_id, ev, "site_id");
    tl_ev_copy_uuid(n.last_event_id, ev, "event_id");
    tl_ev_copy_str(n.code, sizeof n.code, ev, "participant_code");
    n.has_consent = true;
    n.consent_date = (int32_t)tl_ev_int(ev, "consent_date");
    n.baseline_date = (int32_t)tl_ev_int(ev, "baseline_date");
    n.birth_year = (int32_t)tl_ev_int(ev, "birth_year");
    const char *sex = json_string_value(json_object_get(ev, "sex"));
    snprintf(n.sex, sizeof n.sex, "%s", sex ? sex : "");
    snprintf(n.status, sizeof n.status, "enrolled");
    n.enrolled_at_us = tl_ev_int(ev, "occurred_at");
    n.updated_at_us = tl_ev_int(ev, "recorded_at");
    *p = n;
}

const char *tl_participant_apply(tl_participant_t *p, const char *type, const json_t *ev)
{
    int64_t next;
    tl_stream_state_t st = {p->exists, p->version, p->status, p->study_id};
    const char *why = tl_stream_decide(&st, type, ev, &next);
    if (why)
        return why;
    if (!strcmp(type, "ParticipantEnrolled")) {
        enrol(p, ev, next);
        return NULL;
    }
    p->version = next;
    p->updated_at_us = tl_ev_int(ev, "recorded_at");
    tl_ev_copy_uuid(p->last_event_id, ev, "event_id");
    if (!strcmp(type, "ConsentRecorded")) {
        p->has_consent = true;
        p->consent_date = (int32_t)tl_ev_int(ev, "consent_date");
    } else if (!strcmp(type, "BaselineChanged")) {
        p->baseline_date = (int32_t)tl_ev_int(ev, "baseline_date");
    } else if (!strcmp(type, "ParticipantWithdrawn")) {
        snprintf(p->status, sizeof p->status, "withdrawn");
        p->end_date = (int32_t)tl_ev_int(ev, "withdrawal_date");
    } else if (!strcmp(type, "ParticipantCompleted")) {
        snprintf(p->status, sizeof p->status, "completed");
        p->end_date = (int32_t)tl_ev_int(ev, "completion_date");
    }
    /* Event types this projection does not show still take their version,
     * so every projection of the stream makes the same decisions. */
    return NULL;
}
