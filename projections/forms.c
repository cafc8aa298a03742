#include "forms.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reasons.h"
#include "tl_date.h"
#include "tl_secret.h"

const char *const tl_signature_meanings[] = {"authored", "reviewed", "approved", NULL};

/* ---- helpers ---- */

/* The member key of o, NULL when absent or null. */
static const json_t *get(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static void error(json_t *errors, const char *field, const char *code, const char *detail)
{
    json_array_append_new(
        errors, json_pack("{s:s, s:s, s:s}", "field", field, "code", code, "detail", detail));
}

/* Code points of strict UTF-8 text without control characters; -1 when it
 * is not such text. Tabs and line breaks pass when multiline. */
static long text_chars(const json_t *v, bool multiline)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), start = 0;
    if (!s)
        return -1;
    for (size_t i = 0; i <= len; i++) {
        bool brk = i == len || (multiline && (s[i] == '\t' || s[i] == '\n' || s[i] == '\r'));
        if (!brk)
            continue;
        if (!tl_text_ok(s + start, i - start))
            return -1;
        start = i + 1;
    }
    return (long)tl_text_chars(s); /* no NUL inside: tl_text_ok refuses control characters */
}

static bool string_ok(const json_t *v, long min, long max)
{
    long n = text_chars(v, false);
    return n >= min && n <= max;
}

static bool date_value(const json_t *v, int32_t *d)
{
    return json_is_string(v) && !tl_date_parse(json_string_value(v), d);
}

/* Whether x has at most d decimal places (as the client wrote it: a
 * decimal in a double is off by a rounding error at most). */
static bool decimals_ok(double x, int d)
{
    double scaled = x * pow(10, d);
    return fabs(scaled - round(scaled)) <= 1e-9 * fmax(1.0, fabs(scaled));
}

/* ---- field types ---- */

typedef enum { F_NUMBER, F_INTEGER, F_TEXT, F_DATE, F_CHOICE, F_CHECKBOX, F_NTYPES } ftype_t;

static const char *const type_names[F_NTYPES] = {"number", "integer", "text",
                                                 "date",   "choice",  "checkbox"};

/* Every member a field may have, in the order a normalised field has them,
 * and which types take it. */
#define T(x) (1u << (x))
#define ALL_TYPES (T(F_NTYPES) - 1u)
static const struct {
    const char *key;
    unsigned types;
} members[] = {
    {"name", ALL_TYPES},
    {"label", ALL_TYPES},
    {"type", ALL_TYPES},
    {"required", ALL_TYPES},
    {"unit", T(F_NUMBER) | T(F_INTEGER)},
    {"decimals", T(F_NUMBER)},
    {"min", T(F_NUMBER) | T(F_INTEGER) | T(F_DATE)},
    {"max", T(F_NUMBER) | T(F_INTEGER) | T(F_DATE)},
    {"max_length", T(F_TEXT)},
    {"research_safe", T(F_TEXT)},
    {"options", T(F_CHOICE) | T(F_CHECKBOX)},
};
#define NMEMBERS (sizeof members / sizeof members[0])

static const char *name_of(const json_t *field)
{
    const char *n = json_string_value(get(field, "name"));
    return n ? n : "";
}

static int type_of(const json_t *field)
{
    const char *t = json_string_value(get(field, "type"));
    for (int i = 0; t && i < F_NTYPES; i++)
        if (!strcmp(t, type_names[i]))
            return i;
    return -1;
}

/* ---- templates ---- */

typedef struct {
    json_t *errors;
    char path[64]; /* "fields[12]" */
    size_t nerr;
} tcheck_t;

static void terr(tcheck_t *c, const char *key, const char *code, const char *detail)
{
    char field[96];
    if (key)
        snprintf(field, sizeof field, "%s.%s", c->path, key);
    else
        snprintf(field, sizeof field, "%s", c->path);
    error(c->errors, field, code, detail);
    c->nerr++;
}

