/* Unit tests for the gateway without network or database: RFC 9457 problem
 * bodies, the dispatcher's routing and the authentication that needs no
 * database (only /healthz and /metrics reach a handler). Tokens checked
 * against the access projection: tests/integration/test_authz.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* shaped like a token: "tlk_" and 64 hex digits */
#define TOKEN "tlk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static tl_gw_t gw; /* zeroed: no database, no Kafka */

static const char *no_query(void *conn, const char *key)
{
    (void)conn;
    (void)key;
    return NULL;
}


static void init_req(tl_req_t *req, const char *method, const char *path, const char *ct,
                     const char *authorization)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = path;
    req->body = "{}";
    req->body_len = 2;
    req->content_type = ct;
    req->authorization = authorization;
    req->query = no_query;
}

/* Dispatches and returns the status; resp->body must be freed by the caller. */
static int dispatch(tl_gw_t *g, tl_resp_t *resp, const char *method, const char *path,
                    const char *ct, const char *authorization)
{
    tl_req_t req;
    init_req(&req, method, path, ct, authorization);
    memset(resp, 0, sizeof *resp);
    tl_gw_dispatch(g, &req, resp);
    return resp->status;
}

/* resp is a problem with status and type "/problems/<slug>". */
static void assert_problem(const tl_resp_t *resp, int status, const char *slug)
{
    char want[128];
    snprintf(want, sizeof want, "/problems/%s", slug);
    assert_int_equal(resp->status, status);
    assert_true(resp->problem);
    assert_non_null(resp->body);
    const char *type = json_string_value(json_object_get(resp->body, "type"));
    assert_non_null(type);
    assert_string_equal(type, want);
    assert_int_equal(json_integer_value(json_object_get(resp->body, "status")), status);
    assert_true(json_is_string(json_object_get(resp->body, "title")));
}

static void expect_problem(tl_gw_t *g, const char *method, const char *path, const char *ct,
                           const char *authorization, int status, const char *slug)
{
    tl_resp_t resp;
    dispatch(g, &resp, method, path, ct, authorization);
    assert_problem(&resp, status, slug);
    json_decref(resp.body);
}

/* ---- problems ---- */

static void test_problem_fields(void **state)
{
    (void)state;
    tl_resp_t resp;
    memset(&resp, 0, sizeof resp);
    json_t *errors = json_pack("[{s:s, s:s}, {s:s, s:s}]", "field", "name", "detail",
                               "is required", "field", "sex", "detail", "must be one of M F O U");
    assert_non_null(errors);
    tl_problem(&resp, 400, "validation", "Invalid request", "2 fields are invalid", errors);
    assert_problem(&resp, 400, "validation");
    assert_string_equal(json_string_value(json_object_get(resp.body, "title")), "Invalid request");
    assert_string_equal(json_string_value(json_object_get(resp.body, "detail")),
                        "2 fields are invalid");
    /* the errors array was taken over as is */
    assert_ptr_equal(json_object_get(resp.body, "errors"), errors);
    assert_int_equal(json_array_size(errors), 2);
    assert_int_equal(json_object_size(resp.body), 5);

    char *text = tl_problem_render(&resp);
    assert_non_null(text);
    assert_string_equal(text, "{\"type\":\"/problems/validation\",\"title\":\"Invalid request\","
                              "\"status\":400,\"detail\":\"2 fields are invalid\",\"errors\":["
                              "{\"field\":\"name\",\"detail\":\"is required\"},"
                              "{\"field\":\"sex\",\"detail\":\"must be one of M F O U\"}]}");
    free(text);
    json_decref(resp.body);
}

static void test_problem_without_detail(void **state)
{
    (void)state;
    tl_resp_t resp;
    memset(&resp, 0, sizeof resp);
    tl_problem(&resp, 404, "not-found", "Not found", NULL, NULL);
    assert_problem(&resp, 404, "not-found");
    assert_null(json_object_get(resp.body, "detail"));
    assert_null(json_object_get(resp.body, "errors"));
    char *text = tl_problem_render(&resp);
    assert_string_equal(text, "{\"type\":\"/problems/not-found\",\"title\":\"Not found\","
                              "\"status\":404}");
    free(text);

    /* a second problem replaces the first (no leak: checked under ASan) */
    tl_problem(&resp, 409, "version-conflict", "Conflict", "stale version", NULL);
    assert_problem(&resp, 409, "version-conflict");
    assert_string_equal(json_string_value(json_object_get(resp.body, "detail")), "stale version");
    json_decref(resp.body);

    /* no body, nothing to render */
    memset(&resp, 0, sizeof resp);
    assert_null(tl_problem_render(&resp));
}

