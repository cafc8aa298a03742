/* http: the only module that includes libmicrohttpd. It reads a request with
 * a bounded body, hands it to a handler (the gateway's tl_gw_dispatch, or a
 * benchmark's trivial one) and writes the response. */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include "gateway.h"

typedef struct tl_http tl_http_t;

typedef void (*tl_http_handler_fn)(void *ctx, tl_req_t *req, tl_resp_t *resp);

/* Listens on all interfaces at port, a thread per connection, at most
 * max_connections of them. handler runs on those threads; ctx is borrowed.
 * Caller frees with tl_http_stop. */
tl_err_t tl_http_start(int port, int max_connections, tl_http_handler_fn handler, void *ctx,
                       tl_http_t **out);
void tl_http_stop(tl_http_t *h);

#endif
