/* Unit tests for tl_json: strict parsing of request bodies (UTF-8, objects
 * only, no duplicate keys, bounded nesting) and validation against a field
 * table with every problem reported at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_buf.h"
#include "tl_json.h"

/* ---- tl_json_parse_object ---- */

static tl_err_t parse(const char *body, size_t len, json_t **out, char *why, size_t why_len)
{
    why[0] = '\0';
    return tl_json_parse_object(body, len, out, why, why_len);
}

/* body must be refused as malformed, with a reason and no object. */
static void assert_malformed_n(const char *body, size_t len)
{
    char why[128];
    json_t *out = json_null(); /* must be reset to NULL */
    assert_int_equal(parse(body, len, &out, why, sizeof why), TL_ERR_MALFORMED);
    assert_null(out);
    assert_true(why[0] != '\0');
}

static void assert_malformed(const char *body)
{
    assert_malformed_n(body, strlen(body));
}

static json_t *parse_ok(const char *body)
{
    char why[128];
    json_t *out = NULL;
    assert_int_equal(parse(body, strlen(body), &out, why, sizeof why), TL_OK);
    assert_non_null(out);
    assert_true(json_is_object(out));
    return out;
}

static void test_parse_valid_object(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"name\":\"AMD\",\"n\":3,\"nested\":{\"a\":[1,2]}}");
    assert_string_equal(json_string_value(json_object_get(o, "name")), "AMD");
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 3);
    json_decref(o);

    o = parse_ok("{}");
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);

    /* only len bytes are read */
    const char *body = "{\"a\":1}garbage";
    char why[128];
    assert_int_equal(parse(body, 7, &o, why, sizeof why), TL_OK);
    json_decref(o);
}

static void test_parse_invalid_json(void **state)
{
    (void)state;
    assert_malformed("");
    assert_malformed("{");
    assert_malformed("{\"a\":}");
    assert_malformed("{\"a\":1,}");
    assert_malformed("{'a':1}");
    assert_malformed("{\"a\":1} {\"b\":2}");
    assert_malformed("{\"a\":NaN}");
}

