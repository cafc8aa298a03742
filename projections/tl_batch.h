/* tl_batch: what a projection's store sees of one consumer batch: the decoded
 * events in log order, and where it appends its writes and rejections. The
 * consumer runtime runs all writes in one transaction with the offsets. */
#ifndef TL_BATCH_H
#define TL_BATCH_H

#include <jansson.h>
#include <stdint.h>

#include "tl_buf.h"
#include "tl_err.h"
#include "tl_pg.h"

typedef struct {
    const char *type;     /* short name, "ParticipantEnrolled"; NULL if undecodable */
    const char *fullname; /* "org.trialog.ParticipantEnrolled"; NULL if undecodable */
    json_t *data;         /* decoded record; owned by the batch */
    const char *topic;
    int32_t partition;
    int64_t offset;
    /* the message as it is in the log, borrowed from the consumer */
    const void *key; /* NULL: no key */
    size_t key_len;
    const void *value; /* NULL: tombstone */
    size_t len;
    int64_t timestamp_ms;
    json_t *headers; /* [{"name","value"(base64)}]; owned; only for raw projections */
} tl_event_t;

/* A string member of e's decoded record, or NULL (absent, not a string). */
const char *tl_event_str(const tl_event_t *e, const char *key);

#define TL_BATCH_MAX_STMTS 16
#define TL_COLS_MAX 24

typedef struct {
    tl_event_t *events;
    size_t n;
    tl_pg_stmt_t stmts[TL_BATCH_MAX_STMTS];
    char *params[TL_BATCH_MAX_STMTS][TL_COLS_MAX]; /* owned */
    size_t nstmts;
    /* rejection columns: topic, partition, offset, event_id, event_type, aggregate_id, reason */
    tl_buf_t rej[7];
    size_t nrej;
    void *ctx; /* the projection's own context (tl_projection_t.open), borrowed */
} tl_batch_t;

/* Column-wise text arrays for INSERT ... SELECT FROM unnest($1::t[], ...). */
typedef struct {
    tl_buf_t col[TL_COLS_MAX];
    int ncols;
    size_t nrows;
} tl_cols_t;

void tl_cols_init(tl_cols_t *c, int ncols);
void tl_cols_cleanup(tl_cols_t *c);
/* Adds one value (NULL -> SQL NULL) to column i of the current row. */
tl_err_t tl_cols_add(tl_cols_t *c, int i, const char *value);
/* Completes a row, after every column got its value. */
void tl_cols_row_done(tl_cols_t *c);
/* Adds a whole row: values[i] (NULL -> SQL NULL) to column i, n of them. */
tl_err_t tl_cols_add_row(tl_cols_t *c, const char *const *values, int n);
/* Adds v to column i only when it is a valid UUID (else the nil UUID): a
 * hostile event must not make a whole batch fail on a cast. */
tl_err_t tl_cols_add_uuid(tl_cols_t *c, int i, const char *v);
/* Ends every column's array literal, before the columns become parameters
 * of a lookup (tl_batch_add_cols ends them itself). */
tl_err_t tl_cols_end(tl_cols_t *c);
/* Ends the columns and runs sql with them as its parameters $1..$ncols, in
 * order (a lookup of many keys in one statement); *res as tl_pg_exec. */
tl_err_t tl_cols_exec(tl_pg_t *pg, const char *sql, tl_cols_t *c, tl_pg_res_t **res);

/* The rows a store loads and folds for one batch, freed together. */
typedef struct {
    void **ptrs;
    size_t n, cap;
} tl_arena_t;

/* Zeroed memory that lives until tl_arena_cleanup; NULL when out of memory. */
void *tl_arena_calloc(tl_arena_t *a, size_t size);
void tl_arena_cleanup(tl_arena_t *a);
/* Copies a query result's text column (NULL: "") into a fixed buffer. */
void tl_col_copy(char *dst, size_t size, const char *v);

void tl_batch_init(tl_batch_t *b, tl_event_t *events, size_t n);
void tl_batch_cleanup(tl_batch_t *b);
/* Appends a statement whose parameters are the arrays of cols (taken over). */
tl_err_t tl_batch_add_cols(tl_batch_t *b, const char *sql, tl_cols_t *cols);
/* Appends a statement with the given text parameters (copied). */
tl_err_t tl_batch_add(tl_batch_t *b, const char *sql, int nparams, const char *const *params);
/* Records that ev was refused, and why; aggregate_id may be NULL. */
tl_err_t tl_batch_reject(tl_batch_t *b, const tl_event_t *ev, const char *aggregate_id,
                         const char *reason);

#endif
