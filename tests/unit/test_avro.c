/* Unit tests for tl_avro: JSON <-> Avro binary for every shipped schema,
 * hostile-input decoding, encode errors, framing, and byte-for-byte agreement
 * with avro-c's own reader and writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <avro.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_avro.h"
#include "tl_schemas.h"

#ifndef TL_SCHEMA_DIR
#error "define TL_SCHEMA_DIR as the path of the schemas directory"
#endif

#define BUF_MAX (1u << 20)

/* A schema both as tl_avro sees it and as avro-c sees it, for interop. */
typedef struct {
    tl_avro_schema_t *s;
    avro_schema_t raw;
    json_t *avsc;
} fx_t;

static void fx_load_text(fx_t *fx, const char *text, size_t len)
{
    json_error_t jerr;
    assert_int_equal(tl_avro_schema_parse(text, len, &fx->s), TL_OK);
    assert_int_equal(avro_schema_from_json_length(text, len, &fx->raw), 0);
    fx->avsc = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    assert_non_null(fx->avsc);
}

static void fx_load_str(fx_t *fx, const char *text)
{
    fx_load_text(fx, text, strlen(text));
}

static void fx_load_file(fx_t *fx, const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    tl_buf_t b;
    tl_buf_init(&b, BUF_MAX);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(tl_buf_append(&b, chunk, n), TL_OK);
    fclose(f);
    fx_load_text(fx, b.data, b.len);
    tl_buf_cleanup(&b);
}

static void fx_free(fx_t *fx)
{
    tl_avro_schema_destroy(fx->s);
    avro_schema_decref(fx->raw);
    json_decref(fx->avsc);
}

static json_t *json_of(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    assert_non_null(v);
    return v;
}

static void assert_json_eq(const json_t *got, const json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        print_error("got  %s\nwant %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
}

/* avro-c reads our bytes and writes them back; identical output proves the
 * encoding is standard Avro binary. */
static void assert_avro_c_agrees(avro_schema_t raw, const char *bytes, size_t len)
{
    avro_value_iface_t *iface = avro_generic_class_from_schema(raw);
    assert_non_null(iface);
    avro_value_t val;
    assert_int_equal(avro_generic_value_new(iface, &val), 0);
    avro_reader_t rd = avro_reader_memory(bytes, (int64_t)len);
    assert_int_equal(avro_value_read(rd, &val), 0);
    size_t size = 0;
    assert_int_equal(avro_value_sizeof(&val, &size), 0);
    assert_int_equal(size, len);
    char *copy = malloc(size + 1);
    assert_non_null(copy);
    avro_writer_t wr = avro_writer_memory(copy, (int64_t)size);
    assert_int_equal(avro_value_write(wr, &val), 0);
    assert_int_equal(avro_writer_tell(wr), (int64_t)len);
    assert_memory_equal(copy, bytes, len);
    avro_writer_free(wr);
    free(copy);
    avro_reader_free(rd);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
}

/* encode(input) decodes to want, re-encodes to the same bytes, and avro-c
 * agrees; the bytes are left in out for further checks. */
static void roundtrip(const fx_t *fx, const json_t *input, const json_t *want, tl_buf_t *out)
{
    json_t *got = NULL;
    tl_buf_t again;
    tl_buf_reset(out);
    assert_int_equal(tl_avro_encode(fx->s, input, out), TL_OK);
    assert_int_equal(tl_avro_decode(fx->s, out->data, out->len, &got), TL_OK);
    assert_json_eq(got, want);
    tl_buf_init(&again, BUF_MAX);
    assert_int_equal(tl_avro_encode(fx->s, got, &again), TL_OK);
    assert_int_equal(again.len, out->len);
    assert_memory_equal(again.data, out->data, out->len);
    tl_buf_cleanup(&again);
    json_decref(got);
    assert_avro_c_agrees(fx->raw, out->data, out->len);
}

static void assert_decode_err(const fx_t *fx, const void *bytes, size_t len, tl_err_t want)
{
    json_t *got = json_true(); /* must come back NULL on error */
    assert_int_equal(tl_avro_decode(fx->s, bytes, len, &got), want);
    if (want == TL_OK)
        assert_non_null(got);
    else
        assert_null(got);
    json_decref(got);
}

static void assert_decode_str(const char *schema, const void *bytes, size_t len, tl_err_t want)
{
    fx_t fx;
    fx_load_str(&fx, schema);
    assert_decode_err(&fx, bytes, len, want);
    fx_free(&fx);
}

/* ---- sample values generated from the .avsc text ----------------------- */

static json_t *sample_string(const char *field)
{
    static const struct {
        const char *field, *value;
    } names[] = {
        {"actor_id", "user:7f3c2a"},  {"actor_role", "investigator"},
        {"correlation_id", "req-01HZX3"}, {"causation_id", "0190a5f2-7c3e-7d41-9b2a-000000000001"},
        {"source", "gateway"},       {"reason", "site opened after IRB approval"},
        {"code", "SITE-007"},        {"name", "Zürich Universitätsspital – Kardiologie"},
        {"protocol_id", "TRL-2024-003"}, {"description", "Phase II, double-blind"},
        {"participant_code", "P-0042"}, {"sex", "F"},
        {"consent_version", "v2.1"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].field, field) == 0)
            return json_string(names[i].value);
    return json_string("sample ✓");
}

