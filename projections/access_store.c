#include "access_store.h"

#include <stdio.h>
#include <string.h>

#include "access.h"
#include "tl_date.h"
#include "tl_map.h"

typedef struct {
    tl_arena_t rows;
    tl_map_t principals, by_name; /* id / name -> tl_principal_t */
    tl_map_t tokens, by_hash;     /* id / sha256 -> tl_token_t */
    tl_map_t dirty_principals, dirty_tokens;
} state_t;

static void state_cleanup(state_t *st)
{
    tl_map_t *maps[] = {&st->principals, &st->by_name,          &st->tokens,
                        &st->by_hash,    &st->dirty_principals, &st->dirty_tokens};
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        tl_map_cleanup(maps[i]);
    tl_arena_cleanup(&st->rows);
}

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
static const char *const sql_load_principals =
    "SELECT id, name, role, site_ids::text, active, signing_credential_id, " US(
        "created_at") ", " US("updated_at") ", last_event_id"
                                            "  FROM principals WHERE id = ANY($1::uuid[]) OR name "
                                            "= ANY($2::text[])";
static const char *const sql_load_tokens =
    "SELECT id, principal_id, token_sha256, label, " US("issued_at") ", " US("expires_at") ", " US(
        "revoked_at") ", revoke_reason, last_event_id"
                      "  FROM access_tokens WHERE id = ANY($1::uuid[]) OR token_sha256 = "
                      "ANY($2::text[])";

static tl_err_t index_principal(state_t *st, tl_principal_t *p)
{
    tl_err_t err = tl_map_put(&st->principals, p->id, p);
    return err ? err : tl_map_put(&st->by_name, p->name, p);
}

static tl_err_t index_token(state_t *st, tl_token_t *t)
{
    tl_err_t err = tl_map_put(&st->tokens, t->id, t);
    return err ? err : tl_map_put(&st->by_hash, t->sha256, t);
}

static tl_err_t load_rows(state_t *st, const tl_pg_res_t *pr, const tl_pg_res_t *tr)
{
    tl_err_t err = TL_OK;
    for (int r = 0; r < tl_pg_nrows(pr) && !err; r++) {
        tl_principal_t *p = tl_arena_calloc(&st->rows, sizeof *p);
        if (!p)
            return TL_ERR_NOMEM;
        p->exists = true;
        tl_col_copy(p->id, sizeof p->id, tl_pg_get(pr, r, 0));
        tl_col_copy(p->name, sizeof p->name, tl_pg_get(pr, r, 1));
        p->role = tl_role_parse(tl_pg_get(pr, r, 2));
        p->nsites = tl_pg_uuids_parse(tl_pg_get(pr, r, 3), p->sites, TL_PRINCIPAL_SITES_MAX);
        p->active = !strcmp(tl_pg_get(pr, r, 4), "t");
        tl_col_copy(p->signing_credential_id, sizeof p->signing_credential_id, tl_pg_get(pr, r, 5));
        p->created_at_us = tl_pg_get_int(pr, r, 6);
        p->updated_at_us = tl_pg_get_int(pr, r, 7);
        tl_col_copy(p->last_event_id, sizeof p->last_event_id, tl_pg_get(pr, r, 8));
        err = index_principal(st, p);
    }
    for (int r = 0; r < tl_pg_nrows(tr) && !err; r++) {
        tl_token_t *t = tl_arena_calloc(&st->rows, sizeof *t);
        if (!t)
            return TL_ERR_NOMEM;
        t->exists = true;
        tl_col_copy(t->id, sizeof t->id, tl_pg_get(tr, r, 0));
        tl_col_copy(t->principal_id, sizeof t->principal_id, tl_pg_get(tr, r, 1));
        tl_col_copy(t->sha256, sizeof t->sha256, tl_pg_get(tr, r, 2));
        t->has_label = tl_pg_get(tr, r, 3) != NULL;
        tl_col_copy(t->label, sizeof t->label, tl_pg_get(tr, r, 3));
        t->issued_at_us = tl_pg_get_int(tr, r, 4);
        t->expires_at_us = tl_pg_get_int(tr, r, 5);
        t->revoked_at_us = tl_pg_get(tr, r, 6) ? tl_pg_get_int(tr, r, 6) : 0;
        tl_col_copy(t->revoke_reason, sizeof t->revoke_reason, tl_pg_get(tr, r, 7));
        tl_col_copy(t->last_event_id, sizeof t->last_event_id, tl_pg_get(tr, r, 8));
        err = index_token(st, t);
    }
    return err;
}

