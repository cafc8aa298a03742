/* libFuzzer target: the schema registry's compatibility check
 * (tl_avro_can_read), which judges schemas a connector sends. The bytes are
 * two schema texts separated by a NUL byte (or one, read against itself).
 * Whatever the bytes: no crash, no leak, and these hold:
 * - the verdict is one of compatible, incompatible, not a schema;
 * - a schema that parses reads its own data;
 * - an incompatible verdict says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tl_avro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tl_err_t judge(const char *r, size_t rlen, const char *w, size_t wlen)
{
    char why[256];
    tl_err_t err = tl_avro_can_read(r, rlen, w, wlen, why, sizeof why);
    if (err != TL_OK && err != TL_ERR_CONFLICT && err != TL_ERR_INVALID)
        abort();
    if (err == TL_ERR_CONFLICT && !why[0])
        abort();
    return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *a = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t alen = nul ? (size_t)(nul - a) : size;
    const char *b = nul ? nul + 1 : a;
    size_t blen = nul ? size - alen - 1 : size;
    tl_avro_schema_t *s = NULL;
    if (!tl_avro_schema_parse(a, alen, &s) && judge(a, alen, a, alen) != TL_OK)
        abort(); /* every schema reads itself */
    tl_avro_schema_destroy(s);
    judge(a, alen, b, blen);
    judge(b, blen, a, alen);
    return 0;
}
