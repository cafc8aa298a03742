#include "participants.h"

#include <stdio.h>
#include <string.h>

#include "tl_date.h"

static bool copy_str(char *dst, size_t size, const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    if (!s || strlen(s) >= size)
        return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

static bool copy_uuid(char dst[TL_UUID_STRLEN], const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    tl_uuid_t u;
    if (tl_uuid_parse(s, &u))
        return false;
    memcpy(dst, u.s, TL_UUID_STRLEN);
    return true;
}

static int64_t get_int(const json_t *ev, const char *key)
{
    return json_integer_value(json_object_get(ev, key));
}

/* Times and dates an event carries must be real ones (tl_date.h), or the
 * event is refused: a projection never stores what it cannot format. */
static bool times_ok(const json_t *ev)
{
    return tl_ts_valid(get_int(ev, "occurred_at")) && tl_ts_valid(get_int(ev, "recorded_at"));
}

static bool date_ok(const json_t *ev, const char *key)
{
    return json_is_integer(json_object_get(ev, key)) && tl_date_valid(get_int(ev, key));
}

const char *tl_participants_aggregate(const char *type, const json_t *ev)
{
    if (!type)
        return NULL;
    if (!strcmp(type, "StudyRegistered"))
        return json_string_value(json_object_get(ev, "study_id"));
    if (!strcmp(type, "SiteAdded"))
        return json_string_value(json_object_get(ev, "site_id"));
    return json_string_value(json_object_get(ev, "participant_id"));
}

const char *tl_study_apply(tl_study_t *s, const char *type, const json_t *ev)
{
    if (strcmp(type, "StudyRegistered"))
        return NULL; /* other protocol events do not change this row */
    if (s->exists)
        return "duplicate_study";
    if (!times_ok(ev))
        return "invalid_event";
    tl_study_t n = {.exists = true};
    if (!copy_uuid(n.id, ev, "study_id") || !copy_uuid(n.last_event_id, ev, "event_id") ||
        !copy_str(n.protocol_id, sizeof n.protocol_id, ev, "protocol_id") ||
        !copy_str(n.name, sizeof n.name, ev, "name"))
        return "invalid_event";
    const json_t *d = json_object_get(ev, "description");
    if (json_is_string(d)) {
        if (!copy_str(n.description, sizeof n.description, ev, "description"))
            return "invalid_event";
        n.has_description = true;
    }
    n.registered_at_us = get_int(ev, "occurred_at");
    *s = n;
    return NULL;
}

const char *tl_site_apply(tl_site_t *s, const char *type, const json_t *ev)
{
    if (strcmp(type, "SiteAdded"))
        return NULL;
    if (s->exists)
        return "duplicate_site";
    if (!times_ok(ev))
        return "invalid_event";
    tl_site_t n = {.exists = true};
    if (!copy_uuid(n.id, ev, "site_id") || !copy_uuid(n.study_id, ev, "study_id") ||
        !copy_uuid(n.last_event_id, ev, "event_id") ||
        !copy_str(n.code, sizeof n.code, ev, "code") || !copy_str(n.name, sizeof n.name, ev, "name"))
        return "invalid_event";
    n.added_at_us = get_int(ev, "occurred_at");
    *s = n;
    return NULL;
}

/* DESIGN.md §2: an event applies only at exactly version + 1; a connector
 * event without a version takes the next one. */
static const char *check_version(const tl_participant_t *p, const json_t *ev, int64_t *next)
{
    const json_t *v = json_object_get(ev, "stream_version");
    *next = p->version + 1;
    if (json_is_integer(v) && json_integer_value(v) != *next)
        return "version_conflict";
    return NULL;
}

static const char *enrol(tl_participant_t *p, const json_t *ev, int64_t version)
{
    if (p->exists)
        return "version_conflict";
    tl_participant_t n = {.exists = true, .version = version};
    if (!copy_uuid(n.id, ev, "participant_id") || !copy_uuid(n.study_id, ev, "study_id") ||
        !copy_uuid(n.site_id, ev, "site_id") || !copy_uuid(n.last_event_id, ev, "event_id") ||
        !copy_str(n.code, sizeof n.code, ev, "participant_code"))
        return "invalid_event";
    if (!json_is_integer(json_object_get(ev, "consent_date")))
        return "consent_missing";
    if (!times_ok(ev) || !date_ok(ev, "consent_date") || !date_ok(ev, "baseline_date"))
        return "invalid_event";
    n.has_consent = true;
    n.consent_date = (int32_t)get_int(ev, "consent_date");
    n.baseline_date = (int32_t)get_int(ev, "baseline_date");
    n.birth_year = (int32_t)get_int(ev, "birth_year");
    const char *sex = json_string_value(json_object_get(ev, "sex"));
    if (sex && (strlen(sex) != 1 || !strchr("MFOU", sex[0])))
        return "invalid_event";
    snprintf(n.sex, sizeof n.sex, "%s", sex ? sex : "");
    snprintf(n.status, sizeof n.status, "enrolled");
    n.enrolled_at_us = get_int(ev, "occurred_at");
    n.updated_at_us = get_int(ev, "recorded_at");
    *p = n;
    return NULL;
}

const char *tl_participant_apply(tl_participant_t *p, const char *type, const json_t *ev)
{
    int64_t next;
    const char *why = check_version(p, ev, &next);
    if (why)
        return why;
    if (!strcmp(type, "ParticipantEnrolled"))
        return enrol(p, ev, next);
    if (!p->exists)
        return "unknown_participant";
    tl_participant_t n = *p;
    if (!copy_uuid(n.last_event_id, ev, "event_id") || !times_ok(ev))
        return "invalid_event";
    n.version = next;
    n.updated_at_us = get_int(ev, "recorded_at");
    if (!strcmp(type, "ConsentRecorded")) {
        tl_uuid_t study;
        if (!date_ok(ev, "consent_date") ||
            tl_uuid_parse(json_string_value(json_object_get(ev, "study_id")), &study))
            return "invalid_event";
        if (strcmp(study.s, p->study_id))
            return "wrong_study";
        n.has_consent = true;
        n.consent_date = (int32_t)get_int(ev, "consent_date");
    }
    /* Event types this projection does not show still take their version,
     * so every projection of the stream makes the same decisions. */
    *p = n;
    return NULL;
}
