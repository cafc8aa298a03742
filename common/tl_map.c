#include "tl_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

uint64_t tl_map_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

void tl_map_init(tl_map_t *m)
{
    memset(m, 0, sizeof *m);
}

void tl_map_cleanup(tl_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t slot(const tl_map_t *m, const char *key)
{
    size_t i = tl_map_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key))
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *tl_map_get(const tl_map_t *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t i = slot(m, key);
    return m->keys[i] ? m->vals[i] : NULL;
}

static tl_err_t grow(tl_map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    tl_map_t n = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(void *)), cap, m->len};
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return TL_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = slot(&n, m->keys[i]);
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return TL_OK;
}

tl_err_t tl_map_put(tl_map_t *m, const char *key, void *val)
{
    if ((m->len + 1) * 2 > m->cap && grow(m))
        return TL_ERR_NOMEM;
    size_t i = slot(m, key);
    if (!m->keys[i]) {
        if (!(m->keys[i] = strdup(key)))
            return TL_ERR_NOMEM;
        m->len++;
    }
    m->vals[i] = val;
    return TL_OK;
}
