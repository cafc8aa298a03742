/* Case report forms over real HTTP (DESIGN.md §5 Forms): templates and their
 * versions, responses validated field by field, amendments with a reason,
 * e-signatures with re-authentication (wrong credential, wrong role, right
 * one, an amendment removing the signature), the study lock, and the forms
 * projection rebuilt from offset 0 equal to the live one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tl_stack_t stack;
static char study[40], site[40], part[40], part2[40];
static char clin[80], coord[80], monitor[80], clin_id[40];

#define SIGNING_PASSWORD "correct horse battery staple"

static const char *const eye_exam_v1 =
    "{\"name\":\"eye_exam\",\"title\":\"Eye examination\",\"fields\":["
    "{\"name\":\"va_right\",\"label\":\"Visual acuity, right eye\",\"type\":\"integer\","
    " \"required\":true,\"min\":0,\"max\":100,\"unit\":\"letters\"},"
    "{\"name\":\"va_left\",\"type\":\"integer\",\"required\":true,\"min\":0,\"max\":100,"
    " \"unit\":\"letters\"},"
    "{\"name\":\"iop_right\",\"type\":\"number\",\"min\":5,\"max\":60,\"decimals\":1,"
    " \"unit\":\"mmHg\"},"
    "{\"name\":\"lens\",\"type\":\"choice\",\"options\":[\"phakic\",\"pseudophakic\"]},"
    "{\"name\":\"findings\",\"type\":\"checkbox\",\"options\":[\"drusen\",\"edema\",\"bleed\"]},"
    "{\"name\":\"exam_date\",\"type\":\"date\",\"min\":\"2020-01-01\"},"
    "{\"name\":\"notes\",\"type\":\"text\",\"max_length\":200}]}";

static json_t *call(const char *token, const char *method, const char *path, const char *body,
                    long want)
{
    tl_http_resp_t r = tl_http_as(&stack, token, method, path, body,
                                  (const char *const[]){"Content-Type: application/json", NULL});
    if (r.status != want) {
        char *dump = r.body ? json_dumps(r.body, 0) : NULL;
        fail_msg("%s %s: %ld, want %ld: %s", method, path, r.status, want, dump ? dump : "");
    }
    json_t *b = r.body;
    r.body = NULL;
    tl_http_free(&r);
    return b;
}

static json_t *admin(const char *method, const char *path, const char *body, long want)
{
    return call(stack.token, method, path, body, want);
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("no string %s", key);
    return s;
}

static bool has_error(const json_t *problem, const char *field, const char *code)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(problem, "errors"), i, e)
    {
        const char *c = json_string_value(json_object_get(e, "code"));
        if (!strcmp(json_string_value(json_object_get(e, "field")), field) &&
            (!code || (c && !strcmp(c, code))))
            return true;
    }
    return false;
}

static void complete(const char *pid, const char *visit, const char *date)
{
    char path[200], body[100];
    snprintf(path, sizeof path, "/v1/participants/%s/visits/%s/complete", pid, visit);
    snprintf(body, sizeof body, "{\"actual_date\":\"%s\"}", date);
    json_decref(admin("POST", path, body, 200));
}

/* eye_exam's first version, published in setup (the protocol lists it) */
static char eye_exam_id[40];

static void participant_id(const char *code, char out[40])
{
    char sql[200];
    tl_pg_res_t *res = NULL;
    snprintf(sql, sizeof sql, "SELECT id FROM participants WHERE participant_code = '%s'", code);
    assert_int_equal(tl_pg_exec(stack.pg, sql, 0, NULL, &res), TL_OK);
    snprintf(out, 40, "%s", tl_pg_get(res, 0, 0));
    tl_pg_res_free(res);
}

