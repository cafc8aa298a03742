/* Unit tests for case report forms (projections/forms.c): the template
 * check (every problem named, all at once), the answer validator for every
 * type and every failure, amendments' merge, template versioning, and the
 * fold of a form with its field-level history: submission, amendment,
 * signature, an amendment removing a signature, stale signatures, refusals
 * and replay determinism. Also the participant stream's decisions on form
 * events (projections/stream.c). Events are jansson objects shaped like the
 * decoded Avro records of schemas/participant/ and schemas/protocol/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "forms.h"
#include "stream.h"

#define STUDY "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define SITE "0190a1b2-c3d4-7e5f-8a9b-111111111111"
#define PART "0190a1b2-c3d4-7e5f-8a9b-222222222222"
#define PART2 "0190a1b2-c3d4-7e5f-8a9b-222222222223"
#define FORM "0190a1b2-c3d4-7e5f-8a9b-333333333333"
#define TPL "0190a1b2-c3d4-7e5f-8a9b-444444444444"
#define TPL2 "0190a1b2-c3d4-7e5f-8a9b-444444444445"
#define VT "0190a1b2-c3d4-7e5f-8a9b-b00000000030"
#define CLIN "0190a1b2-c3d4-7e5f-8a9b-555555555555"
#define EV(n) "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa" #n
#define T_RECORDED 1767225601234567LL

/* ---- helpers ---- */

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Whether errors has exactly one entry with this field and code. */
static bool has_error(const json_t *errors, const char *field, const char *code)
{
    size_t i, n = 0;
    const json_t *e;
    json_array_foreach(errors, i, e)
    {
        n += !strcmp(json_string_value(json_object_get(e, "field")), field) &&
             !strcmp(json_string_value(json_object_get(e, "code")), code);
    }
    return n == 1;
}

