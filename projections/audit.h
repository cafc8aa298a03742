/* audit: the archive of the log and its hash chain.
 *
 * Every message of every Trialog topic is archived once, with its exact key,
 * headers and framed value, so the log can be replayed and re-seeded from
 * PostgreSQL. Rows of one partition form a chain: each row's hash is
 * SHA-256 over the previous row's hash and the row's content, so changing,
 * removing or inserting a row breaks every hash after it. The first row of a
 * partition (offset 0) chains to 32 zero bytes.
 *
 * Content, in this order (integers big-endian; absent = length 0xFFFFFFFF):
 *   prev_hash[32] | u32 len, topic | i32 partition | i64 offset | u32 len, key |
 *   u32 header count, then per header: u32 len, name | u32 len, value |
 *   u32 len, value */
#ifndef TL_AUDIT_H
#define TL_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_buf.h"
#include "tl_err.h"

#define TL_AUDIT_HASH_LEN 32
#define TL_PROJECTION_AUDIT "audit"

/* headers as the archive stores them: [{"name", "value"}] with the value as
 * text, or {"name", "value_b64"} for bytes that are not UTF-8 text, or
 * "value": null. Decodes one header's value into out; *present false for
 * null. */
tl_err_t tl_audit_header_value(const json_t *h, tl_buf_t *out, bool *present);

tl_err_t tl_audit_hash(const unsigned char prev[TL_AUDIT_HASH_LEN], const char *topic,
                       int32_t partition, int64_t offset, const void *key, size_t key_len,
                       const json_t *headers, const void *value, size_t len,
                       unsigned char out[TL_AUDIT_HASH_LEN]);

#endif
