/* http: the only module that includes libmicrohttpd. It reads a request with
 * a bounded body, hands it to tl_gw_dispatch and writes the response. */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include "gateway.h"

typedef struct tl_http tl_http_t;

/* Listens on 127.0.0.1 and the other interfaces at port with a pool of
 * threads. gw is borrowed. Caller frees with tl_http_stop. */
tl_err_t tl_http_start(tl_gw_t *gw, tl_http_t **out);
void tl_http_stop(tl_http_t *h);

#endif