#define assert_error(errors, field, code)                                                          \
    do {                                                                                           \
        if (!has_error(errors, field, code)) {                                                     \
            char *dump_ = json_dumps(errors, 0);                                                   \
            print_error("missing %s %s in %s\n", field, code, dump_);                              \
            free(dump_);                                                                           \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* The ophthalmology template of the demo, as a client sends it. */
static const char *const eye_fields =
    "[{\"name\":\"va_right\",\"label\":\"Visual acuity, right eye\",\"type\":\"integer\","
    "  \"required\":true,\"min\":0,\"max\":100,\"unit\":\"letters\"},"
    " {\"name\":\"iop_right\",\"type\":\"number\",\"min\":5,\"max\":60,\"unit\":\"mmHg\","
    "  \"decimals\":1},"
    " {\"name\":\"exam_date\",\"type\":\"date\",\"min\":\"2020-01-01\",\"max\":\"2030-12-31\"},"
    " {\"name\":\"eye\",\"type\":\"choice\",\"options\":[\"L\",\"R\",\"both\"],\"required\":true},"
    " {\"name\":\"findings\",\"type\":\"checkbox\",\"options\":[\"drusen\",\"edema\",\"bleed\"]},"
    " {\"name\":\"notes\",\"type\":\"text\",\"max_length\":10}]";

static json_t *eye_template(void)
{
    json_t *in = load(eye_fields), *errors = json_array();
    json_t *out = tl_template_fields_check(in, errors);
    assert_non_null(out);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(in);
    json_decref(errors);
    return out;
}

/* ---- templates ---- */

static void test_template_normalised(void **state)
{
    (void)state;
    json_t *t = eye_template();
    /* members in one order, "required" always there, nothing added */
    char *s = json_dumps(json_array_get(t, 1), JSON_PRESERVE_ORDER | JSON_COMPACT);
    assert_string_equal(s, "{\"name\":\"iop_right\",\"type\":\"number\",\"required\":false,"
                           "\"unit\":\"mmHg\",\"decimals\":1,\"min\":5,\"max\":60}");
    free(s);
    s = json_dumps(json_array_get(t, 0), JSON_PRESERVE_ORDER | JSON_COMPACT);
    assert_string_equal(s, "{\"name\":\"va_right\",\"label\":\"Visual acuity, right eye\","
                           "\"type\":\"integer\",\"required\":true,\"unit\":\"letters\","
                           "\"min\":0,\"max\":100}");
    free(s);
    /* as an event decoded from Avro spells it, with nulls: the same */
    json_t *again = json_deep_copy(t), *errors = json_array();
    json_object_set_new(json_array_get(again, 1), "options", json_null());
    json_object_set_new(json_array_get(again, 1), "label", json_null());
    json_t *norm = tl_template_fields_check(again, errors);
    assert_true(json_equal(norm, t));
    json_decref(norm);
    json_decref(again);
    json_decref(errors);
    json_decref(t);
}

static void test_template_every_error_at_once(void **state)
{
    (void)state;
    json_t *in =
        load("[{\"name\":\"a\",\"type\":\"number\",\"options\":[\"x\"]},"   /* 0 not_for_type */
             " {\"name\":\"a\",\"type\":\"text\"},"                         /* 1 duplicate */
             " {\"name\":\"b\",\"type\":\"slider\"},"                       /* 2 unknown type */
             " {\"type\":\"text\"},"                                        /* 3 no name */
             " {\"name\":\"Bad Name\",\"type\":\"text\"},"                  /* 4 invalid name */
             " {\"name\":\"c\",\"type\":\"integer\",\"min\":10,\"max\":1}," /* 5 max < min */
             " {\"name\":\"d\",\"type\":\"number\",\"decimals\":9},"        /* 6 decimals */
             " {\"name\":\"e\",\"type\":\"text\",\"max_length\":0},"        /* 7 max_length */
             " {\"name\":\"f\",\"type\":\"choice\"},"                       /* 8 no options */
             " {\"name\":\"g\",\"type\":\"checkbox\",\"options\":[\"x\",\"x\"]}," /* 9 duplicate */
             " {\"name\":\"h\",\"type\":\"integer\",\"min\":1.5},"         /* 10 not integer */
             " {\"name\":\"i\",\"type\":\"date\",\"max\":\"2026-02-30\"}," /* 11 not a date */
             " {\"name\":\"j\",\"type\":\"text\",\"colour\":\"red\"},"     /* 12 unknown */
             " {\"name\":\"k\",\"type\":\"text\",\"required\":\"yes\"},"   /* 13 not boolean */
             " {\"name\":\"l\",\"type\":\"number\",\"max\":1e13},"         /* 14 out of bounds */
             " 7]");                                                       /* 15 not object */
    json_t *errors = json_array();
    assert_null(tl_template_fields_check(in, errors));
    assert_error(errors, "fields[0].options", "not_for_type");
    assert_error(errors, "fields[1].name", "duplicate_name");
    assert_error(errors, "fields[2].type", "unknown_type");
    assert_error(errors, "fields[3].name", "required");
    assert_error(errors, "fields[4].name", "invalid_name");
    assert_error(errors, "fields[5].max", "max_below_min");
    assert_error(errors, "fields[6].decimals", "out_of_bounds");
    assert_error(errors, "fields[7].max_length", "out_of_bounds");
    assert_error(errors, "fields[8].options", "invalid_options");
    assert_error(errors, "fields[9].options", "duplicate_option");
    assert_error(errors, "fields[10].min", "not_an_integer");
    assert_error(errors, "fields[11].max", "not_a_date");
    assert_error(errors, "fields[12].colour", "unknown_member");
    assert_error(errors, "fields[13].required", "not_a_boolean");
    assert_error(errors, "fields[14].max", "out_of_bounds");
    assert_error(errors, "fields[15]", "not_an_object");
    assert_int_equal(json_array_size(errors), 16);
    json_decref(errors);
    json_decref(in);

    /* the list itself */
    const char *const bad[] = {"[]", "{}", "\"x\""};
    for (size_t i = 0; i < 3; i++) {
        errors = json_array();
        in = load(i == 2 ? "[\"x\"]" : bad[i]);
        assert_null(tl_template_fields_check(i == 2 ? json_array_get(in, 0) : in, errors));
        assert_error(errors, "fields", "invalid_fields");
        json_decref(errors);
        json_decref(in);
    }
    /* at most 200 fields */
    in = json_array();
    for (int i = 0; i <= TL_TEMPLATE_FIELDS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        json_array_append_new(in, json_pack("{s:s, s:s}", "name", name, "type", "text"));
    }
    errors = json_array();
    assert_null(tl_template_fields_check(in, errors));
    assert_error(errors, "fields", "invalid_fields");
    json_array_remove(in, 0);
    json_array_clear(errors);
    json_t *ok = tl_template_fields_check(in, errors);
    assert_non_null(ok);
    json_decref(ok);
    json_decref(errors);
    json_decref(in);
}

/* ---- answers ---- */

static size_t check(const json_t *fields, const char *answers, json_t **errors)
{
    json_t *a = load(answers);
    *errors = json_array();
    size_t n = tl_answers_check(fields, a, *errors);
    json_decref(a);
    return n;
}

static void test_answers_valid(void **state)
{
    (void)state;
    json_t *t = eye_template(), *errors;
    assert_int_equal(check(t,
                           "{\"va_right\":85,\"iop_right\":15.5,\"exam_date\":\"2026-02-10\","
                           "\"eye\":\"R\",\"findings\":[\"drusen\",\"edema\"],\"notes\":\"ok\"}",
                           &errors),
                     0);
    json_decref(errors);
    /* optional fields left out or null; bounds are inclusive; an integer is
     * a number; an empty checkbox is no finding */
    assert_int_equal(check(t,
                           "{\"va_right\":0,\"iop_right\":60,\"exam_date\":null,\"eye\":\"L\","
                           "\"findings\":[],\"notes\":\"line\\nbreak\"}",
                           &errors),
                     0);
    json_decref(errors);
    assert_int_equal(check(t, "{\"va_right\":100,\"eye\":\"both\",\"iop_right\":5}", &errors), 0);
    json_decref(errors);
    /* decimals as written, not as doubles hold them */
    assert_int_equal(check(t, "{\"va_right\":1,\"eye\":\"L\",\"iop_right\":20.3}", &errors), 0);
    json_decref(errors);
    /* ten characters, not bytes */
    assert_int_equal(
        check(t,
              "{\"va_right\":1,\"eye\":\"L\",\"notes\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
              "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
              &errors),
        0);
    json_decref(errors);
    json_decref(t);
}

static void test_answers_every_failure(void **state)
{
    (void)state;
    json_t *t = eye_template(), *errors;
    /* every field wrong at once, plus an unknown one */
    assert_int_equal(check(t,
                           "{\"va_right\":101,\"iop_right\":4.9,\"exam_date\":\"2019-12-31\","
                           "\"eye\":\"X\",\"findings\":\"drusen\",\"notes\":\"\","
                           "\"colour\":\"red\"}",
                           &errors),
                     7);
    assert_error(errors, "answers.va_right", "above_max");
    assert_error(errors, "answers.iop_right", "below_min");
    assert_error(errors, "answers.exam_date", "below_min");
    assert_error(errors, "answers.eye", "not_an_option");
    assert_error(errors, "answers.findings", "not_a_list");
    assert_error(errors, "answers.notes", "empty");
    assert_error(errors, "answers.colour", "unknown_field");
    json_decref(errors);

    /* the other failures of each type */
    assert_int_equal(check(t,
                           "{\"va_right\":85.5,\"iop_right\":15.55,\"exam_date\":\"2031-01-01\","
                           "\"eye\":[\"L\"],\"findings\":[\"edema\",\"edema\"],"
                           "\"notes\":\"eleven char\"}",
                           &errors),
                     6);
    assert_error(errors, "answers.va_right", "not_an_integer");
    assert_error(errors, "answers.iop_right", "too_many_decimals");
    assert_error(errors, "answers.exam_date", "above_max");
    assert_error(errors, "answers.eye", "not_an_option");
    assert_error(errors, "answers.findings", "duplicate_option");
    assert_error(errors, "answers.notes", "too_long");
    json_decref(errors);

    assert_int_equal(check(t,
                           "{\"va_right\":\"85\",\"iop_right\":\"15\",\"exam_date\":\"2026-02-30\","
                           "\"eye\":\"R\",\"findings\":[\"rash\"],\"notes\":5}",
                           &errors),
                     5);
    assert_error(errors, "answers.va_right", "not_an_integer");
    assert_error(errors, "answers.iop_right", "not_a_number");
    assert_error(errors, "answers.exam_date", "not_a_date");
    assert_error(errors, "answers.findings", "not_an_option");
    assert_error(errors, "answers.notes", "not_text");
    json_decref(errors);

    /* required fields missing or null; a control character; a key that is
     * not a name is reported without being echoed */
    assert_int_equal(
        check(t, "{\"va_right\":null,\"notes\":\"a\\u0007b\",\"Not A Name\":1}", &errors), 4);
    assert_error(errors, "answers.va_right", "required");
    assert_error(errors, "answers.eye", "required");
    assert_error(errors, "answers.notes", "invalid_text");
    assert_error(errors, "answers", "unknown_field");
    json_decref(errors);

    /* not an object at all */
    json_t *arr = json_array();
    errors = json_array();
    assert_int_equal(tl_answers_check(t, arr, errors), 1);
    assert_error(errors, "answers", "not_an_object");
    json_decref(errors);
    json_decref(arr);

    /* a required checkbox needs one option at least */
    json_t *in = load("[{\"name\":\"ae\",\"type\":\"checkbox\",\"required\":true,"
                      "\"options\":[\"none\",\"pain\"]}]");
    json_t *e2 = json_array(), *t2 = tl_template_fields_check(in, e2);
    assert_int_equal(check(t2, "{\"ae\":[]}", &errors), 1);
    assert_error(errors, "answers.ae", "required");
    json_decref(errors);
    json_decref(t2);
    json_decref(e2);
    json_decref(in);
    json_decref(t);
}

static void test_answers_merge(void **state)
{
    (void)state;
    json_t *cur = load("{\"va_right\":85,\"eye\":\"R\",\"notes\":\"x\"}");
    json_t *patch = load("{\"va_right\":80,\"eye\":\"R\",\"notes\":null,\"iop_right\":15.5,"
                         "\"exam_date\":null}");
    json_t *changes = NULL;
    json_t *out = tl_answers_merge(cur, patch, &changes);
    json_t *want = load("{\"va_right\":80,\"eye\":\"R\",\"iop_right\":15.5}");
    assert_true(json_equal(out, want));
    json_t *want_changes = load("[{\"field\":\"va_right\",\"before\":85,\"after\":80},"
                                "{\"field\":\"notes\",\"before\":\"x\",\"after\":null},"
                                "{\"field\":\"iop_right\",\"before\":null,\"after\":15.5}]");
    assert_true(json_equal(changes, want_changes));
    json_decref(want_changes);
    json_decref(want);
    json_decref(out);
    json_decref(changes);
    json_decref(patch);
    /* nothing changes: no changes */
    patch = load("{\"eye\":\"R\",\"iop_right\":null}");
    out = tl_answers_merge(cur, patch, &changes);
    assert_int_equal(json_array_size(changes), 0);
    assert_true(json_equal(out, cur));
    json_decref(out);
    json_decref(changes);
    json_decref(patch);
    json_decref(cur);
}

/* ---- template versions ---- */

static json_t *published(const char *id, int version, const json_t *fields, const char *ev)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:i, s:O}", "event_id", ev, "occurred_at",
                     (json_int_t)T_RECORDED, "recorded_at", (json_int_t)T_RECORDED, "study_id",
                     STUDY, "template_id", id, "name", "eye_exam", "title", "Eye exam", "version",
                     version, "fields", fields);
}

