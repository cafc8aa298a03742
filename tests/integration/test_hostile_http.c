/* Hostile HTTP: every limit the gateway sets on a request before it reaches a
 * handler — URL, headers, text, body framing and shape, connections, slow
 * clients — is enforced over a real socket, answered with problem+json where
 * an answer is possible, and leaves no trace in the log; refusals are logged
 * without secrets and counted; answers carry their caching, challenge and
 * CORS headers. The gateway runs with 8 connections, 2 s timeouts (idle and
 * headers), bound to 127.0.0.1 and with two CORS origins, so the limits are
 * cheap to reach. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tl_buf.h"

#define MAX_CONNECTIONS 8
#define TIMEOUT_S 2
#define HEADER_TIMEOUT_S 2
#define ORIGIN "https://app.example.org"
#define EXTRA_ENV 5 /* the gateway_env slot a test may set for a restart */

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "hostile_http");
    snprintf(stack.gateway_env[0], sizeof stack.gateway_env[0], "TRIALOG_HTTP_MAX_CONNECTIONS=%d",
             MAX_CONNECTIONS);
    snprintf(stack.gateway_env[1], sizeof stack.gateway_env[1], "TRIALOG_HTTP_TIMEOUT_S=%d",
             TIMEOUT_S);
    snprintf(stack.gateway_env[2], sizeof stack.gateway_env[2], "TRIALOG_HTTP_HEADER_TIMEOUT_S=%d",
             HEADER_TIMEOUT_S);
    snprintf(stack.gateway_env[3], sizeof stack.gateway_env[3], "TRIALOG_HTTP_BIND=127.0.0.1");
    snprintf(stack.gateway_env[4], sizeof stack.gateway_env[4],
             "TRIALOG_HTTP_CORS_ORIGINS=" ORIGIN ",http://localhost:3000");
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    tl_stack_start_gateway(&stack);
    return 0;
}

/* Restarts the gateway with one more setting, or (NULL) as setup left it. */
static void restart_gateway(const char *extra)
{
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    snprintf(stack.gateway_env[EXTRA_ENV], sizeof stack.gateway_env[EXTRA_ENV], "%s",
             extra ? extra : "");
    tl_stack_start_gateway(&stack);
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* A connected socket to the gateway that gives up reading after wait_ms. */
static int dial(int wait_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)stack.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static bool send_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads until the peer closes or wait_ms passes; *closed says which. */
static void read_all(int fd, tl_buf_t *out, bool *closed)
{
    char chunk[4096];
    *closed = false;
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            assert_int_equal(tl_buf_append(out, chunk, (size_t)n), TL_OK);
            continue;
        }
        *closed = n == 0 || errno == ECONNRESET;
        return;
    }
}

typedef struct {
    int status;
    char type[80];
    bool problem_json;
    bool closed;     /* the gateway closed the connection (we did not give up waiting) */
    char head[4096]; /* the status line and the headers */
} raw_resp_t;

/* Sends raw bytes and reads what comes back until the gateway closes or
 * 10 s pass; false when the gateway refused them while they were sent. */
static bool exchange(const char *request, size_t len, tl_buf_t *in, bool *closed)
{
    int fd = dial(10000);
    bool sent = send_all(fd, request, len);
    if (sent)
        read_all(fd, in, closed);
    close(fd);
    return sent;
}

/* Sends raw bytes (a whole request, Connection: close) and parses the answer. */
static raw_resp_t raw(const char *request, size_t len)
{
    raw_resp_t r = {0};
    tl_buf_t in;
    tl_buf_init(&in, 1u << 20);
    if (exchange(request, len, &in, &r.closed) && in.data &&
        sscanf(in.data, "HTTP/1.%*d %d", &r.status) == 1) {
        const char *end = strstr(in.data, "\r\n\r\n");
        size_t n = end ? (size_t)(end - in.data) + 2 : in.len;
        snprintf(r.head, sizeof r.head, "%.*s", (int)n, in.data);
        r.problem_json = strstr(r.head, "application/problem+json") != NULL;
        const char *t = strstr(in.data, "\"type\":\"");
        if (t)
            sscanf(t + 8, "%79[^\"]", r.type);
    }
    tl_buf_cleanup(&in);
    return r;
}

