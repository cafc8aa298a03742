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
#include "tl_uuid.h"

#define TL_AUDIT_HASH_LEN 32
#define TL_PROJECTION_AUDIT "audit"
/* The archive's schema beside the application's: <schema>_archive, owned by
 * a role that cannot log in (`trialog db secure`, docs/SECURITY.md). */
#define TL_ARCHIVE_SCHEMA_SUFFIX "_archive"
#define TL_ARCHIVE_OWNER "trialog_archive"

/* headers as the archive stores them: [{"name", "value"}] with the value as
 * text, or {"name", "value_b64"} for bytes that are not UTF-8 text, or
 * "value": null. Decodes one header's value into out; *present false for
 * null. */
tl_err_t tl_audit_header_value(const json_t *h, tl_buf_t *out, bool *present);

/* The columns of a row that are read from its message: what the audit API
 * shows besides topic, partition and offset. One function derives them for
 * the archive's writer and for `trialog audit verify`, which derives them
 * again from the archived bytes and compares. */
#define TL_AUDIT_NO_TIME INT64_MIN
typedef struct {
    const char *event_type;        /* the Avro full name; NULL: undecodable */
    char event_id[TL_UUID_STRLEN]; /* canonical, or "" */
    const char *actor_id, *actor_role, *reason; /* borrowed from data, or NULL */
    char site_id[TL_UUID_STRLEN];  /* canonical, or "" */
    int64_t occurred_at_us, recorded_at_us; /* TL_AUDIT_NO_TIME: absent or not a real time */
    int64_t logged_at_us;          /* the broker's timestamp, or TL_AUDIT_NO_TIME */
} tl_audit_cols_t;
void tl_audit_cols(const char *fullname, const json_t *data, int64_t timestamp_ms,
                   tl_audit_cols_t *out);
/* Whether two rows' columns are the same (NULL and "" are both "none"). */
bool tl_audit_cols_equal(const tl_audit_cols_t *a, const tl_audit_cols_t *b);

/* The row hash. Version 1 (rows archived before version 2): the content
 * above. Version 2: "trialog-audit-v2", the content above, then every
 * column of cols, in tl_audit_cols_t's order (texts as length and bytes,
 * absent as 0xFFFFFFFF; times as 0xFFFFFFFF or 8 bytes big-endian), so that
 * no column the audit API shows can change without the hash. cols NULL:
 * version 1. */
tl_err_t tl_audit_hash(const unsigned char prev[TL_AUDIT_HASH_LEN], const char *topic,
                       int32_t partition, int64_t offset, const void *key, size_t key_len,
                       const json_t *headers, const void *value, size_t len,
                       const tl_audit_cols_t *cols, unsigned char out[TL_AUDIT_HASH_LEN]);
#define TL_AUDIT_HASH_VERSION 2

/* A partition's chain head, as a checkpoint signs it. */
typedef struct {
    char topic[250];
    int32_t partition;
    int64_t offset;
    unsigned char hash[TL_AUDIT_HASH_LEN];
} tl_audit_head_t;

/* The bytes a checkpoint's signature covers (appended to out):
 *   "trialog audit checkpoint v1\n" "key " <key id> "\n" "at " <time, us> "\n"
 *   then per head, in the given order: <topic> " " <partition> " " <offset> " " <hash hex> "\n"
 */
tl_err_t tl_audit_checkpoint_text(const char *key_id, int64_t at_us, const tl_audit_head_t *heads,
                                  size_t n, tl_buf_t *out);

#endif