static void test_template_versions(void **state)
{
    (void)state;
    json_t *fields = eye_template();
    tl_template_t t = {0};
    assert_int_equal(tl_template_next_version(&t, "Eye exam", fields), 1);
    json_t *ev = published(TPL, 1, fields, EV(1));
    assert_null(tl_template_apply(&t, ev));
    json_decref(ev);
    assert_int_equal(t.version, 1);
    assert_string_equal(t.title, "Eye exam");
    /* the same again: no new version; a change of title or fields: one */
    assert_int_equal(tl_template_next_version(&t, "Eye exam", fields), 1);
    assert_int_equal(tl_template_next_version(&t, "Eye examination", fields), 2);
    json_t *changed = json_deep_copy(fields);
    json_object_set_new(json_array_get(changed, 0), "max", json_integer(95));
    assert_int_equal(tl_template_next_version(&t, "Eye exam", changed), 2);

    /* a version must follow the latest exactly, under the same id */
    ev = published(TPL, 3, changed, EV(2));
    assert_string_equal(tl_template_apply(&t, ev), "version_conflict");
    json_decref(ev);
    ev = published(TPL2, 2, changed, EV(2));
    assert_string_equal(tl_template_apply(&t, ev), "wrong_template");
    json_decref(ev);
    json_t *bad = load("[{\"name\":\"x\",\"type\":\"slider\"}]");
    ev = published(TPL, 2, bad, EV(2));
    assert_string_equal(tl_template_apply(&t, ev), "invalid_template");
    json_decref(ev);
    json_decref(bad);
    assert_int_equal(t.version, 1);
    assert_true(json_equal(t.fields, fields));

    ev = published(TPL, 2, changed, EV(2));
    assert_null(tl_template_apply(&t, ev));
    json_decref(ev);
    assert_int_equal(t.version, 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(t.fields, 0), "max")), 95);
    tl_template_cleanup(&t);
    json_decref(changed);
    json_decref(fields);
}

