/* tl_pg: the only module that includes libpq.
 *
 * Errors are converted here: SQLSTATE 23505 -> TL_ERR_CONFLICT, 40001/40P01
 * and class 08 or a lost connection -> TL_ERR_TRANSIENT/UNAVAILABLE, anything
 * else -> TL_ERR_DB. Failures are logged with SQLSTATE and constraint name
 * only, never libpq's message text (it can carry key values). */
#ifndef TL_PG_H
#define TL_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_buf.h"
#include "tl_err.h"
#include "tl_uuid.h"

typedef struct tl_pg tl_pg_t;
typedef struct tl_pg_res tl_pg_res_t;

/* Connects and sets search_path to schema, a name or a comma-separated list
 * (the first is created if missing; NULL keeps the default). Caller frees
 * with tl_pg_destroy. */
/* The longest TRIALOG_PG_SCHEMA: PostgreSQL's 63 bytes less the archive's
 * suffix (audit.h TL_ARCHIVE_SCHEMA_SUFFIX). */
#define TL_PG_SCHEMA_MAX 55
tl_err_t tl_pg_connect(const char *dsn, const char *schema, const char *app, tl_pg_t **out);
void tl_pg_destroy(tl_pg_t *pg);
/* True if the last failure left the connection unusable. */
bool tl_pg_broken(const tl_pg_t *pg);

/* Runs one statement with text parameters (NULL entries are SQL NULL).
 * res: when non-NULL receives the result, caller frees with tl_pg_res_free. */
tl_err_t tl_pg_exec(tl_pg_t *pg, const char *sql, int nparams, const char *const *params,
                    tl_pg_res_t **res);

typedef struct {
    const char *sql;
    int nparams;
    const char *const *params; /* borrowed until tl_pg_pipeline returns */
    tl_pg_res_t *res;          /* out: set when keep is true; caller frees */
    bool keep;
} tl_pg_stmt_t;

/* Sends all statements in pipeline mode with a single sync: one round trip.
 * Returns the first failure; statements after it did not run. */
tl_err_t tl_pg_pipeline(tl_pg_t *pg, tl_pg_stmt_t *stmts, size_t n);

#define TL_PG_BATCH_MAX 64
/* Sends up to TL_PG_BATCH_MAX independent statements in one round trip,
 * each in its own implicit transaction: one's failure does not stop the
 * others. Statement i's outcome is errs[i] and, on success, its res (kept
 * whatever keep says; caller frees each with tl_pg_res_free). Returns
 * TL_OK, or the error that failed them all (the connection). Each must be
 * a single statement (extended protocol). */
tl_err_t tl_pg_batch(tl_pg_t *pg, tl_pg_stmt_t *stmts, tl_err_t *errs, size_t n);

int tl_pg_nrows(const tl_pg_res_t *res);
/* Value as text, or NULL for SQL NULL or out of range. Borrowed from res. */
const char *tl_pg_get(const tl_pg_res_t *res, int row, int col);
/* The value as an integer; 0 when NULL or absent (decimal text as
 * PostgreSQL writes integers). */
int64_t tl_pg_get_int(const tl_pg_res_t *res, int row, int col);
void tl_pg_res_free(tl_pg_res_t *res);
/* SQLSTATE of the last failure on pg ("" if none). */
/* s as a quoted SQL identifier (malloc'd; free()), NULL when out of memory. */
char *tl_pg_quote_ident(tl_pg_t *pg, const char *s);
const char *tl_pg_sqlstate(const tl_pg_t *pg);

/* LISTEN on channel (an identifier literal, not user input). */
tl_err_t tl_pg_listen(tl_pg_t *pg, const char *channel);
/* Waits up to timeout_ms for notifications; calls cb for each (payload borrowed).
 * Returns TL_OK also when none arrived. */
tl_err_t tl_pg_wait_notify(tl_pg_t *pg, int timeout_ms,
                           void (*cb)(void *user, const char *channel, const char *payload),
                           void *user);

/* COPY ... FROM STDIN, the bulk path: begin with the COPY statement, put the
 * input in pieces (the server parses while the client makes the next piece),
 * end (ok false aborts the COPY). After begin, always call end. */
tl_err_t tl_pg_copy_begin(tl_pg_t *pg, const char *sql);
tl_err_t tl_pg_copy_put(tl_pg_t *pg, const void *data, size_t len);
tl_err_t tl_pg_copy_end(tl_pg_t *pg, bool ok);

/* Appends name quoted as an SQL identifier. */
tl_err_t tl_pg_ident(tl_pg_t *pg, const char *name, tl_buf_t *out);

/* Text-format array literal builders: begin, add (value NULL -> NULL), end. */
tl_err_t tl_pg_array_begin(tl_buf_t *b);
tl_err_t tl_pg_array_add(tl_buf_t *b, const char *value);
tl_err_t tl_pg_array_end(tl_buf_t *b);
/* A uuid[] as PostgreSQL prints it ("{a,b}") into out, at most max of them;
 * returns how many. */
size_t tl_pg_uuids_parse(const char *text, char (*out)[TL_UUID_STRLEN], size_t max);
/* n ids as a uuid[] literal into buf; false when it does not fit. */
bool tl_pg_uuids_format(const char (*ids)[TL_UUID_STRLEN], size_t n, char *buf, size_t size);

#endif
