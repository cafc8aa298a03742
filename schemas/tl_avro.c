#include "tl_avro.h"

#include <avro.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far deeper than any event schema, shallow enough that hostile input or a
 * recursive schema cannot exhaust the stack. */
#define MAX_DEPTH 32

struct tl_avro_schema {
    avro_schema_t schema; /* owned reference */
    char *fullname;       /* owned */
    char *json;           /* owned: the text it was parsed from */
};

/* Named types referenced by name are AVRO_LINK nodes in avro-c. */
static avro_schema_t resolve(avro_schema_t s)
{
    while (avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static bool is_named(avro_schema_t s)
{
    avro_type_t t = avro_typeof(s);
    return t == AVRO_RECORD || t == AVRO_ENUM || t == AVRO_FIXED || t == AVRO_LINK;
}

/* ---- schema ---------------------------------------------------------- */

/* True for types whose values encode to no bytes at all: null, and records
 * of such. depth stops a record that contains itself. */
static bool zero_width(avro_schema_t s, int depth)
{
    s = resolve(s);
    if (avro_typeof(s) == AVRO_NULL)
        return true;
    if (avro_typeof(s) != AVRO_RECORD || depth > MAX_DEPTH)
        return false;
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
        if (!zero_width(avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
            return false;
    return true;
}

/* avro-c accepts schemas the spec forbids (duplicate field names, unions in
 * unions, two "null" branches); each would make the JSON mapping ambiguous.
 * Arrays of zero-width items are refused too, so that the decoder may demand
 * one input byte per item: otherwise a few bytes could claim 2^62 nulls.
 * Links are not followed: their target is checked where it is defined. */
static tl_err_t check_schema(avro_schema_t s, int depth)
{
    if (depth > MAX_DEPTH)
        return TL_ERR_TOO_LARGE;
    tl_err_t err = TL_OK;
    switch (avro_typeof(s)) {
    case AVRO_RECORD:
        for (size_t i = 0; !err && i < avro_schema_record_size(s); i++) {
            const char *name = avro_schema_record_field_name(s, (int)i);
            for (size_t j = 0; j < i; j++)
                if (strcmp(name, avro_schema_record_field_name(s, (int)j)) == 0)
                    return TL_ERR_INVALID;
            err = check_schema(avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        }
        return err;
    case AVRO_UNION: {
        unsigned seen = 0; /* bit per unnamed type: the spec allows each once */
        for (size_t i = 0; !err && i < avro_schema_union_size(s); i++) {
            avro_schema_t b = avro_schema_union_branch(s, (int)i);
            avro_type_t t = avro_typeof(b);
            if (t == AVRO_UNION)
                return TL_ERR_INVALID;
            if (!is_named(b)) {
                if (seen & (1u << t))
                    return TL_ERR_INVALID;
                seen |= 1u << t;
            }
            err = check_schema(b, depth + 1);
        }
        return err;
    }
    case AVRO_ARRAY:
        if (zero_width(avro_schema_array_items(s), depth))
            return TL_ERR_INVALID;
        return check_schema(avro_schema_array_items(s), depth + 1);
    case AVRO_MAP:
        return check_schema(avro_schema_map_values(s), depth + 1);
    case AVRO_BYTES:
    case AVRO_FIXED:
        return TL_ERR_INVALID; /* no JSON mapping (see tl_avro.h) */
    default:
        return TL_OK;
    }
}

static char *make_fullname(avro_schema_t s)
{
    const char *ns = is_named(s) ? avro_schema_namespace(s) : NULL;
    const char *name = avro_schema_type_name(s);
    tl_buf_t b;
    tl_buf_init(&b, SIZE_MAX / 2);
    tl_err_t err = ns && *ns ? tl_buf_printf(&b, "%s.%s", ns, name) : tl_buf_puts(&b, name);
    if (err)
        tl_buf_cleanup(&b);
    return tl_buf_steal(&b, NULL);
}

/* An Avro name: [A-Za-z_][A-Za-z0-9_]*; dotted: such names joined by dots. */
static bool avro_name_ok(const char *s, bool dotted)
{
    bool start = true;
    for (; s && *s; s++) {
        char ch = *s;
        bool letter = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
        if (dotted && ch == '.' && !start) {
            start = true;
            continue;
        }
        if (!letter && (start || ch < '0' || ch > '9'))
            return false;
        start = false;
    }
    return s && !start;
}

typedef struct {
    char *names[256];
    size_t n;
} name_set_t;

/* What avro-c's parser mishandles on its error paths (it leaks, or worse),
 * refused before it sees the text: names and namespaces that are not Avro
 * names, a name defined twice, more named types than 256, nesting past
 * MAX_DEPTH. Duplicate JSON keys are refused by the caller. */
static bool names_ok(const json_t *schema, const char *ns, name_set_t *set, int depth)
{
    size_t i;
    json_t *b;
    char inner[512];
    if (depth > MAX_DEPTH)
        return false;
    if (json_is_array(schema)) {
        json_array_foreach(schema, i, b)
        {
            if (!names_ok(b, ns, set, depth + 1))
                return false;
        }
        return true;
    }
    if (!json_is_object(schema))
        return true;
    const json_t *type = json_object_get(schema, "type");
    const char *t = json_string_value(type);
    bool named = t && (!strcmp(t, "record") || !strcmp(t, "enum") || !strcmp(t, "fixed") ||
                       !strcmp(t, "error"));
    const char *name = json_string_value(json_object_get(schema, "name"));
    const json_t *nsv = json_object_get(schema, "namespace");
    if (named) {
        if (!name || !avro_name_ok(name, true) ||
            (nsv && !json_is_null(nsv) &&
             (!json_is_string(nsv) ||
              (*json_string_value(nsv) && !avro_name_ok(json_string_value(nsv), true)))))
            return false;
        if (nsv && json_is_string(nsv))
            ns = json_string_value(nsv);
        char full[512];
        if (snprintf(full, sizeof full, "%s%s%s", strchr(name, '.') || !ns || !*ns ? "" : ns,
                     strchr(name, '.') || !ns || !*ns ? "" : ".", name) >= (int)sizeof full)
            return false;
        for (size_t k = 0; k < set->n; k++)
            if (!strcmp(set->names[k], full))
                return false; /* redefined */
        if (set->n == sizeof set->names / sizeof set->names[0] ||
            !(set->names[set->n] = strdup(full)))
            return false;
        set->n++;
        /* what it holds is in its namespace: its full name's, whether that
         * came from a "namespace", a dotted name or the enclosing type */
        char *dot = strrchr(full, '.');
        snprintf(inner, sizeof inner, "%.*s", dot ? (int)(dot - full) : 0, full);
        ns = inner;
    }
    json_array_foreach(json_object_get(schema, "fields"), i, b)
    {
        const char *fname = json_string_value(json_object_get(b, "name"));
        if (!fname || !avro_name_ok(fname, false) ||
            !names_ok(json_object_get(b, "type"), ns, set, depth + 1))
            return false;
    }
    return (json_is_string(type) || names_ok(type, ns, set, depth + 1)) &&
           names_ok(json_object_get(schema, "items"), ns, set, depth + 1) &&
           names_ok(json_object_get(schema, "values"), ns, set, depth + 1);
}

static bool sane_for_avro_c(const char *json, size_t len)
{
    json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    name_set_t set = {.n = 0};
    bool ok = j && names_ok(j, NULL, &set, 0);
    for (size_t i = 0; i < set.n; i++)
        free(set.names[i]);
    json_decref(j);
    return ok;
}

tl_err_t tl_avro_schema_parse(const char *json, size_t len, tl_avro_schema_t **out)
{
    avro_schema_t raw = NULL;
    tl_avro_schema_t *s = NULL;
    tl_err_t err;

    *out = NULL;
    if (!json || !sane_for_avro_c(json, len))
        return TL_ERR_INVALID;
    /* On failure avro-c may leave a dangling pointer in raw: only use it on
     * success. Its error text stays inside avro-c on purpose. */
    if (avro_schema_from_json_length(json, len, &raw) != 0)
        return TL_ERR_INVALID;
    err = check_schema(raw, 1);
    if (err)
        goto out;
    err = TL_ERR_NOMEM;
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->schema = raw;
    raw = NULL;
    s->fullname = make_fullname(s->schema);
    s->json = strndup(json, len);
    if (!s->fullname || !s->json)
        goto out;
    *out = s;
    s = NULL;
    err = TL_OK;
out:
    if (raw)
        avro_schema_decref(raw);
    tl_avro_schema_destroy(s);
    return err;
}

void tl_avro_schema_destroy(tl_avro_schema_t *s)
{
    if (!s)
        return;
    if (s->schema)
        avro_schema_decref(s->schema);
    free(s->fullname);
    free(s->json);
    free(s);
}

const char *tl_avro_schema_json(const tl_avro_schema_t *s)
{
    return s->json;
}

const char *tl_avro_schema_fullname(const tl_avro_schema_t *s)
{
    return s->fullname;
}

/* ---- encoding -------------------------------------------------------- */

static tl_err_t put_long(tl_buf_t *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    uint64_t z = (u << 1) ^ (0 - (u >> 63)); /* zigzag without signed shifts */
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = z & 0x7f;
        z >>= 7;
        if (z)
            tmp[n] |= 0x80;
        n++;
    } while (z);
    return tl_buf_append(b, tmp, n);
}

static tl_err_t put_le(tl_buf_t *b, uint64_t bits, size_t n)
{
    unsigned char tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(bits >> (8 * i));
    return tl_buf_append(b, tmp, n);
}

/* Strings and map keys may not hold U+0000: jansson's C-string accessors
 * (json_string_value, json_object_get, json_object_foreach) would silently
 * truncate them, so "a\0b" could pass a check meant for "a". */
static tl_err_t put_string(tl_buf_t *b, const char *s, size_t len)
{
    if (memchr(s, 0, len))
        return TL_ERR_INVALID;
    tl_err_t err = put_long(b, (int64_t)len);
    return err ? err : tl_buf_append(b, s, len);
}

static bool is_nullable(avro_schema_t s)
{
    s = resolve(s);
    if (avro_typeof(s) != AVRO_UNION)
        return false;
    for (size_t i = 0; i < avro_schema_union_size(s); i++)
        if (avro_typeof(resolve(avro_schema_union_branch(s, (int)i))) == AVRO_NULL)
            return true;
    return false;
}

static tl_err_t encode(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth);

static tl_err_t encode_record(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth)
{
    if (!json_is_object(v))
        return TL_ERR_INVALID;
    size_t used = 0;
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
        avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
        const json_t *fv = json_object_get(v, avro_schema_record_field_name(s, (int)i));
        if (fv)
            used++;
        else if (is_nullable(fs))
            fv = json_null();
        else
            return TL_ERR_INVALID;
        tl_err_t err = encode(fs, fv, b, depth + 1);
        if (err)
            return err;
    }
    /* field names are unique (check_schema), so any extra key is unknown */
    return used == json_object_size(v) ? TL_OK : TL_ERR_INVALID;
}

static tl_err_t encode_array(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth)
{
    if (!json_is_array(v))
        return TL_ERR_INVALID;
    avro_schema_t items = avro_schema_array_items(s);
    size_t n = json_array_size(v);
    tl_err_t err = n ? put_long(b, (int64_t)n) : TL_OK;
    for (size_t i = 0; !err && i < n; i++)
        err = encode(items, json_array_get(v, i), b, depth + 1);
    return err ? err : put_long(b, 0);
}

static tl_err_t encode_map(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth)
{
    if (!json_is_object(v))
        return TL_ERR_INVALID;
    avro_schema_t values = avro_schema_map_values(s);
    size_t n = json_object_size(v);
    tl_err_t err = n ? put_long(b, (int64_t)n) : TL_OK;
    /* jansson's iterator API is not const-qualified; iterating does not modify */
    json_t *obj = (json_t *)v;
    for (void *it = json_object_iter(obj); !err && it; it = json_object_iter_next(obj, it)) {
        err = put_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!err)
            err = encode(values, json_object_iter_value(it), b, depth + 1);
    }
    return err ? err : put_long(b, 0);
}

/* The first branch that the value encodes as wins, so e.g. ["int", "long"]
 * takes 5 as int and 2^40 as long; a failed attempt is rolled back. */
static tl_err_t encode_union(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth)
{
    size_t mark = b->len;
    for (size_t i = 0; i < avro_schema_union_size(s); i++) {
        avro_schema_t br = avro_schema_union_branch(s, (int)i);
        if ((avro_typeof(resolve(br)) == AVRO_NULL) != json_is_null(v))
            continue;
        tl_err_t err = put_long(b, (int64_t)i);
        if (!err)
            err = encode(br, v, b, depth + 1);
        if (err != TL_ERR_INVALID)
            return err;
        tl_buf_truncate(b, mark);
    }
    return TL_ERR_INVALID;
}

static tl_err_t encode(avro_schema_t s, const json_t *v, tl_buf_t *b, int depth)
{
    if (depth > MAX_DEPTH)
        return TL_ERR_TOO_LARGE;
    s = resolve(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_is_null(v) ? TL_OK : TL_ERR_INVALID;
    case AVRO_BOOLEAN:
        if (!json_is_boolean(v))
            return TL_ERR_INVALID;
        return tl_buf_append(b, json_is_true(v) ? "\1" : "\0", 1);
    case AVRO_INT32:
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return TL_ERR_INVALID;
        return put_long(b, json_integer_value(v));
    case AVRO_INT64:
        return json_is_integer(v) ? put_long(b, json_integer_value(v)) : TL_ERR_INVALID;
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        double d = json_number_value(v);
        uint64_t bits;
        if (!json_is_number(v))
            return TL_ERR_INVALID;
        if (avro_typeof(s) == AVRO_DOUBLE) {
            memcpy(&bits, &d, sizeof bits);
            return put_le(b, bits, 8);
        }
        if (fabs(d) > FLT_MAX) /* converting it would be undefined */
            return TL_ERR_INVALID;
        float f = (float)d;
        uint32_t b32;
        memcpy(&b32, &f, sizeof b32);
        return put_le(b, b32, 4);
    }
    case AVRO_STRING:
        if (!json_is_string(v))
            return TL_ERR_INVALID;
        return put_string(b, json_string_value(v), json_string_length(v));
    case AVRO_ENUM:
        /* Not avro_schema_enum_get_by_name: a miss writes avro-c's error
         * buffer, a plain static in Debian's build. Comparing lengths keeps
         * "A\0x" from passing as "A" (see put_string). */
        for (int i = 0; json_is_string(v) && i < avro_schema_enum_number_of_symbols(s); i++) {
            const char *sym = avro_schema_enum_get(s, i);
            if (strlen(sym) == json_string_length(v) && strcmp(sym, json_string_value(v)) == 0)
                return put_long(b, i);
        }
        return TL_ERR_INVALID;
    case AVRO_RECORD:
        return encode_record(s, v, b, depth);
    case AVRO_ARRAY:
        return encode_array(s, v, b, depth);
    case AVRO_MAP:
        return encode_map(s, v, b, depth);
    case AVRO_UNION:
        return encode_union(s, v, b, depth);
    default: /* bytes and fixed: no event uses them */
        return TL_ERR_INVALID;
    }
}

tl_err_t tl_avro_encode(const tl_avro_schema_t *s, const json_t *value, tl_buf_t *out)
{
    if (!s || !value || !out)
        return TL_ERR_INVALID;
    size_t mark = out->len;
    tl_err_t err = encode(s->schema, value, out, 1);
    if (err)
        tl_buf_truncate(out, mark);
    return err;
}

/* ---- writing by hand ------------------------------------------------- */

void tl_avro_w_begin(tl_avro_w_t *w, tl_buf_t *out)
{
    w->out = out;
    w->mark = out->len;
    w->err = TL_OK;
}

tl_err_t tl_avro_w_end(tl_avro_w_t *w)
{
    if (w->err)
        tl_buf_truncate(w->out, w->mark);
    return w->err;
}

void tl_avro_w_long(tl_avro_w_t *w, int64_t v)
{
    if (!w->err)
        w->err = put_long(w->out, v);
}

void tl_avro_w_boolean(tl_avro_w_t *w, bool v)
{
    if (!w->err)
        w->err = tl_buf_append(w->out, v ? "\1" : "\0", 1);
}

void tl_avro_w_double(tl_avro_w_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (!w->err)
        w->err = put_le(w->out, bits, 8);
}

void tl_avro_w_stringn(tl_avro_w_t *w, const char *s, size_t len)
{
    if (!w->err)
        w->err = s ? put_string(w->out, s, len) : TL_ERR_INVALID;
}

void tl_avro_w_string(tl_avro_w_t *w, const char *s)
{
    tl_avro_w_stringn(w, s, s ? strlen(s) : 0);
}

void tl_avro_w_null(tl_avro_w_t *w)
{
    tl_avro_w_long(w, 0);
}

void tl_avro_w_some(tl_avro_w_t *w)
{
    tl_avro_w_long(w, 1);
}

void tl_avro_w_opt_string(tl_avro_w_t *w, const char *s)
{
    if (s && *s) {
        tl_avro_w_some(w);
        tl_avro_w_string(w, s);
    } else {
        tl_avro_w_null(w);
    }
}

void tl_avro_w_opt_long(tl_avro_w_t *w, bool has, int64_t v)
{
    tl_avro_w_long(w, has);
    if (has)
        tl_avro_w_long(w, v);
}

void tl_avro_w_block(tl_avro_w_t *w, size_t count)
{
    if (count)
        tl_avro_w_long(w, (int64_t)count);
}

void tl_avro_w_array_end(tl_avro_w_t *w)
{
    tl_avro_w_long(w, 0);
}

/* ---- decoding -------------------------------------------------------- */

typedef struct {
    const unsigned char *p, *end;
} reader_t;

static size_t remaining(const reader_t *r)
{
    return (size_t)(r->end - r->p);
}

static tl_err_t get_long(reader_t *r, int64_t *out)
{
    uint64_t z = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p == r->end)
            return TL_ERR_MALFORMED;
        unsigned char c = *r->p++;
        if (shift == 63 && c > 1) /* 10th byte holds only the 64th bit */
            return TL_ERR_MALFORMED;
        z |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return TL_OK;
        }
    }
    return TL_ERR_MALFORMED;
}