static void test_parse_reason_does_not_echo_input(void **state)
{
    (void)state;
    char why[128];
    json_t *out;
    const char *body = "{\"password\":\"hunter2\" \"x\"}";
    assert_int_equal(parse(body, strlen(body), &out, why, sizeof why), TL_ERR_MALFORMED);
    assert_null(strstr(why, "hunter2"));
    assert_null(strstr(why, "password"));

    /* a short buffer is truncated, not overrun */
    char tiny[8];
    memset(tiny, 'X', sizeof tiny);
    assert_int_equal(parse("[", 1, &out, tiny, sizeof tiny), TL_ERR_MALFORMED);
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_parse_top_level_not_object(void **state)
{
    (void)state;
    assert_malformed("[1,2,3]");
    assert_malformed("[]");
    assert_malformed("\"text\"");
    assert_malformed("42");
    assert_malformed("null");
    assert_malformed("true");
}

static void test_parse_invalid_utf8(void **state)
{
    (void)state;
    assert_malformed("{\"a\":\"\xff\"}");
    assert_malformed("{\"a\":\"caf\xc3\"}");         /* truncated sequence */
    assert_malformed("{\"a\":\"\xc0\xaf\"}");        /* overlong '/' */
    assert_malformed("{\"a\":\"\xed\xa0\x80\"}");    /* UTF-16 surrogate */
    assert_malformed("{\"a\":\"\xf4\x90\x80\x80\"}"); /* above U+10FFFF */
    assert_malformed("{\"\xfe\":1}");                /* in a key */
    /* NUL bytes, raw or escaped */
    assert_malformed_n("{\"a\":\"x\0y\"}", 11);
    assert_malformed("{\"a\":\"\\u0000\"}");
    /* valid multi-byte text is fine */
    json_t *o = parse_ok("{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    assert_string_equal(json_string_value(json_object_get(o, "a")),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    json_decref(o);
}

static void test_parse_duplicate_keys(void **state)
{
    (void)state;
    assert_malformed("{\"a\":1,\"a\":2}");
    assert_malformed("{\"a\":1,\"b\":{\"c\":1,\"c\":1}}");
    json_t *o = parse_ok("{\"a\":1,\"b\":{\"a\":2}}");
    json_decref(o);
}

/* An object nesting depth levels: objects, or one object around arrays. */
static char *nested(int depth, int arrays)
{
    tl_buf_t b;
    tl_buf_init(&b, 1u << 20);
    if (arrays) {
        assert_int_equal(tl_buf_puts(&b, "{\"a\":"), TL_OK);
        for (int i = 1; i < depth; i++)
            assert_int_equal(tl_buf_puts(&b, "["), TL_OK);
        assert_int_equal(tl_buf_puts(&b, "1"), TL_OK);
        for (int i = 1; i < depth; i++)
            assert_int_equal(tl_buf_puts(&b, "]"), TL_OK);
        assert_int_equal(tl_buf_puts(&b, "}"), TL_OK);
    } else {
        for (int i = 0; i < depth; i++)
            assert_int_equal(tl_buf_puts(&b, "{\"k\":"), TL_OK);
        assert_int_equal(tl_buf_puts(&b, "true"), TL_OK);
        for (int i = 0; i < depth; i++)
            assert_int_equal(tl_buf_puts(&b, "}"), TL_OK);
    }
    return tl_buf_steal(&b, NULL);
}

static void test_parse_depth_limit(void **state)
{
    (void)state;
    for (int arrays = 0; arrays <= 1; arrays++) {
        char *s = nested(TL_JSON_MAX_DEPTH, arrays);
        json_t *o = parse_ok(s);
        json_decref(o);
        free(s);

        s = nested(TL_JSON_MAX_DEPTH + 1, arrays);
        assert_malformed(s);
        free(s);
    }
    /* far deeper than any limit: refused, not a crash */
    char *s = nested(5000, 1);
    assert_malformed(s);
    free(s);

    /* depth counts the deepest branch, not the first one */
    s = nested(TL_JSON_MAX_DEPTH, 0);
    tl_buf_t b;
    tl_buf_init(&b, 1u << 20);
    assert_int_equal(tl_buf_printf(&b, "{\"shallow\":1,\"deep\":%s}", s), TL_OK);
    assert_malformed(b.data);
    tl_buf_cleanup(&b);
    free(s);
}

/* values counts array elements and object members, not brackets in strings */
static void test_parse_value_limit(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 1u << 20);
    assert_int_equal(tl_buf_printf(&b, "{\"a\":[1"), TL_OK);
    for (int i = 1; i < TL_JSON_MAX_VALUES - 1; i++) /* the object and array are values too */
        assert_int_equal(tl_buf_printf(&b, ",1"), TL_OK);
    assert_int_equal(tl_buf_printf(&b, "]}"), TL_OK);
    json_decref(parse_ok(b.data));
    b.len -= 2;
    assert_int_equal(tl_buf_printf(&b, ",1]}"), TL_OK);
    assert_malformed(b.data);
    tl_buf_cleanup(&b);
    /* brackets, commas and escaped quotes inside strings are text */
    json_decref(parse_ok("{\"a\":\"[[[[[[[[[[[[[[[[[[[[,,,,\\\"{{{{{{{{{{{{{{{{{{{{{{\"}"));
}

static void test_text_ok(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"plain ascii /v1/studies?x=1", true},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true}, /* é € 😀 */
        {"\xef\xbf\xbd", true},                            /* U+FFFD */
        {"\xf4\x8f\xbf\xbf", true},                       /* U+10FFFF */
        {"tab\there", false},
        {"new\nline", false},
        {"del\x7f", false},
        {"\xc2\x85", false},             /* C1 control NEL */
        {"\xc0\xaf", false},             /* overlong / */
        {"\xe0\x80\xaf", false},         /* overlong / */
        {"\xf0\x80\x80\xaf", false},     /* overlong / */
        {"\xed\xa0\x80", false},         /* a surrogate */
        {"\xf4\x90\x80\x80", false},     /* past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", false}, /* five bytes */
        {"\x80", false},                 /* a stray continuation byte */
        {"\xe2\x82", false},             /* cut short */
        {"\xe2(\xa1", false},            /* not a continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (tl_text_ok(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu: want %s", i, cases[i].ok ? "ok" : "refused");
    assert_false(tl_text_ok("a\0b", 3)); /* NUL */
    assert_true(tl_text_ok("", 0));
}

