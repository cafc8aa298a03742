#include "tl_pg.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_log.h"
#include "tl_map.h"

/* Parameterised statements are prepared on first use, per connection: the
 * hot ones (gateway checks, projection upserts) then skip parse and analysis
 * on every call. Keyed by text, so SQL built at run time is safe too. */
#define PREPARED_MAX 64

typedef struct {
    char *sql;
    uint64_t hash;
} prepared_t;

struct tl_pg {
    PGconn *conn;
    char sqlstate[6];
    bool broken; /* left in a state we cannot recover: reconnect */
    prepared_t prepared[PREPARED_MAX];
    int nprepared;
};

static void pg_notice(void *arg, const PGresult *res)
{
    (void)arg;
    /* Notices can quote values; keep only the SQLSTATE. */
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    tl_log(TL_LOG_DEBUG, "pg_notice", json_pack("{s:s}", "sqlstate", st ? st : ""));
}

bool tl_pg_broken(const tl_pg_t *pg)
{
    return !pg || pg->broken || PQstatus(pg->conn) != CONNECTION_OK;
}

const char *tl_pg_sqlstate(const tl_pg_t *pg)
{
    return pg ? pg->sqlstate : "";
}

static tl_err_t pg_classify(tl_pg_t *pg, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", st ? st : "");
    tl_err_t err = TL_ERR_DB;
    /* "cached plan must not change result type": a table under a prepared
     * statement changed shape. A new connection prepares afresh. */
    if (st && !strcmp(st, "0A000"))
        pg->broken = true;
    if (PQstatus(pg->conn) != CONNECTION_OK)
        err = TL_ERR_UNAVAILABLE;
    else if (!st)
        err = TL_ERR_DB;
    else if (!strcmp(st, "23505"))
        err = TL_ERR_CONFLICT;
    else if (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "57014"))
        err = TL_ERR_TRANSIENT;
    else if (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3) || !strncmp(st, "53", 2))
        err = TL_ERR_UNAVAILABLE;
    if (err != TL_ERR_CONFLICT)
        tl_log_warn("pg_error", json_pack("{s:s, s:s, s:s}", "sqlstate", pg->sqlstate, "constraint",
                                          cons ? cons : "", "error", tl_err_name(err)));
    return err;
}

tl_err_t tl_pg_connect(const char *dsn, const char *schema, const char *app, tl_pg_t **out)
{
    tl_err_t err = TL_OK;
    tl_pg_t *pg = calloc(1, sizeof *pg);
    if (!pg)
        return TL_ERR_NOMEM;
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {dsn, app, NULL};
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        tl_log_warn("pg_connect_failed", json_pack("{s:s}", "app", app));
        err = TL_ERR_UNAVAILABLE;
        goto out;
    }
    PQsetNoticeReceiver(pg->conn, pg_notice, NULL);
    if (schema && *schema) {
        /* "a" or "a,b": the first is created if missing and is where new
         * tables go; the others are searched after it, and then each one's
         * archive schema, a_archive (made by `trialog db secure`) */
        tl_buf_t sql, path;
        tl_buf_init(&sql, 2048);
        tl_buf_init(&path, 1024);
        char *first = NULL;
        for (int archive = 0; archive < 2 && !err; archive++)
            for (const char *p = schema; *p && !err;) {
                size_t len = strcspn(p, ",");
                char name[128];
                snprintf(name, sizeof name, "%.*s%s", (int)(len < 64 ? len : 64), p,
                         archive ? "_archive" : "");
                char *ident = PQescapeIdentifier(pg->conn, name, strlen(name));
                if (!ident) {
                    err = TL_ERR_NOMEM;
                    break;
                }
                err = tl_buf_printf(&path, "%s%s", path.len ? ", " : "", ident);
                if (!first)
                    first = strdup(ident);
                PQfreemem(ident);
                p += len + (p[len] == ',');
            }
        if (!err && first)
            err = tl_buf_printf(&sql, "SET client_min_messages = warning; "
                                      "CREATE SCHEMA IF NOT EXISTS %s; SET search_path TO %s",
                                first, path.data);
        free(first);
        if (!err) {
            /* Concurrent CREATE SCHEMA IF NOT EXISTS can race on the catalog. */
            for (int attempt = 0; attempt < 3; attempt++) {
                err = tl_pg_exec(pg, sql.data, 0, NULL, NULL);
                if (err != TL_ERR_CONFLICT)
                    break;
            }
        }
        tl_buf_cleanup(&sql);
        tl_buf_cleanup(&path);
    }
out:
    if (err) {
        tl_pg_destroy(pg);
        pg = NULL;
    }
    *out = pg;
    return err;
}

