/* The research export end to end (issue 8, docs/ANALYSTS.md): a small
 * cohort goes in over HTTP with identifying values planted everywhere the
 * API takes text (participant codes, birth years, deviation reasons, notes,
 * reasons for change, free-text answers); Debian's python3-confluent-kafka
 * then reads the four research topics, resolving every schema id through
 * the gateway's /registry (tests/integration/research_consume.py), and:
 *   - every record decodes, and none holds a planted value or a participant
 *     id, while the research_safe answer does arrive;
 *   - the rows say what the hand-computed study days say, before and after a
 *     baseline change; a participant born in 1931 is 90 at baseline;
 *   - each participant has one pseudonym on all four topics;
 *   - a connector's scans arrive as observations (issue 26): numbers by
 *     name, the study day, neither the device nor the free-text value;
 *   - `trialog rebuild research` replays from offset 0 and publishes the
 *     same sequence of records for every key, byte for byte. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_date.h"

static tl_stack_t stack;
static char study[40], site[40], p1[40], p2[40], form[40], month1[40];

/* Planted text: none may reach a research record. (The birth years are
 * looked for as values, not as text, which hex ids may hold by chance.) */
static const char *const needles[] = {
    "RSX-ZQ7731",   "RSX-ZQ7732",         "Quillfeather",   "ferry strike",
    "second opinion", "transcription slip", "moved in error", "Beaconsfield",
    /* the example connector's device and its free-text scan pattern */
    "Spectralis", "macular cube",
    "Rookwood",
};

/* Whether v or anything in it is one of the birth years. */
static bool holds_birth_year(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *m;
    if (json_is_integer(v))
        return json_integer_value(v) == 1931 || json_integer_value(v) == 1962;
    if (json_is_string(v))
        return !strcmp(json_string_value(v), "1931") || !strcmp(json_string_value(v), "1962");
    if (json_is_array(v))
        json_array_foreach(v, i, m) if (holds_birth_year(m)) return true;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, k, m) if (holds_birth_year(m)) return true;
    return false;
}

static void post_ok(const char *path, const char *body, long want, char *id_out)
{
    tl_stack_post(&stack, path, body, want, id_out);
}

static void setup_cohort(void)
{
    char path[256], body[1024];
    tl_stack_study(&stack, "RSX-2026", study, site);
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    post_ok(path,
            "{\"name\":\"ae\",\"title\":\"Adverse event\",\"fields\":["
            "{\"name\":\"grade\",\"type\":\"integer\",\"min\":1,\"max\":5,\"unit\":\"CTCAE\"},"
            "{\"name\":\"term\",\"type\":\"text\",\"research_safe\":true},"
            "{\"name\":\"narrative\",\"type\":\"text\"},"
            "{\"name\":\"onset\",\"type\":\"date\"},"
            "{\"name\":\"eye\",\"type\":\"choice\",\"options\":[\"OD\",\"OS\"]}]}",
            201, NULL);
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    post_ok(path,
            "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
            "\"window_after_days\":0,\"required\":true}",
            201, NULL);
    post_ok(path,
            "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
            "\"window_after_days\":14,\"required\":true,\"form_templates\":[\"ae\"]}",
            201, month1);
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"RSX-ZQ7731\",\"site_id\":\"%s\",\"birth_year\":1931,"
             "\"sex\":\"F\",\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
             site);
    post_ok(path, body, 201, p1);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"RSX-ZQ7732\",\"site_id\":\"%s\",\"birth_year\":1962,"
             "\"sex\":\"M\",\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
             site);
    post_ok(path, body, 201, p2);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", p1);
    post_ok(path, "{\"actual_date\":\"2026-01-01\",\"notes\":\"Beaconsfield clinic\"}", 200, NULL);
    /* Month 1: window 2026-01-24 .. 2026-02-14; the 15th is a deviation */
    snprintf(path, sizeof path, "/v1/participants/%s/visits/%s/complete", p1, month1);
    post_ok(path,
            "{\"actual_date\":\"2026-02-15\",\"deviation_reason\":\"ferry strike\","
            "\"notes\":\"Quillfeather drove her\"}",
            200, NULL);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/%s/forms", p1, month1);
    post_ok(path,
            "{\"template\":\"ae\",\"answers\":{\"grade\":2,\"term\":\"conjunctivitis\","
            "\"narrative\":\"seen by Dr Quillfeather\",\"onset\":\"2026-02-10\",\"eye\":\"OD\"}}",
            201, form);
    snprintf(path, sizeof path, "/v1/forms/%s", form);
    tl_http_resp_t r = tl_http(&stack, "PATCH", path,
                               "{\"answers\":{\"grade\":3,\"narrative\":\"second opinion\"},"
                               "\"reason\":\"transcription slip\"}",
                               NULL, true);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
    /* two days later: every study day of p1 moves by -2; the baseline
     * visit, done on 2026-01-01, leaves its window and says why */
    snprintf(path, sizeof path, "/v1/participants/%s/baseline", p1);
    post_ok(path,
            "{\"baseline_date\":\"2026-01-03\",\"reason\":\"moved in error\","
            "\"deviation_reasons\":{\"Baseline\":\"seen early at Rookwood\"}}",
            200, NULL);
    /* an OCT device sends today's scans of p1, one per eye (issue 26) */
    char cmd[2048], conn[80];
    size_t len;
    tl_stack_token(&stack, "connector", NULL, conn);
    snprintf(cmd, sizeof cmd,
             "cd %s && TRIALOG_KAFKA_BROKERS='%s' TRIALOG_REGISTRY_URL=http://127.0.0.1:%d/registry"
             " TRIALOG_SCHEMA_REGISTRY_URL=http://127.0.0.1:%d/registry"
             " TRIALOG_CONNECTOR_TOKEN_FILE=%s/connector.token %s/trialog-connector-oct RSX-2026"
             " RSX-ZQ7731",
             stack.dir, stack.brokers, stack.port, stack.port, stack.dir, TL_BIN_DIR);
    free(tl_run(cmd, &len));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.observations", stack.schema);
    if (!tl_wait_count(&stack, sql, 2, 30000))
        fail_msg("the scans were not taken");
}