static json_t *sample_of(const json_t *type, const char *field)
{
    const char *t = json_string_value(type);
    const char *logical = NULL;
    if (json_is_array(type)) /* a union: its first branch that is not null */
        return sample_of(json_array_get(type, 1), field);
    if (json_is_object(type)) {
        t = json_string_value(json_object_get(type, "type"));
        logical = json_string_value(json_object_get(type, "logicalType"));
    }
    assert_non_null(t);
    if (logical && strcmp(logical, "uuid") == 0)
        return json_string("0190a5f2-7c3e-7d41-9b2a-5f0e1c2d3e4f");
    if (logical && strcmp(logical, "timestamp-micros") == 0)
        return json_integer(1718035200123456);
    if (logical && strcmp(logical, "date") == 0)
        return json_integer(19889); /* 2024-06-17 */
    if (strcmp(t, "string") == 0)
        return sample_string(field);
    if (strcmp(t, "int") == 0)
        return json_integer(1984);
    if (strcmp(t, "long") == 0)
        return json_integer(3);
    if (strcmp(t, "boolean") == 0)
        return json_true();
    if (strcmp(t, "double") == 0)
        return json_real(98.5);
    if (strcmp(t, "array") == 0) {
        /* two items: an array's block count and both items must round-trip */
        json_t *arr = json_array();
        json_array_append_new(arr, sample_of(json_object_get(type, "items"), field));
        json_array_append_new(arr, sample_of(json_object_get(type, "items"), field));
        return arr;
    }
    if (strcmp(t, "map") == 0) {
        json_t *map = json_object();
        json_object_set_new(map, "left", sample_of(json_object_get(type, "values"), field));
        json_object_set_new(map, "right", sample_of(json_object_get(type, "values"), field));
        return map;
    }
    if (strcmp(t, "record") == 0) {
        json_t *rec = json_object();
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(type, "fields"), i, f) {
            const char *name = json_string_value(json_object_get(f, "name"));
            json_object_set_new(rec, name, sample_of(json_object_get(f, "type"), name));
        }
        return rec;
    }
    fail_msg("no sample for type %s of field %s", t, field);
    return NULL;
}

/* For a record schema: input with every optional field set (full) or left
 * out (!full), and what decoding must produce (left-out fields as null). */