/* ---- tl_json_check ---- */

static const char *const sexes[] = {"M", "F", "O", "U", NULL};

static const tl_json_field_t fields[] = {
    {"name", TL_JF_STRING, true, 1, 10, NULL},
    {"count", TL_JF_INTEGER, false, 0, 100, NULL},
    {"when", TL_JF_DATE, false, 0, 0, NULL},
    {"site_id", TL_JF_UUID, false, 0, 0, NULL},
    {"sex", TL_JF_ENUM, false, 0, 0, sexes},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static json_t *obj(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (!o)
        fail_msg("test JSON does not parse: %s", e.text);
    return o;
}

/* Checks text; returns the errors array (decref it). */
static json_t *check(const char *text, size_t want)
{
    json_t *o = obj(text);
    json_t *errors = json_array();
    assert_int_equal(tl_json_check(o, fields, NFIELDS, errors), want);
    assert_int_equal(json_array_size(errors), want);
    json_decref(o);
    return errors;
}

/* errors[i] is {"field": field, "detail": detail} (detail NULL: any string). */
static void assert_error(const json_t *errors, size_t i, const char *field, const char *detail)
{
    const json_t *e = json_array_get(errors, i);
    assert_non_null(e);
    assert_int_equal(json_object_size(e), 2);
    const char *f = json_string_value(json_object_get(e, "field"));
    const char *d = json_string_value(json_object_get(e, "detail"));
    assert_non_null(f);
    assert_non_null(d);
    assert_string_equal(f, field);
    if (detail)
        assert_string_equal(d, detail);
    else
        assert_true(d[0] != '\0');
}

/* text has exactly one error, on field, with detail (NULL: any). */
static void assert_one_error(const char *text, const char *field, const char *detail)
{
    json_t *errors = check(text, 1);
    assert_error(errors, 0, field, detail);
    json_decref(errors);
}

static void assert_valid(const char *text)
{
    json_decref(check(text, 0));
}

static void test_check_valid(void **state)
{
    (void)state;
    assert_valid("{\"name\":\"AMD\"}");
    assert_valid("{\"name\":\"AMD\",\"count\":5,\"when\":\"2026-01-01\","
                 "\"site_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"sex\":\"F\"}");
    /* null is the same as absent for optional fields */
    assert_valid("{\"name\":\"AMD\",\"count\":null,\"when\":null,\"site_id\":null,\"sex\":null}");
}

static void test_check_unknown_field(void **state)
{
    (void)state;
    assert_one_error("{\"name\":\"AMD\",\"colour\":\"red\"}", "colour", "is not a known field");
    assert_one_error("{\"name\":\"AMD\",\"Name\":\"x\"}", "Name", "is not a known field");
}

static void test_check_missing_required(void **state)
{
    (void)state;
    assert_one_error("{}", "name", "is required");
    assert_one_error("{\"name\":null}", "name", "is required");
    assert_one_error("{\"count\":1}", "name", "is required");
}

static void test_check_wrong_types(void **state)
{
    (void)state;
    assert_one_error("{\"name\":5}", "name", "must be a string");
    assert_one_error("{\"name\":[\"a\"]}", "name", "must be a string");
    assert_one_error("{\"name\":\"a\",\"count\":\"5\"}", "count", "must be an integer");
    assert_one_error("{\"name\":\"a\",\"count\":1.5}", "count", "must be an integer");
    assert_one_error("{\"name\":\"a\",\"count\":true}", "count", "must be an integer");
    assert_one_error("{\"name\":\"a\",\"when\":20260101}", "when",
                     "must be a calendar date YYYY-MM-DD");
    assert_one_error("{\"name\":\"a\",\"site_id\":{}}", "site_id", "must be a UUID");
    assert_one_error("{\"name\":\"a\",\"sex\":1}", "sex", "must be one of M F O U");
}

static void test_check_string_length_in_characters(void **state)
{
    (void)state;
    /* ten characters of two, three and four bytes each: within max 10 */
    assert_valid("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                 "\xc3\xa9\"}");
    assert_valid("{\"name\":\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                 "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"}");
    assert_valid("{\"name\":\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                 "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                 "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"}");
    assert_valid("{\"name\":\"0123456789\"}");
    /* eleven characters: too long */
    assert_one_error("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                     "\xc3\xa9\xc3\xa9\xc3\xa9\"}",
                     "name", "must be 1 to 10 characters long");
    assert_one_error("{\"name\":\"01234567890\"}", "name", "must be 1 to 10 characters long");
    /* an escaped code point is one character */
    assert_valid("{\"name\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}");
    /* below the minimum */
    assert_one_error("{\"name\":\"\"}", "name", "must be 1 to 10 characters long");
}

static void test_check_control_characters(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"name\":\"a\\tb\"}", "{\"name\":\"a\\nb\"}",     "{\"name\":\"a\\rb\"}",
        "{\"name\":\"\\u0001\"}", "{\"name\":\"del\\u007f\"}", "{\"name\":\"\\u001f\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_one_error(bad[i], "name", "must not contain control characters");
    assert_valid("{\"name\":\"a b~\"}");
}

static void test_check_integer_bounds(void **state)
{
    (void)state;
    assert_valid("{\"name\":\"a\",\"count\":0}");
    assert_valid("{\"name\":\"a\",\"count\":100}");
    assert_one_error("{\"name\":\"a\",\"count\":-1}", "count", "must be from 0 to 100");
    assert_one_error("{\"name\":\"a\",\"count\":101}", "count", "must be from 0 to 100");
    assert_one_error("{\"name\":\"a\",\"count\":9223372036854775807}", "count",
                     "must be from 0 to 100");
    assert_one_error("{\"name\":\"a\",\"count\":-9223372036854775808}", "count",
                     "must be from 0 to 100");
}

static void test_check_dates(void **state)
{
    (void)state;
    assert_valid("{\"name\":\"a\",\"when\":\"2028-02-29\"}");
    assert_valid("{\"name\":\"a\",\"when\":\"2000-02-29\"}");
    assert_valid("{\"name\":\"a\",\"when\":\"2026-12-31\"}");
    static const char *const bad[] = {"2026-02-29", "2026-1-01", "2026-01-1",  "2026-13-01",
                                      "2026-04-31", "26-01-01",  "2026/01/01", "2026-01-01T00:00",
                                      "",           "1900-02-29"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[96];
        snprintf(text, sizeof text, "{\"name\":\"a\",\"when\":\"%s\"}", bad[i]);
        assert_one_error(text, "when", "must be a calendar date YYYY-MM-DD");
    }
}

static void test_check_uuid(void **state)
{
    (void)state;
    assert_valid("{\"name\":\"a\",\"site_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\"}");
    assert_valid("{\"name\":\"a\",\"site_id\":\"0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B\"}");
    static const char *const bad[] = {
        "not-a-uuid",
        "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",
        "{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5}",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"name\":\"a\",\"site_id\":\"%s\"}", bad[i]);
        assert_one_error(text, "site_id", "must be a UUID");
    }
}