static int setup(void **state)
{
    (void)state;
    char path[200];
    tl_stack_start(&stack, "crf");
    tl_stack_study(&stack, "CRF-1", study, site);
    /* a visit type lists only templates the study has: published first */
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    json_t *t = admin("POST", path, eye_exam_v1, 201);
    assert_int_equal(json_integer_value(json_object_get(t, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(t, "fields")), 7);
    snprintf(eye_exam_id, sizeof eye_exam_id, "%s", str(t, "id"));
    json_decref(t);
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    json_decref(admin("POST", path,
                      "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                      "\"window_after_days\":0,\"form_templates\":[\"eye_exam\"]}",
                      201));
    json_decref(admin("POST", path,
                      "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
                      "\"window_after_days\":14,\"form_templates\":[\"eye_exam\"]}",
                      201));
    assert_int_equal(tl_stack_enrol(&stack, study, site, "CRF-001", false), 201);
    assert_int_equal(tl_stack_enrol(&stack, study, site, "CRF-002", false), 201);
    participant_id("CRF-001", part);
    participant_id("CRF-002", part2);
    tl_stack_token(&stack, "clinician", site, clin);
    tl_stack_token(&stack, "coordinator", site, coord);
    tl_stack_token(&stack, "monitor", site, monitor);
    json_t *me = call(clin, "GET", "/v1/me", NULL, 200);
    snprintf(clin_id, sizeof clin_id, "%s", str(me, "id"));
    json_decref(me);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static void test_templates_and_versions(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    /* setup published version 1; the same again: no new version, no new
     * event */
    long long events = tl_sql_int(&stack, "SELECT count(*) FROM form_templates");
    json_t *t = admin("POST", path, eye_exam_v1, 200);
    assert_int_equal(json_integer_value(json_object_get(t, "version")), 1);
    json_decref(t);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM form_templates"), events);

    /* a template with every kind of problem: all of them at once */
    t = admin("POST", path,
              "{\"name\":\"bad\",\"fields\":[{\"name\":\"a\",\"type\":\"slider\"},"
              "{\"name\":\"b\",\"type\":\"integer\",\"min\":9,\"max\":1},"
              "{\"name\":\"b\",\"type\":\"choice\"}]}",
              422);
    assert_string_equal(str(t, "type"), "/problems/invalid-template");
    assert_true(has_error(t, "fields[0].type", "unknown_type"));
    assert_true(has_error(t, "fields[1].max", "max_below_min"));
    assert_true(has_error(t, "fields[2].options", "invalid_options"));
    assert_true(has_error(t, "fields[2].name", "duplicate_name"));
    json_decref(t);
    json_decref(admin("POST", path, "{\"name\":\"Bad Name\",\"fields\":[]}", 400));
    /* the coordinator does not define the protocol */
    json_decref(call(coord, "POST", path, eye_exam_v1, 403));

    /* readable by study readers; a version by number */
    t = call(monitor, "GET", path, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(t, "items")), 1);
    json_decref(t);
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates/eye_exam?version=1", study);
    t = call(monitor, "GET", path, NULL, 200);
    assert_string_equal(str(t, "id"), eye_exam_id);
    json_decref(t);
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates/eye_exam?version=2", study);
    json_decref(call(monitor, "GET", path, NULL, 404));
}

static char form_id[40];

static void test_submit_validated(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", part);
    /* the visit must have taken place */
    json_t *p =
        call(clin, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":80,\"va_left\":75}}", 422);
    assert_string_equal(str(p, "type"), "/problems/visit-not-completed");
    json_decref(p);
    complete(part, "Baseline", "2026-01-01");

    /* every error at once, each named */
    p = call(clin, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":101,\"iop_right\":15.55,"
             "\"lens\":\"aphakic\",\"findings\":[\"drusen\",\"drusen\"],"
             "\"exam_date\":\"2026-02-30\",\"colour\":\"red\"}}",
             422);
    assert_string_equal(str(p, "type"), "/problems/invalid-answers");
    assert_true(has_error(p, "answers.va_right", "above_max"));
    assert_true(has_error(p, "answers.va_left", "required"));
    assert_true(has_error(p, "answers.iop_right", "too_many_decimals"));
    assert_true(has_error(p, "answers.lens", "not_an_option"));
    assert_true(has_error(p, "answers.findings", "duplicate_option"));
    assert_true(has_error(p, "answers.exam_date", "not_a_date"));
    assert_true(has_error(p, "answers.colour", "unknown_field"));
    assert_int_equal(json_array_size(json_object_get(p, "errors")), 7);
    json_decref(p);
    p = call(clin, "POST", path, "{\"template\":\"no_such\",\"answers\":{}}", 422);
    assert_true(has_error(p, "template", NULL));
    json_decref(p);
    /* nothing of that reached the log */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), 0);

    /* valid: 201 with the form, status submitted, the template version kept */
    p = call(clin, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":80,\"va_left\":75,"
             "\"iop_right\":15.5,\"lens\":\"phakic\",\"findings\":[\"drusen\"],"
             "\"exam_date\":\"2026-01-01\",\"notes\":null}}",
             201);
    snprintf(form_id, sizeof form_id, "%s", str(p, "id"));
    assert_string_equal(str(p, "status"), "submitted");
    assert_string_equal(str(p, "visit"), "Baseline");
    assert_int_equal(json_integer_value(json_object_get(p, "template_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "revision")), 1);
    assert_true(json_is_null(json_object_get(p, "signature")));
    assert_int_equal(json_object_size(json_object_get(p, "answers")), 6); /* no null kept */
    json_decref(p);
    /* a visit has one form of a template */
    p = call(coord, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":1,"
             "\"va_left\":1}}",
             409);
    assert_string_equal(str(p, "type"), "/problems/form-already-submitted");
    json_decref(p);
    /* the monitor reads; a monitor does not enter data */
    snprintf(path, sizeof path, "/v1/participants/%s/forms", part);
    p = call(monitor, "GET", path, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(p, "items")), 1);
    json_decref(p);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", part);
    json_decref(call(monitor, "POST", path, "{}", 403));
}

static void test_amend_and_sign(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "/v1/forms/%s", form_id);
    /* no reason: 422, and nothing changes */
    json_t *p = call(clin, "PATCH", path, "{\"answers\":{\"va_right\":78}}", 422);
    assert_string_equal(str(p, "type"), "/problems/reason-required");
    json_decref(p);
    p = call(clin, "PATCH", path,
             "{\"answers\":{\"va_right\":78,\"notes\":\"re-measured\"},"
             "\"reason\":\"transcription error\"}",
             200);
    assert_string_equal(str(p, "status"), "amended");
    assert_int_equal(json_integer_value(json_object_get(p, "revision")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "answers"), "va_right")),
                     78);
    json_decref(p);
    /* changing nothing is no amendment; invalid answers are refused */
    json_decref(call(clin, "PATCH", path, "{\"answers\":{\"va_right\":78},\"reason\":\"x\"}", 422));
    p = call(clin, "PATCH", path, "{\"answers\":{\"va_left\":null},\"reason\":\"x\"}", 422);
    assert_true(has_error(p, "answers.va_left", "required"));
    json_decref(p);

    /* signing: no credential 422, wrong credential 422 (not 401: the token
     * is fine), wrong role 403, right one 201; each names the revision */
    char sign[200];
    snprintf(sign, sizeof sign, "/v1/forms/%s/sign", form_id);
    p = call(clin, "POST", sign,
             "{\"meaning\":\"approved\",\"password\":\"whatever it is\",\"revision\":2}", 422);
    assert_string_equal(str(p, "type"), "/problems/no-signing-credential");
    json_decref(p);
    tl_stack_signing_credential(&stack, clin, SIGNING_PASSWORD);
    p = call(clin, "POST", sign,
             "{\"meaning\":\"approved\",\"password\":\"not my password\",\"revision\":2}", 422);
    assert_string_equal(str(p, "type"), "/problems/signing-credential-invalid");
    json_decref(p);
    json_decref(call(coord, "POST", sign,
                     "{\"meaning\":\"approved\",\"password\":\"" SIGNING_PASSWORD
                     "\",\"revision\":2}",
                     403));
    json_decref(call(clin, "POST", sign, "{\"meaning\":\"liked\",\"password\":\"x\",\"revision\":2}",
                     400));
    p = call(clin, "POST", sign,
             "{\"meaning\":\"approved\",\"password\":\"" SIGNING_PASSWORD "\",\"revision\":2}",
             200);
    assert_string_equal(str(p, "status"), "signed");
    json_t *sig = json_object_get(p, "signature");
    assert_string_equal(str(sig, "signed_by"), clin_id);
    assert_string_equal(str(sig, "meaning"), "approved");
    assert_non_null(json_string_value(json_object_get(sig, "signer_name")));
    assert_int_equal(strlen(str(sig, "content_sha256")), 64);
    json_decref(p);
    json_decref(call(clin, "POST", sign,
                     "{\"meaning\":\"approved\",\"password\":\"" SIGNING_PASSWORD
                     "\",\"revision\":2}",
                     409));
    /* the credential is never in the log */
    assert_true(tl_wait_count(
        &stack, "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.FormSigned'", 1,
        20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE position("
                                        "convert_to('" SIGNING_PASSWORD "', 'UTF8') IN value) > 0"),
                     0);

    /* an amendment after the signature removes it; re-signing signs again */
    p = call(coord, "PATCH", path,
             "{\"answers\":{\"lens\":\"pseudophakic\"},"
             "\"reason\":\"cataract surgery recorded late\"}",
             200);
    assert_string_equal(str(p, "status"), "amended");
    assert_true(json_is_null(json_object_get(p, "signature")));
    json_decref(p);
    p = call(clin, "POST", sign,
             "{\"meaning\":\"reviewed\",\"password\":\"" SIGNING_PASSWORD "\",\"revision\":3}",
             200);
    assert_int_equal(json_integer_value(json_object_get(p, "revision")), 3);
    json_decref(p);

    /* the field-level history: every value, who, when, why */
    p = call(monitor, "GET", path, NULL, 200);
    json_t *h = json_object_get(p, "history");
    size_t i;
    json_t *e;
    int va_right = 0, lens = 0;
    json_array_foreach(h, i, e)
    {
        const char *f = str(e, "field");
        if (!strcmp(f, "va_right") && json_integer_value(json_object_get(e, "revision")) == 2) {
            assert_int_equal(json_integer_value(json_object_get(e, "before")), 80);
            assert_int_equal(json_integer_value(json_object_get(e, "after")), 78);
            assert_string_equal(str(e, "reason"), "transcription error");
            assert_string_equal(str(e, "actor_id"), clin_id);
            va_right++;
        }
        if (!strcmp(f, "lens") && json_integer_value(json_object_get(e, "revision")) == 3) {
            assert_string_equal(str(e, "before"), "phakic");
            assert_string_equal(str(e, "after"), "pseudophakic");
            assert_string_equal(str(e, "event_type"), "FormAmended");
            lens++;
        }
    }
    assert_int_equal(va_right, 1);
    assert_int_equal(lens, 1);
    /* 6 answers submitted, 2 then 1 changed */
    assert_int_equal(json_array_size(h), 9);
    json_decref(p);

    /* the participant's history tells the same story, field by field, once
     * the archive has the last signature */
    assert_true(tl_wait_count(
        &stack, "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.FormSigned'", 2,
        20000));
    snprintf(path, sizeof path, "/v1/participants/%s/history", part);
    p = call(monitor, "GET", path, NULL, 200);
    int amended = 0, signatures = 0;
    json_array_foreach(json_object_get(p, "items"), i, e)
    {
        const char *type = str(e, "type");
        json_t *c;
        size_t j;
        json_array_foreach(json_object_get(e, "changes"), j, c)
        {
            const char *f = str(c, "field");
            if (!strcmp(type, "FormAmended") &&
                !strcmp(f, "forms.Baseline.eye_exam.answers.va_right")) {
                assert_int_equal(json_integer_value(json_object_get(c, "before")), 80);
                assert_int_equal(json_integer_value(json_object_get(c, "after")), 78);
                assert_string_equal(str(e, "reason"), "transcription error");
                amended++;
            }
            if (!strcmp(type, "FormAmended") &&
                !strcmp(f, "forms.Baseline.eye_exam.signature_meaning")) {
                /* the amendment removed the signature */
                assert_string_equal(str(c, "before"), "approved");
                assert_true(json_is_null(json_object_get(c, "after")));
                amended++;
            }
            if (!strcmp(type, "FormSigned") && !strcmp(f, "forms.Baseline.eye_exam.status")) {
                assert_string_equal(str(c, "after"), "signed");
                signatures++;
            }
        }
    }
    assert_int_equal(amended, 2);
    assert_int_equal(signatures, 2);
    json_decref(p);
}

