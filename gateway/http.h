/* http: the only module that includes libmicrohttpd. It reads a request with
 * a bounded body, hands it to a handler (the gateway's tl_gw_dispatch, or a
 * benchmark's trivial one) and writes the response. */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include "gateway.h"

typedef struct tl_http tl_http_t;

typedef void (*tl_http_handler_fn)(void *ctx, tl_req_t *req, tl_resp_t *resp);

/* What a request may be before it reaches a handler (each refused with a
 * problem+json answer); the body limit is TL_BODY_MAX. */
#define TL_HTTP_URL_MAX 2048
#define TL_HTTP_HEADER_MAX 8192        /* one header, name and value */
#define TL_HTTP_HEADERS_MAX (16 * 1024) /* all of them */
#define TL_HTTP_HEADER_COUNT_MAX 64
/* libmicrohttpd's memory per connection for the request line, the headers
 * and its read buffer: requests past it are refused by libmicrohttpd itself. */
#define TL_HTTP_CONN_MEMORY (64 * 1024)

/* CORS: the request headers a browser may send cross-origin (those the
 * gateway reads that are not safelisted: on_request), the answer headers
 * its script may read, and how long a preflight's answer may be cached
 * (seconds). */
#define TL_HTTP_CORS_HEADERS                                                                       \
    "Authorization, Content-Type, Idempotency-Key, Prefer, X-Correlation-Id"
#define TL_HTTP_CORS_EXPOSE "Location, Retry-After, Idempotent-Replayed, WWW-Authenticate"
#define TL_HTTP_CORS_MAX_AGE "600"

/* How often the watchdog looks for headers past their deadline: a
 * connection is cut at most this much after it. */
#define TL_HTTP_WATCHDOG_MS 250

typedef struct {
    const char *bind; /* an IP literal (tl_edge_bind_parse); NULL: 0.0.0.0 */
    int port;
    int max_connections;    /* a thread each; more are refused at accept */
    int max_per_ip;         /* connections from one client address; 0: no cap */
    int timeout_s;          /* idle connections close, and a body must arrive within it */
    int header_timeout_s;   /* a request's headers must arrive whole within it; 0: 10 */
    tl_http_stats_t *stats; /* borrowed, counted into; NULL: none */
} tl_http_opts_t;

/* Listens on opts->bind, a thread per connection. handler runs on those
 * threads; ctx is borrowed. Caller frees with tl_http_stop. */
tl_err_t tl_http_start(const tl_http_opts_t *opts, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out);
void tl_http_stop(tl_http_t *h);

#endif