void tl_pg_destroy(tl_pg_t *pg)
{
    if (!pg)
        return;
    PQfinish(pg->conn);
    for (int i = 0; i < pg->nprepared; i++)
        free(pg->prepared[i].sql);
    free(pg);
}

static void prepared_name(int i, char *name, size_t size)
{
    snprintf(name, size, "tl_%d", i);
}

/* The name of sql's prepared statement, preparing it on first use. Empty
 * name: run it unprepared (the cache is full or the prepare failed; the
 * unprepared run then reports whatever is wrong with the statement). */
static void prepare(tl_pg_t *pg, const char *sql, int nparams, char *name, size_t size)
{
    uint64_t h = tl_map_hash(sql);
    name[0] = '\0';
    for (int i = 0; i < pg->nprepared; i++) {
        if (pg->prepared[i].hash == h && !strcmp(pg->prepared[i].sql, sql)) {
            prepared_name(i, name, size);
            return;
        }
    }
    if (pg->nprepared == PREPARED_MAX)
        return;
    char *copy = strdup(sql);
    prepared_name(pg->nprepared, name, size);
    PGresult *r = copy ? PQprepare(pg->conn, name, sql, nparams, NULL) : NULL;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        pg->prepared[pg->nprepared++] = (prepared_t){copy, h};
    } else {
        free(copy);
        name[0] = '\0';
    }
    PQclear(r);
}

static PGresult *exec_params(tl_pg_t *pg, const char *sql, int nparams, const char *const *params)
{
    char name[16];
    prepare(pg, sql, nparams, name, sizeof name);
    return name[0] ? PQexecPrepared(pg->conn, name, nparams, params, NULL, NULL, 0)
                   : PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

tl_err_t tl_pg_exec(tl_pg_t *pg, const char *sql, int nparams, const char *const *params,
                    tl_pg_res_t **res)
{
    if (tl_pg_broken(pg))
        return TL_ERR_UNAVAILABLE;
    PGresult *r = nparams ? exec_params(pg, sql, nparams, params) : PQexec(pg->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        tl_err_t err = pg_classify(pg, r);
        PQclear(r);
        return err;
    }
    if (res)
        *res = (tl_pg_res_t *)r;
    else
        PQclear(r);
    return TL_OK;
}

/* Queues one statement of a pipeline: as the prepared statement name, or
 * unprepared when name is empty. */
static int send_stmt(tl_pg_t *pg, const tl_pg_stmt_t *st, const char *name)
{
    return name[0] ? PQsendQueryPrepared(pg->conn, name, st->nparams, st->params, NULL, NULL, 0)
                   : PQsendQueryParams(pg->conn, st->sql, st->nparams, NULL, st->params, NULL,
                                       NULL, 0);
}

static tl_err_t pipeline_collect(tl_pg_t *pg, tl_pg_stmt_t *stmts, size_t n)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n; i++) {
        PGresult *r = PQgetResult(pg->conn);
        if (!r)
            return err ? err : pg_classify(pg, NULL);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (stmts[i].keep && !err) {
                stmts[i].res = (tl_pg_res_t *)r;
                r = NULL;
            }
        } else if (st != PGRES_PIPELINE_ABORTED && !err) {
            err = pg_classify(pg, r);
        }
        PQclear(r);
        /* Each statement's results end with a NULL. */
        while ((r = PQgetResult(pg->conn)) != NULL)
            PQclear(r);
    }
    PGresult *sync = PQgetResult(pg->conn);
    if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC && !err)
        err = pg_classify(pg, sync);
    PQclear(sync);
    return err;
}

tl_err_t tl_pg_pipeline(tl_pg_t *pg, tl_pg_stmt_t *stmts, size_t n)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n; i++)
        stmts[i].res = NULL;
    if (tl_pg_broken(pg))
        return TL_ERR_UNAVAILABLE;
    /* prepared outside the pipeline: once per connection */
    char(*names)[16] = calloc(n ? n : 1, sizeof *names);
    if (!names)
        return TL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        names[i][0] = '\0';
        if (stmts[i].nparams)
            prepare(pg, stmts[i].sql, stmts[i].nparams, names[i], sizeof names[i]);
    }
    if (!PQenterPipelineMode(pg->conn)) {
        free(names);
        return pg_classify(pg, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        int sent = send_stmt(pg, &stmts[i], names[i]);
        if (!sent) {
            err = pg_classify(pg, NULL);
            goto out;
        }
    }
    if (!PQpipelineSync(pg->conn)) {
        err = pg_classify(pg, NULL);
        goto out;
    }
    err = pipeline_collect(pg, stmts, n);
out:
    free(names);
    if (PQstatus(pg->conn) == CONNECTION_OK && !PQexitPipelineMode(pg->conn)) {
        /* results we could not drain: the connection is unusable now */
        pg->broken = true;
        if (!err)
            err = TL_ERR_UNAVAILABLE;
    }
    if (err) {
        for (size_t i = 0; i < n; i++) {
            PQclear((PGresult *)stmts[i].res);
            stmts[i].res = NULL;
        }
    }
    return err;
}

