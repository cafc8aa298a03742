/* The HTTP API end to end: gateway -> Kafka protocol -> projector ->
 * PostgreSQL -> gateway, over real HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "api");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static const char *str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    assert_non_null(v);
    return v;
}

/* POSTs and asserts the status; returns the body's id (static storage, 4 slots). */
static const char *post_ok(const char *path, const char *body, long want)
{
    static char ids[4][40];
    static int next;
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, NULL, true);
    if (r.status != want)
        fail_msg("POST %s: status %ld, want %ld", path, r.status, want);
    char *id = ids[next++ % 4];
    snprintf(id, 40, "%s", str(r.body, "id"));
    tl_http_free(&r);
    return id;
}

static const char *new_study(const char *protocol_id)
{
    char body[256];
    snprintf(body, sizeof body, "{\"protocol_id\":\"%s\",\"name\":\"Study %s\"}", protocol_id,
             protocol_id);
    return post_ok("/v1/studies", body, 201);
}

static const char *new_site(const char *study, const char *code)
{
    char path[128], body[128];
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    snprintf(body, sizeof body, "{\"code\":\"%s\",\"name\":\"Site %s\"}", code, code);
    return post_ok(path, body, 201);
}

static tl_http_resp_t enrol(const char *study, const char *site, const char *code,
                            const char *extra, const char *const *headers)
{
    char path[128], body[512];
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"%s\",\"site_id\":\"%s\",\"birth_year\":1958,\"sex\":\"F\","
             "\"baseline_date\":\"2026-01-01\"%s}",
             code, site, extra ? extra : ",\"consent_date\":\"2026-01-01\"");
    return tl_http(&stack, "POST", path, body, headers, true);
}

static void test_register_enrol_read(void **state)
{
    (void)state;
    char study[40], site[40], pid[40], path[128];
    snprintf(study, sizeof study, "%s", new_study("AMD-P2-2024"));
    snprintf(site, sizeof site, "%s", new_site(study, "STL"));

    tl_http_resp_t r = enrol(study, site, "AMD-00042", NULL, NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(str(r.body, "participant_code"), "AMD-00042");
    assert_string_equal(str(r.body, "status"), "enrolled");
    assert_string_equal(str(r.body, "study_id"), study);
    assert_string_equal(str(r.body, "site_id"), site);
    assert_string_equal(str(r.body, "consent_date"), "2026-01-01");
    assert_string_equal(str(r.body, "baseline_date"), "2026-01-01");
    assert_int_equal(json_integer_value(json_object_get(r.body, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(r.body, "birth_year")), 1958);
    snprintf(pid, sizeof pid, "%s", str(r.body, "id"));
    snprintf(path, sizeof path, "/v1/participants/%s", pid);
    assert_string_equal(r.location, path);
    tl_http_free(&r);

    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.body, "id"), pid);
    assert_string_equal(str(r.body, "sex"), "F");
    tl_http_free(&r);

    snprintf(path, sizeof path, "/v1/studies/%s", study);
    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.body, "protocol_id"), "AMD-P2-2024");
    assert_int_equal(json_array_size(json_object_get(r.body, "sites")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.body, "participants"),
                                                        "enrolled")),
                     1);
    tl_http_free(&r);
}

static void test_duplicate_code_conflicts(void **state)
{
    (void)state;
    char study[40], site[40];
    snprintf(study, sizeof study, "%s", new_study("DUP-1"));
    snprintf(site, sizeof site, "%s", new_site(study, "S1"));
    tl_http_resp_t r = enrol(study, site, "DUP-001", NULL, NULL);
    assert_int_equal(r.status, 201);
    tl_http_free(&r);
    r = enrol(study, site, "DUP-001", NULL, NULL);
    assert_int_equal(r.status, 409);
    assert_string_equal(r.ctype, "application/problem+json");
    assert_string_equal(str(r.body, "type"), "/problems/duplicate-participant-code");
    tl_http_free(&r);
    /* the same study's protocol id and site code are unique too */
    r = tl_http(&stack, "POST", "/v1/studies", "{\"protocol_id\":\"DUP-1\",\"name\":\"again\"}",
                NULL, true);
    assert_int_equal(r.status, 409);
    tl_http_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    r = tl_http(&stack, "POST", path, "{\"code\":\"S1\",\"name\":\"again\"}", NULL, true);
    assert_int_equal(r.status, 409);
    tl_http_free(&r);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM participants WHERE study_id = '%s'", study);
    assert_int_equal(tl_sql_int(&stack, sql), 1);
}

