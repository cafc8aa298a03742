#include "http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_buf.h"
#include "tl_log.h"

struct tl_http {
    struct MHD_Daemon *d;
    tl_http_handler_fn handler;
    void *ctx;
};

typedef struct {
    tl_buf_t body;
    bool too_large;
} conn_ctx_t;

static const char *query_get(void *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, tl_resp_t *r)
{
    char *text = r->problem ? tl_problem_render(r)
                            : (r->body ? json_dumps(r->body, TL_JSON_DUMP_FLAGS)
                                       : NULL);
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
                                r->problem ? "application/problem+json" : "application/json");
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

static enum MHD_Result too_large(struct MHD_Connection *c)
{
    tl_resp_t r = {0};
    tl_problem(&r, 413, "payload-too-large", "Request body too large",
               "the body exceeds 1 MiB", NULL);
    enum MHD_Result ret = send_resp(c, &r);
    json_decref(r.body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    tl_http_t *h = cls;
    (void)version;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) {
        if (!(ctx = calloc(1, sizeof *ctx)))
            return MHD_NO;
        tl_buf_init(&ctx->body, TL_BODY_MAX);
        *con_cls = ctx;
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > TL_BODY_MAX) {
            ctx->too_large = true;
            return too_large(c); /* answered before the body is read */
        }
        return MHD_YES;
    }
    if (*upload_size) {
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

tl_err_t tl_http_start(int port, int max_connections, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out)
{
    tl_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return TL_ERR_NOMEM;
    h->handler = handler;
    h->ctx = ctx;
    /* A thread per connection: a command handler blocks until the log (and,
     * for read-your-writes, the projection) confirms, so a connection must
     * never wait behind another one's command. The connection limit bounds
     * the threads; their stacks are small. */
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_error, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)(512 * 1024), MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_END);
    if (!h->d) {
        free(h);
        tl_log_error("http_start_failed", json_pack("{s:i}", "port", port));
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