/* Each statement's outcome when each has its own sync: its result, its
 * error, then the sync. A connection lost on the way fails the rest. */
static void batch_collect(tl_pg_t *pg, tl_pg_stmt_t *stmts, tl_err_t *errs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (PQstatus(pg->conn) != CONNECTION_OK) { /* said once, below */
            errs[i] = TL_ERR_UNAVAILABLE;
            continue;
        }
        PGresult *r = PQgetResult(pg->conn);
        ExecStatusType st = PQresultStatus(r);
        if (!r) {
            errs[i] = pg_classify(pg, NULL);
        } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            stmts[i].res = (tl_pg_res_t *)r;
            r = NULL;
        } else {
            errs[i] = pg_classify(pg, r);
        }
        PQclear(r);
        if (PQstatus(pg->conn) != CONNECTION_OK)
            continue;
        while ((r = PQgetResult(pg->conn)) != NULL) /* the statement's end */
            PQclear(r);
        r = PQgetResult(pg->conn); /* its sync */
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC && !errs[i])
            errs[i] = pg_classify(pg, r);
        PQclear(r);
    }
}

tl_err_t tl_pg_batch(tl_pg_t *pg, tl_pg_stmt_t *stmts, tl_err_t *errs, size_t n)
{
    char names[TL_PG_BATCH_MAX][16];
    tl_err_t err = n > TL_PG_BATCH_MAX ? TL_ERR_INVALID : TL_OK;
    for (size_t i = 0; i < n; i++) {
        stmts[i].res = NULL;
        errs[i] = TL_OK;
    }
    if (!err && tl_pg_broken(pg))
        err = TL_ERR_UNAVAILABLE;
    /* prepared on first use, before the pipeline (PQprepare waits for its
     * answer); a statement that could not be prepared goes unprepared */
    for (size_t i = 0; i < n && !err; i++)
        prepare(pg, stmts[i].sql, stmts[i].nparams, names[i], sizeof names[i]);
    if (!err && !PQenterPipelineMode(pg->conn))
        err = pg_classify(pg, NULL);
    for (size_t i = 0; i < n && !err; i++) {
        int sent = send_stmt(pg, &stmts[i], names[i]);
        /* a sync after each: its own implicit transaction, so one
         * statement's failure does not abort the others */
        if (!sent || !PQpipelineSync(pg->conn))
            err = pg_classify(pg, NULL);
    }
    if (!err)
        batch_collect(pg, stmts, errs, n);
    /* Lost, or results we could not drain: none of them is to be trusted.
     * (A statement that only marked the connection not to be reused, 0A000,
     * keeps its own error and spoils nothing else.) */
    bool lost = PQstatus(pg->conn) != CONNECTION_OK ||
                (PQpipelineStatus(pg->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(pg->conn));
    if (lost)
        pg->broken = true;
    if (!err && lost)
        err = TL_ERR_UNAVAILABLE;
    for (size_t i = 0; err && i < n; i++) {
        PQclear((PGresult *)stmts[i].res);
        stmts[i].res = NULL;
        errs[i] = err;
    }
    return err;
}

int tl_pg_nrows(const tl_pg_res_t *res)
{
    return res ? PQntuples((const PGresult *)res) : 0;
}

const char *tl_pg_get(const tl_pg_res_t *res, int row, int col)
{
    const PGresult *r = (const PGresult *)res;
    if (!r || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return NULL;
    return PQgetvalue(r, row, col);
}

int64_t tl_pg_get_int(const tl_pg_res_t *res, int row, int col)
{
    const char *v = tl_pg_get(res, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

void tl_pg_res_free(tl_pg_res_t *res)
{
    PQclear((PGresult *)res);
}

tl_err_t tl_pg_listen(tl_pg_t *pg, const char *channel)
{
    tl_buf_t sql;
    tl_buf_init(&sql, 256);
    tl_err_t err = tl_buf_printf(&sql, "LISTEN %s", channel);
    if (!err)
        err = tl_pg_exec(pg, sql.data, 0, NULL, NULL);
    tl_buf_cleanup(&sql);
    return err;
}

tl_err_t tl_pg_wait_notify(tl_pg_t *pg, int timeout_ms,
                           void (*cb)(void *user, const char *channel, const char *payload),
                           void *user)
{
    if (tl_pg_broken(pg))
        return TL_ERR_UNAVAILABLE;
    struct pollfd pfd = {.fd = PQsocket(pg->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return TL_ERR_UNAVAILABLE;
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0)
        return TL_OK; /* EINTR: the caller loops */
    if (rc > 0 && !PQconsumeInput(pg->conn))
        return pg_classify(pg, NULL);
    PGnotify *nf;
    while ((nf = PQnotifies(pg->conn)) != NULL) {
        cb(user, nf->relname, nf->extra);
        PQfreemem(nf);
    }
    return PQstatus(pg->conn) == CONNECTION_OK ? TL_OK : TL_ERR_UNAVAILABLE;
}

tl_err_t tl_pg_array_begin(tl_buf_t *b)
{
    return tl_buf_append(b, "{", 1);
}

tl_err_t tl_pg_array_add(tl_buf_t *b, const char *value)
{
    tl_err_t err = TL_OK;
    if (b->len && b->data[b->len - 1] != '{' && (err = tl_buf_append(b, ",", 1)))
        return err;
    if (!value)
        return tl_buf_append(b, "NULL", 4);
    if ((err = tl_buf_append(b, "\"", 1)))
        return err;
    /* copy runs between the characters that need a backslash */
    for (const char *p = value; *p && !err;) {
        size_t run = strcspn(p, "\"\\");
        err = tl_buf_append(b, p, run);
        p += run;
        if (*p && !err) {
            char esc[2] = {'\\', *p++};
            err = tl_buf_append(b, esc, 2);
        }
    }
    return err ? err : tl_buf_append(b, "\"", 1);
}

tl_err_t tl_pg_array_end(tl_buf_t *b)
{
    return tl_buf_append(b, "}", 1);
}

size_t tl_pg_uuids_parse(const char *text, char (*out)[TL_UUID_STRLEN], size_t max)
{
    size_t n = 0;
    if (!text || *text != '{')
        return 0;
    for (const char *s = text + 1; *s && *s != '}' && n < max;) {
        size_t len = strcspn(s, ",}");
        if (len == TL_UUID_STRLEN - 1) {
            memcpy(out[n], s, len);
            out[n++][len] = '\0';
        }
        s += len + (s[len] == ',');
    }
    return n;
}

bool tl_pg_uuids_format(const char (*ids)[TL_UUID_STRLEN], size_t n, char *buf, size_t size)
{
    if (size < n * TL_UUID_STRLEN + 3)
        return false;
    size_t len = 0;
    buf[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf[len++] = ',';
        memcpy(buf + len, ids[i], TL_UUID_STRLEN - 1);
        len += TL_UUID_STRLEN - 1;
    }
    buf[len++] = '}';
    buf[len] = '\0';
    return true;
}

tl_err_t tl_pg_ident(tl_pg_t *pg, const char *name, tl_buf_t *out)
{
    char *q = PQescapeIdentifier(pg->conn, name, strlen(name));
    tl_err_t err = q ? tl_buf_puts(out, q) : TL_ERR_NOMEM;
    PQfreemem(q);
    return err;
}

tl_err_t tl_pg_copy_begin(tl_pg_t *pg, const char *sql)
{
    if (tl_pg_broken(pg))
        return TL_ERR_UNAVAILABLE;
    PGresult *r = PQexec(pg->conn, sql);
    tl_err_t err = PQresultStatus(r) == PGRES_COPY_IN ? TL_OK : pg_classify(pg, r);
    PQclear(r);
    return err;
}

tl_err_t tl_pg_copy_put(tl_pg_t *pg, const void *data, size_t len)
{
    const char *p = data;
    /* PQputCopyData takes an int length: send in pieces */
    for (size_t at = 0; at < len; at += 1u << 20) {
        size_t n = len - at < (1u << 20) ? len - at : (1u << 20);
        if (PQputCopyData(pg->conn, p + at, (int)n) != 1)
            return pg_classify(pg, NULL);
    }
    return TL_OK;
}

tl_err_t tl_pg_copy_end(tl_pg_t *pg, bool ok)
{
    tl_err_t err = PQputCopyEnd(pg->conn, ok ? NULL : "client failed") == 1 ? TL_OK
                                                                            : TL_ERR_UNAVAILABLE;
    PGresult *r;
    while ((r = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !err)
            err = pg_classify(pg, r);
        PQclear(r);
    }
    return err;
}

char *tl_pg_quote_ident(tl_pg_t *pg, const char *s)
{
    char *q = PQescapeIdentifier(pg->conn, s, strlen(s));
    char *copy = q ? strdup(q) : NULL;
    PQfreemem(q);
    return copy;
}