static void test_enrol_without_consent_is_violation(void **state)
{
    (void)state;
    char study[40], site[40];
    snprintf(study, sizeof study, "%s", new_study("CONSENT-1"));
    snprintf(site, sizeof site, "%s", new_site(study, "S1"));
    tl_http_resp_t r = enrol(study, site, "NC-001", "", NULL);
    assert_int_equal(r.status, 422);
    assert_string_equal(str(r.body, "type"), "/problems/consent-required");
    tl_http_free(&r);
    r = enrol(study, site, "NC-002", ",\"consent_date\":\"2026-02-01\"", NULL);
    assert_int_equal(r.status, 422);
    assert_string_equal(str(r.body, "type"), "/problems/date-before-consent");
    tl_http_free(&r);
    /* a site of another study is not a site of this one */
    char other[40], osite[40];
    snprintf(other, sizeof other, "%s", new_study("CONSENT-2"));
    snprintf(osite, sizeof osite, "%s", new_site(other, "S9"));
    r = enrol(study, osite, "NC-003", NULL, NULL);
    assert_int_equal(r.status, 422);
    assert_string_equal(str(r.body, "type"), "/problems/unknown-site");
    tl_http_free(&r);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM participants WHERE study_id = '%s'", study);
    assert_int_equal(tl_sql_int(&stack, sql), 0);
}

/* Messages on the participant topic whose key is id, read with kcat. */
static long count_in_topic(const char *id)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "kcat -C -b '%s' -t trialog.participant.v1 -e -q -f '%%k\\n' | grep -c '^%s$' || true",
             stack.brokers, id);
    char *out = tl_run(cmd, NULL);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

static void test_idempotency_key(void **state)
{
    (void)state;
    char study[40], site[40], id[40];
    snprintf(study, sizeof study, "%s", new_study("IDEM-1"));
    snprintf(site, sizeof site, "%s", new_site(study, "S1"));
    const char *h[] = {"Idempotency-Key: enrol-IDEM-001", NULL};
    tl_http_resp_t a = enrol(study, site, "IDEM-001", NULL, h);
    assert_int_equal(a.status, 201);
    snprintf(id, sizeof id, "%s", str(a.body, "id"));
    tl_http_resp_t b = enrol(study, site, "IDEM-001", NULL, h);
    assert_int_equal(b.status, 201);
    assert_true(json_equal(a.body, b.body));
    tl_http_free(&a);
    tl_http_free(&b);
    assert_int_equal(count_in_topic(id), 1);
    /* a 202 is no final answer: the retry waits for the event the first
     * request wrote (never writing it again) and answers with the resource */
    const char *async[] = {"Idempotency-Key: enrol-IDEM-002", "Prefer: respond-async", NULL};
    const char *sync[] = {"Idempotency-Key: enrol-IDEM-002", NULL};
    a = enrol(study, site, "IDEM-002", NULL, async);
    assert_int_equal(a.status, 202);
    snprintf(id, sizeof id, "%s", str(a.body, "id"));
    b = enrol(study, site, "IDEM-002", NULL, sync);
    assert_int_equal(b.status, 201);
    assert_string_equal(str(b.body, "id"), id);
    tl_http_free(&a);
    tl_http_free(&b);
    assert_int_equal(count_in_topic(id), 1);
}

/* A key binds to its first request: another body, another principal or
 * another route with it is refused (422) and changes nothing; the same
 * request again answers exactly as the first did, problems included. */
