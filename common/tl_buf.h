/* tl_buf: a growable byte buffer that carries its own maximum size, so no
 * input can make it grow without bound. The content is always NUL-terminated
 * (the terminator is not counted in len). */
#ifndef TL_BUF_H
#define TL_BUF_H

#include <stddef.h>

#include "tl_err.h"

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would exceed max fail with TL_ERR_TOO_LARGE */
} tl_buf_t;

void tl_buf_init(tl_buf_t *b, size_t max);
void tl_buf_cleanup(tl_buf_t *b);
void tl_buf_reset(tl_buf_t *b); /* len = 0, keeps memory */
/* Drops what was appended after len (len <= b->len): undoes a partial append. */
void tl_buf_truncate(tl_buf_t *b, size_t len);
tl_err_t tl_buf_append(tl_buf_t *b, const void *data, size_t len);
tl_err_t tl_buf_puts(tl_buf_t *b, const char *s);
/* Appends len bytes for the caller to fill in place (*at: where they begin,
 * valid until the next change of b): one bound check for a run of output. */
tl_err_t tl_buf_extend(tl_buf_t *b, size_t len, char **at);
tl_err_t tl_buf_printf(tl_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (free with free()); the buffer is emptied. */
char *tl_buf_steal(tl_buf_t *b, size_t *len);

#endif
