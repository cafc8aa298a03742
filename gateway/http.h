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

typedef struct {
    int port;
    int max_connections; /* a thread each; more are refused at accept */
    int timeout_s;       /* idle connections close, and a body must arrive within it */
} tl_http_opts_t;

/* Listens on all interfaces, a thread per connection. handler runs on those
 * threads; ctx is borrowed. Caller frees with tl_http_stop. */
tl_err_t tl_http_start(const tl_http_opts_t *opts, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out);
void tl_http_stop(tl_http_t *h);

#endif