static void test_idempotency_key_binds_to_one_request(void **state)
{
    (void)state;
    char study[40], site[40];
    snprintf(study, sizeof study, "%s", new_study("IDEM-2"));
    snprintf(site, sizeof site, "%s", new_site(study, "S1"));
    const char *h[] = {"Idempotency-Key: idem-2-first", NULL};
    tl_http_resp_t a = enrol(study, site, "IDEM-201", NULL, h);
    assert_int_equal(a.status, 201);
    /* another body: refused, and IDEM-202 is not enrolled */
    tl_http_resp_t b = enrol(study, site, "IDEM-202", NULL, h);
    assert_int_equal(b.status, 422);
    assert_string_equal(str(b.body, "type"), "/problems/idempotency-key-reused");
    char path[160];
    snprintf(path, sizeof path, "/v1/studies/%s/participants?limit=50", study);
    tl_http_resp_t list = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(list.status, 200);
    assert_int_equal(json_array_size(json_object_get(list.body, "items")), 1);
    tl_http_free(&list);
    /* another route with the same key */
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    tl_http_resp_t c = tl_http(&stack, "POST", path, "{\"code\":\"S9\",\"name\":\"Nine\"}", h, true);
    assert_int_equal(c.status, 422);
    assert_string_equal(str(c.body, "type"), "/problems/idempotency-key-reused");
    /* another principal with the same key and body */
    char other[80];
    tl_stack_token(&stack, "coordinator", site, other);
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    char body[512];
    snprintf(body, sizeof body,
             "{\"participant_code\":\"IDEM-201\",\"site_id\":\"%s\",\"birth_year\":1958,"
             "\"sex\":\"F\",\"baseline_date\":\"2026-01-01\",\"consent_date\":\"2026-01-01\"}",
             site);
    tl_http_resp_t d = tl_http_as(&stack, other, "POST", path, body, h);
    assert_int_equal(d.status, 422);
    /* the first request again: its answer, byte for byte the same JSON */
    tl_http_resp_t e = enrol(study, site, "IDEM-201", NULL, h);
    assert_int_equal(e.status, 201);
    assert_true(json_equal(a.body, e.body));
    /* a refusal is the key's answer too: the same 409 again */
    const char *h2[] = {"Idempotency-Key: idem-2-dup", NULL};
    tl_http_resp_t f = enrol(study, site, "IDEM-201", NULL, h2);
    assert_int_equal(f.status, 409);
    assert_string_equal(str(f.body, "type"), "/problems/duplicate-participant-code");
    tl_http_resp_t g = enrol(study, site, "IDEM-201", NULL, h2);
    assert_int_equal(g.status, 409);
    assert_true(json_equal(f.body, g.body));
    tl_http_resp_t *all[] = {&a, &b, &c, &d, &e, &f, &g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tl_http_free(all[i]);
}

static void test_kafka_tools_read_the_log(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "kcat -L -b '%s'", stack.brokers);
    char *meta = tl_run(cmd, NULL);
    assert_non_null(strstr(meta, "topic \"trialog.protocol.v1\" with 6 partitions"));
    assert_non_null(strstr(meta, "topic \"trialog.participant.v1\" with 6 partitions"));
    free(meta);
    /* every raw value starts with the Confluent magic byte 0 and a schema id */
    /* a partition may be empty: try each until one answers */
    char *raw = NULL;
    for (int p = 0; p < 6; p++) {
        snprintf(cmd, sizeof cmd,
                 "kcat -C -b '%s' -t trialog.protocol.v1 -p %d -o beginning -e -q -c 1 -f '%%s' "
                 "| head -c 5 | od -An -tx1",
                 stack.brokers, p);
        raw = tl_run(cmd, NULL);
        if (strlen(raw) > 4)
            break;
        free(raw);
        raw = NULL;
    }
    assert_non_null(raw);
    /* " 00 00 00 00 0N": magic byte 0, then a small big-endian schema id */
    assert_int_equal(strncmp(raw, " 00 00 00 00 ", 13), 0);
    assert_true(strtol(raw + 13, NULL, 16) > 0);
    free(raw);
    /* CloudEvents headers */
    char *hdrs = NULL;
    for (int p = 0; p < 6 && !hdrs; p++) {
        snprintf(cmd, sizeof cmd,
                 "kcat -C -b '%s' -t trialog.participant.v1 -p %d -o beginning -e -q -c 1 "
                 "-f '%%h'",
                 stack.brokers, p);
        hdrs = tl_run(cmd, NULL);
        if (!strstr(hdrs, "ce_type")) {
            free(hdrs);
            hdrs = NULL;
        }
    }
    assert_non_null(hdrs);
    assert_non_null(strstr(hdrs, "ce_specversion=1.0"));
    assert_non_null(strstr(hdrs, "ce_type=org.trialog.ParticipantEnrolled"));
    assert_non_null(strstr(hdrs, "content-type=application/avro"));
    free(hdrs);
}

