#include "audit.h"

#include <openssl/evp.h>
#include <string.h>

#include "tl_buf.h"
#include "tl_codec.h"

#define ABSENT 0xFFFFFFFFu

static void put_u32(EVP_MD_CTX *c, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    EVP_DigestUpdate(c, b, 4);
}

static void put_bytes(EVP_MD_CTX *c, const void *p, size_t len)
{
    put_u32(c, p ? (uint32_t)len : ABSENT);
    if (p && len)
        EVP_DigestUpdate(c, p, len);
}

tl_err_t tl_audit_header_value(const json_t *h, tl_buf_t *out, bool *present)
{
    const json_t *text = json_object_get(h, "value");
    const char *b64 = json_string_value(json_object_get(h, "value_b64"));
    tl_buf_reset(out);
    *present = json_is_string(text) || b64;
    if (json_is_string(text))
        return tl_buf_append(out, json_string_value(text), json_string_length(text));
    return b64 ? tl_b64_decode(out, b64) : TL_OK;
}

tl_err_t tl_audit_hash(const unsigned char prev[TL_AUDIT_HASH_LEN], const char *topic,
                       int32_t partition, int64_t offset, const void *key, size_t key_len,
                       const json_t *headers, const void *value, size_t len,
                       unsigned char out[TL_AUDIT_HASH_LEN])
{
    tl_err_t err = TL_OK;
    tl_buf_t hv;
    tl_buf_init(&hv, 1024 * 1024);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(c);
        return TL_ERR_NOMEM;
    }
    EVP_DigestUpdate(c, prev, TL_AUDIT_HASH_LEN);
    put_bytes(c, topic, strlen(topic));
    put_u32(c, (uint32_t)partition);
    put_u32(c, (uint32_t)((uint64_t)offset >> 32));
    put_u32(c, (uint32_t)offset);
    put_bytes(c, key, key_len);
    put_u32(c, (uint32_t)json_array_size(headers));
    for (size_t i = 0; i < json_array_size(headers) && !err; i++) {
        const json_t *h = json_array_get(headers, i);
        const char *name = json_string_value(json_object_get(h, "name"));
        bool present = false;
        if (!name || (err = tl_audit_header_value(h, &hv, &present))) {
            err = err ? err : TL_ERR_MALFORMED;
            break;
        }
        put_bytes(c, name, strlen(name));
        put_bytes(c, present ? (hv.data ? hv.data : "") : NULL, hv.len);
    }
    put_bytes(c, value, len);
    unsigned int n = 0;
    if (!err && (!EVP_DigestFinal_ex(c, out, &n) || n != TL_AUDIT_HASH_LEN))
        err = TL_ERR_INTERNAL;
    EVP_MD_CTX_free(c);
    tl_buf_cleanup(&hv);
    return err;
}