static void test_problem_render_escapes(void **state)
{
    (void)state;
    tl_resp_t resp;
    memset(&resp, 0, sizeof resp);
    tl_problem(&resp, 422, "rule", "Rule \"violated\"", "line1\nline2 \xc3\xa9", NULL);
    char *text = tl_problem_render(&resp);
    assert_non_null(text);
    json_error_t e;
    json_t *back = json_loads(text, 0, &e);
    assert_non_null(back);
    assert_true(json_equal(back, resp.body));
    assert_string_equal(json_string_value(json_object_get(back, "title")), "Rule \"violated\"");
    assert_string_equal(json_string_value(json_object_get(back, "detail")),
                        "line1\nline2 \xc3\xa9");
    json_decref(back);
    free(text);
    json_decref(resp.body);
}

static void test_problem_from_err(void **state)
{
    (void)state;
    static const tl_err_t unavailable[] = {TL_ERR_UNAVAILABLE, TL_ERR_TRANSIENT, TL_ERR_TIMEOUT,
                                           TL_ERR_DB, TL_ERR_KAFKA};
    for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++) {
        tl_resp_t resp;
        memset(&resp, 0, sizeof resp);
        tl_problem_from_err(&resp, unavailable[i]);
        assert_problem(&resp, 503, "unavailable");
        assert_int_equal(resp.retry_after, 1);
        json_decref(resp.body);
    }
    tl_resp_t resp;
    memset(&resp, 0, sizeof resp);
    tl_problem_from_err(&resp, TL_ERR_TOO_LARGE);
    assert_problem(&resp, 413, "payload-too-large");
    assert_int_equal(resp.retry_after, 0);
    json_decref(resp.body);

    memset(&resp, 0, sizeof resp);
    tl_problem_from_err(&resp, TL_ERR_INTERNAL);
    assert_problem(&resp, 500, "internal");
    assert_int_equal(resp.retry_after, 0);
    json_decref(resp.body);
}

/* ---- dispatch ---- */

static void test_unknown_path_404(void **state)
{
    (void)state;
    static const char *const paths[] = {"/nope", "/", "", "/v1", "/v1/studies/x/y/z",
                                        "/healthz/", "/HEALTHZ", "/v1/studies//sites",
                                        "/v1/participants"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        expect_problem(&gw, "GET", paths[i], NULL, "Bearer " TOKEN, 404, "not-found");
    /* no credentials needed to learn that nothing is there */
    expect_problem(&gw, "POST", "/v2/studies", "application/json", NULL, 404, "not-found");
}

static void test_known_path_wrong_method_405(void **state)
{
    (void)state;
    expect_problem(&gw, "DELETE", "/v1/studies", NULL, "Bearer " TOKEN, 405,
                   "method-not-allowed");
    expect_problem(&gw, "GET", "/v1/studies", NULL, "Bearer " TOKEN, 405, "method-not-allowed");
    expect_problem(&gw, "PUT", "/v1/studies/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", NULL,
                   "Bearer " TOKEN, 405, "method-not-allowed");
    expect_problem(&gw, "POST", "/healthz", "application/json", NULL, 405, "method-not-allowed");
    expect_problem(&gw, "get", "/healthz", NULL, NULL, 405, "method-not-allowed");
    /* RFC 9110: a 405 names the methods the resource has */
    tl_resp_t resp;
    dispatch(&gw, &resp, "DELETE", "/v1/studies/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/participants",
             NULL, "Bearer " TOKEN);
    assert_int_equal(resp.status, 405);
    assert_string_equal(resp.allow, "POST, GET");
    json_decref(resp.body);
}

static void test_missing_authorization_401(void **state)
{
    (void)state;
    expect_problem(&gw, "POST", "/v1/studies", "application/json", NULL, 401, "unauthorized");
    expect_problem(&gw, "GET", "/v1/studies/abc", NULL, NULL, 401, "unauthorized");
    expect_problem(&gw, "GET", "/v1/studies/abc/participants", NULL, NULL, 401, "unauthorized");
    expect_problem(&gw, "POST", "/v1/studies/abc/sites", "application/json", NULL, 401,
                   "unauthorized");
    expect_problem(&gw, "GET", "/v1/participants/abc", NULL, NULL, 401, "unauthorized");
    /* authentication comes before the content type check */
    expect_problem(&gw, "POST", "/v1/studies", "text/plain", NULL, 401, "unauthorized");
}

static void test_malformed_token_401(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Bearer tlk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",   /* short */
        "Bearer tlk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", /* long */
        "Bearer " TOKEN " ",
        "Bearer tlk_0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "Bearer tlx_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "Bearer  " TOKEN,
        "Bearer 0123456789abcdef0123456789abcdef01234567",
        "Bearer ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_resp_t resp;
        tl_req_t req;
        init_req(&req, "POST", "/v1/studies", "text/plain", bad[i]);
        memset(&resp, 0, sizeof resp);
        tl_gw_dispatch(&gw, &req, &resp);
        if (resp.status != 401)
            fail_msg("authorization \"%s\" gave %d", bad[i], resp.status);
        assert_problem(&resp, 401, "invalid-token");
        assert_null(req.actor_id);
        json_decref(resp.body);
    }
    static const char *const no_bearer[] = {"Bearer", "", "Basic " TOKEN, TOKEN};
    for (size_t i = 0; i < sizeof no_bearer / sizeof no_bearer[0]; i++)
        expect_problem(&gw, "POST", "/v1/studies", "text/plain", no_bearer[i], 401,
                       "unauthorized");
}

