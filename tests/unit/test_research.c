/* Unit tests for the research records (projections/research.c): pseudonyms
 * (stable, keyed, not the id), date shifts (bounded, per participant),
 * participant rows (age capped at 90, no birth year, shifted baseline only
 * when asked), visit rows in study days, form rows (free text withheld
 * unless research_safe, dates as study days, unknown answers withheld in a
 * fixed order), and every record encoding against its built-in schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "research.h"
#include "tl_avro.h"
#include "tl_date.h"
#include "tl_schemas.h"
#include "tl_secret.h"

#define STUDY "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define SITE "0190a1b2-c3d4-7e5f-8a9b-111111111111"
#define PART "0190a1b2-c3d4-7e5f-8a9b-222222222222"
#define PART2 "0190a1b2-c3d4-7e5f-8a9b-222222222223"
#define FORM "0190a1b2-c3d4-7e5f-8a9b-333333333333"
#define TPL "0190a1b2-c3d4-7e5f-8a9b-444444444444"
#define VT "0190a1b2-c3d4-7e5f-8a9b-b00000000030"

static tl_research_cfg_t cfg(const char *key, tl_research_dates_t dates)
{
    tl_research_cfg_t c = {.dates = dates};
    c.key_len = strlen(key);
    memcpy(c.key, key, c.key_len);
    return c;
}

/* a bounded copy into a fixed array */
#define SET(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

#define KEY "0123456789abcdef0123456789abcdef"

/* The datum a builder wrote to buf (built: its result), decoded with the
 * built-in schema of name (schemas/research.<x>/): a field written out of
 * order, missing or extra fails here or in the checks of its value. The
 * buffer is emptied for the next record. */
static json_t *decoded(const char *name, tl_err_t built, tl_buf_t *buf)
{
    assert_int_equal(built, TL_OK);
    const tl_schema_source_t *src = NULL;
    for (size_t i = 0; i < tl_schema_source_count; i++)
        if (!strcmp(tl_schema_sources[i].name, name))
            src = &tl_schema_sources[i];
    assert_non_null(src);
    tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_avro_schema_parse(src->avsc, src->len, &s), TL_OK);
    json_t *r = NULL;
    assert_int_equal(tl_avro_decode(s, buf->data, buf->len, &r), TL_OK);
    /* and the JSON form encodes to the same bytes */
    tl_buf_t again;
    tl_buf_init(&again, 1 << 20);
    assert_int_equal(tl_avro_encode(s, r, &again), TL_OK);
    assert_int_equal(again.len, buf->len);
    assert_memory_equal(again.data, buf->data, buf->len);
    tl_buf_cleanup(&again);
    tl_avro_schema_destroy(s);
    tl_buf_reset(buf);
    return r;
}

static void test_pseudonym(void **state)
{
    (void)state;
    tl_research_cfg_t a = cfg(KEY, TL_RESEARCH_STUDY_DAYS);
    tl_research_cfg_t b = cfg(KEY "x", TL_RESEARCH_STUDY_DAYS);
    char p1[TL_PSEUDONYM_STRLEN], p2[TL_PSEUDONYM_STRLEN], p3[TL_PSEUDONYM_STRLEN],
        p4[TL_PSEUDONYM_STRLEN];
    assert_true(tl_research_pseudonym(&a, PART, p1));
    /* any spelling of the id: the canonical one is what is keyed */
    assert_true(tl_research_pseudonym(&a, "0190A1B2-C3D4-7E5F-8A9B-222222222222", p2));
    assert_string_equal(p1, p2);
    assert_int_equal(strlen(p1), 32);
    assert_null(strstr(PART, p1));
    assert_true(tl_research_pseudonym(&a, PART2, p3));
    assert_string_not_equal(p1, p3);
    /* another key, other pseudonyms */
    assert_true(tl_research_pseudonym(&b, PART, p4));
    assert_string_not_equal(p1, p4);
    assert_false(tl_research_pseudonym(&a, "AMD-00042", p4));
    /* the last answer is remembered: a key changed in place (same length,
     * same memory) is still a new key, and the first answer comes back */
    a.key[5] ^= 1;
    assert_true(tl_research_pseudonym(&a, PART, p4));
    assert_string_not_equal(p1, p4);
    a.key[5] ^= 1;
    assert_true(tl_research_pseudonym(&a, PART, p4));
    assert_string_equal(p1, p4);
    /* and it is the HMAC of "pseudonym:<id>", its first 128 bits in hex */
    unsigned char h[TL_HMAC_LEN];
    const char *msg = "pseudonym:" PART;
    assert_int_equal(tl_hmac_sha256(a.key, a.key_len, msg, strlen(msg), h), TL_OK);
    for (size_t i = 0; i < 16; i++) {
        char hex[3];
        snprintf(hex, sizeof hex, "%02x", h[i]);
        assert_memory_equal(p1 + 2 * i, hex, 2);
    }
}

