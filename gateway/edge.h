/* edge: the rules of the gateway's HTTP edge as pure functions (no I/O, no
 * libmicrohttpd), so that every one of them is unit-tested on its own
 * (tests/unit/test_gateway.c): what a request target may hold, how a body
 * may be framed, which browser origins may call, where to listen. http.c and
 * the router decide with them; docs/SECURITY.md lists what they enforce. */
#ifndef TL_EDGE_H
#define TL_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Whether a request target as it came on the request line (raw, before
 * percent-decoding; NUL-terminated) holds a control character (0x00-0x1F,
 * 0x7F) anywhere, literally or percent-encoded: in the path, a query key or
 * a query value. Decoding happens in place, so a decoded %00 would cut the
 * path or a key short without a trace: only the raw target shows it. */
bool tl_edge_target_has_control(const char *target);

/* How a request delimits its body (RFC 9112 §6.3). */
typedef enum {
    TL_FRAMING_OK,
    TL_FRAMING_LENGTHS,           /* more than one Content-Length */
    TL_FRAMING_LENGTH_AND_CODING, /* Content-Length and Transfer-Encoding */
    TL_FRAMING_CODING,            /* a Transfer-Encoding other than one "chunked" */
} tl_framing_t;

/* From the count of Content-Length header lines, of Transfer-Encoding ones
 * and the first of those (borrowed; NULL when none). Anything but OK is a
 * request two parsers could split differently (smuggling): refused, and the
 * connection closed. */
tl_framing_t tl_edge_framing(size_t lengths, size_t codings, const char *coding);

/* Cross-origin callers (TRIALOG_HTTP_CORS_ORIGINS): exact origins only. */
#define TL_CORS_ORIGINS_MAX 16
#define TL_CORS_ORIGIN_MAX 256 /* with its NUL */
typedef struct {
    size_t n;
    char origin[TL_CORS_ORIGINS_MAX][TL_CORS_ORIGIN_MAX];
} tl_cors_t;

/* Parses a comma-separated list of origins, each `scheme://host[:port]`
 * (http or https, lowercase as browsers send them, no wildcard, userinfo,
 * path or trailing slash) into out; "" (or NULL) is none. false: out holds
 * none, and why (for the operator, naming the offending entry) says what is
 * wrong. */
bool tl_cors_parse(const char *list, tl_cors_t *out, char *why, size_t why_size);
/* The configured origin equal to origin (the request's Origin header,
 * borrowed, may be NULL), or NULL: a pointer into c, never into the request,
 * so what is echoed back is always the operator's text. */
const char *tl_cors_match(const tl_cors_t *c, const char *origin);

/* Whether method is one of methods, a list as an Allow header spells it
 * ("GET, POST"). */
bool tl_edge_method_listed(const char *methods, const char *method);

/* The address to listen on (TRIALOG_HTTP_BIND): an IPv4 literal
 * ("0.0.0.0": every interface) or an IPv6 one, bare or in brackets ("::1",
 * "[::]"), with port, into out (*len its size). Host names are refused: a
 * listener follows no DNS answer. false when text is none of these. */
bool tl_edge_bind_parse(const char *text, uint16_t port, struct sockaddr_storage *out,
                        socklen_t *len);

#endif