static void test_template_change_keeps_old_version(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    /* version 2: intraocular pressure becomes required, acuity capped lower */
    json_t *v1 = json_loads(eye_exam_v1, 0, NULL);
    json_t *fields = json_object_get(v1, "fields");
    json_object_set_new(json_array_get(fields, 0), "max", json_integer(95));
    json_object_set_new(json_array_get(fields, 2), "required", json_true());
    char *body = json_dumps(v1, JSON_COMPACT);
    json_t *t = admin("POST", path, body, 201);
    assert_int_equal(json_integer_value(json_object_get(t, "version")), 2);
    json_decref(t);
    free(body);
    json_decref(v1);
    /* the old form keeps version 1 */
    snprintf(path, sizeof path, "/v1/forms/%s", form_id);
    t = call(clin, "GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(t, "template_version")), 1);
    json_decref(t);
    /* a new one is entered against version 2 */
    complete(part2, "Baseline", "2026-01-01");
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", part2);
    t = call(clin, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":96,"
             "\"va_left\":70}}",
             422);
    assert_true(has_error(t, "answers.va_right", "above_max"));
    assert_true(has_error(t, "answers.iop_right", "required"));
    json_decref(t);
    t = call(clin, "POST", path,
             "{\"template\":\"eye_exam\",\"answers\":{\"va_right\":90,"
             "\"va_left\":70,\"iop_right\":14}}",
             201);
    assert_int_equal(json_integer_value(json_object_get(t, "template_version")), 2);
    json_decref(t);
}

/* A form of a template its visit's type does not list is refused, naming
 * the visit type and what it lists (issue 26, hole 6): before, it was
 * accepted without a word and no report would ever ask for it. */
static void test_form_not_in_visit(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    json_decref(admin("POST", path,
                      "{\"name\":\"ae_log\",\"fields\":[{\"name\":\"term\",\"type\":\"text\","
                      "\"required\":true}]}",
                      201));
    long long forms = tl_sql_int(&stack, "SELECT count(*) FROM forms");
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", part);
    json_t *p = call(clin, "POST", path, "{\"template\":\"ae_log\",\"answers\":{\"term\":\"x\"}}",
                     422);
    assert_string_equal(str(p, "type"), "/problems/template-not-in-visit");
    assert_string_equal(str(p, "visit_type"), "Baseline");
    json_t *want = json_pack("[s]", "eye_exam");
    assert_true(json_equal(json_object_get(p, "templates"), want));
    json_decref(want);
    assert_non_null(strstr(str(p, "detail"), "Baseline"));
    assert_non_null(strstr(str(p, "detail"), "eye_exam"));
    assert_true(has_error(p, "template", NULL));
    json_decref(p);
    /* a template that does not exist is still named as such */
    p = call(clin, "POST", path, "{\"template\":\"no_such\",\"answers\":{}}", 422);
    assert_string_equal(str(p, "type"), "/problems/unknown-template");
    json_decref(p);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), forms);
}