/* Whether the answer has the header line (name: value, as sent). */
static bool has_header(const raw_resp_t *r, const char *line)
{
    char want[600];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    return strstr(r->head, want) != NULL;
}

/* A sample of the gateway's /metrics: "name{labels}" (0 when absent). */
static long long metric(const char *series)
{
    const char *get = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    tl_buf_t in;
    tl_buf_init(&in, 1u << 20);
    bool closed = false;
    assert_true(exchange(get, strlen(get), &in, &closed));
    assert_non_null(in.data);
    char want[300];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *at = strstr(in.data, want);
    long long v = at ? strtoll(at + strlen(want), NULL, 10) : 0;
    tl_buf_cleanup(&in);
    return v;
}

/* A GET of path with extra header lines (each ending in \r\n). */
static raw_resp_t raw_get(const char *path, const char *headers)
{
    tl_buf_t req;
    tl_buf_init(&req, 1u << 20);
    assert_int_equal(tl_buf_printf(&req,
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                                   "%s\r\n%sConnection: close\r\n\r\n",
                                   path, stack.token, headers),
                     TL_OK);
    raw_resp_t r = raw(req.data, req.len);
    tl_buf_cleanup(&req);
    return r;
}

static void assert_problem(raw_resp_t r, int status, const char *type)
{
    if (r.status != status)
        fail_msg("status %d, want %d (%s)", r.status, status, r.type);
    assert_true(r.problem_json);
    assert_string_equal(r.type, type);
}

/* The gateway still answers an ordinary request. */
static void assert_serving(void)
{
    tl_http_resp_t r = tl_http(&stack, "GET", "/v1/me", NULL, NULL, true);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
}

static void test_url_and_header_limits(void **state)
{
    (void)state;
    assert_int_equal(raw_get("/v1/me", "").status, 200);
    /* the URL */
    char path[4000];
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    memcpy(path, "/v1/audit?x=", 12);
    assert_problem(raw_get(path, ""), 414, "/problems/uri-too-long");
    /* strict text in the path and the query, after percent-decoding */
    assert_problem(raw_get("/v1/audit?type=%ff", ""), 400, "/problems/invalid-url");
    assert_problem(raw_get("/v1/audit?type=%c0%af", ""), 400, "/problems/invalid-url");
    assert_problem(raw_get("/v1/audit?type=a%0ab", ""), 400, "/problems/invalid-url");
    assert_problem(raw_get("/v1/studies/%ed%a0%80", ""), 400, "/problems/invalid-url");
    /* valid text reaches the handler, which knows no such type */
    assert_problem(raw_get("/v1/audit?type=Caf%c3%a9", ""), 400, "/problems/invalid-query");
    /* one header too long, too many, too much in all */
    tl_buf_t h;
    tl_buf_init(&h, 1u << 20);
    assert_int_equal(tl_buf_printf(&h, "X-Big: %09000d\r\n", 0), TL_OK);
    assert_problem(raw_get("/v1/me", h.data), 431, "/problems/headers-too-large");
    h.len = 0;
    for (int i = 0; i < 70; i++)
        assert_int_equal(tl_buf_printf(&h, "X-H%d: %d\r\n", i, i), TL_OK);
    assert_problem(raw_get("/v1/me", h.data), 431, "/problems/headers-too-large");
    h.len = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(tl_buf_printf(&h, "X-M%d: %07000d\r\n", i, 0), TL_OK);
    assert_problem(raw_get("/v1/me", h.data), 431, "/problems/headers-too-large");
    /* past libmicrohttpd's own memory: refused by it (a 4xx, or the
     * connection closed), and the gateway carries on */
    h.len = 0;
    assert_int_equal(tl_buf_printf(&h, "X-Huge: %0100000d\r\n", 0), TL_OK);
    raw_resp_t huge = raw_get("/v1/me", h.data);
    assert_true(huge.status == 0 || (huge.status >= 400 && huge.status < 500));
    tl_buf_cleanup(&h);
    assert_serving();
}