/* A length or count: non-negative and no larger than the bytes left, so it
 * is checked before anything is allocated for it. */
static tl_err_t get_len(reader_t *r, size_t *out)
{
    int64_t v;
    tl_err_t err = get_long(r, &v);
    if (err)
        return err;
    if (v < 0 || (uint64_t)v > remaining(r))
        return TL_ERR_MALFORMED;
    *out = (size_t)v;
    return TL_OK;
}

/* Strict UTF-8 (no overlong forms, surrogates, or anything above U+10FFFF)
 * and no NUL, for the reason given at put_string. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c == 0) {
            return false;
        } else if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static tl_err_t get_string(reader_t *r, const char **s, size_t *len)
{
    tl_err_t err = get_len(r, len);
    if (err)
        return err;
    if (!utf8_valid(r->p, *len))
        return TL_ERR_MALFORMED;
    *s = (const char *)r->p;
    r->p += *len;
    return TL_OK;
}

static tl_err_t get_le(reader_t *r, size_t n, uint64_t *bits)
{
    if (remaining(r) < n)
        return TL_ERR_MALFORMED;
    *bits = 0;
    for (size_t i = 0; i < n; i++)
        *bits |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return TL_OK;
}

static tl_err_t decode(avro_schema_t s, reader_t *r, int depth, json_t **out);

static tl_err_t decode_record(avro_schema_t s, reader_t *r, int depth, json_t **out)
{
    tl_err_t err = TL_ERR_NOMEM;
    json_t *obj = json_object();
    if (!obj)
        goto out;
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
        json_t *v;
        err = decode(avro_schema_record_field_get_by_index(s, (int)i), r, depth + 1, &v);
        if (err)
            goto out;
        /* field names come from jansson-parsed JSON, so they are valid UTF-8 */
        const char *name = avro_schema_record_field_name(s, (int)i);
        err = json_object_set_new_nocheck(obj, name, v) ? TL_ERR_NOMEM : TL_OK;
        if (err)
            goto out;
    }
    *out = obj;
    obj = NULL;
    err = TL_OK;
