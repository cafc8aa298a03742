/* tl_json: strict validation of JSON request bodies against a field table.
 *
 * Every member must be known, of the right type and within bounds; every
 * problem is reported at once as {"field":..., "detail":...}. */
#ifndef TL_JSON_H
#define TL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tl_err.h"

typedef enum {
    TL_JF_STRING,  /* min..max characters (UTF-8 code points) */
    TL_JF_INTEGER, /* min..max */
    TL_JF_DATE,    /* "YYYY-MM-DD", a real calendar day */
    TL_JF_UUID,
    TL_JF_ENUM,    /* one of options */
    TL_JF_BOOL,
    TL_JF_NAMES,   /* array of min..max distinct names: 1-64 of a-z 0-9 _ */
    TL_JF_UUIDS,   /* array of min..max distinct UUIDs */
    TL_JF_NAME,    /* one name: 1-64 of a-z 0-9 _ */
    TL_JF_ARRAY,   /* array of min..max items; the caller checks the items */
    TL_JF_OBJECT,  /* object of min..max members; the caller checks the members */
} tl_jf_type_t;

typedef struct {
    const char *name;
    tl_jf_type_t type;
    bool required;
    long min, max;
    const char *const *options; /* TL_JF_ENUM: NULL-terminated */
} tl_json_field_t;

#define TL_JSON_MAX_DEPTH 16
#define TL_JSON_MAX_VALUES 4096

/* Parses a request body: valid UTF-8 JSON without NUL, an object at the top,
 * nesting at most TL_JSON_MAX_DEPTH, at most TL_JSON_MAX_VALUES values (array
 * elements and object members). Caller json_decref()s *out. On failure writes
 * a short reason (no input echoed) to why. */
tl_err_t tl_json_parse_object(const char *body, size_t len, json_t **out, char *why,
                              size_t why_len);
/* len bytes of strict UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF) without C0 or C1 control characters. */
bool tl_text_ok(const char *s, size_t len);
/* Code points of NUL-terminated UTF-8 text (continuation bytes not counted). */
size_t tl_text_chars(const char *s);
/* Appends one error per problem to errors (a JSON array); returns how many. */
size_t tl_json_check(const json_t *obj, const tl_json_field_t *fields, size_t n, json_t *errors);
/* Adds {"field": field, "detail": detail} to errors. */
void tl_json_error(json_t *errors, const char *field, const char *detail);
#define TL_JSON_NAME_MAX 64
/* A machine name: 1 to TL_JSON_NAME_MAX of a-z, 0-9 and _. */
bool tl_json_name_ok(const char *s);
/* Convenience getters for already checked objects: NULL/def when absent or null. */
const char *tl_json_str(const json_t *obj, const char *key);
long long tl_json_int(const json_t *obj, const char *key, long long def);

#endif