static void test_body_limits_change_nothing(void **state)
{
    (void)state;
    long long before = tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS);
    tl_buf_t b;
    tl_buf_init(&b, 2u << 20);
    /* deeper than 16 levels, and far deeper */
    assert_int_equal(tl_buf_printf(&b, "{\"protocol_id\":\"P\",\"name\":\"N\",\"x\":"), TL_OK);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(tl_buf_append(&b, "[", 1), TL_OK);
    tl_http_resp_t r = tl_http(&stack, "POST", "/v1/studies", b.data, NULL, true);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.ctype, "application/problem+json");
    assert_string_equal(json_string_value(json_object_get(r.body, "type")),
                        "/problems/malformed-json");
    tl_http_free(&r);
    /* more than 4096 values */
    b.len = 0;
    assert_int_equal(tl_buf_printf(&b, "{\"protocol_id\":\"P\",\"name\":\"N\",\"x\":[0"), TL_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(tl_buf_append(&b, ",0", 2), TL_OK);
    assert_int_equal(tl_buf_append(&b, "]}", 3), TL_OK);
    r = tl_http(&stack, "POST", "/v1/studies", b.data, NULL, true);
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.body, "type")),
                        "/problems/malformed-json");
    tl_http_free(&r);
    /* an array past its field's limit (sites of a principal: at most 32) */
    b.len = 0;
    assert_int_equal(tl_buf_printf(&b, "{\"name\":\"many-sites\",\"role\":\"coordinator\","
                                       "\"site_ids\":["),
                     TL_OK);
    for (int i = 0; i < 33; i++)
        assert_int_equal(tl_buf_printf(&b, "%s\"00000000-0000-4000-8000-%012d\"", i ? "," : "", i),
                         TL_OK);
    assert_int_equal(tl_buf_append(&b, "]}", 3), TL_OK);
    r = tl_http(&stack, "POST", "/v1/principals", b.data, NULL, true);
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.body, "type")),
                        "/problems/validation-failed");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r.body, "errors"), 0), "field")),
                        "site_ids");
    tl_http_free(&r);
    tl_buf_cleanup(&b);
    /* invalid UTF-8 and stray control characters in a string */
    const char *bodies[] = {
        "{\"protocol_id\":\"P\",\"name\":\"\xed\xa0\x80\"}",
        "{\"protocol_id\":\"P\",\"name\":\"\\ud800\"}",
        "{\"protocol_id\":\"P\",\"name\":\"a\\u0007b\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        r = tl_http(&stack, "POST", "/v1/studies", bodies[i], NULL, true);
        if (r.status != 400)
            fail_msg("body %zu: status %ld", i, r.status);
        assert_string_equal(r.ctype, "application/problem+json");
        tl_http_free(&r);
    }
    /* nothing reached the log */
    tl_sleep_ms(500);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS), before);
    assert_serving();
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_slow_clients_time_out(void **state)
{
    (void)state;
    /* headers that never end */
    int fd = dial(20000);
    const char *partial = "GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    assert_true(send_all(fd, partial, strlen(partial)));
    double t0 = now_s();
    tl_buf_t in;
    tl_buf_init(&in, 1u << 16);
    bool closed;
    read_all(fd, &in, &closed);
    close(fd);
    assert_true(closed);
    assert_true(now_s() - t0 < TIMEOUT_S + 5);
    /* a body trickled a byte at a time: cut off, not handled */
    char head[400];
    const char *body = "{\"protocol_id\":\"SLOW-1\",\"name\":\"Slow\"}";
    int n = snprintf(head, sizeof head,
                     "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     stack.token, strlen(body));
    fd = dial(20000);
    assert_true(send_all(fd, head, (size_t)n));
    t0 = now_s();
    bool cut = false;
    for (size_t i = 0; i < strlen(body) && now_s() - t0 < TIMEOUT_S + 8; i++) {
        tl_sleep_ms(300);
        if (!send_all(fd, body + i, 1)) {
            cut = true;
            break;
        }
    }
    if (!cut) {
        in.len = 0;
        read_all(fd, &in, &closed);
        cut = closed && !(in.len && strstr(in.data, " 201 "));
    }
    close(fd);
    tl_buf_cleanup(&in);
    assert_true(cut);
    assert_true(tl_stack_log_contains(&stack, "gateway", "request_too_slow"));
    assert_int_equal(
        tl_sql_int(&stack, "SELECT count(*) FROM studies WHERE protocol_id = 'SLOW-1'"), 0);
    assert_serving();
}

static void test_connection_limit(void **state)
{
    (void)state;
    int fds[MAX_CONNECTIONS];
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        fds[i] = dial(3000);
    /* one more is accepted and closed at once, once the gateway has taken
     * them all: on a busy machine that can take longer than a moment, so
     * the extra connection is tried again for a few seconds */
    tl_buf_t in;
    tl_buf_init(&in, 1u << 16);
    bool closed = false;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int attempt = 0; attempt < 40; attempt++) {
        tl_sleep_ms(200);
        int extra = dial(3000);
        in.len = 0;
        send_all(extra, req, strlen(req));
        read_all(extra, &in, &closed);
        close(extra);
        if (closed && in.len == 0)
            break;
    }
    assert_true(closed);
    assert_int_equal(in.len, 0);
    tl_buf_cleanup(&in);
    /* once they go, new connections are served */
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        close(fds[i]);
    for (int attempt = 0; attempt < 50; attempt++) {
        tl_http_resp_t r = tl_http(&stack, "GET", "/v1/me", NULL, NULL, true);
        long st = r.status;
        tl_http_free(&r);
        if (st == 200)
            return;
        tl_sleep_ms(100);
    }
    fail_msg("the gateway did not serve again after the connections closed");
}