/* The data-quality items of a form. */
static json_t *quality_items(const char *form)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality", study);
    json_t *r = admin("GET", path, NULL, 200), *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "items"), i, e)
    {
        const char *f = json_string_value(json_object_get(e, "form_id"));
        if (f && !strcmp(f, form))
            json_array_append(out, e);
    }
    json_decref(r);
    return out;
}

/* A template's new version renames an option, adds a required field and
 * adds an optional one (issue 26, hole 5): data quality names the fix (an
 * upgrade), an amendment on the old version cannot make it, an amendment
 * moving the form to the latest version does, with every problem reported
 * at once, the signature removed, the history showing the move, and the
 * finding cleared. */
static void test_template_upgrade(void **state)
{
    (void)state;
    char path[200], form[200];
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    /* version 3: "pseudophakic" becomes "iol", central subfield thickness
     * required, a new optional field */
    json_t *v3 = json_loads(eye_exam_v1, 0, NULL);
    json_t *fields = json_object_get(v3, "fields");
    json_object_set_new(json_array_get(fields, 0), "max", json_integer(95));
    json_object_set_new(json_array_get(fields, 2), "required", json_true());
    json_object_set_new(json_array_get(fields, 3), "options", json_pack("[s, s]", "phakic", "iol"));
    json_array_append_new(fields, json_pack("{s:s, s:s, s:b, s:i, s:i}", "name", "cst", "type",
                                            "integer", "required", 1, "min", 100, "max", 900));
    json_array_append_new(fields, json_pack("{s:s, s:s}", "name", "oct_note", "type", "text"));
    char *body = json_dumps(v3, JSON_COMPACT);
    json_t *t = admin("POST", path, body, 201);
    assert_int_equal(json_integer_value(json_object_get(t, "version")), 3);
    json_decref(t);
    free(body);
    json_decref(v3);

    /* the form (version 1, signed) is fine on its version, not on the
     * latest: each finding says the fix is the upgrade */
    json_t *items = quality_items(form_id);
    assert_int_equal(json_array_size(items), 2);
    size_t i;
    json_t *e;
    json_array_foreach(items, i, e)
    {
        assert_string_equal(str(e, "fix"), "upgrade");
        assert_int_equal(json_integer_value(json_object_get(e, "template_version")), 3);
        assert_int_equal(json_integer_value(json_object_get(e, "form_template_version")), 1);
        const char *field = str(e, "field");
        assert_true((!strcmp(field, "lens") && !strcmp(str(e, "kind"), "invalid_value")) ||
                    (!strcmp(field, "cst") && !strcmp(str(e, "kind"), "missing_required")));
    }
    json_decref(items);

    /* on its own version the new option and the new field are refused */
    snprintf(form, sizeof form, "/v1/forms/%s", form_id);
    json_t *p = call(clin, "PATCH", form, "{\"answers\":{\"lens\":\"iol\",\"cst\":300},"
                                          "\"reason\":\"lens renamed in amendment 3\"}",
                     422);
    assert_true(has_error(p, "answers.lens", "not_an_option"));
    assert_true(has_error(p, "answers.cst", "unknown_field"));
    json_decref(p);
    /* only to the latest version, only upward */
    p = call(clin, "PATCH", form, "{\"template_version\":2,\"reason\":\"x\"}", 422);
    assert_string_equal(str(p, "type"), "/problems/template-version-not-latest");
    json_decref(p);
    p = call(clin, "PATCH", form, "{\"template_version\":4,\"reason\":\"x\"}", 422);
    assert_string_equal(str(p, "type"), "/problems/template-version-not-latest");
    json_decref(p);
    /* moved, the whole answer set is checked against version 3: every
     * problem at once */
    p = call(clin, "PATCH", form, "{\"template_version\":3,\"reason\":\"amendment 3\"}", 422);
    assert_string_equal(str(p, "type"), "/problems/invalid-answers");
    assert_true(has_error(p, "answers.lens", "not_an_option"));
    assert_true(has_error(p, "answers.cst", "required"));
    assert_int_equal(json_array_size(json_object_get(p, "errors")), 2);
    json_decref(p);
    /* a version change needs a reason like any amendment */
    p = call(clin, "PATCH", form, "{\"template_version\":3,\"answers\":{\"lens\":\"iol\"}}", 422);
    assert_string_equal(str(p, "type"), "/problems/reason-required");
    json_decref(p);
    /* nothing at all is malformed */
    json_decref(call(clin, "PATCH", form, "{\"reason\":\"x\"}", 400));

    /* the upgrade: version 3, the new answers, the signature removed */
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM forms WHERE status = 'signed' AND id = '%s'",
             form_id);
    assert_int_equal(tl_sql_int(&stack, sql), 1);
    p = call(clin, "PATCH", form,
             "{\"template_version\":3,\"answers\":{\"lens\":\"iol\",\"cst\":300},"
             "\"reason\":\"protocol amendment 3: lens status renamed, thickness added\"}",
             200);
    assert_int_equal(json_integer_value(json_object_get(p, "template_version")), 3);
    assert_int_equal(json_integer_value(json_object_get(p, "revision")), 4);
    assert_string_equal(str(p, "status"), "amended");
    assert_true(json_is_null(json_object_get(p, "signature")));
    assert_string_equal(str(json_object_get(p, "answers"), "lens"), "iol");
    json_decref(p);
    /* the finding cleared */
    items = quality_items(form_id);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    /* the form is on version 3 now: version 3's optional field can be added
     * and going back is refused */
    json_decref(call(clin, "PATCH", form,
                     "{\"answers\":{\"oct_note\":\"scan repeated\"},\"reason\":\"late entry\"}",
                     200));
    p = call(clin, "PATCH", form, "{\"template_version\":1,\"reason\":\"x\"}", 422);
    assert_string_equal(str(p, "type"), "/problems/template-version-not-latest");
    json_decref(p);

    /* the form's history shows the move at revision 4, with its reason */
    p = call(monitor, "GET", form, NULL, 200);
    int moved = 0;
    json_array_foreach(json_object_get(p, "history"), i, e)
    {
        if (strcmp(str(e, "field"), "@template_version"))
            continue;
        assert_int_equal(json_integer_value(json_object_get(e, "revision")), 4);
        assert_int_equal(json_integer_value(json_object_get(e, "before")), 1);
        assert_int_equal(json_integer_value(json_object_get(e, "after")), 3);
        assert_string_equal(str(e, "reason"),
                            "protocol amendment 3: lens status renamed, thickness added");
        moved++;
    }
    assert_int_equal(moved, 1);
    json_decref(p);
    /* and so does the participant's, once the archive has it */
    assert_true(tl_wait_count(
        &stack, "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.FormAmended'", 4,
        20000));
    snprintf(path, sizeof path, "/v1/participants/%s/history", part);
    p = call(monitor, "GET", path, NULL, 200);
    moved = 0;
    json_array_foreach(json_object_get(p, "items"), i, e)
    {
        json_t *c;
        size_t j;
        json_array_foreach(json_object_get(e, "changes"), j, c)
        {
            if (strcmp(str(c, "field"), "forms.Baseline.eye_exam.template_version") ||
                strcmp(str(e, "type"), "FormAmended"))
                continue;
            assert_string_equal(str(e, "reason"),
                                "protocol amendment 3: lens status renamed, thickness added");
            assert_int_equal(json_integer_value(json_object_get(c, "before")), 1);
            assert_int_equal(json_integer_value(json_object_get(c, "after")), 3);
            moved++;
        }
    }
    assert_int_equal(moved, 1);
    json_decref(p);

    /* the other form (version 2) lacks what version 3 requires */
    snprintf(path, sizeof path, "SELECT id FROM forms WHERE id <> '%s'", form_id);
    char other[40];
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(stack.pg, path, 0, NULL, &res), TL_OK);
    snprintf(other, sizeof other, "%s", tl_pg_get(res, 0, 0));
    tl_pg_res_free(res);
    items = quality_items(other);
    assert_int_equal(json_array_size(items), 1);
    e = json_array_get(items, 0);
    assert_string_equal(str(e, "field"), "cst");
    assert_string_equal(str(e, "fix"), "upgrade");
    assert_int_equal(json_integer_value(json_object_get(e, "form_template_version")), 2);
    json_decref(items);
}

