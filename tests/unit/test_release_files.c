/* The files of a dataset release (projections/release.c): columns, CSV
 * quoting, answers in long format, the Avro container framing, the
 * status fold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "release.h"
#include "tl_avro.h"

static const tl_release_table_t *answers = &tl_release_tables[TL_RELEASE_ANSWERS];

static json_t *form_record(void)
{
    return json_pack(
        "{s:s, s:s, s:n, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:[{s:s, s:s, s:s, s:f, s:n, s:n,"
        " s:n, s:n, s:n}, {s:s, s:s, s:n, s:n, s:n, s:s, s:n, s:n, s:n}, {s:s, s:s, s:n, s:n,"
        " s:n, s:n, s:[s, s], s:n, s:n}, {s:s, s:s, s:n, s:n, s:n, s:n, s:n, s:i, s:i}],"
        " s:[s], s:I}",
        "pseudonym", "0123456789abcdef0123456789abcdef", "study_id",
        "01a20bdf-08f5-7173-af5f-69a746a14626", "site_id", "form_id",
        "01a20bdf-0909-71bd-85ba-a4e39f834ccc", "visit_type_id",
        "01a20bdf-091b-7e9b-a578-87c97ffd76f8", "template_id",
        "01a20bdf-091b-7e9b-a578-87c97ffd7600", "template_name", "va", "template_version", 2,
        "status", "amended", "revision", 2, "answers",
        /* number */
        "field", "acuity", "type", "number", "unit", "letters", "number", 72.5, "integer", "text",
        "options", "study_day", "date",
        /* choice, with the text that needs quoting */
        "field", "eye", "type", "choice", "unit", "number", "integer", "text", "L, \"left\"\nside",
        "options", "study_day", "date",
        /* checkbox */
        "field", "signs", "type", "checkbox", "unit", "number", "integer", "text", "options",
        "drusen", "edema", "study_day", "date",
        /* date, shifted */
        "field", "seen", "type", "date", "unit", "number", "integer", "text", "options",
        "study_day", 3, "date", 20457, "withheld_fields", "narrative", "stream_version",
        (json_int_t)7);
}

static void test_schemas_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < TL_RELEASE_NTABLES; i++) {
        char *text = tl_release_schema(&tl_release_tables[i]);
        tl_avro_schema_t *s = NULL;
        assert_non_null(text);
        assert_int_equal(tl_avro_schema_parse(text, strlen(text), &s), TL_OK);
        char full[64];
        snprintf(full, sizeof full, "org.trialog.release.%s", tl_release_tables[i].record);
        assert_string_equal(tl_avro_schema_fullname(s), full);
        json_t *cols = tl_release_columns(&tl_release_tables[i]);
        assert_int_equal(json_array_size(cols), tl_release_tables[i].ncols);
        json_decref(cols);
        tl_avro_schema_destroy(s);
        free(text);
    }
}

static void test_answer_rows(void **state)
{
    (void)state;
    json_t *form = form_record();
    assert_non_null(form);
    json_t *rows = tl_release_answer_rows(form, "Month 1");
    assert_non_null(rows);
    assert_int_equal(json_array_size(rows), 4);
    char *schema = tl_release_schema(answers);
    tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_avro_schema_parse(schema, strlen(schema), &s), TL_OK);
    tl_buf_t csv, avro;
    tl_buf_init(&csv, 1 << 20);
    tl_buf_init(&avro, 1 << 20);
    assert_int_equal(tl_release_csv_header(answers, &csv), TL_OK);
    size_t i;
    json_t *row = NULL;
    json_array_foreach(rows, i, row)
    {
        assert_int_equal(tl_release_csv_row(answers, row, &csv), TL_OK);
        assert_int_equal(tl_avro_encode(s, row, &avro), TL_OK);
    }
    const char *want =
        "pseudonym,study_id,site_id,visit_type_id,visit_name,form_id,template_id,form,"
        "template_version,form_status,form_revision,field,type,value,unit,date,stream_version\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,"
        "01a20bdf-091b-7e9b-a578-87c97ffd76f8,Month 1,01a20bdf-0909-71bd-85ba-a4e39f834ccc,"
        "01a20bdf-091b-7e9b-a578-87c97ffd7600,va,2,amended,2,acuity,number,72.5,letters,,7\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,"
        "01a20bdf-091b-7e9b-a578-87c97ffd76f8,Month 1,01a20bdf-0909-71bd-85ba-a4e39f834ccc,"
        "01a20bdf-091b-7e9b-a578-87c97ffd7600,va,2,amended,2,eye,choice,"
        "\"L, \"\"left\"\"\nside\",,,7\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,"
        "01a20bdf-091b-7e9b-a578-87c97ffd76f8,Month 1,01a20bdf-0909-71bd-85ba-a4e39f834ccc,"
        "01a20bdf-091b-7e9b-a578-87c97ffd7600,va,2,amended,2,signs,checkbox,"
        "\"[\"\"drusen\"\",\"\"edema\"\"]\",,,7\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,"
        "01a20bdf-091b-7e9b-a578-87c97ffd76f8,Month 1,01a20bdf-0909-71bd-85ba-a4e39f834ccc,"
        "01a20bdf-091b-7e9b-a578-87c97ffd7600,va,2,amended,2,seen,date,3,,2026-01-04,7\r\n";
    assert_string_equal(csv.data, want);
    /* a row that does not fit changes nothing */
    size_t len = csv.len;
    json_object_set_new(row, "form_revision", json_string("two"));
    assert_int_equal(tl_release_csv_row(answers, row, &csv), TL_ERR_INVALID);
    json_object_del(row, "form_revision");
    assert_int_equal(tl_release_csv_row(answers, row, &csv), TL_ERR_INVALID);
    json_object_set_new(row, "form_revision", json_integer(2));
    json_object_set_new(row, "field", json_null()); /* not nullable */
    assert_int_equal(tl_release_csv_row(answers, row, &csv), TL_ERR_INVALID);
    assert_int_equal(csv.len, len);
    assert_int_equal(strlen(csv.data), len);
    /* a record that is not a form's */
    json_object_del(form, "pseudonym");
    assert_null(tl_release_answer_rows(form, "Month 1"));
    tl_buf_cleanup(&csv);
    tl_buf_cleanup(&avro);
    tl_avro_schema_destroy(s);
    free(schema);
    json_decref(rows);
    json_decref(form);
}

