/* Unit tests for the pure fold of studies, sites and participants
 * (projections/participants.c): the version rule of DESIGN.md §2, the domain
 * rules of §5, id normalisation, and replay determinism. Events are built as
 * jansson objects shaped like the decoded Avro records of schemas/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "participants.h"
#include "tl_date.h"

#define STUDY "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define STUDY2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
#define SITE "0190a1b2-c3d4-7e5f-8a9b-111111111111"
#define PART "0190a1b2-c3d4-7e5f-8a9b-222222222222"
#define EV1 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa1"
#define EV2 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa2"
#define EV3 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa3"
#define EV4 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa4"

#define T_OCCURRED 1767225600000000LL /* 2026-01-01T00:00:00Z in microseconds */
#define T_RECORDED 1767225601234567LL

/* A refusal: the reason is non-NULL and exactly want. */
#define assert_reason(got, want)                                                                   \
    do {                                                                                           \
        const char *reason_ = (got);                                                               \
        assert_non_null(reason_);                                                                  \
        assert_string_equal(reason_, want);                                                        \
    } while (0)

static int32_t day(int y, unsigned m, unsigned d)
{
    return tl_date_from_civil(y, m, d);
}

/* Common metadata of every event (DESIGN.md §3). version < 0: null. */
static json_t *meta(const char *event_id, long long version)
{
    json_t *ev = json_pack("{s:s, s:I, s:I, s:s, s:s, s:n, s:n, s:s, s:n, s:s}", "event_id",
                           event_id, "occurred_at", (json_int_t)T_OCCURRED, "recorded_at",
                           (json_int_t)T_RECORDED, "actor_id", "admin", "actor_role", "admin",
                           "site_id", "reason", "correlation_id", "corr-1", "causation_id",
                           "source", "gateway");
    assert_non_null(ev);
    json_object_set_new(ev, "stream_version",
                        version < 0 ? json_null() : json_integer((json_int_t)version));
    return ev;
}

static json_t *enrolled_ev(const char *event_id, long long version)
{
    json_t *ev = meta(event_id, version);
    json_object_set_new(ev, "site_id", json_string(SITE));
    json_object_set_new(ev, "participant_id", json_string(PART));
    json_object_set_new(ev, "study_id", json_string(STUDY));
    json_object_set_new(ev, "participant_code", json_string("AMD-00042"));
    json_object_set_new(ev, "birth_year", json_integer(1958));
    json_object_set_new(ev, "sex", json_string("F"));
    json_object_set_new(ev, "consent_date", json_integer(day(2025, 12, 20)));
    json_object_set_new(ev, "baseline_date", json_integer(day(2026, 1, 1)));
    return ev;
}

static json_t *consent_ev(const char *event_id, long long version, int32_t consent_date)
{
    json_t *ev = meta(event_id, version);
    json_object_set_new(ev, "participant_id", json_string(PART));
    json_object_set_new(ev, "study_id", json_string(STUDY));
    json_object_set_new(ev, "consent_date", json_integer(consent_date));
    json_object_set_new(ev, "consent_version", json_string("v2"));
    return ev;
}

static json_t *study_ev(const char *event_id, const char *study_id, const char *description)
{
    json_t *ev = meta(event_id, -1);
    json_object_set_new(ev, "study_id", json_string(study_id));
    json_object_set_new(ev, "protocol_id", json_string("AMD-P2-2024"));
    json_object_set_new(ev, "name", json_string("AMD Progression"));
    json_object_set_new(ev, "description", description ? json_string(description) : json_null());
    return ev;
}

static json_t *site_ev(const char *event_id)
{
    json_t *ev = meta(event_id, -1);
    json_object_set_new(ev, "site_id", json_string(SITE));
    json_object_set_new(ev, "study_id", json_string(STUDY));
    json_object_set_new(ev, "code", json_string("STL"));
    json_object_set_new(ev, "name", json_string("St. Louis Eye Center"));
    return ev;
}

