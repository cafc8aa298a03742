/* Dataset releases end to end (issue 8, docs/ANALYSTS.md): an analyst asks
 * for a release over HTTP; the release export worker cuts it from the
 * archive; the files are downloaded over HTTP and checked:
 *   - manifest.json's SHA-256 and byte counts match every file, and its row
 *     counts match the CSVs;
 *   - Debian's python3-avro reads every Avro file, with as many records as
 *     the CSV has rows;
 *   - a connector's observations are a fourth table, its numbers by name
 *     (issue 26);
 *   - no participant code, participant id or unsafe free text is in any file,
 *     while the research_safe answer is, quoted by RFC 4180's rules;
 *   - a release cut again at the first one's offsets, after the log grew,
 *     has byte-identical data files; a release at the log's end does not;
 *   - the routes' refusals: role, unknown file, bad cut, name used. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_date.h"

static tl_stack_t stack;
static char study[40], site[40], p1[40], p2[40], analyst[80], coordinator[80];

/* planted, and the example connector's device and free-text scan pattern */
static const char *const needles[] = {"RLX-QP5501", "RLX-QP5502",  "RLX-QP5503",  "Hollowbrook",
                                      "bus was late", "Spectralis", "macular cube"};

static void post_ok(const char *path, const char *body, long want, char *id_out)
{
    tl_stack_post(&stack, path, body, want, id_out);
}

static void enrol(const char *code, int birth_year, char *id_out)
{
    char path[256], body[512];
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"%s\",\"site_id\":\"%s\",\"birth_year\":%d,\"sex\":\"F\","
             "\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
             code, site, birth_year);
    post_ok(path, body, 201, id_out);
}

static void setup_cohort(void)
{
    char path[256];
    tl_stack_study(&stack, "REL-2026", study, site);
    tl_stack_token(&stack, "analyst", study, analyst); /* granted this study */
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    post_ok(path,
            "{\"name\":\"va\",\"title\":\"Visual acuity\",\"fields\":["
            "{\"name\":\"acuity\",\"type\":\"number\",\"min\":0,\"max\":100,\"unit\":\"letters\"},"
            "{\"name\":\"eye\",\"type\":\"choice\",\"options\":[\"L\",\"R\"]},"
            "{\"name\":\"signs\",\"type\":\"checkbox\",\"options\":[\"drusen\",\"edema\"]},"
            "{\"name\":\"seen\",\"type\":\"date\"},"
            "{\"name\":\"comment\",\"type\":\"text\",\"research_safe\":true},"
            "{\"name\":\"narrative\",\"type\":\"text\"}]}",
            201, NULL);
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    post_ok(path,
            "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
            "\"window_after_days\":0,\"required\":true,\"form_templates\":[\"va\"]}",
            201, NULL);
    enrol("RLX-QP5501", 1950, p1);
    enrol("RLX-QP5502", 1960, p2);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", p1);
    post_ok(path, "{\"actual_date\":\"2026-01-01\",\"notes\":\"bus was late\"}", 200, NULL);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", p1);
    post_ok(path,
            "{\"template\":\"va\",\"answers\":{\"acuity\":72.5,\"eye\":\"L\","
            "\"signs\":[\"drusen\",\"edema\"],\"seen\":\"2026-01-04\","
            "\"comment\":\"mild, \\\"dry\\\"\",\"narrative\":\"Dr Hollowbrook saw her\"}}",
            201, NULL);
    /* an OCT device sends today's scans of p1, one per eye (issue 26) */
    char cmd[2048], conn[80];
    size_t len;
    tl_stack_token(&stack, "connector", NULL, conn);
    snprintf(cmd, sizeof cmd,
             "cd %s && TRIALOG_KAFKA_BROKERS='%s' TRIALOG_REGISTRY_URL=http://127.0.0.1:%d/registry"
             " TRIALOG_SCHEMA_REGISTRY_URL=http://127.0.0.1:%d/registry"
             " TRIALOG_CONNECTOR_TOKEN_FILE=%s/connector.token %s/trialog-connector-oct REL-2026"
             " RLX-QP5501",
             stack.dir, stack.brokers, stack.port, stack.port, stack.dir, TL_BIN_DIR);
    free(tl_run(cmd, &len));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.observations", stack.schema);
    if (!tl_wait_count(&stack, sql, 2, 30000))
        fail_msg("the scans were not taken");
}

/* Asks for a release (body) as the analyst; its JSON. */
static json_t *request(const char *body, long want)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/releases", study);
    tl_http_resp_t r = tl_http_as(&stack, analyst, "POST", path, body, NULL);
    if (r.status != want)
        fail_msg("POST %s answered %ld, not %ld", path, r.status, want);
    json_t *j = json_incref(r.body);
    tl_http_free(&r);
    return j;
}

