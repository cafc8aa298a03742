#include "tl_codec.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

tl_err_t tl_b64_encode(tl_buf_t *out, const void *data, size_t len)
{
    char *at;
    if (len > SIZE_MAX / 2)
        return TL_ERR_TOO_LARGE;
    /* make room, then let OpenSSL write in place (it ends with a NUL, where
     * the buffer keeps its terminator anyway) */
    tl_err_t err = tl_buf_extend(out, 4 * ((len + 2) / 3), &at);
    if (!err && len)
        EVP_EncodeBlock((unsigned char *)at, data, (int)len);
    return err;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

tl_err_t tl_b64_decode(tl_buf_t *out, const char *s)
{
    size_t n = strlen(s);
    if (n % 4)
        return TL_ERR_MALFORMED;
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = b64val(s[i + j])) < 0 || pad) {
                return TL_ERR_MALFORMED;
            }
        }
        unsigned char b[3] = {(unsigned char)(v[0] << 2 | v[1] >> 4),
                              (unsigned char)((v[1] & 15) << 4 | v[2] >> 2),
                              (unsigned char)((v[2] & 3) << 6 | v[3])};
        err = tl_buf_append(out, b, (size_t)(3 - pad));
    }
    return err;
}

tl_err_t tl_bytea_hex(tl_buf_t *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *at;
    if (len > (SIZE_MAX - 2) / 2)
        return TL_ERR_TOO_LARGE;
    tl_err_t err = tl_buf_extend(out, 2 + 2 * len, &at);
    if (err)
        return err;
    *at++ = '\\';
    *at++ = 'x';
    for (size_t i = 0; i < len; i++) {
        *at++ = hex[p[i] >> 4];
        *at++ = hex[p[i] & 15];
    }
    return TL_OK;
}

int tl_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

tl_err_t tl_bytea_unhex(tl_buf_t *out, const char *s)
{
    if (strncmp(s, "\\x", 2))
        return TL_ERR_MALFORMED;
    s += 2;
    size_t n = strlen(s), mark = out->len;
    char *at;
    if (n % 2)
        return TL_ERR_MALFORMED;
    tl_err_t err = tl_buf_extend(out, n / 2, &at);
    for (size_t i = 0; i < n && !err; i += 2) {
        int hi = tl_hex_digit(s[i]), lo = tl_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            err = TL_ERR_MALFORMED;
        else
            *at++ = (char)(hi << 4 | lo);
    }
    if (err)
        tl_buf_truncate(out, mark);
    return err;
}