/* A participant enrolled at version 1 by the standard event. */
static void enrolled_participant(tl_participant_t *p)
{
    memset(p, 0, sizeof *p);
    json_t *ev = enrolled_ev(EV1, 1);
    assert_null(tl_participant_apply(p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_int_equal(p->version, 1);
}

/* Applies ev to p and asserts it is refused with want and p is unchanged. */
static void assert_refused(tl_participant_t *p, const char *type, json_t *ev, const char *want)
{
    tl_participant_t before;
    memcpy(&before, p, sizeof before);
    assert_reason(tl_participant_apply(p, type, ev), want);
    assert_memory_equal(p, &before, sizeof before);
    json_decref(ev);
}

/* ---- enrolment ---- */

static void test_enrol_creates_version_1(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, 1);
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);

    assert_true(p.exists);
    assert_int_equal(p.version, 1);
    assert_string_equal(p.status, "enrolled");
    assert_string_equal(p.id, PART);
    assert_string_equal(p.study_id, STUDY);
    assert_string_equal(p.site_id, SITE);
    assert_string_equal(p.code, "AMD-00042");
    assert_int_equal(p.birth_year, 1958);
    assert_string_equal(p.sex, "F");
    assert_true(p.has_consent);
    assert_int_equal(p.consent_date, day(2025, 12, 20));
    assert_int_equal(p.baseline_date, day(2026, 1, 1));
    assert_int_equal(p.enrolled_at_us, T_OCCURRED);
    assert_string_equal(p.last_event_id, EV1);
}

static void test_enrol_null_version_takes_1(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, -1);
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_true(p.exists);
    assert_int_equal(p.version, 1);

    /* an absent stream_version is the same as null */
    memset(&p, 0, sizeof p);
    ev = enrolled_ev(EV1, -1);
    json_object_del(ev, "stream_version");
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_int_equal(p.version, 1);
}

static void test_enrol_optional_fields_null(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "birth_year", json_null());
    json_object_set_new(ev, "sex", json_null());
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_int_equal(p.birth_year, 0);
    assert_string_equal(p.sex, "");
    assert_string_equal(p.status, "enrolled");
}

static void test_enrol_wrong_version_on_new(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    assert_refused(&p, "ParticipantEnrolled", enrolled_ev(EV1, 2), "version_conflict");
    assert_refused(&p, "ParticipantEnrolled", enrolled_ev(EV1, 0), "version_conflict");
    assert_false(p.exists);
    assert_int_equal(p.version, 0);
}

static void test_enrol_twice(void **state)
{
    (void)state;
    tl_participant_t p;
    enrolled_participant(&p);
    /* the same version again, the next version, and no version: all refused */
    assert_refused(&p, "ParticipantEnrolled", enrolled_ev(EV2, 1), "version_conflict");
    assert_refused(&p, "ParticipantEnrolled", enrolled_ev(EV2, 2), "version_conflict");
    assert_refused(&p, "ParticipantEnrolled", enrolled_ev(EV2, -1), "version_conflict");
    assert_int_equal(p.version, 1);
    assert_string_equal(p.last_event_id, EV1);
}

static void test_enrol_consent_required(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, 1);
    json_object_del(ev, "consent_date");
    assert_refused(&p, "ParticipantEnrolled", ev, "consent_required");

    ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "consent_date", json_null());
    assert_refused(&p, "ParticipantEnrolled", ev, "consent_required");
    assert_false(p.exists);
}

static void test_enrol_invalid_sex(void **state)
{
    (void)state;
    static const char *const bad[] = {"X", "FF", "", "f", "MF"};
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *ev = enrolled_ev(EV1, 1);
        json_object_set_new(ev, "sex", json_string(bad[i]));
        assert_refused(&p, "ParticipantEnrolled", ev, "invalid_event");
    }
    assert_false(p.exists);

    static const char *const good[] = {"M", "F", "O", "U"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(&p, 0, sizeof p);
        json_t *ev = enrolled_ev(EV1, 1);
        json_object_set_new(ev, "sex", json_string(good[i]));
        assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
        json_decref(ev);
        assert_string_equal(p.sex, good[i]);
    }
}