/* The records the topics hold, read by the third-party client. */
static json_t *consume(const char *group)
{
    char cmd[2048], out[600];
    snprintf(out, sizeof out, "%s/research-%s.jsonl", stack.dir, group);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/integration/research_consume.py '%s'"
             " http://127.0.0.1:%d/registry 'analyst:%s' %s 0 > %s 2>&1",
             TL_SOURCE_DIR, stack.brokers, stack.port, stack.token, group, out);
    size_t len = 0;
    free(tl_run(cmd, &len));
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    json_t *all = json_array();
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *rec = json_loads(line, 0, &e);
        if (!rec || json_object_get(rec, "error"))
            fail_msg("the client could not read a record: %s", line);
        assert_false(strstr(line, p1) || strstr(line, p2)); /* no participant id */
        for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
            if (strstr(line, needles[i]))
                fail_msg("a research record holds \"%s\": %s", needles[i], line);
        if (holds_birth_year(json_object_get(rec, "value")))
            fail_msg("a research record holds a birth year: %s", line);
        json_array_append_new(all, rec);
    }
    fclose(f);
    return all;
}

/* The latest record of topic whose value has member == value. */
static json_t *latest(json_t *all, const char *topic, const char *member, const char *value)
{
    json_t *found = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(all, i, rec)
    {
        json_t *v = json_object_get(rec, "value");
        const char *m = json_string_value(json_object_get(v, member));
        if (!strcmp(json_string_value(json_object_get(rec, "topic")), topic) && m &&
            !strcmp(m, value))
            found = v; /* partitions keep one key's records in order */
    }
    if (!found)
        fail_msg("no %s record with %s %s", topic, member, value);
    return found;
}

static long long ival(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void wait_exported(long long want)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s.research_forms f JOIN %s.research_participants p"
             " ON p.participant_id = f.participant_id WHERE (p.state ->> 'baseline_date')::int"
             " = 20456 AND (f.state ->> 'revision')::int = 2",
             stack.schema, stack.schema);
    if (!tl_wait_count(&stack, sql, want, 30000))
        fail_msg("the research export did not catch up");
}