static void test_shift(void **state)
{
    (void)state;
    tl_research_cfg_t a = cfg(KEY, TL_RESEARCH_SHIFTED);
    char id[40];
    int distinct = 0, last = 1000;
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
        int32_t s = tl_research_shift(&a, id);
        assert_true(s >= -TL_RESEARCH_SHIFT_MAX && s <= TL_RESEARCH_SHIFT_MAX);
        assert_int_equal(s, tl_research_shift(&a, id));
        distinct += s != last;
        last = s;
    }
    assert_true(distinct > 150);
    tl_research_dates_t d;
    assert_true(tl_research_dates_parse("shifted", &d) && d == TL_RESEARCH_SHIFTED);
    assert_true(tl_research_dates_parse("study_days", &d) && d == TL_RESEARCH_STUDY_DAYS);
    assert_false(tl_research_dates_parse("real", &d));
    assert_false(tl_research_dates_parse(NULL, &d));
}

static tl_schedule_t schedule(tl_visit_t *v)
{
    tl_schedule_t s = {.exists = true, .baseline_date = tl_date_from_civil(2026, 1, 1),
                       .version = 7, .visits = v, .nvisits = 1};
    SET(s.id, PART);
    SET(s.study_id, STUDY);
    SET(s.site_id, SITE);
    SET(s.code, "AMD-00042");
    SET(s.status, "enrolled");
    return s;
}

static void test_participant(void **state)
{
    (void)state;
    tl_buf_t buf;
    tl_buf_init(&buf, 1 << 20);
    tl_research_cfg_t c = cfg(KEY, TL_RESEARCH_STUDY_DAYS);
    tl_schedule_t s = schedule(NULL);
    s.nvisits = 0;
    tl_research_person_t p = {.birth_year = 1930, .sex = "F", .row_version = 3};
    json_t *r = decoded("ResearchParticipant", tl_research_participant(&c, &s, &p, &buf), &buf);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "age_at_baseline")), 90); /* 96 */
    assert_true(json_is_null(json_object_get(r, "baseline_date")));
    assert_int_equal(json_integer_value(json_object_get(r, "stream_version")), 3);
    char *text = json_dumps(r, 0);
    assert_null(strstr(text, "AMD-00042"));
    assert_null(strstr(text, "1930"));
    assert_null(strstr(text, PART));
    free(text);
    json_decref(r);

    p.birth_year = 1958;
    p.sex[0] = '\0';
    c.dates = TL_RESEARCH_SHIFTED;
    r = decoded("ResearchParticipant", tl_research_participant(&c, &s, &p, &buf), &buf);
    assert_int_equal(json_integer_value(json_object_get(r, "age_at_baseline")), 68);
    assert_true(json_is_null(json_object_get(r, "sex")));
    assert_int_equal(json_integer_value(json_object_get(r, "baseline_date")),
                     s.baseline_date + tl_research_shift(&c, PART));
    json_decref(r);
    tl_buf_cleanup(&buf);
}

static void test_visit(void **state)
{
    (void)state;
    tl_buf_t buf;
    tl_buf_init(&buf, 1 << 20);
    tl_research_cfg_t c = cfg(KEY, TL_RESEARCH_STUDY_DAYS);
    /* DESIGN.md §5: Month 1 from 2026-01-01, done on 2026-02-15 (a deviation) */
    tl_visit_t v = {.target_day = 30, .required = true, .state = TL_VISIT_COMPLETED,
                    .due = tl_date_from_civil(2026, 1, 31),
                    .window_start = tl_date_from_civil(2026, 1, 24),
                    .window_end = tl_date_from_civil(2026, 2, 14),
                    .actual_date = tl_date_from_civil(2026, 2, 15), .in_window = false,
                    .deviation_reason = "patient travelling", .notes = "called twice",
                    .version = 5};
    SET(v.visit_type_id, VT);
    SET(v.name, "Month 1");
    tl_schedule_t s = schedule(&v);
    json_t *r = decoded("ResearchVisit", tl_research_visit(&c, &s, &v, &buf), &buf);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "due_day")), 30);
    assert_int_equal(json_integer_value(json_object_get(r, "window_start_day")), 23);
    assert_int_equal(json_integer_value(json_object_get(r, "window_end_day")), 44);
    assert_int_equal(json_integer_value(json_object_get(r, "actual_day")), 45);
    assert_true(json_is_false(json_object_get(r, "in_window")));
    assert_true(json_is_true(json_object_get(r, "protocol_deviation")));
    assert_string_equal(json_string_value(json_object_get(r, "status")), "completed");
    assert_true(json_is_null(json_object_get(r, "actual_date")));
    char *text = json_dumps(r, 0);
    assert_null(strstr(text, "travelling"));
    assert_null(strstr(text, "called"));
    free(text);
    json_decref(r);

    c.dates = TL_RESEARCH_SHIFTED;
    v.state = TL_VISIT_SCHEDULED;
    r = decoded("ResearchVisit", tl_research_visit(&c, &s, &v, &buf), &buf);
    int32_t shift = tl_research_shift(&c, PART);
    assert_int_equal(json_integer_value(json_object_get(r, "due_date")), v.due + shift);
    assert_true(json_is_null(json_object_get(r, "actual_day")));
    assert_true(json_is_null(json_object_get(r, "in_window")));
    assert_true(json_is_false(json_object_get(r, "protocol_deviation")));
    json_decref(r);
    tl_buf_cleanup(&buf);
}

