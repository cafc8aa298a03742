#include "tl_codec.h"

#include <openssl/evp.h>
#include <string.h>

tl_err_t tl_b64_encode(tl_buf_t *out, const void *data, size_t len)
{
    size_t olen = 4 * ((len + 2) / 3), at = out->len;
    tl_err_t err = TL_OK;
    /* make room, then let OpenSSL write in place (it ends with a NUL, where
     * the buffer keeps its terminator anyway) */
    for (size_t i = 0; i < olen && !err; i++)
        err = tl_buf_append(out, "=", 1);
    if (!err && len)
        EVP_EncodeBlock((unsigned char *)out->data + at, data, (int)len);
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
    tl_err_t err = tl_buf_append(out, "\\x", 2);
    for (size_t i = 0; i < len && !err; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        err = tl_buf_append(out, two, 2);
    }
    return err;
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
    size_t n = strlen(s);
    if (n % 2)
        return TL_ERR_MALFORMED;
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i += 2) {
        int hi = tl_hex_digit(s[i]), lo = tl_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return TL_ERR_MALFORMED;
        unsigned char b = (unsigned char)(hi << 4 | lo);
        err = tl_buf_append(out, &b, 1);
    }
    return err;
}