/* A bound of a number, integer or date field; false with the error added. */
static bool bound_ok(tcheck_t *c, int type, const char *key, const json_t *v, double *out)
{
    int32_t d;
    if (type == F_DATE) {
        if (!date_value(v, &d)) {
            terr(c, key, "not_a_date", "must be a calendar date YYYY-MM-DD");
            return false;
        }
        *out = d;
        return true;
    }
    if (type == F_INTEGER ? !json_is_integer(v) : !json_is_number(v)) {
        terr(c, key, type == F_INTEGER ? "not_an_integer" : "not_a_number",
             type == F_INTEGER ? "must be an integer" : "must be a number");
        return false;
    }
    *out = json_number_value(v);
    if (fabs(*out) > TL_NUMBER_ABS_MAX) {
        terr(c, key, "out_of_bounds", "must be between -1e12 and 1e12");
        return false;
    }
    return true;
}

static void options_check(tcheck_t *c, const json_t *opts)
{
    size_t n = json_array_size(opts);
    if (!json_is_array(opts) || n < 1 || n > TL_FIELD_OPTIONS_MAX) {
        terr(c, "options", "invalid_options", "must be a list of 1 to 100 options");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(opts, i);
        if (!string_ok(o, 1, TL_FIELD_OPTION_MAX)) {
            terr(c, "options", "invalid_option", "each option is text of 1 to 100 characters");
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (json_equal(o, json_array_get(opts, j))) {
                terr(c, "options", "duplicate_option", "options must be distinct");
                return;
            }
    }
}

/* One field; the normalised field or NULL (errors added). */
static json_t *field_check(tcheck_t *c, const json_t *f)
{
    size_t before = c->nerr;
    if (!json_is_object(f)) {
        terr(c, NULL, "not_an_object", "must be an object");
        return NULL;
    }
    int type = type_of(f);
    if (!get(f, "type"))
        terr(c, "type", "required", "is required");
    else if (type < 0)
        terr(c, "type", "unknown_type",
             "must be one of number, integer, text, date, choice, checkbox");
    const char *name = json_string_value(get(f, "name"));
    if (!get(f, "name"))
        terr(c, "name", "required", "is required");
    else if (!name || !tl_json_name_ok(name))
        terr(c, "name", "invalid_name", "must be 1 to 64 of a-z, 0-9 and _");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)f, key, v)
    {
        size_t m = 0;
        while (m < NMEMBERS && strcmp(members[m].key, key))
            m++;
        if (m == NMEMBERS)
            terr(c, tl_json_name_ok(key) ? key : NULL, "unknown_member",
                 "is not a member of a field");
        else if (type >= 0 && !json_is_null(v) && !(members[m].types & T(type)))
            terr(c, key, "not_for_type", "does not apply to a field of this type");
    }
    if (get(f, "label") && !string_ok(get(f, "label"), 1, TL_FIELD_LABEL_MAX))
        terr(c, "label", "invalid_text", "must be text of 1 to 200 characters");
    if (get(f, "required") && !json_is_boolean(get(f, "required")))
        terr(c, "required", "not_a_boolean", "must be true or false");
    if (type < 0 || c->nerr > before)
        return NULL;
    if (get(f, "unit") && !string_ok(get(f, "unit"), 1, TL_FIELD_UNIT_MAX))
        terr(c, "unit", "invalid_text", "must be text of 1 to 32 characters");
    const json_t *dec = get(f, "decimals");
    if (dec && (!json_is_integer(dec) || json_integer_value(dec) < 0 ||
                json_integer_value(dec) > TL_FIELD_DECIMALS_MAX))
        terr(c, "decimals", "out_of_bounds", "must be an integer from 0 to 6");
    const json_t *ml = get(f, "max_length");
    if (ml && (!json_is_integer(ml) || json_integer_value(ml) < 1 ||
               json_integer_value(ml) > TL_TEXT_ANSWER_MAX))
        terr(c, "max_length", "out_of_bounds", "must be an integer from 1 to 4000");
    if (get(f, "research_safe") && !json_is_boolean(get(f, "research_safe")))
        terr(c, "research_safe", "not_a_boolean", "must be true or false");
    double lo = 0, hi = 0;
    bool has_lo = get(f, "min") && bound_ok(c, type, "min", get(f, "min"), &lo);
    bool has_hi = get(f, "max") && bound_ok(c, type, "max", get(f, "max"), &hi);
    if (has_lo && has_hi && lo > hi)
        terr(c, "max", "max_below_min", "must not be below min");
    if (type == F_CHOICE || type == F_CHECKBOX)
        options_check(c, get(f, "options"));
    if (c->nerr > before)
        return NULL;
    json_t *out = json_object();
    for (size_t m = 0; out && m < NMEMBERS; m++) {
        const json_t *mv = get(f, members[m].key);
        /* research_safe false is the default: the same template with and
         * without it is the same version */
        if (mv && !strcmp(members[m].key, "research_safe") && !json_is_true(mv))
            continue;
        if (mv)
            json_object_set_new(out, members[m].key, json_deep_copy(mv));
        else if (!strcmp(members[m].key, "required"))
            json_object_set_new(out, "required", json_false());
    }
    return out;
}