static tl_err_t load(tl_pg_t *pg, const tl_batch_t *b, state_t *st)
{
    tl_cols_t pq, tq;
    tl_cols_init(&pq, 2);
    tl_cols_init(&tq, 2);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        err = tl_cols_add_uuid(&pq, 0, tl_event_str(e, "principal_id"));
        if (!err && !strcmp(e->type, "PrincipalCreated") && tl_event_str(e, "name"))
            err = tl_cols_add(&pq, 1, tl_event_str(e, "name"));
        if (!err && tl_event_str(e, "token_id"))
            err = tl_cols_add_uuid(&tq, 0, tl_event_str(e, "token_id"));
        if (!err && tl_event_str(e, "token_sha256"))
            err = tl_cols_add(&tq, 1, tl_event_str(e, "token_sha256"));
    }
    if (!err)
        err = tl_cols_end(&pq);
    if (!err)
        err = tl_cols_end(&tq);
    tl_pg_stmt_t q[2] = {
        {sql_load_principals, 2, (const char *const[]){pq.col[0].data, pq.col[1].data}, NULL, true},
        {sql_load_tokens, 2, (const char *const[]){tq.col[0].data, tq.col[1].data}, NULL, true},
    };
    if (!err)
        err = tl_pg_pipeline(pg, q, 2);
    if (!err)
        err = load_rows(st, q[0].res, q[1].res);
    tl_pg_res_free(q[0].res);
    tl_pg_res_free(q[1].res);
    tl_cols_cleanup(&pq);
    tl_cols_cleanup(&tq);
    return err;
}

static const char *norm_id(const tl_event_t *e, const char *key, tl_uuid_t *u)
{
    return tl_uuid_parse(tl_event_str(e, key), u) ? NULL : u->s;
}

static tl_err_t fold_principal(tl_batch_t *b, state_t *st, const tl_event_t *e)
{
    tl_uuid_t u;
    const char *id = norm_id(e, "principal_id", &u);
    if (!id)
        return tl_batch_reject(b, e, NULL, "invalid_event");
    tl_principal_t *p = tl_map_get(&st->principals, id), next = {0};
    if (p)
        next = *p;
    const char *name = tl_event_str(e, "name");
    tl_principal_t *other =
        name && !strcmp(e->type, "PrincipalCreated") ? tl_map_get(&st->by_name, name) : NULL;
    const char *why = other && other != p ? "duplicate_principal_name"
                                          : tl_principal_apply(&next, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, id, why);
    if (!next.exists)
        return TL_OK; /* a type this program does not know */
    if (!p && !(p = tl_arena_calloc(&st->rows, sizeof *p)))
        return TL_ERR_NOMEM;
    *p = next;
    tl_err_t err = index_principal(st, p);
    return err ? err : tl_map_put(&st->dirty_principals, p->id, p);
}