/* A token that cannot be checked is never taken: 503, not a success. */
static void test_token_without_database_503(void **state)
{
    (void)state;
    tl_resp_t resp;
    tl_req_t req;
    init_req(&req, "POST", "/v1/studies", "application/json", "bearer " TOKEN);
    memset(&resp, 0, sizeof resp);
    tl_gw_dispatch(&gw, &req, &resp);
    assert_problem(&resp, 503, "unavailable");
    assert_null(req.actor_id);
    json_decref(resp.body);
}

static void test_healthz(void **state)
{
    (void)state;
    static const char *const auth[] = {NULL, "Bearer wrong", "Bearer " TOKEN};
    for (size_t i = 0; i < sizeof auth / sizeof auth[0]; i++) {
        tl_resp_t resp;
        assert_int_equal(dispatch(&gw, &resp, "GET", "/healthz", NULL, auth[i]), 200);
        assert_false(resp.problem);
        assert_non_null(resp.body);
        assert_int_equal(json_object_size(resp.body), 1);
        assert_string_equal(json_string_value(json_object_get(resp.body, "status")), "ok");
        char *text = json_dumps(resp.body, JSON_COMPACT);
        assert_string_equal(text, "{\"status\":\"ok\"}");
        free(text);
        json_decref(resp.body);
    }
}

/* the value of a sample line "name{labels} value" in Prometheus text */
static unsigned long long sample(const char *text, const char *series)
{
    const char *at = strstr(text, series);
    assert_non_null(at);
    return strtoull(at + strlen(series), NULL, 10);
}

#define RESPONSES(class) "trialog_gateway_responses_total{class=\"" class "\"} "

static void test_metrics(void **state)
{
    (void)state;
    tl_resp_t resp;
    assert_int_equal(dispatch(&gw, &resp, "GET", "/metrics", NULL, NULL), 200);
    assert_string_equal(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_null(resp.body);
    assert_non_null(resp.text);
    unsigned long long ok = sample(resp.text, RESPONSES("2xx"));
    unsigned long long bad = sample(resp.text, RESPONSES("4xx"));
    assert_non_null(strstr(resp.text, "# TYPE trialog_gateway_pg_round_trips_total counter\n"));
    assert_int_equal(sample(resp.text, "trialog_gateway_pg_statements_total "), 0);
    assert_int_equal(sample(resp.text, "trialog_gateway_archive_lag_messages "), 0);
    free(resp.text);
    /* the answer above and two more are counted by class */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/healthz", NULL, NULL), 200);
    json_decref(resp.body);
    assert_int_equal(dispatch(&gw, &resp, "GET", "/nowhere", NULL, NULL), 404);
    json_decref(resp.body);
    assert_int_equal(dispatch(&gw, &resp, "GET", "/metrics", NULL, "Bearer wrong"), 200);
    assert_int_equal(sample(resp.text, RESPONSES("2xx")), ok + 2);
    assert_int_equal(sample(resp.text, RESPONSES("4xx")), bad + 1);
    free(resp.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_fields),
        cmocka_unit_test(test_problem_without_detail),
        cmocka_unit_test(test_problem_render_escapes),
        cmocka_unit_test(test_problem_from_err),
        cmocka_unit_test(test_unknown_path_404),
        cmocka_unit_test(test_known_path_wrong_method_405),
        cmocka_unit_test(test_missing_authorization_401),
        cmocka_unit_test(test_malformed_token_401),
        cmocka_unit_test(test_token_without_database_503),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
