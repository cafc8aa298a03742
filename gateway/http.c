#include "http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tl_buf.h"
#include "tl_json.h"
#include "tl_log.h"

struct tl_http {
    struct MHD_Daemon *d;
    tl_http_handler_fn handler;
    void *ctx;
    int timeout_s;
};

typedef struct {
    tl_buf_t body;
    bool too_large;
    bool answered; /* rejected before its body was read */
    struct timespec started;
} conn_ctx_t;

static const char *query_get(void *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result send_file(struct MHD_Connection *c, tl_resp_t *r)
{
    int fd = r->file_fd1 - 1;
    struct MHD_Response *resp = MHD_create_response_from_fd64(r->file_size, fd);
    r->file_fd1 = 0; /* the response owns it now, or it is closed below */
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->disposition[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, r->disposition);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, tl_resp_t *r)
{
    if (r->file_fd1 > 0 && !r->problem && r->content_type)
        return send_file(c, r);
    if (r->file_fd1 > 0)
        close(r->file_fd1 - 1);
    r->file_fd1 = 0;
    char *text = r->problem ? tl_problem_render(r)
                 : r->text  ? r->text
                            : (r->body ? json_dumps(r->body, TL_JSON_DUMP_FLAGS) : NULL);
    if (text == r->text)
        r->text = NULL; /* the response frees it now */
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (text)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type ? r->content_type
                                : r->problem    ? "application/problem+json"
                                                : "application/json");
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The answers below spell the limits out; these keep them true. */
_Static_assert(TL_BODY_MAX == 1024 * 1024, "too_large() says 1 MiB");
_Static_assert(TL_HTTP_URL_MAX == 2048 && TL_HTTP_HEADER_COUNT_MAX == 64 &&
                   TL_HTTP_HEADER_MAX == 8 * 1024 && TL_HTTP_HEADERS_MAX == 16 * 1024,
               "check_head() spells out the URL and header limits");

/* Answers a request with a problem before (or instead of) reading its body. */
static enum MHD_Result reject(struct MHD_Connection *c, int status, const char *type,
                              const char *title, const char *detail)
{
    tl_resp_t r = {0};
    tl_problem(&r, status, type, title, detail, NULL);
    enum MHD_Result ret = send_resp(c, &r);
    json_decref(r.body);
    return ret;
}

static enum MHD_Result too_large(struct MHD_Connection *c)
{
    return reject(c, 413, "payload-too-large", "Request body too large", "the body exceeds 1 MiB");
}

typedef struct {
    size_t count, bytes, longest, query_bytes;
    bool bad_text;
} header_tally_t;

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    header_tally_t *t = cls;
    size_t len = strlen(key) + (value ? strlen(value) : 0);
    t->count++;
    t->bytes += len;
    if (len > t->longest)
        t->longest = len;
    return MHD_YES;
}

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    header_tally_t *t = cls;
    size_t klen = strlen(key), vlen = value ? strlen(value) : 0;
    if (!tl_text_ok(key, klen) || (value && !tl_text_ok(value, vlen)))
        t->bad_text = true;
    t->query_bytes += klen + vlen + 2; /* with its ? or & and = */
    return MHD_YES;
}

/* The limits on what comes before the body: the URL and the headers (their
 * count and size), and text that is strict UTF-8 in the path and the query.
 * libmicrohttpd's per-connection memory (TL_HTTP_CONN_MEMORY) is the hard stop
 * behind these; anything it refuses never reaches us. */
static enum MHD_Result check_head(struct MHD_Connection *c, const char *url, bool *rejected)
{
    *rejected = true;
    header_tally_t t = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, &t);
    if (strlen(url) + t.query_bytes > TL_HTTP_URL_MAX) /* decoded bytes */
        return reject(c, 414, "uri-too-long", "URI too long", "the URL exceeds 2048 bytes");
    MHD_get_connection_values(c, MHD_HEADER_KIND, tally_header, &t);
    if (t.count > TL_HTTP_HEADER_COUNT_MAX || t.bytes > TL_HTTP_HEADERS_MAX ||
        t.longest > TL_HTTP_HEADER_MAX)
        return reject(c, 431, "headers-too-large", "Request headers too large",
                      "at most 64 headers, each up to 8 KiB, 16 KiB in all");
    if (t.bad_text || !tl_text_ok(url, strlen(url)))
        return reject(c, 400, "invalid-url", "Invalid URL",
                      "the path and query must be UTF-8 text without control characters");
    *rejected = false;
    return MHD_YES;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    tl_http_t *h = cls;
    (void)version;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) {
        if (!(ctx = calloc(1, sizeof *ctx)))
            return MHD_NO;
        tl_buf_init(&ctx->body, TL_BODY_MAX);
        clock_gettime(CLOCK_MONOTONIC, &ctx->started);
        *con_cls = ctx;
        enum MHD_Result ret = check_head(c, url, &ctx->answered);
        if (ctx->answered)
            return ret;
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > TL_BODY_MAX) {
            ctx->answered = true;
            return too_large(c); /* answered before the body is read */
        }
        return MHD_YES;
    }
    if (ctx->answered) {
        *upload_size = 0; /* discarded */
        return MHD_YES;
    }
    if (*upload_size) {
        /* A body must arrive whole within the timeout: a client trickling it
         * byte by byte is cut off, not waited for. */
        if (seconds_since(&ctx->started) > h->timeout_s) {
            tl_log_warn("request_too_slow",
                        json_pack("{s:s, s:i}", "method", method, "timeout_s", h->timeout_s));
            return MHD_NO; /* closes the connection; nothing was handled */
        }
        if (!ctx->too_large && tl_buf_append(&ctx->body, upload, *upload_size))
            ctx->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (ctx->too_large)
        return too_large(c);

    tl_req_t req = {
        .method = method,
        .path = url,
        .body = ctx->body.data ? ctx->body.data : "",
        .body_len = ctx->body.len,
        .content_type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE),
        .authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION),
        .idempotency_key = header(c, "Idempotency-Key"),
        .prefer = header(c, "Prefer"),
        .correlation_id = header(c, "X-Correlation-Id"),
        .query = query_get,
        .conn = c,
    };
    tl_resp_t resp = {.status = 500};
    h->handler(h->ctx, &req, &resp);
    enum MHD_Result ret = send_resp(c, &resp);
    json_decref(resp.body);
    free(resp.text);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx_t *ctx = *con_cls;
    if (ctx) {
        tl_buf_cleanup(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    tl_log_warn("http_error", json_pack("{s:s}", "message", msg));
}

tl_err_t tl_http_start(const tl_http_opts_t *o, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out)
{
    tl_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return TL_ERR_NOMEM;
    h->handler = handler;
    h->ctx = ctx;
    h->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
    /* A thread per connection: a command handler blocks until the log (and,
     * for read-your-writes, the projection) confirms, so a connection must
     * never wait behind another one's command. The connection limit bounds
     * the threads; their stacks are small. A connection idle for timeout_s
     * (a stalled client, or one trickling its headers) is closed. */
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error,
        NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->timeout_s,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)TL_HTTP_CONN_MEMORY, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        tl_log_error("http_start_failed", json_pack("{s:i}", "port", o->port));
        return TL_ERR_IO;
    }
    *out = h;
    return TL_OK;
}

void tl_http_stop(tl_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