static void sample_record(const json_t *avsc, int full, json_t **input, json_t **want)
{
    *input = json_object();
    *want = json_object();
    size_t i;
    json_t *field;
    json_array_foreach(json_object_get(avsc, "fields"), i, field) {
        const char *name = json_string_value(json_object_get(field, "name"));
        const json_t *type = json_object_get(field, "type");
        if (json_is_array(type)) {
            /* our optional fields are all ["null", T, ...] */
            assert_true(json_array_size(type) >= 2);
            assert_string_equal(json_string_value(json_array_get(type, 0)), "null");
            if (!full) {
                json_object_set_new(*want, name, json_null());
                continue;
            }
            type = json_array_get(type, 1);
        }
        json_t *v = sample_of(type, name);
        json_object_set(*input, name, v);
        json_object_set_new(*want, name, v);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_every_avsc_roundtrips(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob(TL_SCHEMA_DIR "/*/*.avsc", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 4);
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        fx_t fx;
        fx_load_file(&fx, g.gl_pathv[i]);
        const char *ns = json_string_value(json_object_get(fx.avsc, "namespace"));
        const char *name = json_string_value(json_object_get(fx.avsc, "name"));
        assert_non_null(ns);
        assert_non_null(name);
        assert_int_equal(strncmp(tl_avro_schema_fullname(fx.s), ns, strlen(ns)), 0);
        assert_string_equal(tl_avro_schema_fullname(fx.s) + strlen(ns) + 1, name);
        for (int full = 0; full <= 1; full++) {
            json_t *input, *want;
            sample_record(fx.avsc, full, &input, &want);
            roundtrip(&fx, input, want, &out);
            /* explicit nulls encode the same as omitted fields */
            tl_buf_t nulls;
            tl_buf_init(&nulls, BUF_MAX);
            assert_int_equal(tl_avro_encode(fx.s, want, &nulls), TL_OK);
            assert_int_equal(nulls.len, out.len);
            assert_memory_equal(nulls.data, out.data, out.len);
            tl_buf_cleanup(&nulls);
            json_decref(input);
            json_decref(want);
        }
        fx_free(&fx);
    }
    tl_buf_cleanup(&out);
    globfree(&g);
}

static void test_participant_enrolled_values(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/participant/ParticipantEnrolled.avsc");
    assert_string_equal(tl_avro_schema_fullname(fx.s), "org.trialog.ParticipantEnrolled");
    json_t *in = json_of(
        "{\"event_id\": \"0190a5f2-7c3e-7d41-9b2a-5f0e1c2d3e4f\","
        " \"occurred_at\": 1718035200000000, \"recorded_at\": -1,"
        " \"actor_id\": \"user:42\", \"actor_role\": \"coordinator\","
        " \"site_id\": \"0190a5f2-0000-7000-8000-000000000007\", \"reason\": null,"
        " \"correlation_id\": \"c-1\", \"source\": \"gateway\", \"stream_version\": 1,"
        " \"participant_id\": \"0190a5f2-0000-7000-8000-0000000000aa\","
        " \"study_id\": \"0190a5f2-0000-7000-8000-0000000000bb\","
        " \"participant_code\": \"P-0001\", \"birth_year\": 1961, \"sex\": \"M\","
        " \"consent_date\": -365, \"baseline_date\": 2147483647, \"schedule\": []}");
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    assert_int_equal(tl_avro_encode(fx.s, in, &out), TL_OK);
    json_t *got = NULL;
    assert_int_equal(tl_avro_decode(fx.s, out.data, out.len, &got), TL_OK);
    assert_string_equal(json_string_value(json_object_get(got, "participant_code")), "P-0001");
    assert_int_equal(json_integer_value(json_object_get(got, "birth_year")), 1961);
    assert_int_equal(json_integer_value(json_object_get(got, "recorded_at")), -1);
    assert_int_equal(json_integer_value(json_object_get(got, "consent_date")), -365);
    assert_int_equal(json_integer_value(json_object_get(got, "baseline_date")), INT32_MAX);
    assert_true(json_is_null(json_object_get(got, "reason")));
    assert_true(json_is_null(json_object_get(got, "causation_id"))); /* omitted */
    assert_int_equal(json_object_size(got), 19);
    assert_int_equal(json_array_size(json_object_get(got, "schedule")), 0);
    json_decref(got);
    json_decref(in);
    tl_buf_cleanup(&out);
    fx_free(&fx);
}

/* Spec vectors: zigzag varints and length-prefixed strings. */
static void test_known_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *schema, *json;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\"long\"", "0", "\x00", 1},
        {"\"long\"", "-1", "\x01", 1},
        {"\"long\"", "1", "\x02", 1},
        {"\"long\"", "-64", "\x7f", 1},
        {"\"long\"", "64", "\x80\x01", 2},
        {"\"long\"", "9223372036854775807", "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
        {"\"long\"", "-9223372036854775808", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
        {"\"int\"", "-2147483648", "\xff\xff\xff\xff\x0f", 5},
        {"\"string\"", "\"foo\"", "\x06" "foo", 4},
        {"\"boolean\"", "true", "\x01", 1},
        {"\"double\"", "1.0", "\x00\x00\x00\x00\x00\x00\xf0\x3f", 8},
        {"\"float\"", "1.0", "\x00\x00\x80\x3f", 4},
        {"[\"null\", \"string\"]", "null", "\x00", 1},
        {"[\"null\", \"string\"]", "\"a\"", "\x02\x02" "a", 3},
        {"[\"int\", \"string\"]", "\"a\"", "\x02\x02" "a", 3},
        {"[\"int\", \"long\"]", "4294967296", "\x02\x80\x80\x80\x80\x20", 6},
        {"{\"type\": \"array\", \"items\": \"int\"}", "[1, 2]", "\x04\x02\x04\x00", 4},
        {"{\"type\": \"array\", \"items\": \"int\"}", "[]", "\x00", 1},
        {"{\"type\": \"map\", \"values\": \"int\"}", "{\"a\": 1}", "\x02\x02" "a\x02\x00", 5},
        {"{\"type\": \"record\", \"name\": \"Empty\", \"fields\": []}", "{}", "", 0},
        {"{\"type\": \"map\", \"values\": {\"type\": \"record\", \"name\": \"E\", \"fields\": []}}",
         "{\"\": {}, \"b\": {}}", "\x04\x00\x02" "b\x00", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_t fx;
        fx_load_str(&fx, cases[i].schema);
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        tl_buf_t out;
        tl_buf_init(&out, BUF_MAX);
        roundtrip(&fx, v, v, &out);
        assert_int_equal(out.len, cases[i].len);
        assert_memory_equal(out.data, cases[i].bytes, cases[i].len);
        tl_buf_cleanup(&out);
        json_decref(v);
        fx_free(&fx);
    }
}

static const char complex_schema[] =
    "{\"type\": \"record\", \"name\": \"Visit\", \"namespace\": \"org.trialog.test\","
    " \"fields\": ["
    "  {\"name\": \"status\", \"type\": {\"type\": \"enum\", \"name\": \"Status\","
    "    \"symbols\": [\"SCHEDULED\", \"DONE\", \"MISSED\"]}},"
    "  {\"name\": \"previous\", \"type\": [\"null\", \"Status\"]},"
    "  {\"name\": \"doses\", \"type\": {\"type\": \"array\", \"items\": \"int\"}},"
    "  {\"name\": \"labels\", \"type\": {\"type\": \"map\", \"values\": \"string\"}},"
    "  {\"name\": \"vitals\", \"type\": {\"type\": \"record\", \"name\": \"Vitals\", \"fields\": ["
    "    {\"name\": \"weight_kg\", \"type\": \"double\"},"
    "    {\"name\": \"temp_c\", \"type\": \"float\"},"
    "    {\"name\": \"fasting\", \"type\": \"boolean\"}]}},"
    "  {\"name\": \"follow_up\", \"type\": [\"null\", \"Vitals\"]},"
    "  {\"name\": \"history\", \"type\": {\"type\": \"array\", \"items\":"
    "    {\"type\": \"map\", \"values\": [\"null\", \"long\", \"string\"]}}}"
    " ]}";

static void test_complex_roundtrip(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_str(&fx, complex_schema);
    assert_string_equal(tl_avro_schema_fullname(fx.s), "org.trialog.test.Visit");
    json_t *full = json_of(
        "{\"status\": \"DONE\", \"previous\": \"SCHEDULED\", \"doses\": [5, -10, 2147483647],"
        " \"labels\": {\"arm\": \"B\", \"\": \"empty key\", \"ключ\": \"значение\"},"
        " \"vitals\": {\"weight_kg\": 71.25, \"temp_c\": 36.5, \"fasting\": true},"
        " \"follow_up\": {\"weight_kg\": 70, \"temp_c\": 37, \"fasting\": false},"
        " \"history\": [{\"a\": null, \"b\": 7, \"c\": \"x\"}, {}]}");
    json_t *want_full = json_deep_copy(full);
    /* integers given for double/float come back as reals */
    json_object_set_new(json_object_get(want_full, "follow_up"), "weight_kg", json_real(70));
    json_object_set_new(json_object_get(want_full, "follow_up"), "temp_c", json_real(37));
    json_t *sparse = json_of(
        "{\"status\": \"MISSED\", \"doses\": [], \"labels\": {},"
        " \"vitals\": {\"weight_kg\": 0.0, \"temp_c\": -0.5, \"fasting\": false},"
        " \"history\": []}");
    json_t *want_sparse = json_deep_copy(sparse);
    json_object_set_new(want_sparse, "previous", json_null());
    json_object_set_new(want_sparse, "follow_up", json_null());
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    roundtrip(&fx, full, want_full, &out);
    roundtrip(&fx, sparse, want_sparse, &out);
    json_t *bad = json_of("{\"status\": \"CANCELLED\", \"doses\": [], \"labels\": {},"
                          " \"vitals\": {\"weight_kg\": 1, \"temp_c\": 1, \"fasting\": true},"
                          " \"history\": []}");
    assert_int_equal(tl_avro_encode(fx.s, bad, &out), TL_ERR_INVALID); /* unknown symbol */
    json_decref(bad);
    tl_buf_cleanup(&out);
    json_decref(full);
    json_decref(want_full);
    json_decref(sparse);
    json_decref(want_sparse);
    fx_free(&fx);
}

/* avro-c reads tl_avro's bytes into its own generic value. */
static void test_avro_c_reads_our_encoding(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/protocol/StudyRegistered.avsc");
    json_t *in, *want;
    sample_record(fx.avsc, 1, &in, &want);
    json_object_set_new(in, "stream_version", json_integer(-77));
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    assert_int_equal(tl_avro_encode(fx.s, in, &out), TL_OK);

    avro_value_iface_t *iface = avro_generic_class_from_schema(fx.raw);
    avro_value_t rec, field, branch;
    assert_int_equal(avro_generic_value_new(iface, &rec), 0);
    avro_reader_t rd = avro_reader_memory(out.data, (int64_t)out.len);
    assert_int_equal(avro_value_read(rd, &rec), 0);
    const char *str;
    size_t size;
    assert_int_equal(avro_value_get_by_name(&rec, "name", &field, NULL), 0);
    assert_int_equal(avro_value_get_string(&field, &str, &size), 0);
    assert_string_equal(str, json_string_value(json_object_get(in, "name")));
    assert_int_equal(size, json_string_length(json_object_get(in, "name")) + 1); /* counts the NUL */
    int64_t l;
    assert_int_equal(avro_value_get_by_name(&rec, "occurred_at", &field, NULL), 0);
    assert_int_equal(avro_value_get_long(&field, &l), 0);
    assert_int_equal(l, 1718035200123456);
    int disc;
    assert_int_equal(avro_value_get_by_name(&rec, "stream_version", &field, NULL), 0);
    assert_int_equal(avro_value_get_discriminant(&field, &disc), 0);
    assert_int_equal(disc, 1);
    assert_int_equal(avro_value_get_current_branch(&field, &branch), 0);
    assert_int_equal(avro_value_get_long(&branch, &l), 0);
    assert_int_equal(l, -77);
    avro_reader_free(rd);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    json_decref(in);
    json_decref(want);
    tl_buf_cleanup(&out);
    fx_free(&fx);
}

/* tl_avro decodes what avro-c's writer produced. */
static void test_we_read_avro_c_encoding(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/participant/ConsentRecorded.avsc");
    avro_value_iface_t *iface = avro_generic_class_from_schema(fx.raw);
    avro_value_t rec, field, branch;
    assert_int_equal(avro_generic_value_new(iface, &rec), 0);
    size_t n = 0;
    assert_int_equal(avro_value_get_size(&rec, &n), 0);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        assert_int_equal(avro_value_get_by_index(&rec, i, &field, &name), 0);
        avro_value_t *target = &field;
        if (avro_value_get_type(&field) == AVRO_UNION) {
            assert_int_equal(avro_value_set_branch(&field, strcmp(name, "reason") ? 1 : 0, &branch), 0);
            target = &branch;
        }
        switch (avro_value_get_type(target)) {
        case AVRO_STRING:
            assert_int_equal(avro_value_set_string(target, name), 0);
            break;
        case AVRO_INT64:
            assert_int_equal(avro_value_set_long(target, -(int64_t)i * 1000003), 0);
            break;
        case AVRO_INT32:
            assert_int_equal(avro_value_set_int(target, 20000), 0);
            break;
        case AVRO_NULL:
            assert_int_equal(avro_value_set_null(target), 0);
            break;
        default:
            fail_msg("unexpected type in %s", name);
        }
    }
    size_t size = 0;
    assert_int_equal(avro_value_sizeof(&rec, &size), 0);
    char *bytes = malloc(size);
    assert_non_null(bytes);
    avro_writer_t wr = avro_writer_memory(bytes, (int64_t)size);
    assert_int_equal(avro_value_write(wr, &rec), 0);

    json_t *got = NULL;
    assert_int_equal(tl_avro_decode(fx.s, bytes, size, &got), TL_OK);
    assert_string_equal(json_string_value(json_object_get(got, "actor_role")), "actor_role");
    assert_string_equal(json_string_value(json_object_get(got, "consent_version")), "consent_version");
    assert_true(json_is_null(json_object_get(got, "reason")));
    assert_int_equal(json_integer_value(json_object_get(got, "recorded_at")), -2000006);
    assert_int_equal(json_integer_value(json_object_get(got, "stream_version")), -10000030);
    assert_int_equal(json_integer_value(json_object_get(got, "consent_date")), 20000);
    json_decref(got);
    avro_writer_free(wr);
    free(bytes);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    fx_free(&fx);
}