static void test_enrol_code_too_long(void **state)
{
    (void)state;
    tl_participant_t p;
    char code[sizeof p.code + 1];

    /* one byte more than the buffer holds (with its NUL): refused */
    memset(code, 'A', sizeof p.code);
    code[sizeof p.code] = '\0';
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "participant_code", json_string(code));
    assert_refused(&p, "ParticipantEnrolled", ev, "invalid_event");
    assert_false(p.exists);

    /* exactly as many bytes as fit: accepted whole */
    code[sizeof p.code - 1] = '\0';
    ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "participant_code", json_string(code));
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_int_equal(strlen(p.code), sizeof p.code - 1);
    assert_string_equal(p.code, code);
}

static void test_enrol_missing_or_bad_ids(void **state)
{
    (void)state;
    static const char *const keys[] = {"participant_id", "study_id", "site_id", "event_id",
                                       "participant_code"};
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *ev = enrolled_ev(EV1, 1);
        json_object_del(ev, keys[i]);
        assert_refused(&p, "ParticipantEnrolled", ev, "invalid_event");
    }
    for (size_t i = 0; i < 4; i++) {
        json_t *ev = enrolled_ev(EV1, 1);
        json_object_set_new(ev, keys[i], json_string("not-a-uuid"));
        assert_refused(&p, "ParticipantEnrolled", ev, "invalid_event");
    }
    json_t *ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "participant_id", json_integer(5));
    assert_refused(&p, "ParticipantEnrolled", ev, "invalid_event");
    assert_false(p.exists);
}

static void test_enrol_uppercase_uuids_lowercased(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    json_t *ev = enrolled_ev(EV1, 1);
    json_object_set_new(ev, "participant_id", json_string("0190A1B2-C3D4-7E5F-8A9B-222222222222"));
    json_object_set_new(ev, "study_id", json_string("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"));
    json_object_set_new(ev, "site_id", json_string("0190a1b2-C3D4-7e5f-8A9B-111111111111"));
    json_object_set_new(ev, "event_id", json_string("0190A1B2-C3D4-7E5F-8A9B-AAAAAAAAAAA1"));
    assert_null(tl_participant_apply(&p, "ParticipantEnrolled", ev));
    json_decref(ev);
    assert_string_equal(p.id, PART);
    assert_string_equal(p.study_id, STUDY);
    assert_string_equal(p.site_id, SITE);
    assert_string_equal(p.last_event_id, EV1);
}

/* ---- later participant events ---- */

static void test_consent_recorded_v2(void **state)
{
    (void)state;
    tl_participant_t p;
    enrolled_participant(&p);
    tl_participant_t before = p;
    json_t *ev = consent_ev(EV2, 2, day(2026, 3, 1));
    assert_null(tl_participant_apply(&p, "ConsentRecorded", ev));
    json_decref(ev);

    assert_int_equal(p.version, 2);
    assert_true(p.has_consent);
    assert_int_equal(p.consent_date, day(2026, 3, 1));
    assert_string_equal(p.last_event_id, EV2);
    /* the rest of the participant is untouched */
    assert_string_equal(p.id, before.id);
    assert_string_equal(p.code, before.code);
    assert_string_equal(p.status, "enrolled");
    assert_string_equal(p.site_id, before.site_id);
    assert_int_equal(p.baseline_date, before.baseline_date);
    assert_int_equal(p.birth_year, before.birth_year);
    assert_string_equal(p.sex, before.sex);
    assert_int_equal(p.enrolled_at_us, before.enrolled_at_us);
}

static void test_consent_recorded_null_version_takes_next(void **state)
{
    (void)state;
    tl_participant_t p;
    enrolled_participant(&p);
    json_t *ev = consent_ev(EV2, -1, day(2026, 2, 1));
    assert_null(tl_participant_apply(&p, "ConsentRecorded", ev));
    json_decref(ev);
    assert_int_equal(p.version, 2);
    assert_int_equal(p.consent_date, day(2026, 2, 1));

    ev = consent_ev(EV3, -1, day(2026, 2, 2));
    json_object_del(ev, "stream_version");
    assert_null(tl_participant_apply(&p, "ConsentRecorded", ev));
    json_decref(ev);
    assert_int_equal(p.version, 3);
    assert_int_equal(p.consent_date, day(2026, 2, 2));
    assert_string_equal(p.last_event_id, EV3);

    /* and a versioned event continues from there */
    ev = consent_ev(EV4, 4, day(2026, 2, 3));
    assert_null(tl_participant_apply(&p, "ConsentRecorded", ev));
    json_decref(ev);
    assert_int_equal(p.version, 4);
}

