/* Unit tests for the gateway without network or database: RFC 9457 problem
 * bodies, the dispatcher's routing and the authentication that needs no
 * database (only /healthz and /metrics reach a handler). Tokens checked
 * against the access projection: tests/integration/test_authz.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
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
    tl_problem_r(&resp, TL_R(validation_failed), "2 fields are invalid", errors);
    assert_problem(&resp, 400, "validation-failed");
    assert_string_equal(json_string_value(json_object_get(resp.body, "title")),
                        "Invalid request body");
    assert_string_equal(json_string_value(json_object_get(resp.body, "detail")),
                        "2 fields are invalid");
    /* the errors array was taken over as is */
    assert_ptr_equal(json_object_get(resp.body, "errors"), errors);
    assert_int_equal(json_array_size(errors), 2);
    assert_int_equal(json_object_size(resp.body), 5);

    char *text = tl_problem_render(&resp);
    assert_non_null(text);
    assert_string_equal(text, "{\"type\":\"/problems/validation-failed\","
                              "\"title\":\"Invalid request body\","
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
    tl_problem_r(&resp, TL_R(not_found), NULL, NULL);
    assert_problem(&resp, 404, "not-found");
    assert_null(json_object_get(resp.body, "detail"));
    assert_null(json_object_get(resp.body, "errors"));
    char *text = tl_problem_render(&resp);
    assert_string_equal(text, "{\"type\":\"/problems/not-found\",\"title\":\"Not found\","
                              "\"status\":404}");
    free(text);

    /* a second problem replaces the first (no leak: checked under ASan) */
    tl_problem_r(&resp, TL_R(version_conflict), "stale version", NULL);
    assert_problem(&resp, 409, "concurrent-change");
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
    tl_problem_r(&resp, TL_R(study_locked), "line1\n\"line2\" \xc3\xa9", NULL);
    char *text = tl_problem_render(&resp);
    assert_non_null(text);
    json_error_t e;
    json_t *back = json_loads(text, 0, &e);
    assert_non_null(back);
    assert_true(json_equal(back, resp.body));
    assert_string_equal(json_string_value(json_object_get(back, "title")), "Study locked");
    assert_string_equal(json_string_value(json_object_get(back, "detail")),
                        "line1\n\"line2\" \xc3\xa9");
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
    expect_problem(&gw, "GET", "/v1/studies/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/lock", NULL,
                   "Bearer " TOKEN, 405, "method-not-allowed");
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

/* ---- query parameters a route does not read ---- */

static const char *const *query_given; /* NULL-terminated names of the fake query */

static void fake_query_names(void *conn, bool (*fn)(void *ctx, const char *name), void *ctx)
{
    (void)conn;
    for (const char *const *n = query_given; n && *n && fn(ctx, *n); n++)
        ;
}

static void test_query_known(void **state)
{
    (void)state;
    assert_true(tl_gw_query_known("site,status,limit,after", "site"));
    assert_true(tl_gw_query_known("site,status,limit,after", "after"));
    assert_true(tl_gw_query_known("as_of", "as_of"));
    assert_false(tl_gw_query_known("site,status", "sit"));
    assert_false(tl_gw_query_known("site,status", "sites"));
    assert_false(tl_gw_query_known("site,status", "status,site"));
    assert_false(tl_gw_query_known("site,status", ""));
    assert_false(tl_gw_query_known(NULL, "site"));
    assert_false(tl_gw_query_known("", "site"));
    /* every route's list is names only, no blanks or doubled commas */
    size_t n = 0;
    const tl_route_t *routes = tl_gw_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const char *q = routes[i].query;
        if (!q)
            continue;
        assert_true(*q && q[strlen(q) - 1] != ',' && !strstr(q, ",,") && !strchr(q, ' '));
    }
}

static void test_unknown_query_400(void **state)
{
    (void)state;
    static const char *const two[] = {"verbose", "x", NULL};
    tl_req_t req;
    tl_resp_t resp;
    init_req(&req, "GET", "/healthz", NULL, NULL);
    req.query_names = fake_query_names;
    query_given = two;
    memset(&resp, 0, sizeof resp);
    tl_gw_dispatch(&gw, &req, &resp);
    assert_problem(&resp, 400, "invalid-query");
    json_t *errors = json_object_get(resp.body, "errors");
    assert_int_equal(json_array_size(errors), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "field")),
                        "verbose");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "field")),
                        "x");
    json_decref(resp.body);
    /* authentication comes first: no token, no word on the query */
    init_req(&req, "GET", "/v1/studies", NULL, NULL);
    req.query_names = fake_query_names;
    memset(&resp, 0, sizeof resp);
    tl_gw_dispatch(&gw, &req, &resp);
    assert_problem(&resp, 401, "unauthorized");
    json_decref(resp.body);
    /* no query: the route answers */
    static const char *const none[] = {NULL};
    query_given = none;
    init_req(&req, "GET", "/healthz", NULL, NULL);
    req.query_names = fake_query_names;
    memset(&resp, 0, sizeof resp);
    tl_gw_dispatch(&gw, &req, &resp);
    assert_int_equal(resp.status, 200);
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