/* A request whose body two parsers could delimit differently (request
 * smuggling, RFC 9112 §6.3) is refused before its body is read, and the
 * connection closed: what follows could be taken for a next request. */
static void test_ambiguous_framing(void **state)
{
    (void)state;
    const char *body = "{\"protocol_id\":\"FRAMING-1\",\"name\":\"N\"}";
    /* two header lines each; a NULL value is the body's length */
    const char *const framings[][4] = {
        {"Content-Length", "2", "Content-Length", NULL},
        {"Content-Length", NULL, "Content-Length", NULL},
        {"Content-Length", NULL, "Transfer-Encoding", "chunked"},
        {"Transfer-Encoding", "chunked", "Content-Length", NULL},
        {"Transfer-Encoding", "gzip", "X-Len", NULL},
        {"Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"},
    };
    for (size_t i = 0; i < sizeof framings / sizeof framings[0]; i++) {
        tl_buf_t req;
        tl_buf_init(&req, 1u << 16);
        assert_int_equal(tl_buf_printf(&req,
                                       "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       "Authorization: Bearer %s\r\nContent-Type: application/json"
                                       "\r\n",
                                       stack.token),
                         TL_OK);
        for (int h = 0; h < 4; h += 2) {
            if (framings[i][h + 1])
                assert_int_equal(
                    tl_buf_printf(&req, "%s: %s\r\n", framings[i][h], framings[i][h + 1]), TL_OK);
            else
                assert_int_equal(tl_buf_printf(&req, "%s: %zu\r\n", framings[i][h], strlen(body)),
                                 TL_OK);
        }
        assert_int_equal(tl_buf_printf(&req, "\r\n%s", body), TL_OK);
        raw_resp_t r = raw(req.data, req.len);
        tl_buf_cleanup(&req);
        if (r.status != 400 || strcmp(r.type, "/problems/invalid-framing"))
            fail_msg("framing %zu: status %d (%s)", i, r.status, r.type);
        assert_true(r.problem_json);
        assert_true(has_header(&r, "Connection: close"));
        assert_true(r.closed);
    }
    tl_sleep_ms(300);
    assert_int_equal(
        tl_sql_int(&stack, "SELECT count(*) FROM studies WHERE protocol_id = 'FRAMING-1'"), 0);
    assert_serving();
}