static json_t *completed(const char *id)
{
    return tl_stack_release_wait(&stack, analyst, id, 60000);
}

/* Downloads every file of release id into dir/<tag>/ with curl; checks the
 * manifest's digests and sizes with sha256sum and stat. */
static void download(const json_t *rel, const char *tag)
{
    char cmd[2048];
    size_t i, len;
    const json_t *f;
    snprintf(cmd, sizeof cmd, "mkdir -p %s/%s", stack.dir, tag);
    free(tl_run(cmd, &len));
    json_array_foreach(json_object_get(rel, "files"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        snprintf(cmd, sizeof cmd,
                 "curl -sf -H 'Authorization: Bearer %s' -o %s/%s/%s http://127.0.0.1:%d%s",
                 analyst, stack.dir, tag, name, stack.port,
                 json_string_value(json_object_get(f, "href")));
        free(tl_run(cmd, &len));
        if (!strcmp(name, "manifest.json"))
            continue;
        snprintf(cmd, sizeof cmd, "sha256sum < %s/%s/%s | cut -c1-64; stat -c %%s %s/%s/%s",
                 stack.dir, tag, name, stack.dir, tag, name);
        char *out = tl_run(cmd, &len), want[128];
        snprintf(want, sizeof want, "%s\n%lld\n", json_string_value(json_object_get(f, "sha256")),
                 (long long)json_integer_value(json_object_get(f, "bytes")));
        assert_string_equal(out, want);
        free(out);
    }
    assert_int_equal(json_array_size(json_object_get(rel, "files")), 9);
}

static char *file_text(const char *tag, const char *name)
{
    char cmd[1024];
    size_t len;
    snprintf(cmd, sizeof cmd, "cat %s/%s/%s", stack.dir, tag, name);
    return tl_run(cmd, &len);
}

static long long table_rows(const json_t *manifest, const char *table)
{
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(manifest, "tables"), i, t)
    {
        if (!strcmp(json_string_value(json_object_get(t, "name")), table))
            return json_integer_value(json_object_get(t, "rows"));
    }
    fail_msg("no table %s in the manifest", table);
    return -1;
}

/* The files of a tag against the manifest, the planted values and a
 * third-party Avro reader. */
static void check_files(const json_t *rel, const char *tag, long long participants)
{
    static const char *const tables[] = {"participants", "visits", "answers", "observations"};
    const json_t *manifest = json_object_get(rel, "manifest");
    assert_int_equal(table_rows(manifest, "participants"), participants);
    assert_int_equal(table_rows(manifest, "observations"), 4); /* 2 scans, 2 numbers each */
    for (size_t t = 0; t < 4; t++) {
        char cmd[1024], name[64];
        size_t len;
        snprintf(name, sizeof name, "%s.csv", tables[t]);
        char *csv = file_text(tag, name);
        long long lines = 0;
        for (const char *p = csv; *p; p++)
            lines += *p == '\n';
        /* one answer holds a quoted line break? none here: lines are rows */
        assert_int_equal(lines - 1, table_rows(manifest, tables[t]));
        assert_false(strstr(csv, p1) || strstr(csv, p2));
        for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
            if (strstr(csv, needles[i]))
                fail_msg("%s holds \"%s\"", name, needles[i]);
        free(csv);
        snprintf(
            cmd, sizeof cmd,
            "/usr/bin/python3 -c 'import sys, avro.datafile, avro.io;"
            " r = avro.datafile.DataFileReader(open(sys.argv[1], \"rb\"), avro.io.DatumReader());"
            " print(sum(1 for _ in r))' %s/%s/%s.avro",
            stack.dir, tag, tables[t]);
        char *n = tl_run(cmd, &len);
        assert_int_equal(strtoll(n, NULL, 10), table_rows(manifest, tables[t]));
        free(n);
    }
}

static void same_file(const char *a, const char *b, const char *name, bool same)
{
    char cmd[2048];
    size_t len;
    snprintf(cmd, sizeof cmd, "cmp -s %s/%s/%s %s/%s/%s && echo same || echo differ", stack.dir, a,
             name, stack.dir, b, name);
    char *out = tl_run(cmd, &len);
    assert_string_equal(out, same ? "same\n" : "differ\n");
    free(out);
}