out:
    json_decref(obj);
    return err;
}

/* Arrays and maps share the block encoding: blocks of count items ending
 * with a zero count; a negative count is followed by the block's byte size. */
static tl_err_t decode_blocks(avro_schema_t s, reader_t *r, int depth, json_t **out)
{
    bool is_map = avro_typeof(s) == AVRO_MAP;
    avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
    tl_err_t err = TL_ERR_NOMEM;
    json_t *res = is_map ? json_object() : json_array();
    if (!res)
        goto out;
    for (;;) {
        int64_t count;
        const unsigned char *block_end = NULL;
        err = get_long(r, &count);
        if (err)
            goto out;
        if (count == 0)
            break;
        err = TL_ERR_MALFORMED;
        if (count == INT64_MIN)
            goto out;
        if (count < 0) {
            size_t size;
            count = -count;
            if (get_len(r, &size))
                goto out;
            block_end = r->p + size;
        }
        /* every item takes at least one byte (a map key, or see check_schema) */
        if ((uint64_t)count > remaining(r))
            goto out;
        for (int64_t i = 0; i < count; i++) {
            const char *key = NULL;
            size_t klen = 0;
            json_t *v;
            if (is_map && (err = get_string(r, &key, &klen)))
                goto out;
            if ((err = decode(item, r, depth + 1, &v)))
                goto out;
            if (is_map && json_object_getn(res, key, klen)) {
                /* legal Avro, but a JSON object cannot hold both */
                json_decref(v);
                err = TL_ERR_MALFORMED;
                goto out;
            }
            /* both steal v even when they fail */
            if (is_map ? json_object_setn_new_nocheck(res, key, klen, v)
                       : json_array_append_new(res, v)) {
                err = TL_ERR_NOMEM;
                goto out;
            }
        }
        err = TL_ERR_MALFORMED;
        if (block_end && r->p != block_end)
            goto out;
    }
    *out = res;
    res = NULL;
out:
    json_decref(res);
    return err;
}