static void test_check_enum(void **state)
{
    (void)state;
    for (const char *const *o = sexes; *o; o++) {
        char text[64];
        snprintf(text, sizeof text, "{\"name\":\"a\",\"sex\":\"%s\"}", *o);
        assert_valid(text);
    }
    assert_one_error("{\"name\":\"a\",\"sex\":\"X\"}", "sex", "must be one of M F O U");
    assert_one_error("{\"name\":\"a\",\"sex\":\"f\"}", "sex", "must be one of M F O U");
    assert_one_error("{\"name\":\"a\",\"sex\":\"\"}", "sex", "must be one of M F O U");
    assert_one_error("{\"name\":\"a\",\"sex\":\"MF\"}", "sex", "must be one of M F O U");
}

static void test_check_enum_long_options(void **state)
{
    (void)state;
    /* options longer than the message buffer: truncated, never overrun */
    static char big[3][80];
    static const char *opts[4];
    for (int i = 0; i < 3; i++) {
        memset(big[i], 'a' + i, sizeof big[i] - 1);
        big[i][sizeof big[i] - 1] = '\0';
        opts[i] = big[i];
    }
    opts[3] = NULL;
    const tl_json_field_t f[] = {{"kind", TL_JF_ENUM, true, 0, 0, opts}};
    json_t *o = obj("{\"kind\":\"z\"}");
    json_t *errors = json_array();
    assert_int_equal(tl_json_check(o, f, 1, errors), 1);
    const char *d = json_string_value(json_object_get(json_array_get(errors, 0), "detail"));
    assert_non_null(d);
    assert_true(strncmp(d, "must be one of aaaa", 19) == 0);
    json_decref(errors);
    json_decref(o);
}