static void test_consent_recorded_wrong_version(void **state)
{
    (void)state;
    static const long long wrong[] = {1, 3, 0, 100};
    tl_participant_t p;
    enrolled_participant(&p);
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        assert_refused(&p, "ConsentRecorded", consent_ev(EV2, wrong[i], day(2026, 3, 1)),
                       "version_conflict");
    json_t *ev = consent_ev(EV2, 0, day(2026, 3, 1));
    json_object_set_new(ev, "stream_version", json_integer(-1));
    assert_refused(&p, "ConsentRecorded", ev, "version_conflict");
    assert_int_equal(p.version, 1);
    assert_int_equal(p.consent_date, day(2025, 12, 20));
}

static void test_consent_recorded_without_date(void **state)
{
    (void)state;
    tl_participant_t p;
    enrolled_participant(&p);
    json_t *ev = consent_ev(EV2, 2, 0);
    json_object_del(ev, "consent_date");
    assert_refused(&p, "ConsentRecorded", ev, "invalid_event");
    ev = consent_ev(EV2, 2, 0);
    json_object_set_new(ev, "event_id", json_string("nope"));
    assert_refused(&p, "ConsentRecorded", ev, "invalid_event");
    assert_int_equal(p.version, 1);
}

static void test_unknown_type_advances_version_only(void **state)
{
    (void)state;
    tl_participant_t p;
    enrolled_participant(&p);
    tl_participant_t before = p;
    json_t *ev = meta(EV2, 2);
    json_object_set_new(ev, "participant_id", json_string(PART));
    json_object_set_new(ev, "study_id", json_string(STUDY));
    json_object_set_new(ev, "consent_date", json_integer(day(2030, 1, 1)));
    json_object_set_new(ev, "participant_code", json_string("OTHER-1"));
    json_object_set_new(ev, "sex", json_string("M"));
    assert_null(tl_participant_apply(&p, "ObservationNoted", ev));
    json_decref(ev);

    assert_int_equal(p.version, 2);
    assert_string_equal(p.last_event_id, EV2);
    /* what the projection shows did not change */
    assert_true(p.exists);
    assert_string_equal(p.id, before.id);
    assert_string_equal(p.study_id, before.study_id);
    assert_string_equal(p.site_id, before.site_id);
    assert_string_equal(p.code, "AMD-00042");
    assert_string_equal(p.status, "enrolled");
    assert_string_equal(p.sex, "F");
    assert_int_equal(p.birth_year, before.birth_year);
    assert_int_equal(p.has_consent, before.has_consent);
    assert_int_equal(p.consent_date, before.consent_date);
    assert_int_equal(p.baseline_date, before.baseline_date);
    assert_int_equal(p.enrolled_at_us, before.enrolled_at_us);

    /* and it obeys the version rule like every other event */
    ev = meta(EV3, 2);
    json_object_set_new(ev, "participant_id", json_string(PART));
    assert_refused(&p, "ObservationNoted", ev, "version_conflict");
    ev = meta(EV3, -1);
    json_object_set_new(ev, "participant_id", json_string(PART));
    assert_null(tl_participant_apply(&p, "ObservationNoted", ev));
    json_decref(ev);
    assert_int_equal(p.version, 3);
}

static void test_event_on_unknown_participant(void **state)
{
    (void)state;
    tl_participant_t p;
    memset(&p, 0, sizeof p);
    assert_refused(&p, "ConsentRecorded", consent_ev(EV2, -1, day(2026, 3, 1)),
                   "unknown_participant");
    assert_refused(&p, "ConsentRecorded", consent_ev(EV2, 1, day(2026, 3, 1)),
                   "unknown_participant");
    json_t *ev = meta(EV2, -1);
    json_object_set_new(ev, "participant_id", json_string(PART));
    assert_refused(&p, "ObservationNoted", ev, "unknown_participant");
    assert_false(p.exists);
    assert_int_equal(p.version, 0);
}