static void test_framing(void **state)
{
    (void)state;
    unsigned char hdr[TL_FRAME_HEADER_LEN];
    tl_frame_header(0x01020304u, hdr);
    assert_memory_equal(hdr, "\x00\x01\x02\x03\x04", TL_FRAME_HEADER_LEN);

    /* a whole message: header + datum, back to the same JSON */
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/protocol/SiteAdded.avsc");
    json_t *in, *want;
    sample_record(fx.avsc, 1, &in, &want);
    tl_buf_t msg;
    tl_buf_init(&msg, BUF_MAX);
    tl_frame_header(UINT32_MAX, hdr);
    assert_int_equal(tl_buf_append(&msg, hdr, sizeof hdr), TL_OK);
    assert_int_equal(tl_avro_encode(fx.s, in, &msg), TL_OK);
    uint32_t id = 0;
    const void *datum = NULL;
    size_t dlen = 0;
    assert_int_equal(tl_frame_parse(msg.data, msg.len, &id, &datum, &dlen), TL_OK);
    assert_int_equal(id, UINT32_MAX);
    assert_ptr_equal(datum, msg.data + TL_FRAME_HEADER_LEN);
    assert_int_equal(dlen, msg.len - TL_FRAME_HEADER_LEN);
    json_t *got = NULL;
    assert_int_equal(tl_avro_decode(fx.s, datum, dlen, &got), TL_OK);
    assert_json_eq(got, want);
    json_decref(got);

    /* header only: an empty datum is the decoder's problem, not framing's */
    tl_frame_header(7, hdr);
    assert_int_equal(tl_frame_parse(hdr, sizeof hdr, &id, &datum, &dlen), TL_OK);
    assert_int_equal(id, 7);
    assert_int_equal(dlen, 0);
    assert_decode_err(&fx, datum, dlen, TL_ERR_MALFORMED);

    assert_int_equal(tl_frame_parse(NULL, 0, &id, &datum, &dlen), TL_ERR_MALFORMED);
    assert_int_equal(tl_frame_parse("", 0, &id, &datum, &dlen), TL_ERR_MALFORMED);
    assert_int_equal(tl_frame_parse("\x00\x00\x00\x01", 4, &id, &datum, &dlen), TL_ERR_MALFORMED);
    assert_int_equal(tl_frame_parse("\x01\x00\x00\x00\x01\x00", 6, &id, &datum, &dlen),
                     TL_ERR_MALFORMED);
    assert_int_equal(tl_frame_parse("\xff\x00\x00\x00\x01", 5, &id, &datum, &dlen),
                     TL_ERR_MALFORMED);

    json_decref(in);
    json_decref(want);
    tl_buf_cleanup(&msg);
    fx_free(&fx);
}