static bool peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Headers trickled a byte at a time, each byte well inside the idle
 * timeout, are cut off at the header timeout. */
static void test_headers_must_arrive_in_time(void **state)
{
    (void)state;
    long long before = metric("trialog_http_header_timeouts_total");
    char slow[300];
    snprintf(slow, sizeof slow,
             "GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nX-Slow: %s",
             stack.token, "abcdefghijklmnopqrstuvwxyz0123456789");
    int fd = dial(1000);
    double t0 = now_s(), closed_after = -1;
    for (size_t i = 0; i < strlen(slow) && now_s() - t0 < HEADER_TIMEOUT_S + 6; i++) {
        if (!send_all(fd, slow + i, 1) || peer_closed(fd)) {
            closed_after = now_s() - t0;
            break;
        }
        tl_sleep_ms(300);
    }
    close(fd);
    if (closed_after < 0)
        fail_msg("headers trickled for %.1f s and the connection is still open", now_s() - t0);
    if (closed_after < HEADER_TIMEOUT_S - 0.2 || closed_after > HEADER_TIMEOUT_S + 1.2)
        fail_msg("closed after %.2f s, want about %d s", closed_after, HEADER_TIMEOUT_S);
    assert_true(tl_stack_log_contains(&stack, "gateway", "request_headers_too_slow"));
    assert_int_equal(metric("trialog_http_header_timeouts_total"), before + 1);
    /* a kept-alive connection whose requests come in time is not cut: two
     * requests a second apart, the connection open in all for longer than
     * the header timeout */
    fd = dial(5000);
    const char *get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        if (i)
            tl_sleep_ms(1000);
        assert_true(send_all(fd, get, strlen(get)));
        char in[512] = "";
        ssize_t n = recv(fd, in, sizeof in - 1, 0);
        if (n <= 0 || !strstr(in, " 200 "))
            fail_msg("request %d on a kept-alive connection: %zd bytes", i, n);
    }
    close(fd);
    assert_int_equal(metric("trialog_http_header_timeouts_total"), before + 1);
}

/* One client address gets at most TRIALOG_HTTP_MAX_CONNECTIONS_PER_IP. */
static void test_connections_per_address(void **state)
{
    (void)state;
    enum { PER_IP = 3 };
    char env[80];
    snprintf(env, sizeof env, "TRIALOG_HTTP_MAX_CONNECTIONS_PER_IP=%d", PER_IP);
    restart_gateway(env);
    int fds[PER_IP];
    for (int i = 0; i < PER_IP; i++)
        fds[i] = dial(3000);
    tl_sleep_ms(200); /* the gateway has accepted them all */
    const char *get = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    int extra = dial(3000);
    tl_buf_t in;
    tl_buf_init(&in, 1u << 16);
    bool closed = false;
    send_all(extra, get, strlen(get));
    read_all(extra, &in, &closed);
    close(extra);
    assert_true(closed);
    assert_int_equal(in.len, 0);
    /* the first ones are served */
    for (int i = 0; i < PER_IP; i++) {
        in.len = 0;
        assert_true(send_all(fds[i], get, strlen(get)));
        read_all(fds[i], &in, &closed);
        close(fds[i]);
        if (!in.len || !strstr(in.data, " 200 "))
            fail_msg("connection %d was not served", i);
    }
    tl_buf_cleanup(&in);
    restart_gateway(NULL);
}