static void test_bad_input(void **state)
{
    (void)state;
    const char *ct_text[] = {"Content-Type: text/plain", NULL};
    struct {
        const char *body;
        long status;
        const char *type;
    } cases[] = {
        {"{\"protocol_id\":", 400, "/problems/malformed-json"},
        {"[1,2]", 400, "/problems/malformed-json"},
        {"{\"protocol_id\":\"A\",\"name\":\"B\",\"colour\":\"red\"}", 400,
         "/problems/validation-failed"},
        {"{\"protocol_id\":7,\"name\":\"B\"}", 400, "/problems/validation-failed"},
        {"{\"protocol_id\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"name\":\"B\"}",
         400, "/problems/validation-failed"},
        {"{\"protocol_id\":\"A\\u0000\",\"name\":\"B\"}", 400, "/problems/malformed-json"},
        {"{\"protocol_id\":\"\xff\xfe\",\"name\":\"B\"}", 400, "/problems/malformed-json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies", cases[i].body, NULL, true);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %ld", i, r.status);
        assert_string_equal(r.ctype, "application/problem+json");
        assert_string_equal(str(r.body, "type"), cases[i].type);
        tl_http_free(&r);
    }
    /* field-level errors name every field */
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies", "{\"name\":5,\"x\":1}", NULL, true);
    assert_int_equal(r.status, 400);
    assert_int_equal(json_array_size(json_object_get(r.body, "errors")), 3);
    tl_http_free(&r);
    /* wrong content type */
    char authz[200];
    snprintf(authz, sizeof authz, "Authorization: Bearer %s", stack.token);
    const char *h[] = {authz, ct_text[0], NULL};
    r = tl_http(&stack, "POST", "/v1/studies", "{}", h, false);
    assert_int_equal(r.status, 415);
    tl_http_free(&r);
    /* no or bad credentials */
    r = tl_http(&stack, "GET", "/v1/studies/00000000-0000-0000-0000-000000000000", NULL, NULL,
                false);
    assert_int_equal(r.status, 401);
    tl_http_free(&r);
    /* over 1 MiB */
    size_t big = 1024 * 1024 + 10;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    r = tl_http(&stack, "POST", "/v1/studies", body, NULL, true);
    assert_int_equal(r.status, 413);
    tl_http_free(&r);
    free(body);
    /* unknown study / participant */
    r = tl_http(&stack, "GET", "/v1/participants/3f0e8a4c-0000-4000-8000-000000000000", NULL,
                NULL, true);
    assert_int_equal(r.status, 404);
    tl_http_free(&r);
    r = tl_http(&stack, "GET", "/v1/participants/not-a-uuid", NULL, NULL, true);
    assert_int_equal(r.status, 404);
    tl_http_free(&r);
    /* nothing of the above reached the log */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM studies WHERE protocol_id = 'A'"),
                     0);
}