static void test_decode_truncated_and_trailing(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/participant/ParticipantEnrolled.avsc");
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    for (int full = 0; full <= 1; full++) {
        json_t *in, *want;
        sample_record(fx.avsc, full, &in, &want);
        tl_buf_reset(&out);
        assert_int_equal(tl_avro_encode(fx.s, in, &out), TL_OK);
        /* copies, so ASan sees any read past the cut */
        for (size_t cut = 0; cut < out.len; cut++) {
            char *p = malloc(cut ? cut : 1);
            assert_non_null(p);
            memcpy(p, out.data, cut);
            assert_decode_err(&fx, p, cut, TL_ERR_MALFORMED);
            free(p);
        }
        assert_int_equal(tl_buf_append(&out, "\x00", 1), TL_OK);
        assert_decode_err(&fx, out.data, out.len, TL_ERR_MALFORMED);
        json_decref(in);
        json_decref(want);
    }
    assert_decode_err(&fx, NULL, 0, TL_ERR_MALFORMED);
    tl_buf_cleanup(&out);
    fx_free(&fx);
}

static void test_decode_hostile_scalars(void **state)
{
    (void)state;
    /* over-long, negative and huge string lengths */
    assert_decode_str("\"string\"", "\x08" "abc", 4, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\x01" "abc", 4, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10,
                      TL_ERR_MALFORMED);
    /* invalid UTF-8: bad continuation, overlong '/', surrogate, > U+10FFFF, cut sequence */
    assert_decode_str("\"string\"", "\x04\xc3\x28", 3, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\x04\xc0\xaf", 3, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\x06\xed\xa0\x80", 4, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\x08\xf4\x90\x80\x80", 5, TL_ERR_MALFORMED);
    assert_decode_str("\"string\"", "\x04" "a\xe2", 3, TL_ERR_MALFORMED);
    /* NUL is valid UTF-8 but would truncate through jansson's C-string API */
    assert_decode_str("\"string\"", "\x06" "a\x00" "b", 4, TL_ERR_MALFORMED);
    /* varints: 11 bytes, a 10th byte with more than one bit, a cut varint */
    assert_decode_str("\"long\"", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11,
                      TL_ERR_MALFORMED);
    assert_decode_str("\"long\"", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10,
                      TL_ERR_MALFORMED);
    assert_decode_str("\"long\"", "\x80", 1, TL_ERR_MALFORMED);
    /* int outside int32, boolean other than 0/1, NaN, out-of-range enum */
    assert_decode_str("\"int\"", "\x80\x80\x80\x80\x10", 5, TL_ERR_MALFORMED);
    assert_decode_str("\"boolean\"", "\x02", 1, TL_ERR_MALFORMED);
    assert_decode_str("\"double\"", "\x00\x00\x00\x00\x00\x00\xf8\x7f", 8, TL_ERR_MALFORMED);
    assert_decode_str("\"float\"", "\x00\x00\x80\x7f", 4, TL_ERR_MALFORMED);
    assert_decode_str("{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\", \"B\"]}",
                      "\x04", 1, TL_ERR_MALFORMED);
    assert_decode_str("{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\", \"B\"]}",
                      "\x01", 1, TL_ERR_MALFORMED);
    /* union index past the end, negative, huge */
    assert_decode_str("[\"null\", \"string\"]", "\x04", 1, TL_ERR_MALFORMED);
    assert_decode_str("[\"null\", \"string\"]", "\x01", 1, TL_ERR_MALFORMED);
    assert_decode_str("[\"null\", \"string\"]", "\xfe\xff\xff\xff\x0f", 5, TL_ERR_MALFORMED);
    /* what is valid still decodes */
    assert_decode_str("\"string\"", "\x00", 1, TL_OK);
    assert_decode_str("\"string\"", "\x0a\xf0\x9f\x92\x8a!", 6, TL_OK);
}

static void test_decode_hostile_blocks(void **state)
{
    (void)state;
    const char *arr = "{\"type\": \"array\", \"items\": \"boolean\"}";
    const char *map = "{\"type\": \"map\", \"values\": \"int\"}";
    /* counts claiming more items than bytes remain */
    assert_decode_str(arr, "\x80\x80\x80\x80\x80\x80\x80\x80\x40\x00", 10, TL_ERR_MALFORMED);
    assert_decode_str(arr, "\x06\x01\x00", 3, TL_ERR_MALFORMED);
    assert_decode_str(arr, "\x04\x01\x00\x00", 4, TL_OK);
    assert_decode_str(map, "\xfe\xff\xff\xff\x0f", 5, TL_ERR_MALFORMED);
    /* INT64_MIN as count, missing terminator */
    assert_decode_str(map, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, TL_ERR_MALFORMED);
    assert_decode_str(map, "\x02\x02" "a\x02", 4, TL_ERR_MALFORMED);
    /* negative count with its byte size: right, wrong, negative */
    assert_decode_str(map, "\x01\x06\x02" "a\x02\x00", 6, TL_OK);
    assert_decode_str(map, "\x01\x08\x02" "a\x02\x00\x00", 7, TL_ERR_MALFORMED);
    assert_decode_str(map, "\x01\x01\x02" "a\x02\x00", 6, TL_ERR_MALFORMED);
    /* duplicate keys cannot become one JSON object */
    assert_decode_str(map, "\x04\x02" "a\x02\x02" "a\x04\x00", 8, TL_ERR_MALFORMED);
    assert_decode_str(map, "\x02\x02" "a\x02\x02\x02" "a\x04\x00", 9, TL_ERR_MALFORMED);
    /* invalid UTF-8 or NUL in a key */
    assert_decode_str(map, "\x02\x02\xff\x02\x00", 5, TL_ERR_MALFORMED);
    assert_decode_str(map, "\x02\x04" "a\x00\x02\x00", 6, TL_ERR_MALFORMED);
}

static const char node_schema[] =
    "{\"type\": \"record\", \"name\": \"Node\", \"fields\": ["
    " {\"name\": \"v\", \"type\": \"int\"},"
    " {\"name\": \"next\", \"type\": [\"null\", \"Node\"]}]}";

static void test_depth_is_bounded(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_str(&fx, node_schema);
    /* level k's record sits at depth 2k-1 and the last null at 2k+1, so
     * 15 levels fit in 32 and 16 do not */
    unsigned char bytes[2 * 40 + 2];
    for (size_t levels = 1; levels <= 40; levels++) {
        size_t n = 0;
        for (size_t i = 0; i + 1 < levels; i++) {
            bytes[n++] = 0x00;
            bytes[n++] = 0x02;
        }
        bytes[n++] = 0x00;
        bytes[n++] = 0x00;
        json_t *got = NULL;
        tl_err_t err = tl_avro_decode(fx.s, bytes, n, &got);
        assert_int_equal(err, levels <= 15 ? TL_OK : TL_ERR_MALFORMED);
        json_decref(got);
    }
    json_t *deep = json_of("{\"v\": 1, \"next\": null}");
    for (int i = 0; i < 40; i++) {
        json_t *outer = json_object();
        json_object_set_new(outer, "v", json_integer(i));
        json_object_set_new(outer, "next", deep);
        deep = outer;
    }
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    assert_int_equal(tl_avro_encode(fx.s, deep, &out), TL_ERR_TOO_LARGE);
    assert_int_equal(out.len, 0);
    json_decref(deep);
    tl_buf_cleanup(&out);
    fx_free(&fx);
}

static void assert_encode_err(const fx_t *fx, const json_t *v, tl_err_t want)
{
    tl_buf_t out;
    tl_buf_init(&out, BUF_MAX);
    assert_int_equal(tl_buf_append(&out, "keep", 4), TL_OK);
    assert_int_equal(tl_avro_encode(fx->s, v, &out), want);
    assert_int_equal(out.len, 4); /* left as it was */
    assert_string_equal(out.data, "keep");
    tl_buf_cleanup(&out);
}

static void test_encode_errors(void **state)
{
    (void)state;
    fx_t fx;
    fx_load_file(&fx, TL_SCHEMA_DIR "/participant/ConsentRecorded.avsc");
    json_t *in, *want;
    sample_record(fx.avsc, 1, &in, &want);

    json_t *v = json_deep_copy(in);
    json_object_del(v, "event_id");
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* missing required field */
    json_decref(v);

    v = json_deep_copy(in);
    json_object_set_new(v, "colour", json_string("blue"));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* unknown field */
    json_decref(v);

    v = json_deep_copy(in);
    json_object_set_new(v, "occurred_at", json_string("2024-06-17T10:00:00Z"));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* wrong type */
    json_object_set_new(v, "occurred_at", json_real(1.5));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* real for long */
    json_decref(v);

    v = json_deep_copy(in);
    json_object_set_new(v, "site_id", json_integer(5));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* no union branch fits */
    json_decref(v);

    v = json_deep_copy(in);
    json_object_set_new(v, "consent_date", json_integer((json_int_t)INT32_MAX + 1));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* int out of range */
    json_object_set_new(v, "consent_date", json_integer((json_int_t)INT32_MIN - 1));
    assert_encode_err(&fx, v, TL_ERR_INVALID);
    json_decref(v);

    json_t *arr = json_array();
    assert_encode_err(&fx, arr, TL_ERR_INVALID); /* not an object */
    json_decref(arr);
    json_decref(in);
    json_decref(want);
    fx_free(&fx);

    fx_load_str(&fx, "\"float\"");
    v = json_real(1e300);
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* beyond float */
    json_decref(v);
    fx_free(&fx);

    fx_load_str(&fx, "{\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\"]}");
    v = json_stringn("A\0B", 3);
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* embedded NUL is not "A" */
    json_decref(v);
    fx_free(&fx);

    fx_load_str(&fx, "{\"type\": \"map\", \"values\": \"string\"}");
    v = json_object();
    json_object_set_new(v, "k", json_stringn("a\0b", 3));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* NUL in a string */
    json_object_clear(v);
    json_object_setn_new(v, "k\0", 2, json_string("x"));
    assert_encode_err(&fx, v, TL_ERR_INVALID); /* NUL in a key */
    json_decref(v);
    fx_free(&fx);
}

/* A datum written by hand decodes as its schema says, and the first error
 * sticks and leaves the buffer as it was. */
static void test_writer(void **state)
{
    (void)state;
    static const char schema[] =
        "{\"type\":\"record\",\"name\":\"W\",\"fields\":["
        "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
        "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"d\",\"type\":\"double\"},"
        "{\"name\":\"s\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"n\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"o\",\"type\":[\"null\",\"int\"]},"
        "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
        "{\"name\":\"e\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}";
    tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_avro_schema_parse(schema, sizeof schema - 1, &s), TL_OK);
    tl_buf_t b;
    tl_buf_init(&b, 1024);
    tl_avro_w_t w;
    tl_avro_w_begin(&w, &b);
    tl_avro_w_long(&w, -3);
    tl_avro_w_long(&w, (int64_t)1 << 40);
    tl_avro_w_boolean(&w, true);
    tl_avro_w_double(&w, 2.5);
    tl_avro_w_opt_string(&w, "x");
    tl_avro_w_opt_string(&w, ""); /* empty is null */
    tl_avro_w_opt_long(&w, true, 7);
    tl_avro_w_block(&w, 2);
    tl_avro_w_string(&w, "p");
    tl_avro_w_stringn(&w, "qr", 2);
    tl_avro_w_array_end(&w);
    tl_avro_w_block(&w, 0); /* an empty array is its end alone */
    tl_avro_w_array_end(&w);
    assert_int_equal(tl_avro_w_end(&w), TL_OK);
    json_t *got = NULL;
    assert_int_equal(tl_avro_decode(s, b.data, b.len, &got), TL_OK);
    json_t *want = json_pack("{s:i, s:I, s:b, s:f, s:s, s:n, s:i, s:[s, s], s:[]}", "i", -3, "l",
                             (json_int_t)1 << 40, "b", 1, "d", 2.5, "s", "x", "n", "o", 7, "a",
                             "p", "qr", "e");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);

    /* a NUL inside a string: the error sticks, the datum is undone */
    size_t before = b.len;
    tl_avro_w_begin(&w, &b);
    tl_avro_w_long(&w, 1);
    tl_avro_w_stringn(&w, "a\0b", 3);
    tl_avro_w_long(&w, 2);
    assert_int_equal(w.err, TL_ERR_INVALID);
    assert_int_equal(tl_avro_w_end(&w), TL_ERR_INVALID);
    assert_int_equal(b.len, before);
    /* and a full buffer too */
    tl_buf_t small;
    tl_buf_init(&small, 4);
    tl_avro_w_begin(&w, &small);
    tl_avro_w_string(&w, "too long");
    assert_int_equal(tl_avro_w_end(&w), TL_ERR_TOO_LARGE);
    assert_int_equal(small.len, 0);
    tl_buf_cleanup(&small);
    tl_buf_cleanup(&b);
    tl_avro_schema_destroy(s);
}