static tl_err_t decode(avro_schema_t s, reader_t *r, int depth, json_t **out)
{
    tl_err_t err;
    int64_t l;
    uint64_t bits;
    json_t *v = NULL;

    if (depth > MAX_DEPTH)
        return TL_ERR_MALFORMED;
    s = resolve(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        *out = json_null();
        return TL_OK;
    case AVRO_BOOLEAN:
        if ((err = get_le(r, 1, &bits)))
            return err;
        if (bits > 1)
            return TL_ERR_MALFORMED;
        *out = json_boolean(bits);
        return TL_OK;
    case AVRO_INT32:
    case AVRO_INT64:
        if ((err = get_long(r, &l)))
            return err;
        if (avro_typeof(s) == AVRO_INT32 && (l < INT32_MIN || l > INT32_MAX))
            return TL_ERR_MALFORMED;
        v = json_integer(l);
        break;
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        bool is_float = avro_typeof(s) == AVRO_FLOAT;
        double d;
        if ((err = get_le(r, is_float ? 4 : 8, &bits)))
            return err;
        if (is_float) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, sizeof f);
            d = f;
        } else {
            memcpy(&d, &bits, sizeof d);
        }
        if (!isfinite(d)) /* NaN and infinities have no JSON form */
            return TL_ERR_MALFORMED;
        v = json_real(d);
        break;
    }
    case AVRO_STRING: {
        const char *str;
        size_t len;
        if ((err = get_string(r, &str, &len)))
            return err;
        v = json_stringn_nocheck(str, len);
        break;
    }
    case AVRO_ENUM:
        if ((err = get_long(r, &l)))
            return err;
        /* avro-c does not bounds-check enum_get: an out-of-range index
         * returns an uninitialised pointer */
        if (l < 0 || l >= avro_schema_enum_number_of_symbols(s))
            return TL_ERR_MALFORMED;
        v = json_string_nocheck(avro_schema_enum_get(s, (int)l));
        break;
    case AVRO_UNION:
        if ((err = get_long(r, &l)))
            return err;
        if (l < 0 || (uint64_t)l >= avro_schema_union_size(s))
            return TL_ERR_MALFORMED;
        return decode(avro_schema_union_branch(s, (int)l), r, depth + 1, out);
    case AVRO_RECORD:
        return decode_record(s, r, depth, out);
    case AVRO_ARRAY:
    case AVRO_MAP:
        return decode_blocks(s, r, depth, out);
    default: /* bytes and fixed: see encode() */
        return TL_ERR_INVALID;
    }
    if (!v)
        return TL_ERR_NOMEM;
    *out = v;
    return TL_OK;
}