/* ---- the fold ---- */

static json_t *meta(const char *type_ev, int64_t version)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "event_id", type_ev,
                     "occurred_at", (json_int_t)T_RECORDED, "recorded_at",
                     (json_int_t)(T_RECORDED + version), "actor_id", CLIN, "actor_role",
                     "clinician", "site_id", SITE, "correlation_id", type_ev, "source", "gateway",
                     "stream_version", (json_int_t)version, "participant_id", PART, "study_id",
                     STUDY);
}

static json_t *submitted(int64_t version, const char *answers)
{
    json_t *ev = meta(EV(2), version);
    json_t *own = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "form_id", FORM, "visit_type_id",
                            VT, "template_id", TPL, "template_name", "eye_exam",
                            "template_version", 1, "answers", load(answers));
    json_object_update(ev, own);
    json_decref(own);
    return ev;
}

static json_t *amended(int64_t version, const char *changes)
{
    json_t *ev = meta(EV(3), version);
    json_object_set_new(ev, "form_id", json_string(FORM));
    json_object_set_new(ev, "changes", load(changes));
    json_object_set_new(ev, "reason", json_string("transcription error"));
    return ev;
}

static json_t *signed_ev(int64_t version, int revision)
{
    json_t *ev = meta(EV(4), version);
    json_object_set_new(ev, "form_id", json_string(FORM));
    json_object_set_new(ev, "form_revision", json_integer(revision));
    json_object_set_new(ev, "meaning", json_string("approved"));
    json_object_set_new(ev, "signer_name", json_string("dr.lee"));
    return ev;
}