json_t *tl_template_fields_check(const json_t *fields, json_t *errors)
{
    tcheck_t c = {.errors = errors};
    size_t n = json_array_size(fields);
    snprintf(c.path, sizeof c.path, "fields");
    if (!json_is_array(fields) || n < 1 || n > TL_TEMPLATE_FIELDS_MAX) {
        terr(&c, NULL, "invalid_fields", "must be a list of 1 to 200 fields");
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        const json_t *f = json_array_get(fields, i);
        snprintf(c.path, sizeof c.path, "fields[%zu]", i);
        json_t *norm = field_check(&c, f);
        /* a repeated name is reported even when the field has other errors */
        const char *name = json_is_object(f) && tl_json_name_ok(name_of(f)) ? name_of(f) : NULL;
        for (size_t j = 0; name && j < i; j++)
            if (!strcmp(name, name_of(json_array_get(fields, j)))) {
                terr(&c, "name", "duplicate_name", "another field has this name");
                break;
            }
        if (norm)
            json_array_append_new(out, norm);
    }
    if (c.nerr || !out) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- template versions ---- */

void tl_template_cleanup(tl_template_t *t)
{
    if (t)
        json_decref(t->fields), t->fields = NULL;
}

int32_t tl_template_next_version(const tl_template_t *latest, const char *title,
                                 const json_t *fields)
{
    if (!latest->exists)
        return 1;
    bool same = !strcmp(latest->title, title ? title : "") && json_equal(latest->fields, fields);
    return same ? latest->version : latest->version + 1;
}

const char *tl_template_apply(tl_template_t *t, const json_t *ev)
{
    tl_template_t n = {.exists = true};
    json_int_t ver = tl_ev_int(ev, "version");
    const json_t *title = get(ev, "title");
    if (!tl_ev_copy_uuid(n.id, ev, "template_id") || !tl_ev_copy_uuid(n.study_id, ev, "study_id") ||
        !tl_ev_copy_str(n.name, sizeof n.name, ev, "name") || !tl_json_name_ok(n.name) ||
        !tl_ev_copy_uuid(n.last_event_id, ev, "event_id") || !tl_ev_times_ok(ev) ||
        (title && !string_ok(title, 1, TL_TEMPLATE_TITLE_MAX)))
        return TL_RN(invalid_event);
    if (title)
        tl_ev_copy_str(n.title, sizeof n.title, ev, "title");
    if (t->exists && (strcmp(t->id, n.id) || strcmp(t->study_id, n.study_id)))
        return TL_RN(wrong_template);
    if (ver != (t->exists ? t->version : 0) + 1 || ver > TL_TEMPLATE_VERSIONS_MAX)
        return TL_RN(version_conflict);
    json_t *errors = json_array();
    if (!errors)
        return TL_RN(out_of_memory);
    n.fields = tl_template_fields_check(json_object_get(ev, "fields"), errors);
    bool invalid = json_array_size(errors) > 0;
    json_decref(errors);
    if (!n.fields)
        return invalid ? "invalid_template" : "out_of_memory";
    n.version = (int32_t)ver;
    n.published_at_us = tl_ev_int(ev, "recorded_at");
    tl_template_cleanup(t);
    *t = n;
    return NULL;
}

/* ---- answers ---- */

typedef struct {
    json_t *errors;
    const char *name;
    size_t nerr;
} acheck_t;

static void aerr(acheck_t *c, const char *code, const char *detail)
{
    char field[TL_JSON_NAME_MAX + 16];
    snprintf(field, sizeof field, "answers.%s", c->name);
    error(c->errors, field, code, detail);
    c->nerr++;
}

/* min and max as the template has them: numbers, or dates as text */
static void bounds_check(acheck_t *c, const json_t *f, bool below, bool above)
{
    char detail[96], lim[40];
    const json_t *b = get(f, below ? "min" : "max");
    if (!below && !above)
        return;
    /* the bound is the template's, not the client's input: safe to echo */
    if (json_is_string(b))
        snprintf(lim, sizeof lim, "%s", json_string_value(b));
    else
        snprintf(lim, sizeof lim, "%.15g", json_number_value(b));
    snprintf(detail, sizeof detail, "must be at %s %s", below ? "least" : "most", lim);
    aerr(c, below ? "below_min" : "above_max", detail);
}

static void number_check(acheck_t *c, const json_t *f, int type, const json_t *v)
{
    char detail[64];
    if (type == F_INTEGER && !json_is_integer(v)) {
        aerr(c, "not_an_integer", "must be an integer");
        return;
    }
    if (!json_is_number(v)) {
        aerr(c, "not_a_number", "must be a number");
        return;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > TL_NUMBER_ABS_MAX) {
        aerr(c, "not_a_number", "must be a number between -1e12 and 1e12");
        return;
    }
    const json_t *lo = get(f, "min"), *hi = get(f, "max"), *dec = get(f, "decimals");
    bool below = lo && x < json_number_value(lo), above = hi && x > json_number_value(hi);
    bounds_check(c, f, below, above);
    if (!below && !above && dec && !decimals_ok(x, (int)json_integer_value(dec))) {
        snprintf(detail, sizeof detail, "must have at most %d decimal places",
                 (int)json_integer_value(dec));
        aerr(c, "too_many_decimals", detail);
    }
}

static void date_check(acheck_t *c, const json_t *f, const json_t *v)
{
    int32_t d, lo, hi;
    if (!date_value(v, &d)) {
        aerr(c, "not_a_date", "must be a calendar date YYYY-MM-DD");
        return;
    }
    bool below = date_value(get(f, "min"), &lo) && d < lo;
    bool above = date_value(get(f, "max"), &hi) && d > hi;
    bounds_check(c, f, below, above);
}

static bool is_option(const json_t *f, const json_t *v)
{
    size_t i;
    const json_t *o;
    json_array_foreach(get(f, "options"), i, o) if (json_equal(o, v)) return true;
    return false;
}

static void choices_check(acheck_t *c, const json_t *f, int type, const json_t *v)
{
    if (type == F_CHOICE) {
        if (!json_is_string(v) || !is_option(f, v))
            aerr(c, "not_an_option", "must be one of the field's options");
        return;
    }
    if (!json_is_array(v)) {
        aerr(c, "not_a_list", "must be a list of the field's options");
        return;
    }
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(v, i);
        if (!json_is_string(o) || !is_option(f, o)) {
            aerr(c, "not_an_option", "each answer must be one of the field's options");
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (json_equal(o, json_array_get(v, j))) {
                aerr(c, "duplicate_option", "an option is given twice");
                return;
            }
    }
    if (!n && json_is_true(get(f, "required")))
        aerr(c, "required", "is required: choose at least one option");
}

static void answer_check(acheck_t *c, const json_t *f, const json_t *v)
{
    int type = type_of(f);
    char detail[64];
    switch (type) {
    case F_NUMBER:
    case F_INTEGER:
        number_check(c, f, type, v);
        break;
    case F_TEXT: {
        long max = get(f, "max_length") ? (long)json_integer_value(get(f, "max_length"))
                                        : TL_TEXT_ANSWER_MAX;
        long n = json_is_string(v) ? text_chars(v, true) : -2;
        if (n == -2)
            aerr(c, "not_text", "must be text");
        else if (n < 0)
            aerr(c, "invalid_text", "must be text without control characters");
        else if (n == 0)
            aerr(c, "empty", "must not be empty: leave it out or send null");
        else if (n > max) {
            snprintf(detail, sizeof detail, "must be at most %ld characters", max);
            aerr(c, "too_long", detail);
        }
        break;
    }
    case F_DATE:
        date_check(c, f, v);
        break;
    case F_CHOICE:
    case F_CHECKBOX:
        choices_check(c, f, type, v);
        break;
    default:
        aerr(c, "unknown_field", "the template's field has an unknown type");
    }
}

size_t tl_answers_check(const json_t *fields, const json_t *answers, json_t *errors)
{
    acheck_t c = {.errors = errors, .name = ""};
    if (!json_is_object(answers)) {
        error(errors, "answers", "not_an_object", "must be an object of field names to answers");
        return 1;
    }
    size_t i;
    const json_t *f;
    json_array_foreach(fields, i, f)
    {
        c.name = json_string_value(get(f, "name"));
        if (!c.name)
            continue;
        const json_t *v = get(answers, c.name);
        if (v)
            answer_check(&c, f, v);
        else if (json_is_true(get(f, "required")))
            aerr(&c, "required", "is required");
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)answers, key, v)
    {
        bool known = false;
        json_array_foreach(fields, i, f) known = known || !strcmp(key, name_of(f));
        if (known)
            continue;
        if (tl_json_name_ok(key)) {
            c.name = key;
            aerr(&c, "unknown_field", "is not a field of the template");
        } else {
            /* not echoed: it is not a name */
            error(errors, "answers", "unknown_field", "has a member that is not a field name");
            c.nerr++;
        }
    }
    return c.nerr;
}

