#include "tl_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_log.h"
#include "tl_uuid.h"

/* Arrays of a batch stay well below this; it only stops runaway growth. */
#define TL_COL_MAX_BYTES (256u * 1024 * 1024)

void tl_cols_init(tl_cols_t *c, int ncols)
{
    c->ncols = ncols;
    c->nrows = 0;
    for (int i = 0; i < ncols; i++) {
        tl_buf_init(&c->col[i], TL_COL_MAX_BYTES);
        tl_pg_array_begin(&c->col[i]);
    }
}

void tl_cols_cleanup(tl_cols_t *c)
{
    for (int i = 0; i < c->ncols; i++)
        tl_buf_cleanup(&c->col[i]);
    c->ncols = 0;
}

tl_err_t tl_cols_add(tl_cols_t *c, int i, const char *value)
{
    return tl_pg_array_add(&c->col[i], value);
}

void tl_cols_row_done(tl_cols_t *c)
{
    c->nrows++;
}

tl_err_t tl_cols_add_row(tl_cols_t *c, const char *const *values, int n)
{
    tl_err_t err = TL_OK;
    for (int i = 0; i < n && !err; i++)
        err = tl_cols_add(c, i, values[i]);
    tl_cols_row_done(c);
    return err;
}

tl_err_t tl_cols_add_uuid(tl_cols_t *c, int i, const char *v)
{
    return tl_cols_add(c, i, tl_uuid_valid(v) ? v : "00000000-0000-0000-0000-000000000000");
}

tl_err_t tl_cols_end(tl_cols_t *c)
{
    tl_err_t err = TL_OK;
    for (int j = 0; j < c->ncols && !err; j++)
        err = tl_pg_array_end(&c->col[j]);
    return err;
}

tl_err_t tl_cols_exec(tl_pg_t *pg, const char *sql, tl_cols_t *c, tl_pg_res_t **res)
{
    const char *params[TL_COLS_MAX];
    tl_err_t err = tl_cols_end(c);
    for (int i = 0; i < c->ncols; i++)
        params[i] = c->col[i].data;
    return err ? err : tl_pg_exec(pg, sql, c->ncols, params, res);
}

void *tl_arena_calloc(tl_arena_t *a, size_t size)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void **p = realloc(a->ptrs, cap * sizeof *p);
        if (!p)
            return NULL;
        a->ptrs = p;
        a->cap = cap;
    }
    void *m = calloc(1, size);
    if (m)
        a->ptrs[a->n++] = m;
    return m;
}

void tl_arena_cleanup(tl_arena_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->ptrs[i]);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

void tl_col_copy(char *dst, size_t size, const char *v)
{
    snprintf(dst, size, "%s", v ? v : "");
}

const char *tl_event_str(const tl_event_t *e, const char *key)
{
    return json_string_value(json_object_get(e->data, key));
}

void tl_batch_init(tl_batch_t *b, tl_event_t *events, size_t n)
{
    memset(b, 0, sizeof *b);
    b->events = events;
    b->n = n;
    for (int i = 0; i < 7; i++) {
        tl_buf_init(&b->rej[i], TL_COL_MAX_BYTES);
        tl_pg_array_begin(&b->rej[i]);
    }
}

void tl_batch_cleanup(tl_batch_t *b)
{
    for (size_t s = 0; s < b->nstmts; s++) {
        for (int i = 0; i < b->stmts[s].nparams; i++)
            free(b->params[s][i]);
        tl_pg_res_free(b->stmts[s].res);
    }
    for (int i = 0; i < 7; i++)
        tl_buf_cleanup(&b->rej[i]);
    b->nstmts = 0;
}

tl_err_t tl_batch_add_cols(tl_batch_t *b, const char *sql, tl_cols_t *cols)
{
    tl_err_t err = TL_OK;
    if (b->nstmts == TL_BATCH_MAX_STMTS) {
        tl_cols_cleanup(cols);
        return TL_ERR_INTERNAL;
    }
    size_t s = b->nstmts++;
    for (int i = 0; i < cols->ncols; i++) {
        if (!err)
            err = tl_pg_array_end(&cols->col[i]);
        b->params[s][i] = tl_buf_steal(&cols->col[i], NULL);
    }
    b->stmts[s] = (tl_pg_stmt_t){.sql = sql,
                                 .nparams = cols->ncols,
                                 .params = (const char *const *)b->params[s]};
    cols->ncols = 0;
    return err;
}

tl_err_t tl_batch_add(tl_batch_t *b, const char *sql, int nparams, const char *const *params)
{
    if (b->nstmts == TL_BATCH_MAX_STMTS || nparams > TL_COLS_MAX)
        return TL_ERR_INTERNAL;
    size_t s = b->nstmts++;
    b->stmts[s] = (tl_pg_stmt_t){.sql = sql, .nparams = nparams,
                                 .params = (const char *const *)b->params[s]};
    for (int i = 0; i < nparams; i++) {
        if (params[i] && !(b->params[s][i] = strdup(params[i])))
            return TL_ERR_NOMEM;
    }
    return TL_OK;
}

tl_err_t tl_batch_reject(tl_batch_t *b, const tl_event_t *ev, const char *aggregate_id,
                         const char *reason)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", ev->partition);
    snprintf(off, sizeof off, "%lld", (long long)ev->offset);
    const char *event_id = ev->data ? json_string_value(json_object_get(ev->data, "event_id")) : NULL;
    if (!tl_uuid_valid(event_id))
        event_id = NULL; /* it goes into a uuid column: a bad one would stop the batch */
    if (aggregate_id && !tl_uuid_valid(aggregate_id))
        aggregate_id = NULL;
    const char *vals[7] = {ev->topic, part, off, event_id, ev->type, aggregate_id, reason};
    tl_err_t err = TL_OK;
    for (int i = 0; i < 7 && !err; i++)
        err = tl_pg_array_add(&b->rej[i], vals[i]);
    b->nrej++;
    tl_log_info("event_rejected",
                json_pack("{s:s, s:i, s:I, s:s?, s:s?, s:s}", "topic", ev->topic, "partition",
                          ev->partition, "offset", (json_int_t)ev->offset, "event_id", event_id,
                          "event_type", ev->type, "reason", reason));
    return err;
}