/* ---- studies and sites ---- */

static void test_study_registered_once(void **state)
{
    (void)state;
    tl_study_t s;
    memset(&s, 0, sizeof s);
    json_t *ev = study_ev(EV1, STUDY, "Natural history of AMD");
    assert_null(tl_study_apply(&s, "StudyRegistered", ev));
    json_decref(ev);
    assert_true(s.exists);
    assert_string_equal(s.id, STUDY);
    assert_string_equal(s.protocol_id, "AMD-P2-2024");
    assert_string_equal(s.name, "AMD Progression");
    assert_true(s.has_description);
    assert_string_equal(s.description, "Natural history of AMD");
    assert_int_equal(s.registered_at_us, T_OCCURRED);
    assert_string_equal(s.last_event_id, EV1);

    tl_study_t before;
    memcpy(&before, &s, sizeof before);
    ev = study_ev(EV2, STUDY, "another");
    assert_reason(tl_study_apply(&s, "StudyRegistered", ev), "duplicate_study");
    json_decref(ev);
    assert_memory_equal(&s, &before, sizeof before);
}

static void test_study_without_description(void **state)
{
    (void)state;
    tl_study_t s;
    memset(&s, 0, sizeof s);
    json_t *ev = study_ev(EV1, STUDY, NULL);
    assert_null(tl_study_apply(&s, "StudyRegistered", ev));
    json_decref(ev);
    assert_true(s.exists);
    assert_false(s.has_description);
    assert_string_equal(s.description, "");

    memset(&s, 0, sizeof s);
    ev = study_ev(EV1, STUDY, NULL);
    json_object_del(ev, "description");
    assert_null(tl_study_apply(&s, "StudyRegistered", ev));
    json_decref(ev);
    assert_false(s.has_description);

    /* an empty description is still a description */
    memset(&s, 0, sizeof s);
    ev = study_ev(EV1, STUDY, "");
    assert_null(tl_study_apply(&s, "StudyRegistered", ev));
    json_decref(ev);
    assert_true(s.has_description);
    assert_string_equal(s.description, "");
}

static void test_study_invalid(void **state)
{
    (void)state;
    tl_study_t s, zero;
    memset(&s, 0, sizeof s);
    memset(&zero, 0, sizeof zero);
    json_t *ev = study_ev(EV1, "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", NULL);
    assert_reason(tl_study_apply(&s, "StudyRegistered", ev), "invalid_event");
    json_decref(ev);
    ev = study_ev(EV1, STUDY, NULL);
    json_object_del(ev, "name");
    assert_reason(tl_study_apply(&s, "StudyRegistered", ev), "invalid_event");
    json_decref(ev);
    assert_memory_equal(&s, &zero, sizeof s);

    /* uppercase ids are stored lowercase */
    ev = study_ev("0190A1B2-C3D4-7E5F-8A9B-AAAAAAAAAAA1", "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B",
                  NULL);
    assert_null(tl_study_apply(&s, "StudyRegistered", ev));
    json_decref(ev);
    assert_string_equal(s.id, STUDY);
    assert_string_equal(s.last_event_id, EV1);
}

static void test_site_added_once(void **state)
{
    (void)state;
    tl_site_t s;
    memset(&s, 0, sizeof s);
    json_t *ev = site_ev(EV1);
    assert_null(tl_site_apply(&s, "SiteAdded", ev));
    json_decref(ev);
    assert_true(s.exists);
    assert_string_equal(s.id, SITE);
    assert_string_equal(s.study_id, STUDY);
    assert_string_equal(s.code, "STL");
    assert_string_equal(s.name, "St. Louis Eye Center");
    assert_int_equal(s.added_at_us, T_OCCURRED);
    assert_string_equal(s.last_event_id, EV1);

    tl_site_t before;
    memcpy(&before, &s, sizeof before);
    ev = site_ev(EV2);
    json_object_set_new(ev, "code", json_string("NYC"));
    assert_reason(tl_site_apply(&s, "SiteAdded", ev), "duplicate_site");
    json_decref(ev);
    assert_memory_equal(&s, &before, sizeof before);
}