json_t *tl_answers_compact(const json_t *answers)
{
    json_t *out = json_object();
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)answers, key, v)
    {
        if (out && !json_is_null(v) && json_object_set_new(out, key, json_deep_copy(v))) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

json_t *tl_answers_merge(const json_t *current, const json_t *patch, json_t **changes)
{
    json_t *out = tl_answers_compact(current);
    *changes = json_array();
    const char *key;
    const json_t *v;
    bool ok = out && *changes;
    json_object_foreach((json_t *)patch, key, v)
    {
        if (!ok)
            break;
        const json_t *before = get(out, key);
        if (before ? json_equal(before, v) : json_is_null(v))
            continue;
        ok = !json_array_append_new(*changes, json_pack("{s:s, s:O, s:O}", "field", key, "before",
                                                        before ? before : json_null(), "after", v));
        if (ok && json_is_null(v))
            json_object_del(out, key);
        else if (ok)
            ok = !json_object_set_new(out, key, json_deep_copy(v));
    }
    if (!ok) {
        json_decref(out);
        json_decref(*changes);
        out = *changes = NULL;
    }
    return out;
}

/* ---- the form commands' rules ---- */

bool tl_form_template_listed(const json_t *form_templates, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(form_templates, i, t)
    {
        if (name && json_is_string(t) && !strcmp(json_string_value(t), name))
            return true;
    }
    return false;
}

const char *tl_form_amend_check(const tl_amend_t *a, tl_amended_t *out, json_t *errors)
{
    const char *why = NULL;
    memset(out, 0, sizeof *out);
    /* only upward, only to the latest: a form never goes back to rules it
     * has left, and a version between would be one nobody enters forms on */
    bool moves = a->to_version && a->to_version != a->version;
    if (moves && (a->to_version != a->latest_version || a->to_version < a->version))
        return TL_RN(template_version_not_latest);
    const json_t *fields = moves ? a->latest_fields : a->fields;
    json_t *empty = a->patch ? NULL : json_object();
    out->answers = tl_answers_merge(a->answers, a->patch ? a->patch : empty, &out->changes);
    json_decref(empty);
    if (!out->answers || !fields)
        why = TL_RN(out_of_memory);
    else if (!json_array_size(out->changes) && !moves)
        why = TL_RN(nothing_to_amend);
    /* the whole set: what the new version asks for is asked of all of it */
    else if (tl_answers_check(fields, out->answers, errors))
        why = TL_RN(invalid_answers);
    if (why) {
        json_decref(out->answers);
        json_decref(out->changes);
        memset(out, 0, sizeof *out);
        return why;
    }
    out->version = moves ? a->to_version : a->version;
    return NULL;
}

/* Appends errors (tl_answers_check's) to findings as findings of version,
 * leaving out those findings[from .. to - 1] has already (same field and
 * code). */
static size_t add_findings(json_t *findings, const json_t *errors, int32_t version,
                           const char *fix, size_t from, size_t to)
{
    size_t i, n = 0;
    const json_t *e;
    json_array_foreach(errors, i, e)
    {
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *code = json_string_value(json_object_get(e, "code"));
        if (!field || !code)
            continue;
        if (!strncmp(field, "answers.", 8))
            field += 8;
        bool seen = false;
        for (size_t j = from; j < to && !seen; j++) {
            const json_t *f = json_array_get(findings, j);
            seen = !strcmp(json_string_value(json_object_get(f, "field")), field) &&
                   !strcmp(json_string_value(json_object_get(f, "code")), code);
        }
        if (seen)
            continue;
        if (!json_array_append_new(findings,
                                   json_pack("{s:s, s:s, s:O, s:i, s:s}", "field", field, "code",
                                             code, "detail", json_object_get(e, "detail"),
                                             "template_version", (int)version, "fix", fix)))
            n++;
    }
    return n;
}

size_t tl_form_quality(const json_t *answers, int32_t version, const json_t *fields,
                       int32_t latest_version, const json_t *latest_fields, json_t *findings)
{
    size_t start = json_array_size(findings), n = 0;
    json_t *errors = json_array();
    if (errors && fields) {
        tl_answers_check(fields, answers, errors);
        n += add_findings(findings, errors, version, "amend", start, start);
    }
    json_array_clear(errors);
    if (errors && latest_fields && latest_version > version) {
        tl_answers_check(latest_fields, answers, errors);
        /* the form's own problems are listed once, as its own */
        n += add_findings(findings, errors, latest_version, "upgrade", start, start + n);
    }
    json_decref(errors);
    return n;
}

/* ---- the fold ---- */

static const char *const status_names[] = {"submitted", "amended", "signed"};

const char *tl_form_status_name(tl_form_status_t s)
{
    return status_names[s];
}

int tl_form_status_parse(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, status_names[i]))
            return i;
    return -1;
}