static void test_fold_submit_amend_sign(void **state)
{
    (void)state;
    tl_form_t f = {0};
    json_t *h = json_array();
    json_t *ev = submitted(2, "{\"va_right\":85,\"eye\":\"R\",\"notes\":null}");
    assert_null(tl_form_apply(&f, "FormSubmitted", ev, h));
    json_decref(ev);
    assert_true(f.exists);
    assert_string_equal(f.id, FORM);
    assert_string_equal(f.site_id, ""); /* the caller's to set */
    assert_string_equal(f.submitted_by, CLIN);
    assert_int_equal(f.status, TL_FORM_SUBMITTED);
    assert_int_equal(f.revision, 1);
    assert_int_equal(f.version, 2);
    assert_int_equal(f.template_version, 1);
    /* nulls are not kept; every answer enters the history */
    json_t *want = load("[{\"field\":\"va_right\",\"before\":null,\"after\":85},"
                        "{\"field\":\"eye\",\"before\":null,\"after\":\"R\"}]");
    assert_true(json_equal(h, want));
    assert_int_equal(json_object_size(f.answers), 2);
    json_decref(want);

    /* signed, then amended: the signature goes */
    json_array_clear(h);
    ev = signed_ev(3, 1);
    assert_null(tl_form_apply(&f, "FormSigned", ev, h));
    json_decref(ev);
    assert_int_equal(f.status, TL_FORM_SIGNED);
    assert_string_equal(f.signed_by, CLIN);
    assert_string_equal(f.signer_name, "dr.lee");
    assert_string_equal(f.meaning, "approved");
    assert_int_equal(f.signed_at_us, T_RECORDED + 3);
    assert_int_equal(json_array_size(h), 0);

    ev = amended(4, "[{\"field\":\"va_right\",\"before\":85,\"after\":80},"
                    "{\"field\":\"notes\",\"before\":null,\"after\":\"re-measured\"}]");
    assert_null(tl_form_apply(&f, "FormAmended", ev, h));
    json_decref(ev);
    assert_int_equal(f.status, TL_FORM_AMENDED);
    assert_int_equal(f.revision, 2);
    assert_string_equal(f.signed_by, "");
    assert_string_equal(f.meaning, "");
    assert_int_equal(f.signed_at_us, 0);
    assert_int_equal(json_integer_value(json_object_get(f.answers, "va_right")), 80);
    want = load("[{\"field\":\"va_right\",\"before\":85,\"after\":80},"
                "{\"field\":\"notes\",\"before\":null,\"after\":\"re-measured\"}]");
    assert_true(json_equal(h, want));
    json_decref(want);

    /* a signature of revision 1 no longer fits; of revision 2 it does */
    json_array_clear(h);
    ev = signed_ev(5, 1);
    assert_string_equal(tl_form_apply(&f, "FormSigned", ev, h), "stale_signature");
    json_decref(ev);
    assert_int_equal(f.status, TL_FORM_AMENDED);
    ev = signed_ev(5, 2);
    assert_null(tl_form_apply(&f, "FormSigned", ev, h));
    json_decref(ev);
    assert_int_equal(f.status, TL_FORM_SIGNED);

    /* removing an answer */
    ev = amended(6, "[{\"field\":\"notes\",\"before\":\"re-measured\",\"after\":null}]");
    assert_null(tl_form_apply(&f, "FormAmended", ev, h));
    json_decref(ev);
    assert_null(json_object_get(f.answers, "notes"));
    assert_int_equal(f.revision, 3);
    json_decref(h);
    tl_form_cleanup(&f);
}

static void test_fold_refusals(void **state)
{
    (void)state;
    tl_form_t f = {0};
    json_t *h = json_array();
    json_t *ev = amended(2, "[{\"field\":\"va_right\",\"before\":1,\"after\":2}]");
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "unknown_form");
    json_decref(ev);
    ev = signed_ev(2, 1);
    assert_string_equal(tl_form_apply(&f, "FormSigned", ev, h), "unknown_form");
    json_decref(ev);

    ev = submitted(2, "{\"va_right\":85}");
    assert_null(tl_form_apply(&f, "FormSubmitted", ev, h));
    assert_string_equal(tl_form_apply(&f, "FormSubmitted", ev, h), "form_exists");
    json_decref(ev);
    json_array_clear(h);

    /* another participant's event cannot touch this form */
    ev = amended(3, "[{\"field\":\"va_right\",\"before\":85,\"after\":2}]");
    json_object_set_new(ev, "participant_id", json_string(PART2));
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "wrong_participant");
    json_decref(ev);
    /* malformed: a change of a non-name, an unknown meaning, an answer of
     * the wrong shape, no changes */
    ev = amended(3, "[{\"field\":\"Bad Name\",\"before\":null,\"after\":2}]");
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_decref(ev);
    ev = amended(3, "[]");
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_decref(ev);
    ev = signed_ev(3, 1);
    json_object_set_new(ev, "meaning", json_string("liked"));
    assert_string_equal(tl_form_apply(&f, "FormSigned", ev, h), "invalid_event");
    json_decref(ev);
    tl_form_t g = {0};
    ev = submitted(2, "{\"va_right\":{\"nested\":1}}");
    assert_string_equal(tl_form_apply(&g, "FormSubmitted", ev, h), "invalid_event");
    json_decref(ev);
    assert_false(g.exists);
    /* nothing changed by the refusals */
    assert_int_equal(json_array_size(h), 0);
    assert_int_equal(f.revision, 1);
    assert_int_equal(f.version, 2);
    json_decref(h);
    tl_form_cleanup(&f);
}

/* Folding the same events again gives the same form and history. */
static void test_fold_replay(void **state)
{
    (void)state;
    json_t *evs[] = {submitted(2, "{\"va_right\":85,\"eye\":\"R\"}"), signed_ev(3, 1),
                     amended(4, "[{\"field\":\"eye\",\"before\":\"R\",\"after\":\"L\"}]"),
                     signed_ev(5, 2)};
    const char *types[] = {"FormSubmitted", "FormSigned", "FormAmended", "FormSigned"};
    tl_form_t a = {0}, b = {0};
    json_t *ha = json_array(), *hb = json_array();
    for (int i = 0; i < 4; i++)
        assert_null(tl_form_apply(&a, types[i], evs[i], ha));
    for (int i = 0; i < 4; i++)
        assert_null(tl_form_apply(&b, types[i], evs[i], hb));
    assert_true(json_equal(ha, hb));
    assert_true(json_equal(a.answers, b.answers));
    json_t *ans_a = a.answers, *ans_b = b.answers;
    a.answers = b.answers = NULL;
    assert_memory_equal(&a, &b, sizeof a);
    json_decref(ans_a);
    json_decref(ans_b);
    for (int i = 0; i < 4; i++)
        json_decref(evs[i]);
    json_decref(ha);
    json_decref(hb);
}

