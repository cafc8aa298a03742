/* tl_map: a string-keyed hash map (open addressing). Keys are copied; values
 * are borrowed pointers. Used for per-batch state, so it never shrinks. */
#ifndef TL_MAP_H
#define TL_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "tl_err.h"

typedef struct {
    char **keys;
    void **vals;
    size_t cap, len;
} tl_map_t;

void tl_map_init(tl_map_t *m);
void tl_map_cleanup(tl_map_t *m);
void *tl_map_get(const tl_map_t *m, const char *key);
/* Inserts or replaces. */
tl_err_t tl_map_put(tl_map_t *m, const char *key, void *val);
/* The map's string hash (64-bit FNV-1a), for other keyed lookups. */
uint64_t tl_map_hash(const char *s);

#endif