static void test_schema_parse(void **state)
{
    (void)state;
    tl_avro_schema_t *s = NULL;
    static const char *bad[] = {
        "",
        "{",
        "{\"type\": \"record\", \"name\": \"A\", \"fields\": []} junk",
        "{\"type\": \"record\", \"name\": \"A\", \"fields\": [{\"name\": \"x\", \"type\": \"nope\"}]}",
        "{\"type\": \"record\", \"name\": \"A\", \"fields\": ["
        " {\"name\": \"x\", \"type\": \"int\"}, {\"name\": \"x\", \"type\": \"long\"}]}",
        "[\"null\", [\"int\", \"string\"]]",
        "[\"null\", \"int\", \"null\"]",
        /* zero-width items would let a few bytes claim 2^62 of them */
        "{\"type\": \"array\", \"items\": \"null\"}",
        "{\"type\": \"array\", \"items\": {\"type\": \"record\", \"name\": \"E\", \"fields\": ["
        " {\"name\": \"n\", \"type\": \"null\"}]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tl_avro_schema_parse(bad[i], strlen(bad[i]), &s), TL_ERR_INVALID);
        assert_null(s);
    }
    assert_int_equal(tl_avro_schema_parse(NULL, 0, &s), TL_ERR_INVALID);

    /* not NUL-terminated: only len bytes are read */
    char text[] = "\"string\"XXXX";
    assert_int_equal(tl_avro_schema_parse(text, 8, &s), TL_OK);
    assert_string_equal(tl_avro_schema_fullname(s), "string");
    tl_avro_schema_destroy(s);

    const char *dotted = "{\"type\": \"enum\", \"name\": \"org.trialog.Sex\", \"symbols\": [\"F\"]}";
    assert_int_equal(tl_avro_schema_parse(dotted, strlen(dotted), &s), TL_OK);
    assert_string_equal(tl_avro_schema_fullname(s), "org.trialog.Sex");
    tl_avro_schema_destroy(s);

    const char *plain = "{\"type\": \"record\", \"name\": \"Plain\", \"fields\": []}";
    assert_int_equal(tl_avro_schema_parse(plain, strlen(plain), &s), TL_OK);
    assert_string_equal(tl_avro_schema_fullname(s), "Plain");
    tl_avro_schema_destroy(s);

    tl_avro_schema_destroy(NULL);
}

