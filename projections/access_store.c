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
    "SELECT " TL_SQL_PRINCIPAL_COLS
    "  FROM principals p WHERE p.id = ANY($1::uuid[]) OR p.name = ANY($2::text[])";
static const char *const sql_load_tokens =
    "SELECT id, principal_id, token_sha256, label, " US("issued_at") ", " US("expires_at") ", " US(
        "revoked_at") ", revoke_reason, last_event_id, issued_by"
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

void tl_principal_read(const tl_pg_res_t *res, int r, int c, tl_principal_t *p)
{
    memset(p, 0, sizeof *p);
    p->exists = true;
    tl_col_copy(p->id, sizeof p->id, tl_pg_get(res, r, c));
    tl_col_copy(p->name, sizeof p->name, tl_pg_get(res, r, c + 1));
    p->role = tl_role_parse(tl_pg_get(res, r, c + 2));
    p->nsites = tl_pg_uuids_parse(tl_pg_get(res, r, c + 3), p->sites, TL_PRINCIPAL_SITES_MAX);
    p->active = !strcmp(tl_pg_get(res, r, c + 4), "t");
    tl_col_copy(p->signing_credential_id, sizeof p->signing_credential_id,
                tl_pg_get(res, r, c + 5));
    p->created_at_us = tl_pg_get_int(res, r, c + 6);
    p->updated_at_us = tl_pg_get_int(res, r, c + 7);
    tl_col_copy(p->last_event_id, sizeof p->last_event_id, tl_pg_get(res, r, c + 8));
    tl_col_copy(p->display_name, sizeof p->display_name, tl_pg_get(res, r, c + 9));
    tl_col_copy(p->granted_by, sizeof p->granted_by, tl_pg_get(res, r, c + 10));
    p->signing_expires_at_us = tl_pg_get(res, r, c + 11) ? tl_pg_get_int(res, r, c + 11) : 0;
    p->signing_failures = (int)tl_pg_get_int(res, r, c + 12);
    p->signing_locked = !strcmp(tl_pg_get(res, r, c + 13), "t");
    p->enrolment_state = tl_enrolment_state_parse(tl_pg_get(res, r, c + 14));
    tl_col_copy(p->enrolment_id, sizeof p->enrolment_id, tl_pg_get(res, r, c + 15));
    tl_col_copy(p->enrolment_opened_by, sizeof p->enrolment_opened_by, tl_pg_get(res, r, c + 16));
    tl_col_copy(p->enrolment_approved_by, sizeof p->enrolment_approved_by,
                tl_pg_get(res, r, c + 17));
    tl_col_copy(p->enrolment_code_sha256, sizeof p->enrolment_code_sha256,
                tl_pg_get(res, r, c + 18));
    p->enrolment_code_expires_at_us =
        tl_pg_get(res, r, c + 19) ? tl_pg_get_int(res, r, c + 19) : 0;
    p->nstudies =
        tl_pg_uuids_parse(tl_pg_get(res, r, c + 20), p->studies, TL_PRINCIPAL_STUDIES_MAX);
}