static void test_form(void **state)
{
    (void)state;
    tl_buf_t buf;
    tl_buf_init(&buf, 1 << 20);
    tl_research_cfg_t c = cfg(KEY, TL_RESEARCH_STUDY_DAYS);
    json_t *errors = json_array();
    json_t *raw = json_loads(
        "[{\"name\":\"va\",\"type\":\"number\",\"unit\":\"letters\"},"
        "{\"name\":\"count\",\"type\":\"integer\"},"
        "{\"name\":\"notes\",\"type\":\"text\"},"
        "{\"name\":\"term\",\"type\":\"text\",\"research_safe\":true},"
        "{\"name\":\"onset\",\"type\":\"date\"},"
        "{\"name\":\"eye\",\"type\":\"choice\",\"options\":[\"L\",\"R\"]},"
        "{\"name\":\"signs\",\"type\":\"checkbox\",\"options\":[\"a\",\"b\"]}]",
        0, NULL);
    json_t *fields = tl_template_fields_check(raw, errors);
    assert_non_null(fields);
    assert_int_equal(json_array_size(errors), 0);
    /* research_safe false is the default, and the same version */
    json_t *same = json_loads("[{\"name\":\"notes\",\"type\":\"text\",\"research_safe\":false}]",
                              0, NULL);
    json_t *plain = json_loads("[{\"name\":\"notes\",\"type\":\"text\"}]", 0, NULL);
    json_t *n1 = tl_template_fields_check(same, errors), *n2 = tl_template_fields_check(plain, errors);
    assert_true(json_equal(n1, n2));
    json_t *bad = json_loads("[{\"name\":\"n\",\"type\":\"number\",\"research_safe\":true},"
                             "{\"name\":\"t\",\"type\":\"text\",\"research_safe\":1}]",
                             0, NULL);
    assert_null(tl_template_fields_check(bad, errors));
    assert_int_equal(json_array_size(errors), 2);

    tl_form_t f = {.exists = true, .template_version = 2, .status = TL_FORM_AMENDED,
                   .revision = 2, .version = 9};
    SET(f.id, FORM);
    SET(f.participant_id, PART);
    SET(f.study_id, STUDY);
    SET(f.visit_type_id, VT);
    SET(f.template_id, TPL);
    SET(f.template_name, "adverse_events");
    /* zz and aa are answers this version does not name: withheld, sorted */
    f.answers = json_loads("{\"zz\":\"x\",\"va\":71,\"count\":3,\"notes\":\"met Mrs Smith\","
                           "\"term\":\"conjunctivitis\",\"onset\":\"2026-01-11\",\"eye\":\"L\","
                           "\"signs\":[\"a\",\"b\"],\"aa\":2}",
                           0, NULL);
    int32_t base = tl_date_from_civil(2026, 1, 1);
    json_t *r = decoded("ResearchForm", tl_research_form(&c, &f, SITE, base, fields, &buf), &buf);
    assert_non_null(r);
    char *text = json_dumps(r, 0);
    assert_null(strstr(text, "Smith"));
    assert_null(strstr(text, "2026-01-11"));
    assert_non_null(strstr(text, "conjunctivitis"));
    free(text);
    json_t *answers = json_object_get(r, "answers");
    assert_int_equal(json_array_size(answers), 6);
    json_t *va = json_array_get(answers, 0);
    assert_string_equal(json_string_value(json_object_get(va, "field")), "va");
    assert_true(json_is_real(json_object_get(va, "number")));
    assert_string_equal(json_string_value(json_object_get(va, "unit")), "letters");
    json_t *onset = json_array_get(answers, 3);
    assert_string_equal(json_string_value(json_object_get(onset, "field")), "onset");
    assert_int_equal(json_integer_value(json_object_get(onset, "study_day")), 10);
    assert_true(json_is_null(json_object_get(onset, "date")));
    json_t *withheld = json_object_get(r, "withheld_fields");
    assert_int_equal(json_array_size(withheld), 3);
    assert_string_equal(json_string_value(json_array_get(withheld, 0)), "notes");
    assert_string_equal(json_string_value(json_array_get(withheld, 1)), "aa");
    assert_string_equal(json_string_value(json_array_get(withheld, 2)), "zz");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "amended");

    /* the same form from a store (answers in another order): the same row */
    json_t *reordered = json_loads("{\"aa\":2,\"va\":71,\"zz\":\"x\",\"signs\":[\"a\",\"b\"],"
                                   "\"notes\":\"met Mrs Smith\",\"eye\":\"L\",\"count\":3,"
                                   "\"onset\":\"2026-01-11\",\"term\":\"conjunctivitis\"}",
                                   0, NULL);
    json_decref(f.answers);
    f.answers = reordered;
    json_t *r2 = decoded("ResearchForm", tl_research_form(&c, &f, SITE, base, fields, &buf), &buf);
    char *t1 = json_dumps(r, JSON_COMPACT), *t2 = json_dumps(r2, JSON_COMPACT);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);

    c.dates = TL_RESEARCH_SHIFTED;
    json_t *r3 = decoded("ResearchForm", tl_research_form(&c, &f, SITE, base, fields, &buf), &buf);
    onset = json_array_get(json_object_get(r3, "answers"), 3);
    assert_int_equal(json_integer_value(json_object_get(onset, "date")),
                     tl_date_from_civil(2026, 1, 11) + tl_research_shift(&c, PART));
    json_decref(r3);
    json_decref(r2);
    json_decref(r);
    tl_form_cleanup(&f);
    json_decref(bad);
    json_decref(n1);
    json_decref(n2);
    json_decref(same);
    json_decref(plain);
    json_decref(fields);
    json_decref(raw);
    json_decref(errors);
    tl_buf_cleanup(&buf);
}