void tl_form_cleanup(tl_form_t *f)
{
    if (f)
        json_decref(f->answers), f->answers = NULL;
}

bool tl_form_event(const char *type)
{
    return type && (!strcmp(type, "FormSubmitted") || !strcmp(type, "FormAmended") ||
                    !strcmp(type, "FormSigned"));
}

/* An answer value as events may carry it (the field's type was checked by
 * the gateway against the template; the fold only keeps the shape sane). */
static bool value_shape_ok(const json_t *v)
{
    if (json_is_array(v)) {
        size_t i;
        const json_t *o;
        json_array_foreach(v, i, o) if (!json_is_string(o)) return false;
        return json_array_size(v) <= TL_FIELD_OPTIONS_MAX;
    }
    return json_is_null(v) || json_is_number(v) || json_is_string(v);
}

static bool answers_shape_ok(const json_t *a)
{
    const char *key;
    const json_t *v;
    if (!json_is_object(a) || json_object_size(a) > TL_TEMPLATE_FIELDS_MAX)
        return false;
    json_object_foreach((json_t *)a, key,
                        v) if (!tl_json_name_ok(key) || !value_shape_ok(v)) return false;
    return true;
}

static void touch(tl_form_t *f, const json_t *ev)
{
    f->version = tl_ev_int(ev, "stream_version");
    f->updated_at_us = tl_ev_int(ev, "recorded_at");
    tl_ev_copy_uuid(f->last_event_id, ev, "event_id");
}