static void test_list_keyset_pagination(void **state)
{
    (void)state;
    char study[40], s1[40], s2[40], path[256];
    snprintf(study, sizeof study, "%s", new_study("PAGE-1"));
    snprintf(s1, sizeof s1, "%s", new_site(study, "A"));
    snprintf(s2, sizeof s2, "%s", new_site(study, "B"));
    for (int i = 1; i <= 5; i++) {
        char code[32];
        snprintf(code, sizeof code, "PG-%03d", i);
        tl_http_resp_t r = enrol(study, i <= 3 ? s1 : s2, code, NULL, NULL);
        assert_int_equal(r.status, 201);
        tl_http_free(&r);
    }
    snprintf(path, sizeof path, "/v1/studies/%s/participants?limit=2", study);
    const char *expect[] = {"PG-001", "PG-002", "PG-003", "PG-004", "PG-005"};
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        tl_http_resp_t r = tl_http(&stack, "GET", path, NULL, NULL, true);
        assert_int_equal(r.status, 200);
        json_t *items = json_object_get(r.body, "items");
        for (size_t i = 0; i < json_array_size(items); i++)
            assert_string_equal(str(json_array_get(items, i), "participant_code"), expect[seen++]);
        const char *next = json_string_value(json_object_get(r.body, "next"));
        if (!next) {
            tl_http_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/v1/studies/%s/participants?limit=2&after=%s", study, next);
        tl_http_free(&r);
    }
    assert_int_equal(seen, 5);
    snprintf(path, sizeof path, "/v1/studies/%s/participants?site=%s", study, s2);
    tl_http_resp_t r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 2);
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/studies/%s/participants?status=withdrawn", study);
    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 0);
    tl_http_free(&r);
    snprintf(path, sizeof path, "/v1/studies/%s/participants?limit=0", study);
    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 400);
    tl_http_free(&r);
}

static void test_respond_async(void **state)
{
    (void)state;
    const char *h[] = {"Prefer: respond-async", NULL};
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies",
                               "{\"protocol_id\":\"ASYNC-1\",\"name\":\"Async\"}", h, true);
    assert_int_equal(r.status, 202);
    assert_string_equal(str(r.body, "status"), "accepted");
    json_t *log = json_object_get(r.body, "log");
    assert_string_equal(str(log, "topic"), "trialog.protocol.v1");
    assert_true(json_integer_value(json_object_get(log, "offset")) >= 0);
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s", str(r.body, "id"));
    assert_string_equal(r.location, path);
    tl_http_free(&r);
    /* it becomes visible shortly */
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        r = tl_http(&stack, "GET", path, NULL, NULL, true);
        status = r.status;
        tl_http_free(&r);
        if (status != 200)
            tl_sleep_ms(50);
    }
    assert_int_equal(status, 200);
}

/* /metrics over HTTP, after the commands above: text, no token needed,
 * the commands' checks counted with the round trips they took */
static void test_metrics(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "curl -s -i http://127.0.0.1:%d/metrics", stack.port);
    char *out = tl_run(cmd, NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    const char *st = strstr(out, "\ntrialog_gateway_pg_statements_total ");
    const char *rt = strstr(out, "\ntrialog_gateway_pg_round_trips_total ");
    assert_non_null(st);
    assert_non_null(rt);
    long long statements = strtoll(st + strlen("\ntrialog_gateway_pg_statements_total "), NULL, 10);
    long long trips = strtoll(rt + strlen("\ntrialog_gateway_pg_round_trips_total "), NULL, 10);
    assert_true(statements > 0);
    assert_true(trips > 0 && trips <= statements);
    assert_non_null(strstr(out, "trialog_gateway_responses_total{class=\"2xx\"} "));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_enrol_read),
        cmocka_unit_test(test_duplicate_code_conflicts),
        cmocka_unit_test(test_enrol_without_consent_is_violation),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_idempotency_key_binds_to_one_request),
        cmocka_unit_test(test_kafka_tools_read_the_log),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_list_keyset_pagination),
        cmocka_unit_test(test_respond_async),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