/* A connector's observation: numbers, integers and booleans by name,
 * text withheld, the device never, the day counted from the baseline. */
static void test_observation(void **state)
{
    (void)state;
    tl_buf_t buf;
    tl_buf_init(&buf, 1 << 20);
    tl_research_cfg_t c = cfg(KEY, TL_RESEARCH_STUDY_DAYS);
    tl_schedule_t s = schedule(NULL);
    s.nvisits = 0;
    s.version = 9;
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:{s:f, s:i, s:b, s:s, s:n}}", "event_id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01", "source", "oct", "kind",
        "org.example.oct.OctScan", "observed_on", (int)(s.baseline_date + 30), "device",
        "Spectralis SN-4711", "laterality", "OS", "values", "signal", 31.5, "cst_um", 250,
        "gradable", 1, "comment", "patient Jane Doe moved", "missing");
    json_t *r = decoded("ResearchObservation", tl_research_observation(&c, &s, ev, &buf), &buf);
    assert_int_equal(json_integer_value(json_object_get(r, "study_day")), 30);
    assert_true(json_is_null(json_object_get(r, "observed_date")));
    assert_string_equal(json_string_value(json_object_get(r, "laterality")), "OS");
    assert_string_equal(json_string_value(json_object_get(r, "source")), "oct");
    assert_int_equal(json_integer_value(json_object_get(r, "stream_version")), 9);
    const json_t *v = json_object_get(r, "values");
    assert_int_equal(json_array_size(v), 3); /* by name: cst_um, gradable, signal */
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "name")), "cst_um");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 0), "integer")), 250);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 1), "type")),
                        "boolean");
    assert_true(json_is_true(json_object_get(json_array_get(v, 1), "boolean")));
    assert_true(json_number_value(json_object_get(json_array_get(v, 2), "number")) == 31.5);
    const json_t *w = json_object_get(r, "withheld_fields");
    assert_int_equal(json_array_size(w), 1);
    assert_string_equal(json_string_value(json_array_get(w, 0)), "comment");
    char *text = json_dumps(r, 0);
    assert_null(strstr(text, "Jane"));
    assert_null(strstr(text, "Spectralis"));
    assert_null(strstr(text, PART));
    free(text);
    json_decref(r);

    c.dates = TL_RESEARCH_SHIFTED;
    r = decoded("ResearchObservation", tl_research_observation(&c, &s, ev, &buf), &buf);
    assert_int_equal(json_integer_value(json_object_get(r, "observed_date")),
                     s.baseline_date + 30 + tl_research_shift(&c, PART));
    json_decref(r);
    json_decref(ev);
    tl_buf_cleanup(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pseudonym),   cmocka_unit_test(test_shift),
        cmocka_unit_test(test_participant), cmocka_unit_test(test_visit),
        cmocka_unit_test(test_form),        cmocka_unit_test(test_observation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