tl_err_t tl_form_content_sha256(const char *form_id, int template_version, int revision,
                                const json_t *answers, char out[65])
{
    json_t *doc = json_pack("{s:s, s:i, s:i, s:O}", "form_id", form_id, "template_version",
                            template_version, "revision", revision, "answers", answers);
    char *text =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    tl_err_t err = text ? tl_sha256_hex(text, strlen(text), out) : TL_ERR_NOMEM;
    free(text);
    json_decref(doc);
    return err;
}

static void clear_signature(tl_form_t *f)
{
    f->printed_name[0] = f->content_sha256[0] = '\0';
    f->signed_by[0] = f->signer_name[0] = f->meaning[0] = '\0';
    f->signed_at_us = 0;
}

bool tl_form_same_slot(const tl_form_t *f, const json_t *submitted)
{
    tl_uuid_t pid, vt;
    const char *tn = json_string_value(json_object_get(submitted, "template_name"));
    return f->exists && tn &&
           !tl_uuid_parse(json_string_value(json_object_get(submitted, "participant_id")), &pid) &&
           !tl_uuid_parse(json_string_value(json_object_get(submitted, "visit_type_id")), &vt) &&
           !strcmp(f->participant_id, pid.s) && !strcmp(f->visit_type_id, vt.s) &&
           !strcmp(f->template_name, tn);
}

