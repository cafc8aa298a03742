#include "http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tl_buf.h"
#include "tl_json.h"
#include "tl_log.h"

/* An open connection, for the header deadline: libmicrohttpd's idle timeout
 * starts again with every byte, so a client trickling its headers would
 * hold a connection (and its thread) for ever. */
typedef struct conn_slot {
    struct conn_slot *prev, *next;
    int fd;
    /* since when it waits for a request's headers (ms, monotonic): from its
     * start, and again after each answer; 0 while a request is read, handled
     * or answered (the body has its own deadline) */
    atomic_llong waiting_since_ms;
    bool cut; /* shut down by the watchdog */
} conn_slot_t;

struct tl_http {
    struct MHD_Daemon *d;
    tl_http_handler_fn handler;
    void *ctx;
    int timeout_s, header_timeout_s;
    tl_http_stats_t *stats;
    /* the watchdog and the open connections; the lock also keeps a slot's fd
     * from being shut down after libmicrohttpd closed it (it closes the
     * socket only after the connection's CLOSED notification, which takes
     * the lock to unlink the slot) */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping, watching;
    pthread_t watchdog;
    conn_slot_t *conns;
};

/* One request, from its request line (the URI log callback) to its end. */
typedef struct {
    tl_buf_t body;
    bool head_done;  /* its headers were checked */
    bool bad_target; /* a control character in the raw path or query */
    bool too_large;
    bool answered; /* rejected before its body was read */
    struct timespec started;
} conn_ctx_t;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 + 1; /* never 0 */
}

static const char *query_get(void *conn, const char *key)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct {
    bool (*fn)(void *ctx, const char *name);
    void *ctx;
} names_walk_t;

static enum MHD_Result name_of(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    (void)value;
    names_walk_t *w = cls;
    return w->fn(w->ctx, key) ? MHD_YES : MHD_NO;
}

static void query_names(void *conn, bool (*fn)(void *ctx, const char *name), void *ctx)
{
    names_walk_t w = {fn, ctx};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, name_of, &w);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The headers every answer may carry, file or not. */
static void add_edge_headers(struct MHD_Response *resp, const tl_resp_t *r)
{
    if (r->no_store)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->authenticate);
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->cors_vary)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (!r->cors_origin)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, r->cors_origin);
    if (r->cors_preflight) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", TL_HTTP_CORS_HEADERS);
        MHD_add_response_header(resp, "Access-Control-Max-Age", TL_HTTP_CORS_MAX_AGE);
    } else {
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", TL_HTTP_CORS_EXPOSE);
    }
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
    add_edge_headers(resp, r);
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
    add_edge_headers(resp, r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The answers below spell the limits out; these keep them true. */
_Static_assert(TL_BODY_MAX == 1024 * 1024, "too_large() says 1 MiB");
_Static_assert(TL_HTTP_URL_MAX == 2048 && TL_HTTP_HEADER_COUNT_MAX == 64 &&
                   TL_HTTP_HEADER_MAX == 8 * 1024 && TL_HTTP_HEADERS_MAX == 16 * 1024,
               "check_head() spells out the URL and header limits");

/* Answers a request with a problem before (or instead of) reading its body;
 * close: and ends the connection (what follows could not be told apart
 * from a next request). */
static enum MHD_Result reject(struct MHD_Connection *c, tl_reason_t why, const char *detail,
                              bool close)
{
    tl_resp_t r = {.close = close};
    tl_problem_r(&r, why, detail, NULL);
    enum MHD_Result ret = send_resp(c, &r);
    json_decref(r.body);
    return ret;
}

static enum MHD_Result too_large(struct MHD_Connection *c)
{
    return reject(c, TL_R(payload_too_large), "the body exceeds 1 MiB", false);
}

typedef struct {
    size_t count, bytes, longest, query_bytes;
    size_t lengths, codings; /* Content-Length and Transfer-Encoding lines */
    const char *coding;      /* the first Transfer-Encoding */
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
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        t->lengths++;
    if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) && !t->codings++)
        t->coding = value;
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

/* The limits on what comes before the body: how the body is framed, the
 * URL and the headers (their count and size), and text that is strict UTF-8
 * without control characters in the path and the query (bad_target: the
 * raw target had one, which decoding may have hidden). libmicrohttpd's
 * per-connection memory (TL_HTTP_CONN_MEMORY) is the hard stop behind
 * these; anything it refuses never reaches us. */
