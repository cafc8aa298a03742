#include "audit.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "tl_buf.h"
#include "tl_codec.h"
#include "tl_date.h"

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

static void copy_uuid(char out[TL_UUID_STRLEN], const json_t *data, const char *key)
{
    tl_uuid_t u;
    const char *s = json_string_value(json_object_get(data, key));
    snprintf(out, TL_UUID_STRLEN, "%s", s && !tl_uuid_parse(s, &u) ? u.s : "");
}

static int64_t real_time(const json_t *data, const char *key)
{
    const json_t *v = json_object_get(data, key);
    return json_is_integer(v) && tl_ts_valid(json_integer_value(v)) ? json_integer_value(v)
                                                                     : TL_AUDIT_NO_TIME;
}

void tl_audit_cols(const char *fullname, const json_t *data, int64_t timestamp_ms,
                   tl_audit_cols_t *out)
{
    memset(out, 0, sizeof *out);
    out->event_type = data ? fullname : NULL;
    copy_uuid(out->event_id, data, "event_id");
    copy_uuid(out->site_id, data, "site_id");
    out->actor_id = json_string_value(json_object_get(data, "actor_id"));
    out->actor_role = json_string_value(json_object_get(data, "actor_role"));
    out->reason = json_string_value(json_object_get(data, "reason"));
    out->occurred_at_us = real_time(data, "occurred_at");
    out->recorded_at_us = real_time(data, "recorded_at");
    bool logged = timestamp_ms >= 0 && timestamp_ms < INT64_MAX / 1000 &&
                  tl_ts_valid(timestamp_ms * 1000);
    out->logged_at_us = logged ? timestamp_ms * 1000 : TL_AUDIT_NO_TIME;
}

static bool same_text(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

bool tl_audit_cols_equal(const tl_audit_cols_t *a, const tl_audit_cols_t *b)
{
    return same_text(a->event_type, b->event_type) && !strcmp(a->event_id, b->event_id) &&
           same_text(a->actor_id, b->actor_id) && same_text(a->actor_role, b->actor_role) &&
           same_text(a->reason, b->reason) && !strcmp(a->site_id, b->site_id) &&
           a->occurred_at_us == b->occurred_at_us && a->recorded_at_us == b->recorded_at_us &&
           a->logged_at_us == b->logged_at_us;
}

static void put_text(EVP_MD_CTX *c, const char *s)
{
    put_bytes(c, s && *s ? s : NULL, s ? strlen(s) : 0);
}

static void put_time(EVP_MD_CTX *c, int64_t us)
{
    if (us == TL_AUDIT_NO_TIME) {
        put_u32(c, ABSENT);
        return;
    }
    put_u32(c, (uint32_t)((uint64_t)us >> 32));
    put_u32(c, (uint32_t)us);
}

static void put_cols(EVP_MD_CTX *c, const tl_audit_cols_t *cols)
{
    put_text(c, cols->event_type);
    put_text(c, cols->event_id);
    put_text(c, cols->actor_id);
    put_text(c, cols->actor_role);
    put_text(c, cols->reason);
    put_text(c, cols->site_id);
    put_time(c, cols->occurred_at_us);
    put_time(c, cols->recorded_at_us);
    put_time(c, cols->logged_at_us);
}

tl_err_t tl_audit_checkpoint_text(const char *key_id, int64_t at_us, const tl_audit_head_t *heads,
                                  size_t n, tl_buf_t *out)
{
    tl_err_t err = tl_buf_printf(out, "trialog audit checkpoint v1\nkey %s\nat %lld\n", key_id,
                                 (long long)at_us);
    for (size_t i = 0; i < n && !err; i++) {
        char hex[2 * TL_AUDIT_HASH_LEN + 1];
        for (int j = 0; j < TL_AUDIT_HASH_LEN; j++)
            snprintf(hex + 2 * j, 3, "%02x", heads[i].hash[j]);
        err = tl_buf_printf(out, "%s %d %lld %s\n", heads[i].topic, heads[i].partition,
                            (long long)heads[i].offset, hex);
    }
    return err;
}

tl_err_t tl_audit_hash(const unsigned char prev[TL_AUDIT_HASH_LEN], const char *topic,
                       int32_t partition, int64_t offset, const void *key, size_t key_len,
                       const json_t *headers, const void *value, size_t len,
                       const tl_audit_cols_t *cols, unsigned char out[TL_AUDIT_HASH_LEN])
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
    if (cols)
        EVP_DigestUpdate(c, "trialog-audit-v2", 16);
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
    if (cols)
        put_cols(c, cols);
    unsigned int n = 0;
    if (!err && (!EVP_DigestFinal_ex(c, out, &n) || n != TL_AUDIT_HASH_LEN))
        err = TL_ERR_INTERNAL;
    EVP_MD_CTX_free(c);
    tl_buf_cleanup(&hv);
    return err;
}