static tl_err_t fold_token(tl_batch_t *b, state_t *st, const tl_event_t *e)
{
    tl_uuid_t u, tu;
    const char *pid = norm_id(e, "principal_id", &u), *tid = norm_id(e, "token_id", &tu);
    if (!pid || !tid)
        return tl_batch_reject(b, e, pid, "invalid_event");
    const tl_principal_t none = {0};
    const tl_principal_t *p = tl_map_get(&st->principals, pid);
    tl_token_t *t = tl_map_get(&st->tokens, tid), next = {0};
    if (t)
        next = *t;
    const char *hash = tl_event_str(e, "token_sha256");
    tl_token_t *other =
        hash && !strcmp(e->type, "TokenIssued") ? tl_map_get(&st->by_hash, hash) : NULL;
    const char *why = other && other != t ? "duplicate_token"
                                          : tl_token_apply(&next, p ? p : &none, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, pid, why);
    if (!t && !(t = tl_arena_calloc(&st->rows, sizeof *t)))
        return TL_ERR_NOMEM;
    *t = next;
    tl_err_t err = index_token(st, t);
    return err ? err : tl_map_put(&st->dirty_tokens, t->id, t);
}

static const char *const sql_upsert_principals =
    "INSERT INTO principals (id, name, role, site_ids, active, signing_credential_id,"
    "   created_at, updated_at, last_event_id)"
    " SELECT i, n, r, s::uuid[], a, c, ca, ua, l"
    "   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::uuid[],"
    "               $7::timestamptz[], $8::timestamptz[], $9::uuid[])"
    "     AS u(i, n, r, s, a, c, ca, ua, l)"
    " ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, site_ids = EXCLUDED.site_ids,"
    "   active = EXCLUDED.active, signing_credential_id = EXCLUDED.signing_credential_id,"
    "   updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id";
static const char *const sql_upsert_tokens =
    "INSERT INTO access_tokens (id, principal_id, token_sha256, label, issued_at, expires_at,"
    "   revoked_at, revoke_reason, last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    "   $6::timestamptz[], $7::timestamptz[], $8::text[], $9::uuid[])"
    " ON CONFLICT (id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at,"
    "   revoke_reason = EXCLUDED.revoke_reason, last_event_id = EXCLUDED.last_event_id";

static tl_err_t write_principals(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 9);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_principal_t *p = m->vals[i];
        if (!m->keys[i])
            continue;
        char sites[TL_PRINCIPAL_SITES_MAX * TL_UUID_STRLEN + 3], ca[TL_TS_STRLEN], ua[TL_TS_STRLEN];
        tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])p->sites, p->nsites, sites, sizeof sites);
        tl_ts_format(p->created_at_us, ca);
        tl_ts_format(p->updated_at_us, ua);
        const char *v[] = {p->id,
                           p->name,
                           tl_role_name(p->role),
                           sites,
                           p->active ? "t" : "f",
                           p->signing_credential_id[0] ? p->signing_credential_id : NULL,
                           ca,
                           ua,
                           p->last_event_id};
        err = tl_cols_add_row(&c, v, 9);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_principals, &c);
    tl_cols_cleanup(&c);
    return err;
}

static tl_err_t write_tokens(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 9);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_token_t *t = m->vals[i];
        if (!m->keys[i])
            continue;
        char ia[TL_TS_STRLEN], ea[TL_TS_STRLEN], ra[TL_TS_STRLEN];
        tl_ts_format(t->issued_at_us, ia);
        tl_ts_format(t->expires_at_us, ea);
        tl_ts_format(t->revoked_at_us, ra);
        const char *v[] = {t->id,
                           t->principal_id,
                           t->sha256,
                           t->has_label ? t->label : NULL,
                           ia,
                           ea,
                           t->revoked_at_us ? ra : NULL,
                           t->revoked_at_us ? t->revoke_reason : NULL,
                           t->last_event_id};
        err = tl_cols_add_row(&c, v, 9);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_tokens, &c);
    tl_cols_cleanup(&c);
    return err;
}

tl_err_t tl_access_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    state_t st = {0};
    tl_err_t err = load(pg, b, &st);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->type, "TokenIssued") || !strcmp(e->type, "TokenRevoked"))
            err = fold_token(b, &st, e);
        else
            err = fold_principal(b, &st, e);
    }
    if (!err)
        err = write_principals(b, &st.dirty_principals);
    if (!err)
        err = write_tokens(b, &st.dirty_tokens);
    state_cleanup(&st);
    return err;
}
