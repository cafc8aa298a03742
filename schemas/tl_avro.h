/* tl_avro: Avro binary <-> plain JSON for event payloads, and the Confluent
 * wire-format framing around them.
 *
 * JSON mapping: null, boolean, int (range-checked), long, float/double (JSON
 * real or integer), string, enum (symbol string), array, map (object), record
 * (object with exactly the schema's fields; a field whose type is a union with
 * null may be omitted on encode), union (JSON null picks "null", otherwise the
 * first branch the value encodes as). Logical types are their underlying
 * types; bytes and fixed are rejected with TL_ERR_INVALID.
 *
 * Decoding treats its input as hostile: every length, count and index is
 * checked against the remaining bytes before use, nesting is bounded, and any
 * malformation (including trailing bytes) is TL_ERR_MALFORMED. */
#ifndef TL_AVRO_H
#define TL_AVRO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_buf.h"
#include "tl_err.h"

typedef struct tl_avro_schema tl_avro_schema_t; /* opaque, wraps avro_schema_t */

/* Parse an Avro schema from JSON text (need not be NUL-terminated). Caller
 * frees *out with tl_avro_schema_destroy. TL_ERR_INVALID for a bad schema,
 * or one with bytes or fixed (they have no JSON mapping). */
tl_err_t tl_avro_schema_parse(const char *json, size_t len, tl_avro_schema_t **out);
void tl_avro_schema_destroy(tl_avro_schema_t *s); /* NULL is a no-op */

/* Full name of a named schema ("org.trialog.StudyRegistered"), or the type
 * name ("string", "array") of an unnamed one; borrowed, lives as long as s. */
const char *tl_avro_schema_fullname(const tl_avro_schema_t *s);
/* The JSON text s was parsed from (its attributes beyond Avro's, such as an
 * ingest schema's bounds, are read from it); borrowed, lives as long as s. */
const char *tl_avro_schema_json(const tl_avro_schema_t *s);

/* Encode a JSON value as the Avro binary datum of schema s, appended to out.
 * value is borrowed. On error out is left as it was. */
tl_err_t tl_avro_encode(const tl_avro_schema_t *s, const json_t *value, tl_buf_t *out);

/* Writing a datum by hand: for records made from C structs, in the
 * schema's field order, without building JSON first (projections/research.c).
 * The first error sticks and later calls do nothing, so an encoder checks
 * once, at tl_avro_w_end; a test decodes what each encoder writes with its
 * schema, which catches a field out of order. out is borrowed. */
typedef struct {
    tl_buf_t *out;
    size_t mark; /* out->len when the datum began */
    tl_err_t err;
} tl_avro_w_t;

void tl_avro_w_begin(tl_avro_w_t *w, tl_buf_t *out);
/* The datum's error; on error out is left as it was at begin. */
tl_err_t tl_avro_w_end(tl_avro_w_t *w);
void tl_avro_w_long(tl_avro_w_t *w, int64_t v); /* int and long */
void tl_avro_w_boolean(tl_avro_w_t *w, bool v);
void tl_avro_w_double(tl_avro_w_t *w, double v);
/* A string of len bytes (TL_ERR_INVALID if it holds a NUL); s valid UTF-8. */
void tl_avro_w_stringn(tl_avro_w_t *w, const char *s, size_t len);
void tl_avro_w_string(tl_avro_w_t *w, const char *s);
/* A union ["null", T]: null, or the branch of T (then write the value). */
void tl_avro_w_null(tl_avro_w_t *w);
void tl_avro_w_some(tl_avro_w_t *w);
/* ["null", "string"] from a string that is null when NULL or empty. */
void tl_avro_w_opt_string(tl_avro_w_t *w, const char *s);
/* ["null", "int"|"long"]: v when has, else null. */
void tl_avro_w_opt_long(tl_avro_w_t *w, bool has, int64_t v);
/* An array is one block: its item count (then the items), then the end. */
void tl_avro_w_block(tl_avro_w_t *w, size_t count);
void tl_avro_w_array_end(tl_avro_w_t *w);

/* Decode an Avro binary datum (exactly len bytes, no trailing bytes) to a new
 * JSON value; caller json_decref()s *out, which is NULL on error. */
tl_err_t tl_avro_decode(const tl_avro_schema_t *s, const void *data, size_t len,
                        json_t **out);

/* Whether data written with writer can be read with reader (both schema
 * JSON texts), by Avro's resolution rules: TL_OK, TL_ERR_CONFLICT (why says
 * what, naming schema members only), TL_ERR_INVALID when either does not
 * parse. A reader field the writer lacks needs a default. */
tl_err_t tl_avro_can_read(const char *reader, size_t rlen, const char *writer, size_t wlen,
                          char *why, size_t why_size);

/* Avro object container files (the spec's "Object Container Files"),
 * uncompressed: the header (magic, the schema's JSON text as avro.schema,
 * avro.codec "null", the sync marker) and one block of count datums that
 * were encoded one after another into data. Both append to out. The caller
 * chooses the sync marker, so the same records make the same file. */
#define TL_AVRO_SYNC_LEN 16
tl_err_t tl_avro_ocf_header(const char *schema_json, const unsigned char sync[TL_AVRO_SYNC_LEN],
                            tl_buf_t *out);
tl_err_t tl_avro_ocf_block(size_t count, const void *data, size_t len,
                           const unsigned char sync[TL_AVRO_SYNC_LEN], tl_buf_t *out);

/* Confluent wire format V0: magic 0x00, big-endian schema id, datum. */
#define TL_FRAME_HEADER_LEN 5
void tl_frame_header(uint32_t schema_id, unsigned char out[TL_FRAME_HEADER_LEN]);
/* TL_ERR_MALFORMED if len < 5 or the magic byte is not 0; *datum is borrowed
 * from msg; a zero-length datum is allowed here. */
tl_err_t tl_frame_parse(const void *msg, size_t len, uint32_t *schema_id,
                        const void **datum, size_t *datum_len);

#endif
