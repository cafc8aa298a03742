/* tl_uuid: RFC 9562 UUIDs as 36-character lowercase strings. */
#ifndef TL_UUID_H
#define TL_UUID_H

#include <stdbool.h>
#include <stddef.h>

#include "tl_err.h"

#define TL_UUID_STRLEN 37 /* 36 characters and the NUL */

typedef struct {
    char s[TL_UUID_STRLEN];
} tl_uuid_t;

/* Version 7: Unix milliseconds then randomness; sorts by creation time. */
tl_err_t tl_uuid_v7(tl_uuid_t *out);
/* Version 5: SHA-1 of namespace and name; the same input gives the same id. */
tl_err_t tl_uuid_v5(const tl_uuid_t *ns, const void *name, size_t len, tl_uuid_t *out);
/* True when s is a canonical 8-4-4-4-12 hex UUID (either case). */
bool tl_uuid_valid(const char *s);
/* Copies and lowercases a valid UUID string. */
tl_err_t tl_uuid_parse(const char *s, tl_uuid_t *out);

#endif
