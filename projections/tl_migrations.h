/* tl_migrations: versioned, idempotent SQL migrations of every table, applied
 * at start by each program under an advisory lock. */
#ifndef TL_MIGRATIONS_H
#define TL_MIGRATIONS_H

#include "tl_err.h"
#include "tl_pg.h"

tl_err_t tl_migrate(tl_pg_t *pg);

#endif