static const char *submit(tl_form_t *f, const json_t *ev, json_t *history)
{
    tl_form_t n = {.exists = true, .status = TL_FORM_SUBMITTED, .revision = 1};
    const json_t *answers = json_object_get(ev, "answers");
    json_int_t ver = tl_ev_int(ev, "template_version");
    if (f->exists)
        return TL_RN(form_exists);
    if (!tl_ev_copy_uuid(n.id, ev, "form_id") ||
        !tl_ev_copy_uuid(n.participant_id, ev, "participant_id") ||
        !tl_ev_copy_uuid(n.study_id, ev, "study_id") ||
        !tl_ev_copy_uuid(n.visit_type_id, ev, "visit_type_id") ||
        !tl_ev_copy_uuid(n.template_id, ev, "template_id") ||
        !tl_ev_copy_str(n.template_name, sizeof n.template_name, ev, "template_name") ||
        !tl_json_name_ok(n.template_name) || ver < 1 || ver > TL_TEMPLATE_VERSIONS_MAX ||
        !answers_shape_ok(answers))
        return TL_RN(invalid_event);
    if (!tl_ev_copy_str(n.submitted_by, sizeof n.submitted_by, ev, "actor_id"))
        return TL_RN(invalid_event);
    n.template_version = (int32_t)ver;
    n.submitted_at_us = tl_ev_int(ev, "recorded_at");
    if (!(n.answers = tl_answers_compact(answers)))
        return TL_RN(out_of_memory);
    const char *key;
    json_t *v;
    json_t *h = json_array();
    json_object_foreach(n.answers, key, v)
        json_array_append_new(h, json_pack("{s:s, s:n, s:O}", "field", key, "before", "after", v));
    if (!h || json_array_size(h) != json_object_size(n.answers)) {
        json_decref(h);
        tl_form_cleanup(&n);
        return TL_RN(out_of_memory);
    }
    json_array_extend(history, h);
    json_decref(h);
    touch(&n, ev);
    *f = n;
    return NULL;
}