/* ---- the HTTP edge's rules (edge.c) ---- */

static void test_target_control_characters(void **state)
{
    (void)state;
    static const struct {
        const char *target;
        bool bad;
    } cases[] = {
        {"/v1/releases/r/files/answers.csv", false},
        {"/v1/releases/r/files/answers.csv%00../../etc/passwd", true},
        {"/v1/studies/x%0ay", true},
        {"/v1/studies/x%0Ay", true},
        {"/v1/audit?type=a%01b", true},
        {"/v1/audit?a%00b=1", true},
        {"/v1/audit?a=%7f", true},
        {"/v1/audit?a=%7F", true},
        {"/v1/audit?a=%1f", true},
        {"/v1/audit?a=%20", false},    /* a space is text */
        {"/v1/audit?a=%c3%a9", false}, /* é: the UTF-8 check is tl_text_ok's */
        {"/v1/audit?a=%2500", false},  /* "%00" as text, not a NUL */
        {"/x%%00", true},              /* '%', then a NUL */
        {"/x%0", false},               /* an escape cut short is no escape */
        {"/x%", false},
        {"/x%g0", false},
        {"/x\x01y", true}, /* raw */
        {"/x\x7f", true},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (tl_edge_target_has_control(cases[i].target) != cases[i].bad)
            fail_msg("%s: want %s", cases[i].target, cases[i].bad ? "refused" : "taken");
}

static void test_framing(void **state)
{
    (void)state;
    assert_int_equal(tl_edge_framing(0, 0, NULL), TL_FRAMING_OK);
    assert_int_equal(tl_edge_framing(1, 0, NULL), TL_FRAMING_OK);
    assert_int_equal(tl_edge_framing(0, 1, "chunked"), TL_FRAMING_OK);
    assert_int_equal(tl_edge_framing(0, 1, "Chunked"), TL_FRAMING_OK);
    /* duplicate, even when equal: RFC 9112 lets a server refuse them */
    assert_int_equal(tl_edge_framing(2, 0, NULL), TL_FRAMING_LENGTHS);
    assert_int_equal(tl_edge_framing(3, 1, "chunked"), TL_FRAMING_LENGTHS);
    assert_int_equal(tl_edge_framing(1, 1, "chunked"), TL_FRAMING_LENGTH_AND_CODING);
    assert_int_equal(tl_edge_framing(0, 2, "chunked"), TL_FRAMING_CODING);
    assert_int_equal(tl_edge_framing(0, 1, "gzip"), TL_FRAMING_CODING);
    assert_int_equal(tl_edge_framing(0, 1, "gzip, chunked"), TL_FRAMING_CODING);
    assert_int_equal(tl_edge_framing(0, 1, "chunked, gzip"), TL_FRAMING_CODING);
    assert_int_equal(tl_edge_framing(0, 1, ""), TL_FRAMING_CODING);
    assert_int_equal(tl_edge_framing(0, 1, NULL), TL_FRAMING_CODING);
}

static void test_cors_origins(void **state)
{
    (void)state;
    tl_cors_t c;
    char why[200];
    assert_true(tl_cors_parse("", &c, why, sizeof why));
    assert_int_equal(c.n, 0);
    assert_true(tl_cors_parse(NULL, &c, why, sizeof why));
    assert_int_equal(c.n, 0);
    assert_null(tl_cors_match(&c, "https://app.example.org"));
    assert_true(tl_cors_parse(" https://app.example.org,http://localhost:3000 , http://[::1]:8081,"
                              "https://10.0.0.1",
                              &c, why, sizeof why));
    assert_int_equal(c.n, 4);
    assert_string_equal(c.origin[1], "http://localhost:3000");
    assert_ptr_equal(tl_cors_match(&c, "http://localhost:3000"), c.origin[1]);
    assert_ptr_equal(tl_cors_match(&c, "http://[::1]:8081"), c.origin[2]);
    /* exact: no prefix, suffix, case or scheme games */
    static const char *const others[] = {"https://app.example.org.evil.com",
                                         "https://evil.app.example.org",
                                         "http://app.example.org",
                                         "https://APP.example.org",
                                         "https://app.example.org/",
                                         "https://app.example.org:443",
                                         "http://localhost:30000",
                                         "null",
                                         "",
                                         NULL};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        assert_null(tl_cors_match(&c, others[i]));
    static const char *const bad[] = {
        "*",
        "https://*.example.org",
        "https://app.example.org/",
        "https://app.example.org/app",
        "https://app.example.org?x",
        "https://user@app.example.org",
        "https://App.example.org",
        "HTTPS://app.example.org",
        "ftp://app.example.org",
        "app.example.org",
        "https://",
        "https://app..example.org",
        "https://.example.org",
        "https://app.example.org.",
        "https://-app.example.org",
        "https://app-.example.org",
        "https://app.example.org:",
        "https://app.example.org:0",
        "https://app.example.org:08080",
        "https://app.example.org:65536",
        "https://app.example.org:443",
        "http://app.example.org:80",
        "https://[::1",
        "https://[]",
        "null",
        "https://a.org,,https://b.org",
        "https://a.org,",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (tl_cors_parse(bad[i], &c, why, sizeof why))
            fail_msg("\"%s\" was taken as an origin list", bad[i]);
        assert_non_null(strstr(why, "is not an origin"));
        assert_int_equal(c.n, 0); /* nothing of a list that fails */
    }
    /* at most TL_CORS_ORIGINS_MAX */
    char many[2048] = "";
    for (int i = 0; i <= TL_CORS_ORIGINS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shttps://o%d.org", i ? "," : "",
                 i);
    assert_false(tl_cors_parse(many, &c, why, sizeof why));
    assert_non_null(strstr(why, "more than"));
}

static void test_method_listed(void **state)
{
    (void)state;
    assert_true(tl_edge_method_listed("GET", "GET"));
    assert_true(tl_edge_method_listed("POST, GET", "GET"));
    assert_true(tl_edge_method_listed("GET, PATCH, PUT", "PATCH"));
    assert_false(tl_edge_method_listed("POST, GET", "get"));
    assert_false(tl_edge_method_listed("POST, GET", "GE"));
    assert_false(tl_edge_method_listed("POST, GET", "POST, GET"));
    assert_false(tl_edge_method_listed("POST, GET", ""));
    assert_false(tl_edge_method_listed("", "GET"));
}

static void test_bind_address(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len = 0;
    assert_true(tl_edge_bind_parse("0.0.0.0", 8080, &a, &len));
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 8080);
    assert_true(tl_edge_bind_parse("127.0.0.1", 1, &a, &len));
    assert_int_equal(ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_true(tl_edge_bind_parse("::1", 8080, &a, &len));
    assert_int_equal(a.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&a)->sin6_port), 8080);
    assert_true(tl_edge_bind_parse("[::]", 8080, &a, &len));
    assert_int_equal(a.ss_family, AF_INET6);
    static const char *const bad[] = {
        "localhost", "",     "1.2.3",       "1.2.3.4.5",        "256.0.0.1",
        "[::1",      "::1]", "[127.0.0.1]", "http://127.0.0.1", "127.0.0.1:8080",
        " 127.0.0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tl_edge_bind_parse(bad[i], 8080, &a, &len))
            fail_msg("\"%s\" was taken as an address", bad[i]);
}

