/* libFuzzer target: form templates and answers as the gateway checks them
 * (projections/forms.c). The bytes are a request body; its "fields" are
 * checked as a template and its "answers" against that template when it
 * passes, and the whole body is checked as answers to a fixed template with
 * a field of every type and merged into a form as an amendment would be.
 * Whatever the bytes: no crash, no leak, and these hold:
 * - a template that passes passes again unchanged once normalised;
 * - the validators report exactly the errors they count, each with a
 *   field, a code and a detail;
 * - a merge changes only the members the patch names and records each;
 * - an amendment moving a form of the fixed template to the body's template
 *   as a new version is allowed exactly when the merged answers satisfy it,
 *   and data quality's findings are sane. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forms.h"
#include "tl_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const every_type =
    "[{\"name\":\"n\",\"type\":\"number\",\"min\":-1.5,\"max\":1e6,\"decimals\":2,\"unit\":\"u\"},"
    " {\"name\":\"i\",\"type\":\"integer\",\"required\":true,\"min\":0,\"max\":100},"
    " {\"name\":\"t\",\"type\":\"text\",\"max_length\":20},"
    " {\"name\":\"d\",\"type\":\"date\",\"min\":\"2000-01-01\",\"max\":\"2030-12-31\"},"
    " {\"name\":\"c\",\"type\":\"choice\",\"options\":[\"L\",\"R\"]},"
    " {\"name\":\"x\",\"type\":\"checkbox\",\"required\":true,\"options\":[\"a\",\"b\",\"c\"]}]";

static void errors_sane(const json_t *errors, size_t n)
{
    size_t i;
    json_t *e;
    if (n != json_array_size(errors))
        abort();
    json_array_foreach(errors, i, e)
    {
        if (!json_string_value(json_object_get(e, "field")) ||
            !json_string_value(json_object_get(e, "code")) ||
            !json_string_value(json_object_get(e, "detail")))
            abort();
    }
}

static void answers(const json_t *fields, const json_t *a)
{
    json_t *errors = json_array();
    errors_sane(errors, tl_answers_check(fields, a, errors));
    json_decref(errors);
}

/* A form on the fixed template (version 1) moved to v2 (version 2) with
 * the patch, and data quality on its answers. */
static void upgrade(const json_t *fixed, const json_t *v2, const json_t *form, const json_t *patch)
{
    json_t *errors = json_array(), *findings = json_array();
    tl_amended_t out;
    const tl_amend_t a = {.answers = form, .version = 1, .fields = fixed, .latest_version = 2,
                          .latest_fields = v2, .patch = patch, .to_version = 2};
    const char *why = tl_form_amend_check(&a, &out, errors);
    if (!why) {
        json_t *again = json_array();
        if (out.version != 2 || json_array_size(errors) || tl_answers_check(v2, out.answers, again))
            abort();
        json_decref(again);
    } else if (!strcmp(why, "invalid_answers")) {
        errors_sane(errors, json_array_size(errors));
        if (!json_array_size(errors) || out.answers || out.changes)
            abort();
    } else if (strcmp(why, "out_of_memory")) {
        abort();
    }
    json_decref(out.answers);
    json_decref(out.changes);
    size_t n = tl_form_quality(form, 1, fixed, 2, v2, findings), i;
    json_t *f;
    if (n != json_array_size(findings))
        abort();
    json_array_foreach(findings, i, f)
    {
        const char *fix = json_string_value(json_object_get(f, "fix"));
        if (!fix || (strcmp(fix, "amend") && strcmp(fix, "upgrade")) ||
            !json_string_value(json_object_get(f, "field")) ||
            !json_string_value(json_object_get(f, "code")))
            abort();
    }
    json_decref(errors);
    json_decref(findings);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    char why[160];
    if (tl_json_parse_object((const char *)data, size, &body, why, sizeof why))
        return 0;
    static json_t *fixed;
    if (!fixed) {
        json_t *in = json_loads(every_type, 0, NULL), *errors = json_array();
        fixed = tl_template_fields_check(in, errors);
        if (!fixed || json_array_size(errors))
            abort();
        json_decref(in);
        json_decref(errors);
    }
    json_t *errors = json_array();
    json_t *norm = tl_template_fields_check(json_object_get(body, "fields"), errors);
    if ((norm != NULL) != (json_array_size(errors) == 0))
        abort();
    errors_sane(errors, json_array_size(errors));
    if (norm) {
        json_t *again_errors = json_array();
        json_t *again = tl_template_fields_check(norm, again_errors);
        if (!again || !json_equal(again, norm))
            abort();
        json_decref(again);
        json_decref(again_errors);
        answers(norm, json_object_get(body, "answers"));
    }
    json_t *form = json_pack("{s:i, s:s, s:[s]}", "i", 5, "c", "L", "x", "a");
    const json_t *patch = json_object_get(body, "answers");
    if (norm && form && (!patch || json_is_object(patch)))
        upgrade(fixed, norm, form, patch);
    json_decref(form);
    answers(fixed, body);
    json_t *current = json_pack("{s:i, s:s, s:[s]}", "i", 5, "c", "L", "x", "a"), *changes = NULL;
    json_t *merged = tl_answers_merge(current, body, &changes);
    if (!merged || json_array_size(changes) > json_object_size(body))
        abort();
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        const char *f = json_string_value(json_object_get(c, "field"));
        json_t *after = json_object_get(c, "after");
        json_t *now = json_object_get(merged, f);
        if (!f || !after || (json_is_null(after) ? now != NULL : !json_equal(now, after)))
            abort();
    }
    json_decref(merged);
    json_decref(changes);
    json_decref(current);
    json_decref(norm);
    json_decref(errors);
    json_decref(body);
    return 0;
}
