/* libFuzzer target: what the gateway's HTTP edge reads before any route does
 * (gateway/edge.c), the bytes taken as a raw request target and as an
 * Origin header or an origin list. Whatever the bytes: no crash, no leak,
 * and these hold:
 * - tl_edge_target_has_control is true exactly when percent-decoding the
 *   target as libmicrohttpd does (each %XX of two hex digits, left to right)
 *   yields a byte 0x00-0x1F or 0x7F; the decoding below is written apart
 *   from edge.c's, as the reference;
 * - what tl_cors_match returns is a configured origin equal to the one
 *   asked for, and every origin tl_cors_parse takes is matched by itself and
 *   holds no character an origin cannot (space, comma, '*', a path). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool control(unsigned c)
{
    return c < 0x20 || c == 0x7f;
}

static bool decodes_to_control(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (unsigned)strtoul(hex, NULL, 16);
            i += 2;
        }
        if (control(c))
            return true;
    }
    return false;
}

static void check_origins(const char *text)
{
    static tl_cors_t c;
    char why[200];
    const char *asked = tl_cors_match(&c, text);
    if (asked && strcmp(asked, text))
        abort();
    if (!tl_cors_parse(text, &c, why, sizeof why)) {
        if (!why[0] || c.n)
            abort(); /* a refusal says why and keeps nothing */
        return;
    }
    for (size_t i = 0; i < c.n; i++) {
        const char *o = c.origin[i], *host = strstr(o, "://");
        if (!host || strpbrk(o, " ,*\t") || strchr(host + 3, '/') || strchr(host + 3, '@') ||
            strcmp(tl_cors_match(&c, o), o))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the string, as on the request line */
    if (tl_edge_target_has_control(text) != decodes_to_control(text))
        abort();
    check_origins(text);
    free(text);
    return 0;
}