static void test_lock_rejects_edits(void **state)
{
    (void)state;
    char path[200], form[200];
    snprintf(path, sizeof path, "/v1/studies/%s/lock", study);
    json_decref(admin("POST", path, "{\"reason\":\"interim analysis\"}", 200));
    snprintf(form, sizeof form, "/v1/forms/%s", form_id);
    json_t *p = call(clin, "PATCH", form, "{\"answers\":{\"va_right\":70},\"reason\":\"x\"}", 422);
    assert_string_equal(str(p, "type"), "/problems/study-locked");
    json_decref(p);
    snprintf(path, sizeof path, "/v1/studies/%s/unlock", study);
    json_decref(admin("POST", path, "{\"reason\":\"analysis done\"}", 200));
}

/* The forms projection rebuilt from offset 0 equals the live one, and it
 * took the same stream decisions as the others. */
static void test_rebuild_forms_equals_live(void **state)
{
    (void)state;
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"
                                        " WHERE topic = 'trialog.participant.v1'"),
                     0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants p"
                                        " FULL JOIN form_participants f ON f.id = p.id"
                                        " WHERE f.version IS DISTINCT FROM p.version"
                                        " OR f.status IS DISTINCT FROM p.status"),
                     0);
    tl_sql_int(&stack, "CREATE TABLE live_forms AS SELECT * FROM forms;"
                       " CREATE TABLE live_history AS SELECT * FROM form_field_history;"
                       " CREATE TABLE live_templates AS SELECT * FROM form_templates;"
                       " CREATE TABLE live_fparts AS SELECT * FROM form_participants; SELECT 1");
    tl_indexes_snap(&stack, "live_indexes");
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild forms", &out);
    if (rc)
        fail_msg("rebuild failed (%d):\n%s", rc, out);
    free(out);
    tl_indexes_same(&stack, "live_indexes");
    const char *pairs[][2] = {{"live_forms", "forms"},
                              {"live_history", "form_field_history"},
                              {"live_templates", "form_templates"},
                              {"live_fparts", "form_participants"}};
    for (size_t i = 0; i < 4; i++) {
        char sql[400];
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT count(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s) a)"
                 " + (SELECT count(*) FROM (SELECT * FROM %s EXCEPT SELECT * FROM %s) b)",
                 pairs[i][0], pairs[i][1], pairs[i][1], pairs[i][0]);
        if (tl_sql_int(&stack, sql))
            fail_msg("%s differs from its rebuild", pairs[i][1]);
    }
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), 2);
    /* 12, then the upgrade's lens, cst and version, and oct_note */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM form_field_history"), 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates_and_versions),
        cmocka_unit_test(test_submit_validated),
        cmocka_unit_test(test_amend_and_sign),
        cmocka_unit_test(test_form_not_in_visit),
        cmocka_unit_test(test_template_change_keeps_old_version),
        cmocka_unit_test(test_template_upgrade),
        cmocka_unit_test(test_lock_rejects_edits),
        cmocka_unit_test(test_rebuild_forms_equals_live),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