tl_err_t tl_avro_decode(const tl_avro_schema_t *s, const void *data, size_t len, json_t **out)
{
    static const unsigned char empty[1];
    json_t *v = NULL;

    *out = NULL;
    if (!s || (!data && len))
        return TL_ERR_INVALID;
    /* NULL + 0 is undefined, so an empty datum reads from a static byte */
    const unsigned char *p = data ? data : empty;
    reader_t r = {p, p + len};
    tl_err_t err = decode(s->schema, &r, 1, &v);
    if (!err && r.p != r.end)
        err = TL_ERR_MALFORMED;
    if (err)
        json_decref(v);
    else
        *out = v;
    return err;
}

/* ---- schema resolution ------------------------------------------------ */

/* The Avro specification's resolution rules ("Schema Resolution"), over the
 * two schemas' JSON. avro-c has a resolver (avro_resolved_writer_new), but
 * the one in Debian 12 (1.11) ignores field defaults and crashes on some
 * incompatible nested records, so it cannot judge what a connector sends. */

#define NAMES_MAX 256

typedef struct {
    const char *name; /* full name as written, or with its namespace */
    const json_t *def;
} named_t;

typedef struct {
    named_t names[2][NAMES_MAX]; /* [0] writer's, [1] reader's */
    size_t n[2];
    /* pairs being compared (a recursive type meets itself again); a union
     * against a union takes two steps per level of the schemas */
    const json_t *stack[2][2 * MAX_DEPTH + 4];
    int depth;
    char *why;
    size_t why_size;
} resolve_t;

