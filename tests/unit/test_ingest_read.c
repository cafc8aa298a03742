/* What a connector's record must say (projections/ingest.c), and the
 * ingest consumer's topics (consumers/ingest_consumer.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ingest.h"
#include "ingest_consumer.h"
#include "tl_date.h"

static const char *const schema =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"cst_um\",\"type\":\"int\",\"trialog.min\":100,\"trialog.max\":900}]}";

static json_t *record(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:b, s:n, s:s}", "event_id",
                     "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A01", "protocol_id", "AMD-P2",
                     "participant_code", "AMD-00042", "observed_on", "2026-01-05", "device",
                     "Spectralis", "laterality", "OS", "cst_um", 250, "signal", 31.5, "gradable", 1,
                     "comment", "scan_pattern", "cube");
}

static const char *read_it(json_t *r, char *field)
{
    tl_observation_t o;
    const char *why = tl_ingest_read(r, schema, tl_date_from_civil(2026, 1, 10), &o, field, 64);
    if (!why)
        tl_observation_cleanup(&o);
    return why;
}

static void test_valid(void **state)
{
    (void)state;
    json_t *r = record();
    tl_observation_t o;
    char field[64];
    assert_null(tl_ingest_read(r, schema, tl_date_from_civil(2026, 1, 10), &o, field, 64));
    assert_string_equal(o.event_id, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01"); /* canonical */
    assert_string_equal(o.protocol_id, "AMD-P2");
    assert_string_equal(o.participant_code, "AMD-00042");
    assert_int_equal(o.observed_on, tl_date_from_civil(2026, 1, 5));
    assert_string_equal(o.laterality, "OS");
    assert_int_equal(json_object_size(o.values), 5); /* the rest */
    assert_int_equal(json_integer_value(json_object_get(o.values, "cst_um")), 250);
    assert_null(json_object_get(o.values, "device"));
    tl_observation_cleanup(&o);
    /* a date as Avro's int, and no optional members */
    json_object_set_new(r, "observed_on", json_integer(tl_date_from_civil(2026, 1, 10)));
    json_object_del(r, "device");
    json_object_del(r, "laterality");
    assert_null(read_it(r, field));
    json_decref(r);
}

static void test_refused(void **state)
{
    (void)state;
    char field[64];
    struct {
        const char *member;
        json_t *value; /* NULL: removed */
        const char *why;
    } cases[] = {
        {"event_id", NULL, "invalid_record"},
        {"event_id", json_string("scan-1"), "invalid_record"},
        {"protocol_id", json_integer(7), "invalid_record"},
        {"participant_code", json_string(""), "invalid_record"},
        {"observed_on", json_string("2026-02-30"), "invalid_record"},
        {"observed_on", json_string("2026-01-11"), "out_of_range"}, /* tomorrow */
        {"observed_on", json_string("1899-12-31"), "out_of_range"},
        {"laterality", json_string("left"), "invalid_record"},
        {"cst_um", json_integer(99), "out_of_range"},
        {"cst_um", json_integer(901), "out_of_range"},
        {"cst_um", json_pack("[i]", 1), "invalid_record"},
        {"comment", json_string("a\001b"), "invalid_record"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *r = record();
        if (cases[i].value)
            json_object_set_new(r, cases[i].member, cases[i].value);
        else
            json_object_del(r, cases[i].member);
        const char *why = read_it(r, field);
        if (!why || strcmp(why, cases[i].why) || strcmp(field, cases[i].member))
            fail_msg("case %zu (%s): %s at %s", i, cases[i].member, why ? why : "accepted", field);
        json_decref(r);
    }
    json_t *r = record();
    char name[16];
    for (int i = 0; i < TL_INGEST_VALUES_MAX; i++) {
        snprintf(name, sizeof name, "v%d", i);
        json_object_set_new(r, name, json_integer(i));
    }
    assert_string_equal(read_it(r, field), "invalid_record"); /* too many values */
    json_decref(r);
}

static void test_topics(void **state)
{
    (void)state;
    char t[TL_INGEST_SOURCES_MAX][TL_INGEST_TOPIC_LEN];
    assert_int_equal(tl_ingest_topics("oct,lab_1", t, TL_INGEST_SOURCES_MAX), 2);
    assert_string_equal(t[0], "trialog.ingest.oct.v1");
    assert_string_equal(t[1], "trialog.ingest.lab_1.v1");
    assert_int_equal(tl_ingest_topics("", t, TL_INGEST_SOURCES_MAX), 0);
    assert_int_equal(tl_ingest_topics("oct,,lab", t, TL_INGEST_SOURCES_MAX), -1);
    assert_int_equal(tl_ingest_topics("OCT", t, TL_INGEST_SOURCES_MAX), -1);
    assert_int_equal(tl_ingest_topics("a.b", t, TL_INGEST_SOURCES_MAX), -1);
    assert_int_equal(tl_ingest_topics("a,b,c", t, 2), -1);
}

/* Whether the study and participant let an observation in: the lasting
 * reasons first, the lock last (docs/CONNECTORS.md). */
static void test_admit(void **state)
{
    (void)state;
    const int32_t consent = tl_date_from_civil(2026, 1, 1);
    const tl_ingest_target_t open = {.study_known = true,
                                     .participant_known = true,
                                     .participant_enrolled = true,
                                     .has_consent = true,
                                     .consent_date = consent};
    const char *field = "x";
    assert_null(tl_ingest_admit(&open, consent, &field));
    assert_null(field);
    assert_null(tl_ingest_admit(&open, consent + 30, &field));

    tl_ingest_target_t t = open;
    t.study_locked = true;
    assert_string_equal(tl_ingest_admit(&t, consent + 30, &field), "study_locked");
    assert_null(field);

    /* what unlocking would not cure is said first */
    t.participant_enrolled = false;
    assert_string_equal(tl_ingest_admit(&t, consent, &field), "participant_not_active");
    t = open;
    t.study_locked = true;
    assert_string_equal(tl_ingest_admit(&t, consent - 1, &field), "out_of_range");
    assert_string_equal(field, "observed_on");
    t.participant_known = false;
    assert_string_equal(tl_ingest_admit(&t, consent, &field), "unknown_participant");
    t.study_known = false;
    assert_string_equal(tl_ingest_admit(&t, consent, &field), "unknown_study");

    /* no consent recorded: no lower bound from it */
    t = open;
    t.has_consent = false;
    assert_null(tl_ingest_admit(&t, consent - 400, &field));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_admit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
