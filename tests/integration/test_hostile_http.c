/* Hostile HTTP: every limit the gateway sets on a request before it reaches a
 * handler — URL, headers, text, body shape, connections, slow clients — is
 * enforced over a real socket, answered with problem+json where an answer is
 * possible, and leaves no trace in the log. The gateway runs with 8
 * connections and a 2 s timeout so the limits are cheap to reach. */
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

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "hostile_http");
    snprintf(stack.gateway_env[0], sizeof stack.gateway_env[0], "TRIALOG_HTTP_MAX_CONNECTIONS=%d",
             MAX_CONNECTIONS);
    snprintf(stack.gateway_env[1], sizeof stack.gateway_env[1], "TRIALOG_HTTP_TIMEOUT_S=%d",
             TIMEOUT_S);
    assert_int_equal(tl_stack_kill(&stack.gateway, SIGTERM), 0);
    tl_stack_start_gateway(&stack);
    return 0;
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
} raw_resp_t;

/* Sends raw bytes (a whole request, Connection: close) and parses the answer. */
static raw_resp_t raw(const char *request, size_t len)
{
    raw_resp_t r = {0};
    int fd = dial(10000);
    if (!send_all(fd, request, len)) {
        close(fd); /* refused while sending: status 0 */
        return r;
    }
    tl_buf_t in;
    tl_buf_init(&in, 1u << 20);
    bool closed;
    read_all(fd, &in, &closed);
    close(fd);
    if (in.data && sscanf(in.data, "HTTP/1.%*d %d", &r.status) == 1) {
        r.problem_json = strstr(in.data, "application/problem+json") != NULL;
        const char *t = strstr(in.data, "\"type\":\"");
        if (t)
            sscanf(t + 8, "%79[^\"]", r.type);
    }
    tl_buf_cleanup(&in);
    return r;
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
    long long before = tl_sql_int(&stack, "SELECT count(*) FROM audit_log");
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
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log"), before);
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
    tl_sleep_ms(200); /* the gateway has accepted them all */
    /* one more is accepted and closed at once */
    int extra = dial(3000);
    tl_buf_t in;
    tl_buf_init(&in, 1u << 16);
    bool closed;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    send_all(extra, req, strlen(req));
    read_all(extra, &in, &closed);
    close(extra);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_header_limits),
        cmocka_unit_test(test_body_limits_change_nothing),
        cmocka_unit_test(test_slow_clients_time_out),
        cmocka_unit_test(test_connection_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
