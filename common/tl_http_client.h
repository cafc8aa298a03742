/* tl_http_client: outgoing HTTP (libcurl), for the external schema
 * registry. The one module that includes curl's headers (bench/ and the
 * tests drive the gateway with curl directly). */
#ifndef TL_HTTP_CLIENT_H
#define TL_HTTP_CLIENT_H

#include <jansson.h>

#include "tl_err.h"

#define TL_HTTP_CLIENT_BODY_MAX (4 * 1024 * 1024) /* an answer's bytes */

/* One request: method to url (http or https only) with an optional JSON
 * body (borrowed) and an Authorization header value (NULL: none), within
 * timeout_ms. *status gets the HTTP status and *out the answer parsed as
 * JSON (NULL when it is not; caller json_decref()s). TL_ERR_UNAVAILABLE when
 * no answer came (connection, timeout, an answer over the limit),
 * TL_ERR_INVALID for a URL of another scheme. Thread-safe. */
tl_err_t tl_http_client_json(const char *method, const char *url, const json_t *body,
                             const char *authorization, long timeout_ms, long *status,
                             json_t **out);

#endif