/* ---- the router's edge headers ---- */

static void test_no_store_and_challenge(void **state)
{
    (void)state;
    tl_resp_t resp;
    /* no credentials: the challenge without an error code */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/v1/me", NULL, NULL), 401);
    assert_string_equal(resp.authenticate, "Bearer realm=\"trialog\"");
    assert_true(resp.no_store);
    json_decref(resp.body);
    /* a token sent and refused */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/v1/me", NULL, "Bearer wrong"), 401);
    assert_string_equal(resp.authenticate, "Bearer realm=\"trialog\", error=\"invalid_token\"");
    assert_true(resp.no_store);
    json_decref(resp.body);
    /* the registry's 401 is Confluent-shaped, the header the same */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/registry/subjects", NULL, "Bearer wrong"), 401);
    assert_string_equal(resp.authenticate, "Bearer realm=\"trialog\", error=\"invalid_token\"");
    json_decref(resp.body);
    /* an authenticated route's answer, whatever it is */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/v1/me", NULL, "Bearer " TOKEN), 503);
    assert_true(resp.no_store);
    assert_null(resp.authenticate);
    json_decref(resp.body);
    /* public routes and unknown paths: cacheable as they say */
    assert_int_equal(dispatch(&gw, &resp, "GET", "/healthz", NULL, NULL), 200);
    assert_false(resp.no_store);
    assert_null(resp.authenticate);
    json_decref(resp.body);
    assert_int_equal(dispatch(&gw, &resp, "GET", "/nowhere", NULL, NULL), 404);
    assert_false(resp.no_store);
    json_decref(resp.body);
}