static const char *last_dot(const char *s)
{
    const char *d = s ? strrchr(s, '.') : NULL;
    return d ? d + 1 : s;
}

/* Collects the named types defined in schema into the side's table. */
static void collect(resolve_t *c, int side, const json_t *schema, int depth)
{
    if (depth > MAX_DEPTH)
        return;
    size_t i;
    json_t *b;
    if (json_is_array(schema)) {
        json_array_foreach(schema, i, b)
        {
            collect(c, side, b, depth + 1);
        }
        return;
    }
    if (!json_is_object(schema))
        return;
    const char *name = json_string_value(json_object_get(schema, "name"));
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (name && type && c->n[side] < NAMES_MAX &&
        (!strcmp(type, "record") || !strcmp(type, "enum") || !strcmp(type, "fixed")))
        c->names[side][c->n[side]++] = (named_t){name, schema};
    collect(c, side, json_object_get(schema, "items"), depth + 1);
    collect(c, side, json_object_get(schema, "values"), depth + 1);
    json_array_foreach(json_object_get(schema, "fields"), i, b)
    {
        collect(c, side, json_object_get(b, "type"), depth + 1);
    }
    if (json_is_array(json_object_get(schema, "type")) ||
        json_is_object(json_object_get(schema, "type")))
        collect(c, side, json_object_get(schema, "type"), depth + 1);
}

static const char *const primitives[] = {"null",  "boolean", "int",    "long",
                                         "float", "double",  "string", "bytes"};

/* The schema a reference names, or the schema itself; {"type": "int"} is
 * "int". */