/* A control character decoded from the path or the query is refused, not
 * cut off: %00 would end the path early, and the request would reach the
 * route of what comes before it. */
static void test_control_characters_in_url(void **state)
{
    (void)state;
    char study[40], site[40], path[300];
    tl_stack_study(&stack, "CTL-1", study, site);
    snprintf(path, sizeof path, "/v1/studies/%s", study);
    assert_int_equal(raw_get(path, "").status, 200);
    const char *const suffixes[] = {"%00../../etc/passwd",
                                    "%0a",
                                    "%0d%0aX-Injected:%201",
                                    "?type=a%01b",
                                    "?x%00y=1",
                                    "?x=%00",
                                    "?x=a%7fb",
                                    "%00"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(path, sizeof path, "/v1/studies/%s%s", study, suffixes[i]);
        raw_resp_t r = raw_get(path, "");
        if (r.status != 400 || strcmp(r.type, "/problems/invalid-url"))
            fail_msg("%s: status %d (%s), want 400 invalid-url", suffixes[i], r.status, r.type);
        assert_true(r.problem_json);
    }
    assert_serving();
}

/* An analyst's token (made once): a principal that may call little. */
static const char *analyst_token(void)
{
    static char token[80];
    if (!token[0]) {
        char study[40], site[40]; /* an analyst is granted a study */
        tl_stack_study(&stack, "HOSTILE-A", study, site);
        tl_stack_token(&stack, "analyst", study, token);
    }
    return token;
}

/* The gateway's log, as one string (caller frees). */
static char *gateway_log(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/gateway.log", stack.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    tl_buf_t b;
    tl_buf_init(&b, 64u << 20);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(tl_buf_append(&b, chunk, n), TL_OK);
    assert_int_equal(tl_buf_append(&b, "", 1), TL_OK);
    fclose(f);
    return tl_buf_steal(&b, NULL);
}

