#include "tl_json.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tl_date.h"
#include "tl_uuid.h"

_Static_assert(TL_JSON_MAX_DEPTH == 16 && TL_JSON_MAX_VALUES == 4096,
               "shape_problem() spells out the limits");

/* The shape of a body before jansson builds it: nesting and the number of
 * values, counted in one pass over the bytes (outside strings), so a hostile
 * body costs neither deep recursion nor a large tree. NULL when within limits. */
static const char *shape_problem(const char *b, size_t len)
{
    size_t depth = 0, values = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > TL_JSON_MAX_DEPTH)
                return "body nests deeper than 16 levels";
            values++;
        } else if (c == ']' || c == '}') {
            depth -= depth > 0;
        } else if (c == ',') {
            values++;
        }
        if (values > TL_JSON_MAX_VALUES)
            return "body has more than 4096 values";
    }
    return NULL;
}

tl_err_t tl_json_parse_object(const char *body, size_t len, json_t **out, char *why, size_t why_len)
{
    json_error_t je;
    *out = NULL;
    const char *shape = shape_problem(body, len);
    if (shape) {
        snprintf(why, why_len, "%s", shape);
        return TL_ERR_MALFORMED;
    }
    /* jansson rejects invalid UTF-8 and, without JSON_ALLOW_NUL, NUL bytes. */
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(why, why_len, "body is not valid JSON (line %d, column %d)", je.line, je.column);
        return TL_ERR_MALFORMED;
    }
    if (!json_is_object(j)) {
        snprintf(why, why_len, "body must be a JSON object");
        json_decref(j);
        return TL_ERR_MALFORMED;
    }
    *out = j;
    return TL_OK;
}

void tl_json_error(json_t *errors, const char *field, const char *detail)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "detail", detail));
}

bool tl_text_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80)
            continue;
        size_t more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
        if (!more || c > 0xf4 || (size_t)(end - p) < more)
            return false; /* a stray continuation byte, an overlong lead, past U+10FFFF */
        unsigned cp = c & (0x3f >> more);
        for (size_t k = 0; k < more; k++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (*p & 0x3fu);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp <= 0x9f))
            return false; /* overlong, a surrogate, out of range, a C1 control */
    }
    return true;
}

size_t tl_text_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

static const tl_json_field_t *find_field(const tl_json_field_t *fields, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i].name, k))
            return &fields[i];
    return NULL;
}

bool tl_json_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > TL_JSON_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* TL_JF_NAMES and TL_JF_UUIDS: arrays of distinct items. */
static void check_list(const tl_json_field_t *f, const json_t *v, json_t *errors)
{
    bool uuids = f->type == TL_JF_UUIDS;
    const char *what = uuids ? "ids" : "names";
    char msg[160];
    size_t n = json_array_size(v);
    if (!json_is_array(v) || (long)n < f->min || (long)n > f->max) {
        snprintf(msg, sizeof msg, "must be an array of %ld to %ld %s", f->min, f->max, what);
        tl_json_error(errors, f->name, msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (uuids ? !tl_uuid_valid(s) : !tl_json_name_ok(s)) {
            tl_json_error(errors, f->name,
                          uuids ? "ids are UUIDs" : "names are 1 to 64 of a-z, 0-9 and _");
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(s, json_string_value(json_array_get(v, j)))) {
                snprintf(msg, sizeof msg, "%s must not repeat", what);
                tl_json_error(errors, f->name, msg);
                return;
            }
    }
}

static void check_value(const tl_json_field_t *f, const json_t *v, json_t *errors)
{
    char msg[160];
    switch (f->type) {
    case TL_JF_STRING: {
        if (!json_is_string(v)) {
            tl_json_error(errors, f->name, "must be a string");
            return;
        }
        size_t n = tl_text_chars(json_string_value(v));
        if ((long)n < f->min || (long)n > f->max) {
            snprintf(msg, sizeof msg, "must be %ld to %ld characters long", f->min, f->max);
            tl_json_error(errors, f->name, msg);
        } else if (has_control(json_string_value(v))) {
            tl_json_error(errors, f->name, "must not contain control characters");
        }
        return;
    }
    case TL_JF_INTEGER:
        if (!json_is_integer(v)) {
            tl_json_error(errors, f->name, "must be an integer");
        } else if (json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
            snprintf(msg, sizeof msg, "must be from %ld to %ld", f->min, f->max);
            tl_json_error(errors, f->name, msg);
        }
        return;
    case TL_JF_DATE: {
        int32_t d;
        if (!json_is_string(v) || tl_date_parse(json_string_value(v), &d))
            tl_json_error(errors, f->name, "must be a calendar date YYYY-MM-DD");
        return;
    }
    case TL_JF_UUID:
        if (!json_is_string(v) || !tl_uuid_valid(json_string_value(v)))
            tl_json_error(errors, f->name, "must be a UUID");
        return;
    case TL_JF_ENUM:
        if (json_is_string(v))
            for (const char *const *o = f->options; *o; o++)
                if (!strcmp(*o, json_string_value(v)))
                    return;
        size_t len = (size_t)snprintf(msg, sizeof msg, "must be one of");
        for (const char *const *o = f->options; *o && len < sizeof msg; o++)
            len += (size_t)snprintf(msg + len, sizeof msg - len, " %s", *o);
        tl_json_error(errors, f->name, msg);
        return;
    case TL_JF_BOOL:
        if (!json_is_boolean(v))
            tl_json_error(errors, f->name, "must be true or false");
        return;
    case TL_JF_NAMES:
    case TL_JF_UUIDS:
        check_list(f, v, errors);
        return;
    case TL_JF_NAME:
        if (!tl_json_name_ok(json_string_value(v)))
            tl_json_error(errors, f->name, "must be 1 to 64 of a-z, 0-9 and _");
        return;
    case TL_JF_ARRAY:
    case TL_JF_OBJECT: {
        bool array = f->type == TL_JF_ARRAY;
        size_t n = array ? json_array_size(v) : json_object_size(v);
        if ((array ? json_is_array(v) : json_is_object(v)) && (long)n >= f->min &&
            (long)n <= f->max)
            return;
        snprintf(msg, sizeof msg, "must be an %s of %ld to %ld %s", array ? "array" : "object",
                 f->min, f->max, array ? "items" : "members");
        tl_json_error(errors, f->name, msg);
        return;
    }
    }
}

size_t tl_json_check(const json_t *obj, const tl_json_field_t *fields, size_t n, json_t *errors)
{
    size_t before = json_array_size(errors);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!find_field(fields, n, k))
            tl_json_error(errors, k, "is not a known field");
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *val = json_object_get(obj, fields[i].name);
        if (!val || json_is_null(val)) {
            if (fields[i].required)
                tl_json_error(errors, fields[i].name, "is required");
            continue;
        }
        check_value(&fields[i], val, errors);
    }
    return json_array_size(errors) - before;
}

const char *tl_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

long long tl_json_int(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}