/* A research observation record in long format: one row per exported
 * value, in the record's order, typed like the table's columns. */
static void test_observation_rows(void **state)
{
    (void)state;
    const tl_release_table_t *t = &tl_release_tables[TL_RELEASE_OBSERVATIONS];
    json_t *obs = json_pack(
        "{s:s, s:s, s:n, s:s, s:s, s:i, s:n, s:s, s:[{s:s, s:s, s:n, s:i, s:n},"
        " {s:s, s:s, s:n, s:n, s:b}, {s:s, s:s, s:f, s:n, s:n}], s:[s], s:i}",
        "pseudonym", "0123456789abcdef0123456789abcdef", "study_id",
        "01a20bdf-08f5-7173-af5f-69a746a14626", "site_id", "source", "oct", "kind",
        "org.example.oct.OctScan", "study_day", 30, "observed_date", "laterality", "OS", "values",
        "name", "cst_um", "type", "integer", "number", "integer", 250, "boolean", "name",
        "gradable", "type", "boolean", "number", "integer", "boolean", 0, "name", "signal",
        "type", "number", "number", 31.5, "integer", "boolean", "withheld_fields", "comment",
        "stream_version", 9);
    assert_non_null(obs);
    json_t *rows = tl_release_observation_rows(obs);
    assert_non_null(rows);
    assert_int_equal(json_array_size(rows), 3);
    char *schema = tl_release_schema(t);
    tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_avro_schema_parse(schema, strlen(schema), &s), TL_OK);
    tl_buf_t csv, avro;
    tl_buf_init(&csv, 1 << 20);
    tl_buf_init(&avro, 1 << 20);
    assert_int_equal(tl_release_csv_header(t, &csv), TL_OK);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        assert_int_equal(tl_release_csv_row(t, row, &csv), TL_OK);
        assert_int_equal(tl_avro_encode(s, row, &avro), TL_OK);
    }
    assert_string_equal(
        csv.data,
        "pseudonym,study_id,site_id,source,kind,study_day,observed_date,laterality,name,type,"
        "value,stream_version\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,oct,"
        "org.example.oct.OctScan,30,,OS,cst_um,integer,250,9\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,oct,"
        "org.example.oct.OctScan,30,,OS,gradable,boolean,false,9\r\n"
        "0123456789abcdef0123456789abcdef,01a20bdf-08f5-7173-af5f-69a746a14626,,oct,"
        "org.example.oct.OctScan,30,,OS,signal,number,31.5,9\r\n");
    json_object_del(obs, "kind"); /* not an observation's record */
    assert_null(tl_release_observation_rows(obs));
    tl_buf_cleanup(&csv);
    tl_buf_cleanup(&avro);
    tl_avro_schema_destroy(s);
    free(schema);
    json_decref(rows);
    json_decref(obs);
}