static tl_err_t load_rows(state_t *st, const tl_pg_res_t *pr, const tl_pg_res_t *tr)
{
    tl_err_t err = TL_OK;
    for (int r = 0; r < tl_pg_nrows(pr) && !err; r++) {
        tl_principal_t *p = tl_arena_calloc(&st->rows, sizeof *p);
        if (!p)
            return TL_ERR_NOMEM;
        tl_principal_read(pr, r, 0, p);
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
        tl_col_copy(t->issued_by, sizeof t->issued_by, tl_pg_get(tr, r, 9));
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
    "   created_at, updated_at, last_event_id, display_name, granted_by, signing_expires_at,"
    "   signing_failures, signing_locked, enrolment_state, enrolment_id, enrolment_opened_by,"
    "   enrolment_approved_by, enrolment_code_sha256, enrolment_code_expires_at, study_ids)"
    " SELECT i, n, r, s::uuid[], a, c, ca, ua, l, dn, gb, se, sf, sl, es, ei, eo, ea, ec, ee,"
    "   st::uuid[]"
    "   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::uuid[],"
    "               $7::timestamptz[], $8::timestamptz[], $9::uuid[], $10::text[], $11::text[],"
    "               $12::timestamptz[], $13::int[], $14::boolean[], $15::text[], $16::uuid[],"
    "               $17::text[], $18::text[], $19::text[], $20::timestamptz[], $21::text[])"
    "     AS u(i, n, r, s, a, c, ca, ua, l, dn, gb, se, sf, sl, es, ei, eo, ea, ec, ee, st)"
    " ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, site_ids = EXCLUDED.site_ids,"
    "   study_ids = EXCLUDED.study_ids,"
    "   active = EXCLUDED.active, signing_credential_id = EXCLUDED.signing_credential_id,"
    "   updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id,"
    "   display_name = EXCLUDED.display_name, granted_by = EXCLUDED.granted_by,"
    "   signing_expires_at = EXCLUDED.signing_expires_at,"
    "   signing_failures = EXCLUDED.signing_failures, signing_locked = EXCLUDED.signing_locked,"
    "   enrolment_state = EXCLUDED.enrolment_state, enrolment_id = EXCLUDED.enrolment_id,"
    "   enrolment_opened_by = EXCLUDED.enrolment_opened_by,"
    "   enrolment_approved_by = EXCLUDED.enrolment_approved_by,"
    "   enrolment_code_sha256 = EXCLUDED.enrolment_code_sha256,"
    "   enrolment_code_expires_at = EXCLUDED.enrolment_code_expires_at";
static const char *const sql_upsert_tokens =
    "INSERT INTO access_tokens (id, principal_id, token_sha256, label, issued_at, expires_at,"
    "   revoked_at, revoke_reason, last_event_id, issued_by)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    "   $6::timestamptz[], $7::timestamptz[], $8::text[], $9::uuid[], $10::text[])"
    " ON CONFLICT (id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at,"
    "   revoke_reason = EXCLUDED.revoke_reason, last_event_id = EXCLUDED.last_event_id";

static const char *str_or_null(const char *s)
{
    return s[0] ? s : NULL;
}

static tl_err_t write_principals(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 21);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_principal_t *p = m->vals[i];
        if (!m->keys[i])
            continue;
        char sites[TL_PRINCIPAL_SITES_MAX * TL_UUID_STRLEN + 3], ca[TL_TS_STRLEN], ua[TL_TS_STRLEN];
        char se[TL_TS_STRLEN], ee[TL_TS_STRLEN], failures[16];
        char studies[TL_PRINCIPAL_STUDIES_MAX * TL_UUID_STRLEN + 3];
        tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])p->sites, p->nsites, sites, sizeof sites);
        tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])p->studies, p->nstudies, studies,
                           sizeof studies);
        tl_ts_format(p->created_at_us, ca);
        tl_ts_format(p->updated_at_us, ua);
        tl_ts_format(p->signing_expires_at_us, se);
        tl_ts_format(p->enrolment_code_expires_at_us, ee);
        snprintf(failures, sizeof failures, "%d", p->signing_failures);
        const char *v[] = {p->id,
                           p->name,
                           tl_role_name(p->role),
                           sites,
                           p->active ? "t" : "f",
                           str_or_null(p->signing_credential_id),
                           ca,
                           ua,
                           p->last_event_id,
                           str_or_null(p->display_name),
                           str_or_null(p->granted_by),
                           p->signing_expires_at_us ? se : NULL,
                           failures,
                           p->signing_locked ? "t" : "f",
                           tl_enrolment_state_name(p->enrolment_state),
                           str_or_null(p->enrolment_id),
                           str_or_null(p->enrolment_opened_by),
                           str_or_null(p->enrolment_approved_by),
                           str_or_null(p->enrolment_code_sha256),
                           p->enrolment_code_expires_at_us ? ee : NULL,
                           studies};
        err = tl_cols_add_row(&c, v, 21);
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
    tl_cols_init(&c, 10);
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
                           t->last_event_id,
                           str_or_null(t->issued_by)};
        err = tl_cols_add_row(&c, v, 10);
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
