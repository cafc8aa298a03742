#include "edge.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tl_codec.h"

static bool is_control(unsigned c)
{
    return c < 0x20 || c == 0x7f;
}

/* Left to right as libmicrohttpd decodes: "%%00" is a '%' and then a NUL. */
bool tl_edge_target_has_control(const char *target)
{
    for (const char *p = target; *p; p++) {
        if (is_control((unsigned char)*p))
            return true;
        if (*p != '%')
            continue;
        int hi = tl_hex_digit(p[1]), lo = hi < 0 ? -1 : tl_hex_digit(p[2]);
        if (lo < 0)
            continue;
        if (is_control((unsigned)(hi << 4 | lo)))
            return true;
        p += 2;
    }
    return false;
}

tl_framing_t tl_edge_framing(size_t lengths, size_t codings, const char *coding)
{
    if (lengths > 1)
        return TL_FRAMING_LENGTHS;
    if (lengths && codings)
        return TL_FRAMING_LENGTH_AND_CODING;
    /* chunked is the only coding a request may use here, and only once: with
     * anything else the body's end cannot be known (RFC 9112 §6.3, 4) */
    if (codings > 1 || (codings && (!coding || strcasecmp(coding, "chunked"))))
        return TL_FRAMING_CODING;
    return TL_FRAMING_OK;
}

/* host: DNS labels of [a-z0-9-] (lowercase: browsers send it so), or an
 * IPv6 literal in brackets. Returns its length, 0 when it is neither. */
static size_t origin_host(const char *s, size_t len)
{
    size_t i = 0;
    if (len && s[0] == '[') {
        while (++i < len && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                             s[i] == ':' || s[i] == '.'))
            ;
        return i < len && s[i] == ']' && i > 1 ? i + 1 : 0;
    }
    size_t label = 0;
    for (; i < len && s[i] != ':'; i++) {
        char c = s[i];
        if (c == '.') {
            if (!label || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label)) {
            label++;
        } else {
            return 0; /* upper case, '*', '/', '@', '?', ... */
        }
    }
    return label && s[i - 1] != '-' ? i : 0;
}

/* ":port", 1 to 65535 without a leading zero, or nothing; never the
 * scheme's default, which browsers leave out of Origin (it would never
 * match). */
static bool origin_port(const char *s, size_t len, long default_port)
{
    if (!len)
        return true;
    if (s[0] != ':' || len < 2 || len > 6 || s[1] == '0')
        return false;
    long port = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (s[i] - '0');
    }
    return port <= 65535 && port != default_port;
}

static bool origin_ok(const char *s, size_t len)
{
    size_t scheme = len > 7 && !strncmp(s, "http://", 7)    ? 7
                    : len > 8 && !strncmp(s, "https://", 8) ? 8
                                                            : 0;
    if (!scheme)
        return false;
    size_t host = origin_host(s + scheme, len - scheme);
    return host && origin_port(s + scheme + host, len - scheme - host, scheme == 7 ? 80 : 443);
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

bool tl_cors_parse(const char *list, tl_cors_t *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (!list || !*skip_blanks(list, list + strlen(list)))
        return true;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        const char *start = skip_blanks(p, end);
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t len = (size_t)(end - start);
        if (out->n == TL_CORS_ORIGINS_MAX) {
            snprintf(why, why_size, "more than %d origins", TL_CORS_ORIGINS_MAX);
            out->n = 0;
            return false;
        }
        if (!len || len >= TL_CORS_ORIGIN_MAX || !origin_ok(start, len)) {
            snprintf(why, why_size,
                     "\"%.*s\" is not an origin: scheme://host[:port], http or https, lowercase,"
                     " no default port, wildcard, path or trailing slash",
                     (int)(len > 80 ? 80 : len), start);
            out->n = 0;
            return false;
        }
        memcpy(out->origin[out->n], start, len);
        out->origin[out->n++][len] = '\0';
        if (!comma)
            return true;
        p = comma + 1;
    }
}

const char *tl_cors_match(const tl_cors_t *c, const char *origin)
{
    for (size_t i = 0; origin && i < c->n; i++)
        if (!strcmp(c->origin[i], origin))
            return c->origin[i];
    return NULL;
}

bool tl_edge_method_listed(const char *methods, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = methods; n && p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, method, n))
            return true;
        p = end ? skip_blanks(end + 1, end + 1 + strlen(end + 1)) : NULL;
    }
    return false;
}

bool tl_edge_bind_parse(const char *text, uint16_t port, struct sockaddr_storage *out,
                        socklen_t *len)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof *v4;
        return true;
    }
    char bare[INET6_ADDRSTRLEN];
    size_t n = strlen(text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    if (n >= sizeof bare)
        return false;
    memcpy(bare, text, n);
    bare[n] = '\0';
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, bare, &v6->sin6_addr) != 1)
        return false;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof *v6;
    return true;
}