static const json_t *deref(const resolve_t *c, int side, const json_t *s)
{
    for (int hops = 0; hops < 4; hops++) {
        const json_t *t = json_object_get(s, "type");
        if (json_is_object(s) && json_is_string(t) && !json_object_get(s, "name") &&
            !json_object_get(s, "items") && !json_object_get(s, "values"))
            s = t; /* a primitive with attributes (a logical type) */
        if (!json_is_string(s))
            return s;
        const char *ref = json_string_value(s);
        for (size_t i = 0; i < sizeof primitives / sizeof primitives[0]; i++)
            if (!strcmp(ref, primitives[i]))
                return s;
        const json_t *found = NULL; /* the name as written, else by its last part */
        for (size_t i = 0; i < c->n[side] && !found; i++)
            if (!strcmp(c->names[side][i].name, ref))
                found = c->names[side][i].def;
        for (size_t i = 0; i < c->n[side] && !found; i++)
            if (!strcmp(last_dot(c->names[side][i].name), last_dot(ref)))
                found = c->names[side][i].def;
        if (!found)
            return s;
        s = found;
    }
    return s;
}

static const char *kind(const json_t *s)
{
    if (json_is_string(s))
        return json_string_value(s);
    if (json_is_array(s))
        return "union";
    const char *t = json_string_value(json_object_get(s, "type"));
    return t ? t : "?";
}

__attribute__((format(printf, 2, 3))) static bool fail(resolve_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->why_size)
        vsnprintf(c->why, c->why_size, fmt, ap);
    va_end(ap);
    return false;
}

static bool promotes(const char *w, const char *r)
{
    return (!strcmp(w, "int") &&
            (!strcmp(r, "long") || !strcmp(r, "float") || !strcmp(r, "double"))) ||
           (!strcmp(w, "long") && (!strcmp(r, "float") || !strcmp(r, "double"))) ||
           (!strcmp(w, "float") && !strcmp(r, "double")) ||
           (!strcmp(w, "string") && !strcmp(r, "bytes")) ||
           (!strcmp(w, "bytes") && !strcmp(r, "string"));
}

static bool readable(resolve_t *c, const json_t *w, const json_t *r);

static bool records_readable(resolve_t *c, const json_t *w, const json_t *r)
{
    size_t i, j;
    json_t *rf, *wf, *a;
    json_array_foreach(json_object_get(r, "fields"), i, rf)
    {
        const char *rn = json_string_value(json_object_get(rf, "name"));
        const json_t *match = NULL;
        json_array_foreach(json_object_get(w, "fields"), j, wf)
        {
            const char *wn = json_string_value(json_object_get(wf, "name"));
            bool same = wn && rn && !strcmp(wn, rn);
            size_t k;
            json_array_foreach(json_object_get(rf, "aliases"), k, a)
            {
                same = same || (wn && json_is_string(a) && !strcmp(wn, json_string_value(a)));
            }
            if (same && !match)
                match = wf;
        }
        if (!match && !json_object_get(rf, "default"))
            return fail(c, "reader field %s of %s has no default, and the writer lacks it",
                        rn ? rn : "?", json_string_value(json_object_get(r, "name")));
        if (match && !readable(c, json_object_get(match, "type"), json_object_get(rf, "type")))
            return false;
    }
    return true;
}

static bool readable(resolve_t *c, const json_t *w, const json_t *r)
{
    w = deref(c, 0, w);
    r = deref(c, 1, r);
    for (int i = 0; i < c->depth; i++)
        if (c->stack[0][i] == w && c->stack[1][i] == r)
            return true; /* a recursive type, being compared already */
    if (c->depth >= 2 * MAX_DEPTH + 4)
        return fail(c, "schemas nest deeper than %d", MAX_DEPTH);
    size_t i;
    json_t *b;
    bool ok = true;
    c->stack[0][c->depth] = w;
    c->stack[1][c->depth] = r;
    c->depth++;
    const char *tw = kind(w), *tr = kind(r);
    if (!strcmp(tw, "union")) { /* every branch the writer may have written */
        json_array_foreach(w, i, b)
        {
            ok = ok && readable(c, b, r);
        }
    } else if (!strcmp(tr, "union")) { /* the first branch that reads it */
        ok = false;
        json_array_foreach(r, i, b)
        {
            ok = ok || readable(c, w, b);
        }
        if (!ok)
            fail(c, "no branch of the reader's union reads the writer's %s", tw);
    } else if (strcmp(tw, tr)) {
        ok = promotes(tw, tr) || fail(c, "the writer's %s cannot be read as %s", tw, tr);
    } else if (!strcmp(tw, "record") || !strcmp(tw, "enum") || !strcmp(tw, "fixed")) {
        const char *wn = json_string_value(json_object_get(w, "name"));
        const char *rn = json_string_value(json_object_get(r, "name"));
        if (!wn || !rn || strcmp(last_dot(wn), last_dot(rn)))
            ok = fail(c, "the writer's %s is not the reader's %s", wn ? wn : "?", rn ? rn : "?");
        else if (!strcmp(tw, "record"))
            ok = records_readable(c, w, r);
        else if (!strcmp(tw, "fixed"))
            ok = json_equal(json_object_get(w, "size"), json_object_get(r, "size")) ||
                 fail(c, "fixed %s changed its size", wn);
        else { /* enum: every symbol the writer has, or the reader's default */
            json_array_foreach(json_object_get(w, "symbols"), i, b)
            {
                bool known = json_object_get(r, "default") != NULL;
                size_t j;
                json_t *rs;
                json_array_foreach(json_object_get(r, "symbols"), j, rs)
                {
                    known = known || json_equal(b, rs);
                }
                if (ok && !known)
                    ok = fail(c, "the reader's enum %s lacks the symbol %s", rn,
                              json_is_string(b) ? json_string_value(b) : "?");
            }
        }
    } else if (!strcmp(tw, "array")) {
        ok = readable(c, json_object_get(w, "items"), json_object_get(r, "items"));
    } else if (!strcmp(tw, "map")) {
        ok = readable(c, json_object_get(w, "values"), json_object_get(r, "values"));
    }
    c->depth--;
    return ok;
}