static void test_site_invalid(void **state)
{
    (void)state;
    tl_site_t s, zero;
    memset(&s, 0, sizeof s);
    memset(&zero, 0, sizeof zero);
    json_t *ev = site_ev(EV1);
    json_object_set_new(ev, "site_id", json_null());
    assert_reason(tl_site_apply(&s, "SiteAdded", ev), "invalid_event");
    json_decref(ev);
    char code[sizeof s.code + 1];
    memset(code, 'C', sizeof s.code);
    code[sizeof s.code] = '\0';
    ev = site_ev(EV1);
    json_object_set_new(ev, "code", json_string(code));
    assert_reason(tl_site_apply(&s, "SiteAdded", ev), "invalid_event");
    json_decref(ev);
    assert_memory_equal(&s, &zero, sizeof s);
}

static void test_other_types_leave_study_and_site(void **state)
{
    (void)state;
    static const char *const others[] = {"SiteAdded", "ParticipantEnrolled", "VisitTypeDefined",
                                         "ConsentRecorded"};
    tl_study_t st, st_before;
    tl_site_t si, si_before;
    memset(&st, 0, sizeof st);
    memset(&si, 0, sizeof si);

    json_t *sev = study_ev(EV1, STUDY, "d");
    json_t *aev = site_ev(EV2);

    /* on empty states */
    memcpy(&st_before, &st, sizeof st);
    memcpy(&si_before, &si, sizeof si);
    assert_null(tl_study_apply(&st, "SiteAdded", aev));
    assert_null(tl_site_apply(&si, "StudyRegistered", sev));
    assert_memory_equal(&st, &st_before, sizeof st);
    assert_memory_equal(&si, &si_before, sizeof si);

    /* and on existing ones */
    assert_null(tl_study_apply(&st, "StudyRegistered", sev));
    assert_null(tl_site_apply(&si, "SiteAdded", aev));
    memcpy(&st_before, &st, sizeof st);
    memcpy(&si_before, &si, sizeof si);
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (strcmp(others[i], "StudyRegistered"))
            assert_null(tl_study_apply(&st, others[i], aev));
        if (strcmp(others[i], "SiteAdded"))
            assert_null(tl_site_apply(&si, others[i], sev));
    }
    assert_null(tl_site_apply(&si, "StudyRegistered", sev));
    assert_memory_equal(&st, &st_before, sizeof st);
    assert_memory_equal(&si, &si_before, sizeof si);
    json_decref(sev);
    json_decref(aev);
}

static void test_aggregate(void **state)
{
    (void)state;
    json_t *sev = study_ev(EV1, STUDY2, NULL);
    json_t *aev = site_ev(EV2);
    json_t *pev = enrolled_ev(EV3, 1);
    json_t *cev = consent_ev(EV4, 2, 1);

    assert_string_equal(tl_participants_aggregate("StudyRegistered", sev), STUDY2);
    assert_string_equal(tl_participants_aggregate("SiteAdded", aev), SITE);
    assert_string_equal(tl_participants_aggregate("ParticipantEnrolled", pev), PART);
    assert_string_equal(tl_participants_aggregate("ConsentRecorded", cev), PART);
    assert_null(tl_participants_aggregate(NULL, pev));
    /* borrowed from the event */
    assert_ptr_equal(tl_participants_aggregate("ParticipantEnrolled", pev),
                     json_string_value(json_object_get(pev, "participant_id")));
    json_object_del(cev, "participant_id");
    assert_null(tl_participants_aggregate("ConsentRecorded", cev));

    json_decref(sev);
    json_decref(aev);
    json_decref(pev);
    json_decref(cev);
}

/* ---- replay ---- */

typedef struct {
    tl_study_t study;
    tl_site_t site;
    tl_participant_t part;
    const char *reasons[16];
} world_t;