/* ---- the stream's decisions on form events ---- */

static void test_stream_form_events(void **state)
{
    (void)state;
    tl_stream_row_t r = {0};
    json_t *enrol = meta(EV(1), 1);
    json_object_set_new(enrol, "site_id", json_string(SITE));
    json_object_set_new(enrol, "participant_code", json_string("AMD-00001"));
    json_object_set_new(enrol, "consent_date", json_integer(20454));
    json_object_set_new(enrol, "baseline_date", json_integer(20454));
    assert_null(tl_stream_row_apply(&r, "ParticipantEnrolled", enrol));
    json_decref(enrol);
    assert_true(r.exists);
    assert_string_equal(r.site_id, SITE);
    assert_int_equal(r.version, 1);

    json_t *ev = submitted(2, "{\"va_right\":85}");
    assert_null(tl_stream_row_apply(&r, "FormSubmitted", ev));
    /* the version rule of DESIGN.md §2 holds for forms too */
    assert_string_equal(tl_stream_row_apply(&r, "FormSubmitted", ev), "version_conflict");
    json_decref(ev);
    /* an amendment needs a reason */
    ev = amended(3, "[{\"field\":\"va_right\",\"before\":85,\"after\":80}]");
    json_object_del(ev, "reason");
    assert_string_equal(tl_stream_row_apply(&r, "FormAmended", ev), "reason_required");
    json_decref(ev);

    /* a participant who left keeps getting the forms of visits done */
    json_t *w = meta(EV(5), 3);
    json_object_set_new(w, "withdrawal_date", json_integer(20480));
    json_object_set_new(w, "reason", json_string("moved away"));
    assert_null(tl_stream_row_apply(&r, "ParticipantWithdrawn", w));
    json_decref(w);
    assert_string_equal(r.status, "withdrawn");
    ev = signed_ev(4, 1);
    assert_null(tl_stream_row_apply(&r, "FormSigned", ev));
    json_decref(ev);
    w = meta(EV(6), 5);
    json_object_set_new(w, "withdrawal_date", json_integer(20480));
    json_object_set_new(w, "reason", json_string("again"));
    assert_string_equal(tl_stream_row_apply(&r, "ParticipantWithdrawn", w),
                        "participant_not_active");
    json_decref(w);
    assert_int_equal(r.version, 4);
}

/* What a signature signs: a hash an auditor can recompute from the form's
 * answers as the API shows them (docs/FORMS.md), whatever their order. */
static void test_content_hash(void **state)
{
    (void)state;
    json_t *answers = json_loads("{\"c\":[\"x\",\"y\"],\"b\":2,\"a\":1.5}", 0, NULL);
    char out[65];
    assert_int_equal(tl_form_content_sha256("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01", 3, 2,
                                            answers, out),
                     TL_OK);
    /* sha256 of {"answers":{"a":1.5,"b":2,"c":["x","y"]},"form_id":"0190a1b2-...-0c1d2e3f4a01",
     * "revision":2,"template_version":3}, by Python's hashlib */
    assert_string_equal(out, "ad84152f7ebc76922b0a426bc8269b002dac95d7d2396a331b415579603cde90");
    char other[65];
    assert_int_equal(tl_form_content_sha256("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01", 3, 3,
                                            answers, other),
                     TL_OK);
    assert_string_not_equal(out, other);
    json_decref(answers);
}

/* ---- the form commands' rules ---- */

static void test_template_listed(void **state)
{
    (void)state;
    json_t *listed = load("[\"visual_acuity\",\"oct\"]");
    assert_true(tl_form_template_listed(listed, "oct"));
    assert_false(tl_form_template_listed(listed, "adverse_events"));
    assert_false(tl_form_template_listed(listed, "OCT")); /* names are exact */
    assert_false(tl_form_template_listed(listed, NULL));
    json_decref(listed);
    json_t *none = load("[]");
    assert_false(tl_form_template_listed(none, "oct"));
    json_decref(none);
    assert_false(tl_form_template_listed(NULL, "oct"));
}

/* Version 1 of a lens form, and version 2: an option renamed, a field
 * removed and a required one added. */
static const char *const lens_v1 =
    "[{\"name\":\"va\",\"type\":\"integer\",\"required\":true,\"min\":0,\"max\":100},"
    " {\"name\":\"lens\",\"type\":\"choice\",\"options\":[\"phakic\",\"pseudophakic\"]},"
    " {\"name\":\"grade\",\"type\":\"integer\"}]";
static const char *const lens_v2 =
    "[{\"name\":\"va\",\"type\":\"integer\",\"required\":true,\"min\":0,\"max\":100},"
    " {\"name\":\"lens\",\"type\":\"choice\",\"options\":[\"natural\",\"pseudophakic\"]},"
    " {\"name\":\"iop\",\"type\":\"number\",\"required\":true}]";

typedef struct {
    json_t *answers, *v1, *v2, *errors;
    tl_amend_t a;
} amend_fx_t;

