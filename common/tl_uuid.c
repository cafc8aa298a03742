#include "tl_uuid.h"

#include "tl_codec.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void uuid_format(const unsigned char b[16], tl_uuid_t *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out->s[j++] = '-';
        out->s[j++] = hex[b[i] >> 4];
        out->s[j++] = hex[b[i] & 15];
    }
    out->s[j] = '\0';
}


static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool tl_uuid_valid(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) /* a NUL stops it here */
            return false;
    }
    return s[36] == '\0';
}

static void uuid_bytes(const tl_uuid_t *u, unsigned char b[16])
{
    size_t j = 0;
    for (size_t i = 0; i < 36; i++) {
        if (u->s[i] == '-')
            continue;
        b[j / 2] = (unsigned char)((j % 2) ? (b[j / 2] | tl_hex_digit(u->s[i])) : (tl_hex_digit(u->s[i]) << 4));
        j++;
    }
}

tl_err_t tl_uuid_parse(const char *s, tl_uuid_t *out)
{
    if (!tl_uuid_valid(s))
        return TL_ERR_INVALID;
    for (size_t i = 0; i < 36; i++)
        out->s[i] = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] - 'A' + 'a') : s[i];
    out->s[36] = '\0';
    return TL_OK;
}

tl_err_t tl_uuid_v7(tl_uuid_t *out)
{
    unsigned char b[16];
    if (getrandom(b + 6, 10, 0) != 10)
        return TL_ERR_INTERNAL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    uuid_format(b, out);
    return TL_OK;
}

tl_err_t tl_uuid_v5(const tl_uuid_t *ns, const void *name, size_t len, tl_uuid_t *out)
{
    unsigned char nsb[16], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uuid_bytes(ns, nsb);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return TL_ERR_NOMEM;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, nsb, 16) &&
             EVP_DigestUpdate(ctx, name, len) && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen < 16)
        return TL_ERR_INTERNAL;
    md[6] = (unsigned char)(0x50 | (md[6] & 0x0f));
    md[8] = (unsigned char)(0x80 | (md[8] & 0x3f));
    uuid_format(md, out);
    return TL_OK;
}