static enum MHD_Result check_head(struct MHD_Connection *c, const char *url, bool bad_target,
                                  bool *rejected)
{
    *rejected = true;
    header_tally_t t = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, tally_header, &t);
    /* libmicrohttpd reads the first Content-Length, or lets chunked win:
     * a proxy in front may have read the other one */
    if (tl_edge_framing(t.lengths, t.codings, t.coding) != TL_FRAMING_OK)
        return reject(c, TL_R(invalid_framing),
                      "at most one Content-Length, never with Transfer-Encoding, which may only be"
                      " chunked",
                      true);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, &t);
    if (strlen(url) + t.query_bytes > TL_HTTP_URL_MAX) /* decoded bytes */
        return reject(c, TL_R(uri_too_long), "the URL exceeds 2048 bytes", false);
    if (t.count > TL_HTTP_HEADER_COUNT_MAX || t.bytes > TL_HTTP_HEADERS_MAX ||
        t.longest > TL_HTTP_HEADER_MAX)
        return reject(c, TL_R(headers_too_large),
                      "at most 64 headers, each up to 8 KiB, 16 KiB in all", false);
    if (bad_target || t.bad_text || !tl_text_ok(url, strlen(url)))
        return reject(c, TL_R(invalid_url),
                      "the path and query must be UTF-8 text without control characters", false);
    *rejected = false;
    return MHD_YES;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Starts (now) or stops (0) the connection's wait for a request's headers.
 * No lock: only the connection's own thread writes it, and its slot lives
 * until the connection's CLOSED notification. */
static void headers_awaited(struct MHD_Connection *c, bool awaited)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_slot_t *slot = i ? i->socket_context : NULL;
    if (slot)
        atomic_store(&slot->waiting_since_ms, awaited ? now_ms() : 0);
}

/* The request line has arrived: its context is made here, where the raw
 * target is still to be seen (the access handler gets it decoded). The
 * return value is the request's *con_cls. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    conn_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx) {
        tl_buf_init(&ctx->body, TL_BODY_MAX);
        ctx->bad_target = tl_edge_target_has_control(uri);
    }
    return ctx;
}

/* The first call for a request, once its headers are whole. */
static enum MHD_Result on_headers(struct MHD_Connection *c, const char *url, conn_ctx_t *ctx)
{
    ctx->head_done = true;
    clock_gettime(CLOCK_MONOTONIC, &ctx->started);
    headers_awaited(c, false);
    enum MHD_Result ret = check_head(c, url, ctx->bad_target, &ctx->answered);
    if (ctx->answered)
        return ret;
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > TL_BODY_MAX) {
        ctx->answered = true;
        return too_large(c); /* answered before the body is read */
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    tl_http_t *h = cls;
    (void)version;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx)
        return MHD_NO; /* no memory for it when its request line came */
    if (!ctx->head_done)
        return on_headers(c, url, ctx);
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
        .origin = header(c, "Origin"),
        .cors_method = header(c, "Access-Control-Request-Method"),
        .query = query_get,
        .query_names = query_names,
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
    (void)toe;
    conn_ctx_t *ctx = *con_cls;
    if (ctx) {
        tl_buf_cleanup(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
    headers_awaited(c, true); /* the next request's, on a kept-alive connection */
}

static void slot_unlink(tl_http_t *h, conn_slot_t *slot)
{
    if (slot->prev)
        slot->prev->next = slot->next;
    else
        h->conns = slot->next;
    if (slot->next)
        slot->next->prev = slot->prev;
}

/* Every connection gets a slot, so that the watchdog can hold it to the
 * header deadline. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    tl_http_t *h = cls;
    conn_slot_t *slot = *socket_ctx;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (slot) {
            pthread_mutex_lock(&h->lock);
            slot_unlink(h, slot);
            pthread_mutex_unlock(&h->lock);
            free(slot);
            *socket_ctx = NULL;
        }
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!fd)
        return;
    if (!(slot = calloc(1, sizeof *slot))) {
        shutdown(fd->connect_fd, SHUT_RDWR); /* no deadline, no connection */
        return;
    }
    slot->fd = fd->connect_fd;
    atomic_init(&slot->waiting_since_ms, now_ms());
    pthread_mutex_lock(&h->lock);
    slot->next = h->conns;
    if (h->conns)
        h->conns->prev = slot;
    h->conns = slot;
    pthread_mutex_unlock(&h->lock);
    *socket_ctx = slot;
}

