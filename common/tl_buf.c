#include "tl_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tl_buf_init(tl_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void tl_buf_cleanup(tl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tl_buf_reset(tl_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static tl_err_t buf_reserve(tl_buf_t *b, size_t extra)
{
    /* len + extra + 1 (the terminator) must not wrap, whatever max is */
    if (extra > b->max || b->len > b->max - extra || b->len + extra == SIZE_MAX)
        return TL_ERR_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return TL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1) /* max + 1 would wrap to 0 */
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return TL_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return TL_OK;
}

tl_err_t tl_buf_append(tl_buf_t *b, const void *data, size_t len)
{
    tl_err_t err = buf_reserve(b, len);
    if (err)
        return err;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return TL_OK;
}

tl_err_t tl_buf_extend(tl_buf_t *b, size_t len, char **at)
{
    tl_err_t err = buf_reserve(b, len);
    if (err)
        return err;
    *at = b->data + b->len;
    b->len += len;
    b->data[b->len] = '\0';
    return TL_OK;
}

tl_err_t tl_buf_puts(tl_buf_t *b, const char *s)
{
    return tl_buf_append(b, s, strlen(s));
}

tl_err_t tl_buf_printf(tl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return TL_ERR_INVALID;
    tl_err_t err = buf_reserve(b, (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return TL_OK;
}

char *tl_buf_steal(tl_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void tl_buf_truncate(tl_buf_t *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}