/* The first line of log with every one of needles, or NULL. */
static bool log_has_line(const char *log, const char *const *needles)
{
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        bool all = true;
        for (const char *const *n = needles; *n && all; n++) {
            const char *at = strstr(line, *n);
            all = at && at < line + len;
        }
        if (all)
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

/* 401 and 403 are logged (route, status, problem type, principal; never a
 * token) and counted; so are the answers libmicrohttpd makes by itself. */
static void test_refusals_logged_and_counted(void **state)
{
    (void)state;
    long long m401 = metric("trialog_http_refused_total{status=\"401\"}");
    long long m403 = metric("trialog_http_refused_total{status=\"403\"}");
    long long lib4 = metric("trialog_http_library_answers_total{class=\"4xx\"}");
    long long lib5 = metric("trialog_http_library_answers_total{class=\"5xx\"}");
    /* a token-shaped sentinel nobody was given */
    const char *sentinel = "tlk_5e171e15e171e15e171e15e171e15e171e15e171e15e171e15e171e15e171e1";
    const char *analyst = analyst_token();
    char id[40] = "";
    tl_http_resp_t me = tl_http_as(&stack, analyst, "GET", "/v1/me", NULL, NULL);
    assert_int_equal(me.status, 200);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(me.body, "id")));
    tl_http_free(&me);
    tl_http_resp_t r = tl_http_as(&stack, sentinel, "GET", "/v1/me", NULL, NULL);
    assert_int_equal(r.status, 401);
    tl_http_free(&r);
    r = tl_http_as(&stack, analyst, "POST", "/v1/studies",
                   "{\"protocol_id\":\"REFUSED-1\",\"name\":\"N\"}", NULL);
    assert_int_equal(r.status, 403);
    tl_http_free(&r);
    assert_int_equal(metric("trialog_http_refused_total{status=\"401\"}"), m401 + 1);
    assert_int_equal(metric("trialog_http_refused_total{status=\"403\"}"), m403 + 1);
    char *log = gateway_log();
    const char *const l401[] = {"\"event\":\"request_refused\"",
                                "\"method\":\"GET\"",
                                "\"route\":\"/v1/me\"",
                                "\"status\":401",
                                "\"type\":\"/problems/invalid-token\"",
                                NULL};
    char principal[80];
    snprintf(principal, sizeof principal, "\"principal\":\"%s\"", id);
    const char *const l403[] = {"\"event\":\"request_refused\"",
                                "\"method\":\"POST\"",
                                "\"route\":\"/v1/studies\"",
                                "\"status\":403",
                                "\"type\":\"/problems/forbidden\"",
                                principal,
                                NULL};
    assert_true(log_has_line(log, l401));
    assert_true(log_has_line(log, l403));
    assert_null(strstr(log, sentinel));
    assert_null(strstr(log, analyst));
    assert_null(strstr(log, "tlk_"));
    assert_null(strstr(log, "REFUSED-1"));
    free(log);
    /* libmicrohttpd's own answers: a malformed request line (400) and a
     * chunk extension past its memory (500) */
    const char *bad_line = "GET /v1/me HTTP/1.1 extra\r\nHost: 127.0.0.1\r\n\r\n";
    raw_resp_t lr = raw(bad_line, strlen(bad_line));
    assert_int_equal(lr.status, 400);
    assert_false(lr.problem_json);
    tl_buf_t chunked;
    tl_buf_init(&chunked, 1u << 20);
    assert_int_equal(tl_buf_printf(&chunked,
                                   "POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                                   "Bearer %s\r\nContent-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n2;x=",
                                   stack.token),
                     TL_OK);
    for (int i = 0; i < 70 * 1024; i++)
        assert_int_equal(tl_buf_append(&chunked, "a", 1), TL_OK);
    assert_int_equal(tl_buf_printf(&chunked, "\r\n{}\r\n0\r\n\r\n"), TL_OK);
    raw_resp_t cr = raw(chunked.data, chunked.len);
    tl_buf_cleanup(&chunked);
    assert_true(cr.status >= 400 && cr.status < 600);
    assert_false(cr.problem_json);
    long long got4 = metric("trialog_http_library_answers_total{class=\"4xx\"}") - lib4;
    long long got5 = metric("trialog_http_library_answers_total{class=\"5xx\"}") - lib5;
    assert_int_equal(got4, 1 + (cr.status < 500));
    assert_int_equal(got5, cr.status >= 500);
    assert_serving();
}

/* Authenticated answers are never cached; 401 says how to authenticate. */
static void test_cache_control_and_challenge(void **state)
{
    (void)state;
    raw_resp_t r = raw_get("/v1/me", "");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Cache-Control: no-store"));
    assert_null(strstr(r.head, "WWW-Authenticate"));
    const char *health = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    r = raw(health, strlen(health));
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.head, "Cache-Control"));
    /* no token at all: the challenge alone */
    const char *anon = "GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    r = raw(anon, strlen(anon));
    assert_problem(r, 401, "/problems/unauthorized");
    assert_true(has_header(&r, "WWW-Authenticate: Bearer realm=\"trialog\""));
    assert_true(has_header(&r, "Cache-Control: no-store"));
    /* a token refused */
    const char *bad = "GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\n"
                      "Connection: close\r\n\r\n";
    r = raw(bad, strlen(bad));
    assert_problem(r, 401, "/problems/invalid-token");
    assert_true(
        has_header(&r, "WWW-Authenticate: Bearer realm=\"trialog\", error=\"invalid_token\""));
    assert_true(has_header(&r, "Cache-Control: no-store"));
    /* 403 */
    char req[600];
    snprintf(req, sizeof req,
             "GET /v1/principals HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             "Connection: close\r\n\r\n",
             analyst_token());
    r = raw(req, strlen(req));
    assert_problem(r, 403, "/problems/forbidden");
    assert_true(has_header(&r, "Cache-Control: no-store"));
    assert_null(strstr(r.head, "WWW-Authenticate"));
}