static void amend_fx(amend_fx_t *fx, const char *answers)
{
    fx->answers = load(answers);
    fx->v1 = load(lens_v1);
    fx->v2 = load(lens_v2);
    fx->errors = json_array();
    fx->a = (tl_amend_t){.answers = fx->answers, .version = 1, .fields = fx->v1,
                         .latest_version = 2, .latest_fields = fx->v2};
}

static void amend_fx_free(amend_fx_t *fx)
{
    json_decref(fx->answers);
    json_decref(fx->v1);
    json_decref(fx->v2);
    json_decref(fx->errors);
}

static void test_amend_check(void **state)
{
    (void)state;
    amend_fx_t fx;
    tl_amended_t out;
    amend_fx(&fx, "{\"va\":70,\"lens\":\"phakic\",\"grade\":2}");

    /* the hole: on version 1, the new option is refused */
    json_t *patch = load("{\"lens\":\"natural\"}");
    fx.a.patch = patch;
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors), "invalid_answers");
    assert_error(fx.errors, "answers.lens", "not_an_option");
    assert_null(out.answers);
    assert_null(out.changes);

    /* moved to the latest, the whole set is judged by it: every problem at
     * once (the old option, the removed field, the new required one) */
    json_array_clear(fx.errors);
    fx.a.patch = NULL;
    fx.a.to_version = 2;
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors), "invalid_answers");
    assert_error(fx.errors, "answers.lens", "not_an_option");
    assert_error(fx.errors, "answers.grade", "unknown_field");
    assert_error(fx.errors, "answers.iop", "required");
    assert_int_equal(json_array_size(fx.errors), 3);

    /* answered as version 2 asks: allowed, the form on version 2 */
    json_array_clear(fx.errors);
    json_decref(patch);
    patch = load("{\"lens\":\"natural\",\"grade\":null,\"iop\":14.5}");
    fx.a.patch = patch;
    assert_null(tl_form_amend_check(&fx.a, &out, fx.errors));
    assert_int_equal(out.version, 2);
    assert_int_equal(json_array_size(out.changes), 3);
    json_t *want = load("{\"va\":70,\"lens\":\"natural\",\"iop\":14.5}");
    assert_true(json_equal(out.answers, want));
    json_decref(want);
    json_decref(out.answers);
    json_decref(out.changes);
    assert_int_equal(json_array_size(fx.errors), 0);

    /* only to the latest, only upward */
    fx.a.to_version = 3; /* no such version */
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors),
                        "template_version_not_latest");
    fx.a.latest_version = 3; /* version 2 is not the latest any more */
    fx.a.to_version = 2;
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors),
                        "template_version_not_latest");
    tl_amend_t down = {.answers = fx.answers, .version = 2, .fields = fx.v2,
                       .latest_version = 2, .patch = patch, .to_version = 1};
    assert_string_equal(tl_form_amend_check(&down, &out, fx.errors),
                        "template_version_not_latest");
    assert_int_equal(json_array_size(fx.errors), 0);
    json_decref(patch);

    /* its own version named: no move; nothing changed, nothing to amend */
    fx.a.latest_version = 2;
    fx.a.to_version = 1;
    fx.a.patch = NULL;
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors), "nothing_to_amend");
    patch = load("{\"va\":70}");
    fx.a.patch = patch;
    fx.a.to_version = 0;
    assert_string_equal(tl_form_amend_check(&fx.a, &out, fx.errors), "nothing_to_amend");
    json_decref(patch);
    amend_fx_free(&fx);

    /* a move alone is an amendment: answers version 2 accepts as they are */
    amend_fx(&fx, "{\"va\":70,\"lens\":\"pseudophakic\",\"iop\":12}");
    fx.a.fields = NULL; /* version 1 refuses iop: not asked */
    fx.a.to_version = 2;
    assert_null(tl_form_amend_check(&fx.a, &out, fx.errors));
    assert_int_equal(out.version, 2);
    assert_int_equal(json_array_size(out.changes), 0);
    json_decref(out.answers);
    json_decref(out.changes);
    amend_fx_free(&fx);
}

static const json_t *finding(const json_t *findings, const char *field, const char *code)
{
    size_t i;
    const json_t *f;
    json_array_foreach(findings, i, f)
    {
        if (!strcmp(json_string_value(json_object_get(f, "field")), field) &&
            !strcmp(json_string_value(json_object_get(f, "code")), code))
            return f;
    }
    fail_msg("no finding %s %s", field, code);
    return NULL;
}