/* ---- schema resolution (the registry's compatibility checks) ---- */

static tl_err_t can_read(const char *reader, const char *writer)
{
    char why[256];
    return tl_avro_can_read(reader, strlen(reader), writer, strlen(writer), why, sizeof why);
}

#define REC(fields) "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"org.x\",\"fields\":[" fields "]}"
#define F_A "{\"name\":\"a\",\"type\":\"int\"}"
#define F_B_OPT "{\"name\":\"b\",\"type\":[\"null\",\"string\"],\"default\":null}"
#define F_B_REQ "{\"name\":\"b\",\"type\":\"string\"}"

static void test_can_read(void **state)
{
    (void)state;
    /* a reader field the writer lacks: fine with a default, not without */
    assert_int_equal(can_read(REC(F_A "," F_B_OPT), REC(F_A)), TL_OK);
    assert_int_equal(can_read(REC(F_A "," F_B_REQ), REC(F_A)), TL_ERR_CONFLICT);
    /* a writer field the reader lacks is skipped */
    assert_int_equal(can_read(REC(F_A), REC(F_A "," F_B_REQ)), TL_OK);
    /* promotion int -> long yes, int -> string no */
    assert_int_equal(can_read(REC("{\"name\":\"a\",\"type\":\"long\"}"), REC(F_A)), TL_OK);
    assert_int_equal(can_read(REC("{\"name\":\"a\",\"type\":\"string\"}"), REC(F_A)),
                     TL_ERR_CONFLICT);
    /* an alias names the writer's field */
    assert_int_equal(can_read(REC("{\"name\":\"z\",\"aliases\":[\"a\"],\"type\":\"int\"}"),
                              REC(F_A)),
                     TL_OK);
    /* defaults count inside nested records, in arrays and in unions */
    const char *w = REC("{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
                        "\"record\",\"name\":\"I\",\"fields\":[" F_A "]}}}");
    const char *r_opt = REC("{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
                            "\"record\",\"name\":\"I\",\"fields\":[" F_A "," F_B_OPT "]}}}");
    const char *r_req = REC("{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
                            "\"record\",\"name\":\"I\",\"fields\":[" F_A "," F_B_REQ "]}}}");
    assert_int_equal(can_read(r_opt, w), TL_OK);
    assert_int_equal(can_read(r_req, w), TL_ERR_CONFLICT);
    const char *wu = REC("{\"name\":\"u\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"I\","
                         "\"fields\":[" F_A "]}],\"default\":null}");
    const char *ru = REC("{\"name\":\"u\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"I\","
                         "\"fields\":[" F_A "," F_B_OPT "]}],\"default\":null}");
    assert_int_equal(can_read(ru, wu), TL_OK);
    /* another record name is another type */
    assert_int_equal(can_read("{\"type\":\"record\",\"name\":\"S\",\"namespace\":\"org.x\","
                              "\"fields\":[" F_A "]}",
                              REC(F_A)),
                     TL_ERR_CONFLICT);
    /* enums: the reader may add symbols, not drop one the writer has */
#define ENUM(syms) REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[" syms "]}}")
    assert_int_equal(can_read(ENUM("\"A\",\"B\",\"C\""), ENUM("\"A\",\"B\"")), TL_OK);
    assert_int_equal(can_read(ENUM("\"A\""), ENUM("\"A\",\"B\"")), TL_ERR_CONFLICT);
    /* unions: a plain writer into a reader's union; every writer branch must be read */
    assert_int_equal(can_read(REC("{\"name\":\"a\",\"type\":[\"null\",\"long\"]}"), REC(F_A)),
                     TL_OK);
    assert_int_equal(can_read(REC(F_A), REC("{\"name\":\"a\",\"type\":[\"null\",\"int\"]}")),
                     TL_ERR_CONFLICT);
    /* a recursive type ends */
    const char *list = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\","
                       "\"type\":\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}";
    assert_int_equal(can_read(list, list), TL_OK);
    /* not schemas, or not ones the platform reads */
    assert_int_equal(can_read("{", REC(F_A)), TL_ERR_INVALID);
    assert_int_equal(can_read(REC("{\"name\":\"a\",\"type\":\"bytes\"}"), REC(F_A)),
                     TL_ERR_INVALID);
    assert_int_equal(can_read(REC(F_A), "{\"type\":\"nope\"}"), TL_ERR_INVALID);
    /* every built-in event reads itself */
    for (size_t i = 0; i < tl_schema_source_count; i++) {
        const tl_schema_source_t *src = &tl_schema_sources[i];
        assert_int_equal(tl_avro_can_read(src->avsc, src->len, src->avsc, src->len, NULL, 0),
                         TL_OK);
    }
}