/* Shuts down the connections whose headers are late; returns how many. The
 * connection's own thread then reads the end of its stream and closes it:
 * no thread is woken but this one, and a connection's memory and thread are
 * freed by the thread that owns them. Called with h->lock held. */
static unsigned cut_late(tl_http_t *h)
{
    int64_t now = now_ms(), limit = (int64_t)h->header_timeout_s * 1000;
    unsigned cut = 0;
    for (conn_slot_t *slot = h->conns; slot; slot = slot->next) {
        int64_t since = atomic_load(&slot->waiting_since_ms);
        if (since && !slot->cut && now - since >= limit) {
            shutdown(slot->fd, SHUT_RDWR);
            slot->cut = true;
            cut++;
        }
    }
    return cut;
}

static void *watchdog(void *arg)
{
    tl_http_t *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        unsigned cut = cut_late(h);
        if (cut) {
            pthread_mutex_unlock(&h->lock);
            if (h->stats)
                atomic_fetch_add(&h->stats->header_timeouts, cut);
            tl_log_warn("request_headers_too_slow", json_pack("{s:i, s:i}", "connections", (int)cut,
                                                              "timeout_s", h->header_timeout_s));
            pthread_mutex_lock(&h->lock);
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += TL_HTTP_WATCHDOG_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&h->wake, &h->lock, &until);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* What libmicrohttpd answers by itself (a malformed request line, headers
 * past its memory, a bad chunk) reaches no callback of ours but this
 * message, the status being its first argument; the integration test
 * (test_hostile_http) holds this to the library's text. */
#define LIBRARY_ANSWER_FMT "Error processing request (HTTP response code is %u"

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    tl_http_t *h = cls;
    if (h->stats && !strncmp(fmt, LIBRARY_ANSWER_FMT, sizeof LIBRARY_ANSWER_FMT - 1)) {
        va_list first;
        va_copy(first, ap);
        unsigned status = va_arg(first, unsigned);
        va_end(first);
        unsigned class = status / 100;
        atomic_fetch_add(&h->stats->library_answers[class >= 1 && class <= 5 ? class : 5], 1);
    }
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    tl_log_warn("http_error", json_pack("{s:s}", "message", msg));
}

static void http_free(tl_http_t *h)
{
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static tl_http_t *http_new(const tl_http_opts_t *o, tl_http_handler_fn handler, void *ctx)
{
    tl_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->handler = handler;
    h->ctx = ctx;
    h->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
    h->header_timeout_s = o->header_timeout_s > 0 ? o->header_timeout_s : 10;
    h->stats = o->stats;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

tl_err_t tl_http_start(const tl_http_opts_t *o, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    const char *bind = o->bind && *o->bind ? o->bind : "0.0.0.0";
    if (!tl_edge_bind_parse(bind, (uint16_t)o->port, &addr, &addr_len)) {
        tl_log_error("http_start_failed", json_pack("{s:s}", "error", "bind is no IP address"));
        return TL_ERR_CONFIG;
    }
    tl_http_t *h = http_new(o, handler, ctx);
    if (!h)
        return TL_ERR_NOMEM;
    /* A thread per connection: a command handler blocks until the log (and,
     * for read-your-writes, the projection) confirms, so a connection must
     * never wait behind another one's command. The connection limits (in
     * all, and per client address) bound the threads; their stacks are
     * small. A connection idle for timeout_s (a stalled client) is closed,
     * and one whose headers are not whole within header_timeout_s too (the
     * watchdog). */
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_URI_LOG_CALLBACK,
        on_request_line, h, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)o->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(o->max_per_ip > 0 ? o->max_per_ip : 0), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)h->timeout_s, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)TL_HTTP_CONN_MEMORY, MHD_OPTION_END);
    if (h->d && !pthread_create(&h->watchdog, NULL, watchdog, h))
        h->watching = true;
    if (!h->watching) {
        if (h->d)
            MHD_stop_daemon(h->d);
        http_free(h);
        tl_log_error("http_start_failed", json_pack("{s:s, s:i}", "bind", bind, "port", o->port));
        return TL_ERR_IO;
    }
    *out = h;
    return TL_OK;
}

void tl_http_stop(tl_http_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->watchdog, NULL);
    MHD_stop_daemon(h->d); /* closes the connections: their slots go */
    http_free(h);
}