static void test_quality(void **state)
{
    (void)state;
    json_t *v1 = load(lens_v1), *v2 = load(lens_v2), *findings = json_array();
    /* valid on its version 1, refused by version 2: the fix is the upgrade */
    json_t *a = load("{\"va\":70,\"lens\":\"phakic\",\"grade\":2}");
    assert_int_equal(tl_form_quality(a, 1, v1, 2, v2, findings), 3);
    const json_t *f = finding(findings, "lens", "not_an_option");
    assert_string_equal(json_string_value(json_object_get(f, "fix")), "upgrade");
    assert_int_equal(json_integer_value(json_object_get(f, "template_version")), 2);
    assert_non_null(json_string_value(json_object_get(f, "detail")));
    finding(findings, "grade", "unknown_field");
    finding(findings, "iop", "required");
    json_decref(a);

    /* on the latest version and valid there: nothing (the finding cleared) */
    json_array_clear(findings);
    a = load("{\"va\":70,\"lens\":\"natural\",\"iop\":14}");
    assert_int_equal(tl_form_quality(a, 2, v2, 2, v2, findings), 0);
    assert_int_equal(tl_form_quality(a, 2, v2, 2, NULL, findings), 0);
    json_decref(a);

    /* refused by its own version and the latest alike: once, as its own;
     * what only the latest refuses, as the upgrade's */
    a = load("{\"va\":170,\"lens\":\"phakic\"}");
    assert_int_equal(tl_form_quality(a, 1, v1, 2, v2, findings), 3);
    f = finding(findings, "va", "above_max");
    assert_string_equal(json_string_value(json_object_get(f, "fix")), "amend");
    assert_int_equal(json_integer_value(json_object_get(f, "template_version")), 1);
    assert_string_equal(json_string_value(json_object_get(finding(findings, "lens",
                                                                  "not_an_option"),
                                                          "fix")),
                        "upgrade");
    finding(findings, "iop", "required");
    json_decref(a);

    /* appends after what findings had; valid everywhere: nothing */
    a = load("{\"va\":70,\"lens\":\"pseudophakic\"}");
    assert_int_equal(tl_form_quality(a, 1, v1, 1, v1, findings), 0);
    assert_int_equal(json_array_size(findings), 3);
    json_decref(a);
    json_decref(findings);
    json_decref(v1);
    json_decref(v2);
}

static void test_fold_template_upgrade(void **state)
{
    (void)state;
    tl_form_t f = {0};
    json_t *h = json_array();
    json_t *ev = submitted(2, "{\"va_right\":85,\"eye\":\"R\"}");
    assert_null(tl_form_apply(&f, "FormSubmitted", ev, h));
    json_decref(ev);
    ev = signed_ev(3, 1);
    assert_null(tl_form_apply(&f, "FormSigned", ev, h));
    json_decref(ev);
    json_array_clear(h);

    /* a move alone: the version changes, the history says so, the
     * signature goes (it signed the form as it was) */
    ev = amended(4, "[]");
    json_object_set_new(ev, "template_version", json_integer(3));
    assert_null(tl_form_apply(&f, "FormAmended", ev, h));
    json_decref(ev);
    assert_int_equal(f.template_version, 3);
    assert_int_equal(f.revision, 2);
    assert_int_equal(f.status, TL_FORM_AMENDED);
    assert_string_equal(f.signed_by, "");
    json_t *want = load("[{\"field\":\"" TL_FORM_HISTORY_VERSION "\",\"before\":1,\"after\":3}]");
    assert_true(json_equal(h, want));
    json_decref(want);

    /* with answers: both in the history */
    json_array_clear(h);
    ev = amended(5, "[{\"field\":\"eye\",\"before\":\"R\",\"after\":\"L\"}]");
    json_object_set_new(ev, "template_version", json_integer(4));
    assert_null(tl_form_apply(&f, "FormAmended", ev, h));
    json_decref(ev);
    assert_int_equal(f.template_version, 4);
    assert_int_equal(json_array_size(h), 2);
    /* its own version again, or null: no move */
    json_array_clear(h);
    ev = amended(6, "[{\"field\":\"eye\",\"before\":\"L\",\"after\":\"R\"}]");
    json_object_set_new(ev, "template_version", json_integer(4));
    assert_null(tl_form_apply(&f, "FormAmended", ev, h));
    json_decref(ev);
    assert_int_equal(json_array_size(h), 1);
    assert_int_equal(f.template_version, 4);

    /* never downward, never beyond the limit, never nothing at all */
    json_array_clear(h);
    ev = amended(7, "[]");
    json_object_set_new(ev, "template_version", json_integer(2));
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_object_set_new(ev, "template_version", json_integer(TL_TEMPLATE_VERSIONS_MAX + 1));
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_object_set_new(ev, "template_version", json_string("5"));
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_object_set_new(ev, "template_version", json_null());
    assert_string_equal(tl_form_apply(&f, "FormAmended", ev, h), "invalid_event");
    json_decref(ev);
    assert_int_equal(f.template_version, 4);
    assert_int_equal(f.revision, 4);
    assert_int_equal(json_array_size(h), 0);
    json_decref(h);
    tl_form_cleanup(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_normalised),
        cmocka_unit_test(test_content_hash),
        cmocka_unit_test(test_template_every_error_at_once),
        cmocka_unit_test(test_answers_valid),
        cmocka_unit_test(test_answers_every_failure),
        cmocka_unit_test(test_answers_merge),
        cmocka_unit_test(test_template_versions),
        cmocka_unit_test(test_fold_submit_amend_sign),
        cmocka_unit_test(test_fold_refusals),
        cmocka_unit_test(test_fold_replay),
        cmocka_unit_test(test_stream_form_events),
        cmocka_unit_test(test_template_listed),
        cmocka_unit_test(test_amend_check),
        cmocka_unit_test(test_quality),
        cmocka_unit_test(test_fold_template_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