static int dispatch_from(tl_gw_t *g, tl_resp_t *resp, const char *method, const char *path,
                         const char *origin, const char *cors_method)
{
    tl_req_t req;
    init_req(&req, method, path, NULL, NULL);
    req.origin = origin;
    req.cors_method = cors_method;
    memset(resp, 0, sizeof *resp);
    tl_gw_dispatch(g, &req, resp);
    return resp->status;
}

static void test_cors(void **state)
{
    (void)state;
    static tl_gw_t g; /* gw with two origins */
    char why[200];
    assert_true(
        tl_cors_parse("https://app.example.org,http://localhost:3000", &g.cors, why, sizeof why));
    tl_resp_t resp;
    /* an allowed origin: itself, as configured, with Vary */
    assert_int_equal(dispatch_from(&g, &resp, "GET", "/healthz", "http://localhost:3000", NULL),
                     200);
    assert_ptr_equal(resp.cors_origin, g.cors.origin[1]);
    assert_true(resp.cors_vary);
    assert_false(resp.cors_preflight);
    json_decref(resp.body);
    /* the same on a refusal, so that the page can read it */
    assert_int_equal(dispatch_from(&g, &resp, "GET", "/v1/me", "https://app.example.org", NULL),
                     401);
    assert_ptr_equal(resp.cors_origin, g.cors.origin[0]);
    json_decref(resp.body);
    /* any other origin: nothing */
    assert_int_equal(dispatch_from(&g, &resp, "GET", "/healthz", "https://evil.example.org", NULL),
                     200);
    assert_null(resp.cors_origin);
    json_decref(resp.body);
    /* a preflight: no credentials, the route's methods */
    assert_int_equal(dispatch_from(&g, &resp, "OPTIONS",
                                   "/v1/studies/0190a1b2-c3d4-7e5f-8a9b-"
                                   "0c1d2e3f4a5b/participants",
                                   "https://app.example.org", "POST"),
                     204);
    assert_true(resp.cors_preflight);
    assert_ptr_equal(resp.cors_origin, g.cors.origin[0]);
    assert_string_equal(resp.allow, "POST, GET");
    assert_null(resp.body);
    /* from elsewhere, or for a method the route has not: 403, no CORS */
    assert_int_equal(
        dispatch_from(&g, &resp, "OPTIONS", "/v1/me", "https://evil.example.org", "GET"), 403);
    assert_problem(&resp, 403, "cors-refused");
    assert_null(resp.cors_origin);
    assert_false(resp.cors_preflight);
    json_decref(resp.body);
    assert_int_equal(
        dispatch_from(&g, &resp, "OPTIONS", "/v1/me", "https://app.example.org", "DELETE"), 403);
    assert_false(resp.cors_preflight);
    json_decref(resp.body);
    /* without CORS configured a preflight is refused the same */
    assert_int_equal(
        dispatch_from(&gw, &resp, "OPTIONS", "/v1/me", "https://app.example.org", "GET"), 403);
    assert_null(resp.cors_origin);
    assert_false(resp.cors_vary);
    json_decref(resp.body);
    /* OPTIONS that is no preflight: what the path has */
    assert_int_equal(dispatch_from(&gw, &resp, "OPTIONS", "/v1/me", NULL, NULL), 204);
    assert_string_equal(resp.allow, "GET, OPTIONS");
    assert_false(resp.cors_preflight);
    assert_int_equal(dispatch_from(&gw, &resp, "OPTIONS", "/nowhere", NULL, NULL), 404);
    json_decref(resp.body);
}

static void test_refusals_counted(void **state)
{
    (void)state;
    static tl_gw_t g;
    tl_resp_t resp;
    assert_int_equal(dispatch(&g, &resp, "GET", "/v1/me", NULL, NULL), 401);
    json_decref(resp.body);
    assert_int_equal(dispatch_from(&g, &resp, "OPTIONS", "/v1/me", "https://a.org", "GET"), 403);
    json_decref(resp.body);
    assert_int_equal(dispatch(&g, &resp, "GET", "/metrics", NULL, NULL), 200);
    assert_int_equal(sample(resp.text, "trialog_http_refused_total{status=\"401\"} "), 1);
    assert_int_equal(sample(resp.text, "trialog_http_refused_total{status=\"403\"} "), 1);
    assert_int_equal(sample(resp.text, "trialog_http_header_timeouts_total "), 0);
    assert_int_equal(sample(resp.text, "trialog_http_library_answers_total{class=\"4xx\"} "), 0);
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
        cmocka_unit_test(test_query_known),
        cmocka_unit_test(test_unknown_query_400),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_target_control_characters),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_cors_origins),
        cmocka_unit_test(test_method_listed),
        cmocka_unit_test(test_bind_address),
        cmocka_unit_test(test_no_store_and_challenge),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_refusals_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