static void test_records(void **state)
{
    (void)state;
    setup_cohort();
    wait_exported(1); /* 2026-01-03 is day 20456 */
    json_t *all = consume("analyst-1");
    assert_true(json_array_size(all) >= 10);

    json_t *part = latest(all, "trialog.research.participants.v1", "sex", "F");
    const char *pseud = json_string_value(json_object_get(part, "pseudonym"));
    assert_int_equal(strlen(pseud), 32);
    assert_int_equal(ival(part, "age_at_baseline"), 90); /* 2026 - 1931 = 95 */
    assert_true(json_is_null(json_object_get(part, "baseline_date")));
    json_t *male = latest(all, "trialog.research.participants.v1", "sex", "M");
    assert_int_equal(ival(male, "age_at_baseline"), 64);
    assert_string_not_equal(json_string_value(json_object_get(male, "pseudonym")), pseud);

    /* Month 1 for p1 after the baseline change: due day 30, done on day 43 */
    json_t *visit = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(all, i, rec)
    {
        json_t *v = json_object_get(rec, "value");
        if (!strcmp(json_string_value(json_object_get(rec, "topic")),
                    "trialog.research.visits.v1") &&
            !strcmp(json_string_value(json_object_get(v, "pseudonym")), pseud) &&
            !strcmp(json_string_value(json_object_get(v, "visit_name")), "Month 1")) {
            assert_string_equal(json_string_value(json_object_get(rec, "key")), pseud);
            visit = v;
        }
    }
    assert_non_null(visit);
    assert_string_equal(json_string_value(json_object_get(visit, "status")), "completed");
    assert_int_equal(ival(visit, "due_day"), 30);
    assert_int_equal(ival(visit, "window_start_day"), 23);
    assert_int_equal(ival(visit, "window_end_day"), 44);
    assert_int_equal(ival(visit, "actual_day"), 43); /* 2026-02-15 - 2026-01-03 */
    assert_true(json_is_true(json_object_get(visit, "in_window")));
    assert_true(json_is_false(json_object_get(visit, "protocol_deviation")));

    json_t *f = latest(all, "trialog.research.forms.v1", "form_id", form);
    assert_string_equal(json_string_value(json_object_get(f, "pseudonym")), pseud);
    assert_int_equal(ival(f, "revision"), 2);
    assert_string_equal(json_string_value(json_object_get(f, "status")), "amended");
    json_t *answers = json_object_get(f, "answers");
    assert_int_equal(json_array_size(answers), 4);
    json_t *grade = json_array_get(answers, 0), *term = json_array_get(answers, 1);
    json_t *onset = json_array_get(answers, 2), *eye = json_array_get(answers, 3);
    assert_int_equal(ival(grade, "integer"), 3);
    assert_string_equal(json_string_value(json_object_get(grade, "unit")), "CTCAE");
    assert_string_equal(json_string_value(json_object_get(term, "text")), "conjunctivitis");
    assert_int_equal(ival(onset, "study_day"), 38); /* 2026-02-10 - 2026-01-03 */
    assert_string_equal(json_string_value(json_object_get(eye, "text")), "OD");
    json_t *withheld = json_object_get(f, "withheld_fields");
    assert_int_equal(json_array_size(withheld), 1);
    assert_string_equal(json_string_value(json_array_get(withheld, 0)), "narrative");

    /* the scans: numbers by name, study days from the new baseline, the
     * device and the scan pattern's text not at all */
    int scans = 0;
    json_array_foreach(all, i, rec)
    {
        json_t *v = json_object_get(rec, "value");
        if (strcmp(json_string_value(json_object_get(rec, "topic")),
                   "trialog.research.observations.v1"))
            continue;
        scans++;
        assert_string_equal(json_string_value(json_object_get(rec, "key")), pseud);
        assert_string_equal(json_string_value(json_object_get(v, "pseudonym")), pseud);
        assert_string_equal(json_string_value(json_object_get(v, "source")), "oct");
        assert_string_equal(json_string_value(json_object_get(v, "kind")),
                            "org.example.oct.OctScan");
        assert_int_equal(ival(v, "study_day"), tl_date_today() - 20456);
        assert_true(json_is_null(json_object_get(v, "observed_date")));
        json_t *values = json_object_get(v, "values");
        assert_int_equal(json_array_size(values), 2);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(values, 0), "name")),
            "central_subfield_thickness_um");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(values, 0), "type")), "integer");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(values, 1), "name")),
            "signal_strength");
        json_t *held = json_object_get(v, "withheld_fields");
        assert_int_equal(json_array_size(held), 1);
        assert_string_equal(json_string_value(json_array_get(held, 0)), "scan_pattern");
    }
    assert_int_equal(scans, 2);

    /* replay from offset 0: the same records again, key by key */
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild research", &out);
    if (rc)
        fail_msg("rebuild research failed: %s", out);
    free(out);
    json_t *twice = consume("analyst-2");
    assert_int_equal(json_array_size(twice), 2 * json_array_size(all));
    json_t *by_key = json_object();
    json_array_foreach(twice, i, rec)
    {
        char key[200];
        snprintf(key, sizeof key, "%s %s", json_string_value(json_object_get(rec, "topic")),
                 json_string_value(json_object_get(rec, "key")));
        json_t *seq = json_object_get(by_key, key);
        if (!seq)
            json_object_set_new(by_key, key, seq = json_array());
        char *text = json_dumps(json_object_get(rec, "value"), JSON_SORT_KEYS);
        assert_non_null(text);
        json_array_append_new(seq, json_string(text));
        free(text);
    }
    const char *key;
    json_t *seq;
    json_object_foreach(by_key, key, seq)
    {
        size_t n = json_array_size(seq) / 2;
        assert_int_equal(json_array_size(seq), 2 * n);
        for (size_t k = 0; k < n; k++)
            if (!json_equal(json_array_get(seq, k), json_array_get(seq, n + k)))
                fail_msg("replayed record %zu of %s differs", k, key);
    }
    json_decref(by_key);
    json_decref(twice);
    json_decref(all);
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "research");
    tl_stack_start_research(&stack, "study_days");
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