static void test_check_reports_everything(void **state)
{
    (void)state;
    json_t *errors = check("{\"extra\":1,\"count\":\"x\",\"when\":\"2026-02-29\","
                           "\"site_id\":\"nope\",\"sex\":\"Q\"}",
                           6);
    /* unknown members first, then the table in order */
    assert_error(errors, 0, "extra", "is not a known field");
    assert_error(errors, 1, "name", "is required");
    assert_error(errors, 2, "count", "must be an integer");
    assert_error(errors, 3, "when", "must be a calendar date YYYY-MM-DD");
    assert_error(errors, 4, "site_id", "must be a UUID");
    assert_error(errors, 5, "sex", "must be one of M F O U");
    json_decref(errors);

    /* errors already in the array are kept and not counted */
    json_t *o = obj("{\"name\":\"\",\"bogus\":true}");
    errors = json_array();
    tl_json_error(errors, "earlier", "something");
    assert_int_equal(tl_json_check(o, fields, NFIELDS, errors), 2);
    assert_int_equal(json_array_size(errors), 3);
    assert_error(errors, 0, "earlier", "something");
    assert_error(errors, 1, "bogus", "is not a known field");
    assert_error(errors, 2, "name", "must be 1 to 10 characters long");
    json_decref(errors);
    json_decref(o);
}

