/* libFuzzer target: a request body as the gateway reads it — strict parsing
 * (UTF-8, an object, bounded nesting and size) and validation against a field
 * table with every kind of field. Whatever the bytes: no crash, no leak, and
 * these hold:
 * - a parsed body is an object nesting at most TL_JSON_MAX_DEPTH levels;
 * - tl_json_check reports exactly the errors it counts, each with a field and
 *   a detail;
 * - tl_text_ok accepts only what jansson also takes as UTF-8 text. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tl_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const sexes[] = {"M", "F", "O", "U", NULL};

/* The enrolment's fields plus one of every other kind. */
static const tl_json_field_t fields[] = {
    {"participant_code", TL_JF_STRING, true, 1, 32, NULL},
    {"site_id", TL_JF_UUID, true, 0, 0, NULL},
    {"birth_year", TL_JF_INTEGER, false, 1900, 2100, NULL},
    {"sex", TL_JF_ENUM, false, 0, 0, sexes},
    {"consent_date", TL_JF_DATE, true, 0, 0, NULL},
    {"baseline_date", TL_JF_DATE, false, 0, 0, NULL},
    {"required", TL_JF_BOOL, false, 0, 0, NULL},
    {"form_templates", TL_JF_NAMES, false, 0, 20, NULL},
    {"site_ids", TL_JF_UUIDS, false, 1, 32, NULL},
};

static size_t depth(const json_t *j)
{
    size_t max = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            size_t d = depth(v);
            max = d > max ? d : max;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            size_t d = depth(v);
            max = d > max ? d : max;
        }
    } else {
        return 0;
    }
    return max + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (tl_text_ok(text, size)) {
        json_t *s = json_stringn(text, size); /* jansson checks UTF-8 too */
        if (!s)
            abort();
        json_decref(s);
    }
    json_t *body = NULL;
    char why[160];
    if (tl_json_parse_object(text, size, &body, why, sizeof why)) {
        if (body || !why[0])
            abort(); /* a refusal says why and leaves nothing behind */
        return 0;
    }
    if (!json_is_object(body) || depth(body) > TL_JSON_MAX_DEPTH)
        abort();
    json_t *errors = json_array();
    size_t n = tl_json_check(body, fields, sizeof fields / sizeof fields[0], errors);
    if (n != json_array_size(errors))
        abort();
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (!json_string_value(json_object_get(e, "field")) ||
            !json_string_value(json_object_get(e, "detail")))
            abort();
    }
    json_decref(errors);
    json_decref(body);
    return 0;
}