static void test_release(void **state)
{
    (void)state;
    setup_cohort();
    tl_stack_token(&stack, "coordinator", site, coordinator);
    json_t *req = request("{}", 201);
    const char *id = json_string_value(json_object_get(req, "id"));
    /* the answer is the release once the projection holds the request: the
     * worker may have started (or finished) it by then on a fast path */
    const char *st = json_string_value(json_object_get(req, "status"));
    assert_non_null(st);
    assert_true(!strcmp(st, "requested") || !strcmp(st, "started") || !strcmp(st, "completed"));
    assert_non_null(strstr(json_string_value(json_object_get(req, "name")), "release_20"));
    json_t *rel = completed(id);
    download(rel, "first");
    check_files(rel, "first", 2);

    char *answers = file_text("first", "answers.csv");
    /* RFC 4180: the comma and quotes of the research_safe answer are quoted */
    assert_non_null(strstr(answers, ",comment,text,\"mild, \"\"dry\"\"\",,"));
    assert_non_null(strstr(answers, ",acuity,number,72.5,letters,,"));
    assert_non_null(strstr(answers, ",signs,checkbox,\"[\"\"drusen\"\",\"\"edema\"\"]\","));
    assert_non_null(strstr(answers, ",seen,date,3,,,")); /* study day 3 */
    free(answers);
    char *obs = file_text("first", "observations.csv"), day[96];
    assert_non_null(strstr(obs, "pseudonym,study_id,site_id,source,kind,study_day,observed_date,"
                                "laterality,name,type,value,stream_version\r\n"));
    snprintf(day, sizeof day, ",oct,org.example.oct.OctScan,%d,,OD,signal_strength,number,",
             (int)(tl_date_today() - tl_date_from_civil(2026, 1, 1)));
    assert_non_null(strstr(obs, day));
    assert_non_null(strstr(obs, ",OS,central_subfield_thickness_um,integer,"));
    free(obs);
    char *manifest = file_text("first", "manifest.json");
    json_t *m = json_loads(manifest, 0, NULL);
    assert_true(json_equal(m, json_object_get(rel, "manifest")));
    assert_string_equal(json_string_value(json_object_get(m, "release")),
                        json_string_value(json_object_get(rel, "name")));
    assert_true(json_equal(json_object_get(m, "cut"), json_object_get(rel, "cut")));
    json_decref(m);
    free(manifest);

    /* the log grows; a release at the first one's offsets does not */
    char p3[40];
    enrol("RLX-QP5503", 1970, p3);
    char *cut = json_dumps(json_object_get(rel, "cut"), JSON_COMPACT);
    char body[4096];
    snprintf(body, sizeof body, "{\"name\":\"again\",\"cut\":%s}", cut);
    json_t *again = request(body, 201);
    json_t *rel2 = completed(json_string_value(json_object_get(again, "id")));
    download(rel2, "again");
    check_files(rel2, "again", 2);
    static const char *const data[] = {"participants.csv", "participants.avro", "visits.csv",
                                       "visits.avro",      "answers.csv",       "answers.avro",
                                       "observations.csv", "observations.avro"};
    for (size_t i = 0; i < 8; i++)
        same_file("first", "again", data[i], true);
    json_t *now = request("{\"name\":\"now\"}", 201);
    json_t *rel3 = completed(json_string_value(json_object_get(now, "id")));
    download(rel3, "now");
    check_files(rel3, "now", 3);
    same_file("first", "now", "participants.csv", false);

    /* refusals */
    json_decref(request("{\"name\":\"again\"}", 409));
    snprintf(body, sizeof body,
             "{\"cut\":[{\"topic\":\"trialog.protocol.v1\",\"partition\":0,"
             "\"offset\":99999999}]}");
    json_decref(request(body, 400));
    json_decref(request("{\"name\":\"9lives\"}", 400));
    char path[160];
    snprintf(path, sizeof path, "/v1/studies/%s/releases", study);
    tl_http_resp_t r = tl_http_as(&stack, coordinator, "POST", path, "{}", NULL);
    assert_int_equal(r.status, 403);
    tl_http_free(&r);
    r = tl_http_as(&stack, analyst, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 3);
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/releases/%s/files/..%%2Fresearch.key", id);
    r = tl_http_as(&stack, analyst, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 404);
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/releases/%s/files/visits.csv", id);
    r = tl_http_as(&stack, coordinator, "GET", path, NULL, NULL);
    assert_int_equal(r.status, 403);
    tl_http_free(&r);

    free(cut);
    json_decref(req);
    json_decref(rel);
    json_decref(again);
    json_decref(rel2);
    json_decref(now);
    json_decref(rel3);
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "release");
    tl_stack_start_releases(&stack);
    tl_stack_start_ingest(&stack, "oct");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_release)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