tl_err_t tl_avro_can_read(const char *reader, size_t rlen, const char *writer, size_t wlen,
                          char *why, size_t why_size)
{
    json_t *r = json_loadb(reader, rlen, JSON_DECODE_ANY, NULL);
    json_t *w = json_loadb(writer, wlen, JSON_DECODE_ANY, NULL);
    tl_avro_schema_t *rs = NULL, *ws = NULL;
    resolve_t *c = calloc(1, sizeof *c);
    tl_err_t err = TL_ERR_INVALID;
    if (why_size)
        why[0] = '\0';
    /* both must be schemas first: the rules below assume well-formed ones */
    if (!c || !r || !w || tl_avro_schema_parse(reader, rlen, &rs) ||
        tl_avro_schema_parse(writer, wlen, &ws))
        goto out;
    c->why = why;
    c->why_size = why_size;
    collect(c, 0, w, 0);
    collect(c, 1, r, 0);
    err = readable(c, w, r) ? TL_OK : TL_ERR_CONFLICT;
out:
    tl_avro_schema_destroy(rs);
    tl_avro_schema_destroy(ws);
    free(c);
    json_decref(r);
    json_decref(w);
    return err;
}

/* ---- framing --------------------------------------------------------- */

void tl_frame_header(uint32_t schema_id, unsigned char out[TL_FRAME_HEADER_LEN])
{
    out[0] = 0;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (unsigned char)(schema_id >> (24 - 8 * i));
}

tl_err_t tl_frame_parse(const void *msg, size_t len, uint32_t *schema_id, const void **datum,
                        size_t *datum_len)
{
    const unsigned char *p = msg;
    if (!p || len < TL_FRAME_HEADER_LEN || p[0] != 0)
        return TL_ERR_MALFORMED;
    *schema_id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    *datum = p + TL_FRAME_HEADER_LEN;
    *datum_len = len - TL_FRAME_HEADER_LEN;
    return TL_OK;
}

/* ---- object container files ----------------------------------------- */

static tl_err_t put_bytes(tl_buf_t *b, const void *data, size_t len)
{
    tl_err_t err = put_long(b, (int64_t)len);
    return err ? err : tl_buf_append(b, data, len);
}

tl_err_t tl_avro_ocf_header(const char *schema_json, const unsigned char sync[TL_AVRO_SYNC_LEN],
                            tl_buf_t *out)
{
    static const char magic[] = {'O', 'b', 'j', 1};
    size_t before = out->len;
    tl_err_t err = tl_buf_append(out, magic, sizeof magic);
    /* the file's metadata: a map of two entries in one block, then the end */
    if (!err)
        err = put_long(out, 2);
    if (!err)
        err = put_bytes(out, "avro.schema", 11);
    if (!err)
        err = put_bytes(out, schema_json, strlen(schema_json));
    if (!err)
        err = put_bytes(out, "avro.codec", 10);
    if (!err)
        err = put_bytes(out, "null", 4);
    if (!err)
        err = put_long(out, 0);
    if (!err)
        err = tl_buf_append(out, sync, TL_AVRO_SYNC_LEN);
    if (err)
        tl_buf_truncate(out, before);
    return err;
}

tl_err_t tl_avro_ocf_block(size_t count, const void *data, size_t len,
                           const unsigned char sync[TL_AVRO_SYNC_LEN], tl_buf_t *out)
{
    size_t before = out->len;
    tl_err_t err = put_long(out, (int64_t)count);
    if (!err)
        err = put_bytes(out, data, len);
    if (!err)
        err = tl_buf_append(out, sync, TL_AVRO_SYNC_LEN);
    if (err)
        tl_buf_truncate(out, before);
    return err;
}