static void replay(world_t *w, json_t *const *events, const char *const *types, size_t n)
{
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (!strcmp(types[i], "StudyRegistered"))
            why = tl_study_apply(&w->study, types[i], events[i]);
        else if (!strcmp(types[i], "SiteAdded"))
            why = tl_site_apply(&w->site, types[i], events[i]);
        else
            why = tl_participant_apply(&w->part, types[i], events[i]);
        w->reasons[i] = why;
    }
}

static void test_replay_is_deterministic(void **state)
{
    (void)state;
    static const char *const types[] = {
        "StudyRegistered", "SiteAdded",       "ParticipantEnrolled", "ConsentRecorded",
        "ConsentRecorded", "StudyRegistered", "ObservationNoted",      "ParticipantEnrolled",
        "ConsentRecorded",
    };
    enum { N = sizeof types / sizeof types[0] };
    json_t *events[N];
    events[0] = study_ev(EV1, STUDY, "desc");
    events[1] = site_ev(EV2);
    events[2] = enrolled_ev(EV3, 1);
    events[3] = consent_ev(EV4, 2, day(2026, 2, 1));
    events[4] = consent_ev(EV1, 2, day(2026, 2, 2)); /* stale: conflict */
    events[5] = study_ev(EV2, STUDY, NULL);          /* duplicate */
    events[6] = meta(EV3, -1);                       /* takes version 3 */
    json_object_set_new(events[6], "participant_id", json_string(PART));
    events[7] = enrolled_ev(EV4, -1); /* enrolled again: conflict */
    events[8] = consent_ev(EV1, 4, day(2026, 2, 5));

    world_t *a = test_malloc(sizeof *a), *b = test_malloc(sizeof *b);
    replay(a, events, types, N);
    replay(b, events, types, N);

    assert_memory_equal(&a->study, &b->study, sizeof a->study);
    assert_memory_equal(&a->site, &b->site, sizeof a->site);
    assert_memory_equal(&a->part, &b->part, sizeof a->part);

    /* the decisions themselves are the expected ones */
    const char *const want[N] = {NULL, NULL, NULL, NULL, "version_conflict", "duplicate_study",
                                 NULL, "version_conflict", NULL};
    for (size_t i = 0; i < N; i++) {
        if (want[i])
            assert_reason(a->reasons[i], want[i]);
        else
            assert_null(a->reasons[i]);
        if (b->reasons[i])
            assert_reason(a->reasons[i], b->reasons[i]);
        else
            assert_null(a->reasons[i]);
    }
    assert_int_equal(a->part.version, 4);
    assert_int_equal(a->part.consent_date, day(2026, 2, 5));
    assert_string_equal(a->part.last_event_id, EV1);
    assert_true(a->study.has_description);
    assert_string_equal(a->study.last_event_id, EV1);

    test_free(a);
    test_free(b);
    for (size_t i = 0; i < N; i++)
        json_decref(events[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrol_creates_version_1),
        cmocka_unit_test(test_enrol_null_version_takes_1),
        cmocka_unit_test(test_enrol_optional_fields_null),
        cmocka_unit_test(test_enrol_wrong_version_on_new),
        cmocka_unit_test(test_enrol_twice),
        cmocka_unit_test(test_enrol_consent_required),
        cmocka_unit_test(test_enrol_invalid_sex),
        cmocka_unit_test(test_enrol_code_too_long),
        cmocka_unit_test(test_enrol_missing_or_bad_ids),
        cmocka_unit_test(test_enrol_uppercase_uuids_lowercased),
        cmocka_unit_test(test_consent_recorded_v2),
        cmocka_unit_test(test_consent_recorded_null_version_takes_next),
        cmocka_unit_test(test_consent_recorded_wrong_version),
        cmocka_unit_test(test_consent_recorded_without_date),
        cmocka_unit_test(test_unknown_type_advances_version_only),
        cmocka_unit_test(test_event_on_unknown_participant),
        cmocka_unit_test(test_study_registered_once),
        cmocka_unit_test(test_study_without_description),
        cmocka_unit_test(test_study_invalid),
        cmocka_unit_test(test_site_added_once),
        cmocka_unit_test(test_site_invalid),
        cmocka_unit_test(test_other_types_leave_study_and_site),
        cmocka_unit_test(test_aggregate),
        cmocka_unit_test(test_replay_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