static const char *amend(tl_form_t *f, const json_t *ev, json_t *history)
{
    const json_t *changes = json_object_get(ev, "changes");
    const json_t *to = get(ev, "template_version");
    size_t i, n = json_array_size(changes);
    const json_t *c;
    /* a move to another template version: only upward (gateway: to the
     * latest, which this fold cannot see; neither fold reads the other's) */
    json_int_t ver = to ? json_integer_value(to) : f->template_version;
    bool moves = ver != f->template_version;
    if ((to && !json_is_integer(to)) || ver < f->template_version ||
        ver > TL_TEMPLATE_VERSIONS_MAX)
        return TL_RN(invalid_event);
    if ((!n && !moves) || n > TL_TEMPLATE_FIELDS_MAX || (changes && !json_is_array(changes)))
        return TL_RN(invalid_event);
    json_t *patch = json_object();
    json_array_foreach(changes, i, c)
    {
        const char *field = json_string_value(json_object_get(c, "field"));
        const json_t *after = json_object_get(c, "after");
        if (!field || !tl_json_name_ok(field) || !after || !value_shape_ok(after)) {
            json_decref(patch);
            return TL_RN(invalid_event);
        }
        json_object_set(patch, field, (json_t *)after);
    }
    json_t *diff = NULL;
    json_t *merged = tl_answers_merge(f->answers, patch, &diff);
    json_decref(patch);
    if (!merged)
        return TL_RN(out_of_memory);
    if (moves && json_array_append_new(diff, json_pack("{s:s, s:i, s:I}", "field",
                                                       TL_FORM_HISTORY_VERSION, "before",
                                                       (int)f->template_version, "after", ver))) {
        json_decref(diff);
        json_decref(merged);
        return TL_RN(out_of_memory);
    }
    json_array_extend(history, diff);
    json_decref(diff);
    json_decref(f->answers);
    f->answers = merged;
    f->template_version = (int32_t)ver;
    f->revision++;
    f->status = TL_FORM_AMENDED; /* a signature is for what was signed */
    clear_signature(f);
    touch(f, ev);
    return NULL;
}

static const char *sign(tl_form_t *f, const json_t *ev)
{
    const char *meaning = json_string_value(json_object_get(ev, "meaning"));
    bool known = false;
    for (const char *const *m = tl_signature_meanings; meaning && *m; m++)
        known = known || !strcmp(*m, meaning);
    tl_form_t n = *f;
    if (!known || !tl_ev_copy_uuid(n.signed_by, ev, "actor_id") ||
        !tl_ev_copy_str(n.signer_name, sizeof n.signer_name, ev, "signer_name"))
        return TL_RN(invalid_event);
    if (tl_ev_int(ev, "form_revision") != f->revision)
        return TL_RN(stale_signature); /* it signed what the form no longer says */
    snprintf(n.meaning, sizeof n.meaning, "%s", meaning);
    const char *printed = json_string_value(json_object_get(ev, "printed_name"));
    const char *content = json_string_value(json_object_get(ev, "content_sha256"));
    if ((printed && strlen(printed) >= sizeof n.printed_name) ||
        (content && strlen(content) != sizeof n.content_sha256 - 1))
        return TL_RN(invalid_event);
    snprintf(n.printed_name, sizeof n.printed_name, "%s", printed ? printed : "");
    snprintf(n.content_sha256, sizeof n.content_sha256, "%s", content ? content : "");
    n.signed_at_us = tl_ev_int(ev, "recorded_at");
    n.status = TL_FORM_SIGNED;
    touch(&n, ev);
    *f = n;
    return NULL;
}

const char *tl_form_apply(tl_form_t *f, const char *type, const json_t *ev, json_t *history)
{
    if (!strcmp(type, "FormSubmitted"))
        return submit(f, ev, history);
    if (!f->exists)
        return TL_RN(unknown_form);
    tl_uuid_t pid;
    if (tl_uuid_parse(json_string_value(json_object_get(ev, "participant_id")), &pid) ||
        strcmp(pid.s, f->participant_id))
        return TL_RN(wrong_participant);
    if (!strcmp(type, "FormAmended"))
        return amend(f, ev, history);
    if (!strcmp(type, "FormSigned"))
        return sign(f, ev);
    return TL_RN(invalid_event);
}
