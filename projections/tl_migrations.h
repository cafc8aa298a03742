/* tl_migrations: versioned, idempotent SQL migrations of every table, applied
 * at start by each program under an advisory lock. */
#ifndef TL_MIGRATIONS_H
#define TL_MIGRATIONS_H

#include <stddef.h>

#include "tl_err.h"
#include "tl_pg.h"

tl_err_t tl_migrate(tl_pg_t *pg);
/* Runs the given migrations again, unrecorded, in the first schema of pg's
 * search path: how a rebuild makes its shadow tables exactly like the live
 * ones (same columns, constraints and index names). */
tl_err_t tl_migrations_replay(tl_pg_t *pg, const int *versions, size_t n);

#endif