/* TRIALOG_HTTP_BIND=127.0.0.1: the gateway answers there and nowhere else
 * (127.0.0.2 is this host too, and a wildcard bind would answer it). */
static void test_bind_address(void **state)
{
    (void)state;
    assert_serving();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)stack.port)};
    assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &a.sin_addr), 1);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    assert_int_equal(rc, -1);
    assert_int_equal(e, ECONNREFUSED);
    /* what is no address is refused at start, and says so */
    static const char *const bad[][2] = {
        {"TRIALOG_HTTP_BIND", "localhost"},
        {"TRIALOG_HTTP_CORS_ORIGINS", "https://*.example.org"},
        {"TRIALOG_HTTP_CORS_ORIGINS", ORIGIN "/"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i][0], bad[i][1], 1);
        int code = tl_stack_program_exit(&stack, "trialog-gateway", NULL, "gateway-config", 10000);
        unsetenv(bad[i][0]);
        assert_int_equal(code, 2);
        assert_true(tl_stack_log_contains(&stack, "gateway-config", bad[i][0]));
    }
}

/* A request with CORS headers, parsed. */
static raw_resp_t cors_request(const char *method, const char *path, const char *origin,
                               const char *preflight_method)
{
    char req[800];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: %s\r\n", method,
                     path, origin);
    if (preflight_method)
        n += snprintf(req + n, sizeof req - (size_t)n,
                      "Access-Control-Request-Method: %s\r\n"
                      "Access-Control-Request-Headers: authorization, content-type\r\n",
                      preflight_method);
    snprintf(req + n, sizeof req - (size_t)n, "Connection: close\r\n\r\n");
    return raw(req, strlen(req));
}

static void test_cors(void **state)
{
    (void)state;
    /* an allowed origin gets itself back */
    raw_resp_t r = cors_request("GET", "/healthz", ORIGIN, NULL);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Access-Control-Allow-Origin: " ORIGIN));
    assert_true(has_header(&r, "Vary: Origin"));
    r = cors_request("GET", "/healthz", "http://localhost:3000", NULL);
    assert_true(has_header(&r, "Access-Control-Allow-Origin: http://localhost:3000"));
    /* any other: no CORS headers at all */
    r = cors_request("GET", "/healthz", "https://evil.example.org", NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.head, "Access-Control-"));
    /* a preflight needs no token, and names what the route allows */
    r = cors_request("OPTIONS", "/v1/studies", ORIGIN, "POST");
    assert_int_equal(r.status, 204);
    assert_true(has_header(&r, "Access-Control-Allow-Origin: " ORIGIN));
    assert_true(has_header(&r, "Access-Control-Allow-Methods: POST, GET"));
    assert_true(has_header(&r, "Access-Control-Allow-Headers: Authorization, Content-Type, "
                               "Idempotency-Key, Prefer, X-Correlation-Id"));
    assert_true(has_header(&r, "Access-Control-Max-Age: 600"));
    assert_null(strstr(r.head, "WWW-Authenticate"));
    /* from another origin, or for a method the route has not: refused */
    r = cors_request("OPTIONS", "/v1/studies", "https://evil.example.org", "POST");
    assert_problem(r, 403, "/problems/cors-refused");
    assert_null(strstr(r.head, "Access-Control-"));
    r = cors_request("OPTIONS", "/v1/studies", ORIGIN, "DELETE");
    assert_problem(r, 403, "/problems/cors-refused");
    assert_null(strstr(r.head, "Access-Control-Allow-Methods"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_header_limits),
        cmocka_unit_test(test_body_limits_change_nothing),
        cmocka_unit_test(test_slow_clients_time_out),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_ambiguous_framing),
        cmocka_unit_test(test_headers_must_arrive_in_time),
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test(test_control_characters_in_url),
        cmocka_unit_test(test_refusals_logged_and_counted),
        cmocka_unit_test(test_cache_control_and_challenge),
        cmocka_unit_test(test_bind_address),
        cmocka_unit_test(test_cors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
