/* tl_codec: base64 (RFC 4648, padded) and hex, for bytes that travel in JSON
 * or as PostgreSQL bytea text ("\x..."). */
#ifndef TL_CODEC_H
#define TL_CODEC_H

#include <stddef.h>

#include "tl_buf.h"
#include "tl_err.h"

/* Value of a hex digit (either case), or -1. */
int tl_hex_digit(char c);

tl_err_t tl_b64_encode(tl_buf_t *out, const void *data, size_t len);
/* Appends the decoded bytes of s; TL_ERR_MALFORMED if s is not base64. */
tl_err_t tl_b64_decode(tl_buf_t *out, const char *s);
/* Appends "\x" and the lowercase hex of data: a bytea literal. */
tl_err_t tl_bytea_hex(tl_buf_t *out, const void *data, size_t len);
/* Appends the bytes of a "\x..." bytea text; TL_ERR_MALFORMED otherwise. */
tl_err_t tl_bytea_unhex(tl_buf_t *out, const char *s);

#endif