/* Reads an Avro long (zigzag varint) at *p. */
static int64_t read_long(const unsigned char **p)
{
    uint64_t z = 0;
    for (int shift = 0;; shift += 7) {
        unsigned char b = *(*p)++;
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

static void test_container(void **state)
{
    (void)state;
    const tl_release_table_t *t = &tl_release_tables[TL_RELEASE_PARTICIPANTS];
    char *schema = tl_release_schema(t);
    tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_avro_schema_parse(schema, strlen(schema), &s), TL_OK);
    unsigned char sync[TL_AVRO_SYNC_LEN], other[TL_AVRO_SYNC_LEN];
    const char *cut = "[{\"topic\":\"trialog.participant.v1\",\"partition\":0,\"offset\":9}]";
    assert_int_equal(tl_release_sync("s", cut, "study_days", "participants", sync), TL_OK);
    assert_int_equal(tl_release_sync("s", cut, "study_days", "visits", other), TL_OK);
    assert_memory_not_equal(sync, other, TL_AVRO_SYNC_LEN);
    assert_int_equal(tl_release_sync("s", cut, "study_days", "participants", other), TL_OK);
    assert_memory_equal(sync, other, TL_AVRO_SYNC_LEN); /* the same cut, the same bytes */

    json_t *row =
        json_pack("{s:s, s:s, s:n, s:s, s:s, s:i, s:n, s:I}", "pseudonym", "p1", "study_id",
                  "01a20bdf-08f5-7173-af5f-69a746a14626", "site_id", "status", "enrolled", "sex",
                  "F", "age_at_baseline", 90, "baseline_date", "stream_version", (json_int_t)1);
    tl_buf_t file, data;
    tl_buf_init(&file, 1 << 20);
    tl_buf_init(&data, 1 << 20);
    assert_int_equal(tl_avro_ocf_header(schema, sync, &file), TL_OK);
    size_t header = file.len;
    assert_int_equal(tl_avro_encode(s, row, &data), TL_OK);
    size_t one = data.len;
    assert_int_equal(tl_avro_encode(s, row, &data), TL_OK);
    assert_int_equal(tl_avro_ocf_block(2, data.data, data.len, sync, &file), TL_OK);

    const unsigned char *p = (const unsigned char *)file.data;
    assert_memory_equal(p, "Obj\x01", 4);
    p += 4;
    assert_int_equal(read_long(&p), 2); /* two metadata entries */
    for (int i = 0; i < 2; i++) {
        int64_t klen = read_long(&p);
        const char *key = (const char *)p;
        p += klen;
        int64_t vlen = read_long(&p);
        if (klen == 11 && !memcmp(key, "avro.schema", 11))
            assert_memory_equal(p, schema, strlen(schema));
        else
            assert_true(klen == 10 && !memcmp(key, "avro.codec", 10) && vlen == 4 &&
                        !memcmp(p, "null", 4));
        p += vlen;
    }
    assert_int_equal(read_long(&p), 0);
    assert_memory_equal(p, sync, TL_AVRO_SYNC_LEN);
    p += TL_AVRO_SYNC_LEN;
    assert_int_equal((size_t)(p - (const unsigned char *)file.data), header);
    assert_int_equal(read_long(&p), 2);
    assert_int_equal(read_long(&p), (int64_t)(2 * one));
    json_t *back = NULL;
    assert_int_equal(tl_avro_decode(s, p, one, &back), TL_OK);
    assert_true(json_equal(back, row));
    p += 2 * one;
    assert_memory_equal(p, sync, TL_AVRO_SYNC_LEN);
    assert_int_equal((size_t)(p + TL_AVRO_SYNC_LEN - (const unsigned char *)file.data), file.len);

    json_decref(back);
    json_decref(row);
    tl_buf_cleanup(&file);
    tl_buf_cleanup(&data);
    tl_avro_schema_destroy(s);
    free(schema);
}

static void test_status(void **state)
{
    (void)state;
    tl_release_status_t s = TL_RELEASE_NONE;
    assert_false(tl_release_advance(&s, "ReleaseStarted")); /* never requested */
    assert_true(tl_release_advance(&s, "ReleaseRequested"));
    assert_false(tl_release_advance(&s, "ReleaseRequested"));
    assert_true(tl_release_advance(&s, "ReleaseStarted"));
    assert_false(tl_release_advance(&s, "ReleaseStarted"));
    assert_true(tl_release_advance(&s, "ReleaseCompleted"));
    assert_int_equal(s, TL_RELEASE_COMPLETED);
    /* a worker that ran the job again changes nothing */
    assert_false(tl_release_advance(&s, "ReleaseFailed"));
    assert_false(tl_release_advance(&s, "ReleaseCompleted"));
    assert_string_equal(tl_release_status_name(s), "completed");
    s = TL_RELEASE_REQUESTED;
    assert_true(tl_release_advance(&s, "ReleaseFailed")); /* before it started */
    assert_int_equal(tl_release_status_parse("failed"), TL_RELEASE_FAILED);
    assert_int_equal(tl_release_status_parse("done"), TL_RELEASE_NONE);

    assert_true(tl_release_name_valid("release_2026_01_13"));
    assert_false(tl_release_name_valid("2026_release"));
    assert_false(tl_release_name_valid("Release"));
    assert_false(tl_release_name_valid("../x"));
    assert_false(tl_release_name_valid(""));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(tl_release_name_valid(long_name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemas_parse),
        cmocka_unit_test(test_answer_rows),
        cmocka_unit_test(test_observation_rows),
        cmocka_unit_test(test_container),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