static void test_check_bool_and_names(void **state)
{
    (void)state;
    const tl_json_field_t f[] = {{"required", TL_JF_BOOL, true, 0, 0, NULL},
                                 {"forms", TL_JF_NAMES, false, 0, 2, NULL}};
    const struct {
        const char *body;
        const char *field, *detail; /* NULL: valid */
    } cases[] = {
        {"{\"required\":true,\"forms\":[\"visual_acuity\",\"oct_2\"]}", NULL, NULL},
        {"{\"required\":false,\"forms\":[]}", NULL, NULL},
        {"{\"required\":1}", "required", "must be true or false"},
        {"{\"required\":true,\"forms\":\"a\"}", "forms", "must be an array of 0 to 2 names"},
        {"{\"required\":true,\"forms\":[\"a\",\"b\",\"c\"]}", "forms",
         "must be an array of 0 to 2 names"},
        {"{\"required\":true,\"forms\":[\"Visual\"]}", "forms",
         "names are 1 to 64 of a-z, 0-9 and _"},
        {"{\"required\":true,\"forms\":[\"\"]}", "forms", "names are 1 to 64 of a-z, 0-9 and _"},
        {"{\"required\":true,\"forms\":[3]}", "forms", "names are 1 to 64 of a-z, 0-9 and _"},
        {"{\"required\":true,\"forms\":[\"a\",\"a\"]}", "forms", "names must not repeat"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = obj(cases[i].body), *errors = json_array();
        size_t n = tl_json_check(o, f, 2, errors);
        assert_int_equal(n, cases[i].field ? 1 : 0);
        if (cases[i].field)
            assert_error(errors, 0, cases[i].field, cases[i].detail);
        json_decref(errors);
        json_decref(o);
    }
    char longest[TL_JSON_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[TL_JSON_NAME_MAX] = '\0';
    assert_true(tl_json_name_ok(longest));
    longest[TL_JSON_NAME_MAX] = 'a';
    longest[TL_JSON_NAME_MAX + 1] = '\0';
    assert_false(tl_json_name_ok(longest));
    assert_false(tl_json_name_ok(NULL));
}

/* A name, and arrays and objects whose items the caller checks. */
static void test_check_name_array_object(void **state)
{
    (void)state;
    const tl_json_field_t f[] = {{"name", TL_JF_NAME, true, 0, 0, NULL},
                                 {"fields", TL_JF_ARRAY, false, 1, 2, NULL},
                                 {"answers", TL_JF_OBJECT, false, 0, 1, NULL}};
    const struct {
        const char *body;
        const char *field, *detail; /* NULL: valid */
    } cases[] = {
        {"{\"name\":\"eye_exam\",\"fields\":[{},3],\"answers\":{\"a\":[1]}}", NULL, NULL},
        {"{\"name\":\"eye_exam\",\"answers\":{}}", NULL, NULL},
        {"{\"name\":\"Eye Exam\"}", "name", "must be 1 to 64 of a-z, 0-9 and _"},
        {"{\"name\":7}", "name", "must be 1 to 64 of a-z, 0-9 and _"},
        {"{\"name\":\"e\",\"fields\":[]}", "fields", "must be an array of 1 to 2 items"},
        {"{\"name\":\"e\",\"fields\":[1,2,3]}", "fields", "must be an array of 1 to 2 items"},
        {"{\"name\":\"e\",\"fields\":{}}", "fields", "must be an array of 1 to 2 items"},
        {"{\"name\":\"e\",\"answers\":[]}", "answers", "must be an object of 0 to 1 members"},
        {"{\"name\":\"e\",\"answers\":{\"a\":1,\"b\":2}}", "answers",
         "must be an object of 0 to 1 members"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = obj(cases[i].body), *errors = json_array();
        size_t n = tl_json_check(o, f, 3, errors);
        assert_int_equal(n, cases[i].field ? 1 : 0);
        if (cases[i].field)
            assert_error(errors, 0, cases[i].field, cases[i].detail);
        json_decref(errors);
        json_decref(o);
    }
}

static void test_getters(void **state)
{
    (void)state;
    json_t *o = obj("{\"s\":\"text\",\"i\":42,\"n\":null,\"r\":1.5}");
    assert_string_equal(tl_json_str(o, "s"), "text");
    assert_null(tl_json_str(o, "i"));
    assert_null(tl_json_str(o, "n"));
    assert_null(tl_json_str(o, "missing"));
    assert_int_equal(tl_json_int(o, "i", -1), 42);
    assert_int_equal(tl_json_int(o, "n", -1), -1);
    assert_int_equal(tl_json_int(o, "r", -1), -1);
    assert_int_equal(tl_json_int(o, "s", 7), 7);
    assert_int_equal(tl_json_int(o, "missing", 9), 9);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid_object),
        cmocka_unit_test(test_parse_invalid_json),
        cmocka_unit_test(test_parse_reason_does_not_echo_input),
        cmocka_unit_test(test_parse_top_level_not_object),
        cmocka_unit_test(test_parse_invalid_utf8),
        cmocka_unit_test(test_parse_duplicate_keys),
        cmocka_unit_test(test_parse_depth_limit),
        cmocka_unit_test(test_parse_value_limit),
        cmocka_unit_test(test_text_ok),
        cmocka_unit_test(test_check_valid),
        cmocka_unit_test(test_check_bool_and_names),
        cmocka_unit_test(test_check_name_array_object),
        cmocka_unit_test(test_check_unknown_field),
        cmocka_unit_test(test_check_missing_required),
        cmocka_unit_test(test_check_wrong_types),
        cmocka_unit_test(test_check_string_length_in_characters),
        cmocka_unit_test(test_check_control_characters),
        cmocka_unit_test(test_check_integer_bounds),
        cmocka_unit_test(test_check_dates),
        cmocka_unit_test(test_check_uuid),
        cmocka_unit_test(test_check_enum),
        cmocka_unit_test(test_check_enum_long_options),
        cmocka_unit_test(test_check_reports_everything),
        cmocka_unit_test(test_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