/* Every earlier version of a built-in schema kept in
 * tests/unit/schema_history/<area>/<Name>.<n>.avsc is readable by the
 * current one (BACKWARD_TRANSITIVE, DESIGN.md §3: an audit log is read
 * forever), as the registry checks it when the programs register the
 * built-ins: a change that breaks it fails here, not at a deployment. */
static void test_builtins_read_their_history(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob(TL_SCHEMA_DIR "/../tests/unit/schema_history/*/*.avsc", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 2);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char area[64], name[64], current[1024];
        const char *old_path = g.gl_pathv[i];
        const char *file = strrchr(old_path, '/') + 1;
        const char *dir = file - 2;
        while (dir > old_path && *dir != '/')
            dir--;
        snprintf(area, sizeof area, "%.*s", (int)(file - 1 - (dir + 1)), dir + 1);
        snprintf(name, sizeof name, "%.*s", (int)strcspn(file, "."), file);
        snprintf(current, sizeof current, "%s/%s/%s.avsc", TL_SCHEMA_DIR, area, name);
        fx_t now = {0}, old = {0};
        fx_load_file(&now, current);
        fx_load_file(&old, old_path);
        char *reader = json_dumps(now.avsc, JSON_COMPACT);
        char *writer = json_dumps(old.avsc, JSON_COMPACT);
        if (can_read(reader, writer) != TL_OK)
            fail_msg("%s/%s cannot read its earlier version %s", area, name, file);
        free(reader);
        free(writer);
        fx_free(&now);
        fx_free(&old);
    }
    globfree(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_avsc_roundtrips),
        cmocka_unit_test(test_participant_enrolled_values),
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_complex_roundtrip),
        cmocka_unit_test(test_avro_c_reads_our_encoding),
        cmocka_unit_test(test_we_read_avro_c_encoding),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_decode_truncated_and_trailing),
        cmocka_unit_test(test_decode_hostile_scalars),
        cmocka_unit_test(test_decode_hostile_blocks),
        cmocka_unit_test(test_depth_is_bounded),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_schema_parse),
        cmocka_unit_test(test_can_read),
        cmocka_unit_test(test_builtins_read_their_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
