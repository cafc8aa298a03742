#include "releases_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reasons.h"
#include "release.h"
#include "stream.h"
#include "tl_map.h"
#include "tl_uuid.h"

/* A release's row as the fold carries it: text columns, times in
 * microseconds ("" when not set). */
typedef struct {
    char id[TL_UUID_STRLEN];
    char study_id[TL_UUID_STRLEN];
    char name[TL_RELEASE_NAME_MAX + 1];
    tl_release_status_t status;
    char *cut, *manifest, *error; /* owned; NULL: not set */
    char requested_by[128];
    char requested_at[24], started_at[24], finished_at[24];
    bool dirty;
} release_t;

static const char *const sql_load =
    "SELECT id, study_id, name, status, cut::text, requested_by,"
    " (extract(epoch FROM requested_at) * 1000000)::bigint,"
    " (extract(epoch FROM started_at) * 1000000)::bigint,"
    " (extract(epoch FROM finished_at) * 1000000)::bigint, manifest, error"
    " FROM releases WHERE id = ANY($1::uuid[])";

static const char *const sql_upsert =
    "INSERT INTO releases (id, study_id, name, status, cut, requested_by, requested_at,"
    "  started_at, finished_at, manifest, error)"
    " SELECT id, study_id, name, status, cut, requested_by, to_timestamp(r / 1e6),"
    "  to_timestamp(s / 1e6), to_timestamp(f / 1e6), manifest, error"
    " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[],"
    "  $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])"
    "  AS t(id, study_id, name, status, cut, requested_by, r, s, f, manifest, error)"
    " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
    "  started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
    "  manifest = EXCLUDED.manifest, error = EXCLUDED.error";

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void release_free(release_t *r)
{
    free(r->cut);
    free(r->manifest);
    free(r->error);
    free(r);
}

static bool release_event(const char *type)
{
    return type && !strncmp(type, "Release", 7) &&
           (!strcmp(type, "ReleaseRequested") || !strcmp(type, "ReleaseStarted") ||
            !strcmp(type, "ReleaseCompleted") || !strcmp(type, "ReleaseFailed"));
}

static tl_err_t load(tl_pg_t *pg, const tl_batch_t *b, tl_map_t *rels, bool *any)
{
    tl_cols_t ids;
    tl_cols_init(&ids, 1);
    tl_err_t err = TL_OK;
    *any = false;
    for (size_t i = 0; i < b->n && !err; i++) {
        const char *id = tl_event_str(&b->events[i], "release_id");
        if (release_event(b->events[i].type) && tl_uuid_valid(id)) {
            err = tl_cols_add(&ids, 0, id);
            *any = true;
        }
    }
    tl_pg_res_t *res = NULL;
    if (!err && *any)
        err = tl_cols_exec(pg, sql_load, &ids, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        release_t *x = calloc(1, sizeof *x);
        if (!x) {
            err = TL_ERR_NOMEM;
            break;
        }
        tl_col_copy(x->id, sizeof x->id, tl_pg_get(res, r, 0));
        tl_col_copy(x->study_id, sizeof x->study_id, tl_pg_get(res, r, 1));
        tl_col_copy(x->name, sizeof x->name, tl_pg_get(res, r, 2));
        x->status = tl_release_status_parse(tl_pg_get(res, r, 3));
        x->cut = dup_or_null(tl_pg_get(res, r, 4));
        tl_col_copy(x->requested_by, sizeof x->requested_by, tl_pg_get(res, r, 5));
        tl_col_copy(x->requested_at, sizeof x->requested_at, tl_pg_get(res, r, 6));
        tl_col_copy(x->started_at, sizeof x->started_at, tl_pg_get(res, r, 7));
        tl_col_copy(x->finished_at, sizeof x->finished_at, tl_pg_get(res, r, 8));
        x->manifest = dup_or_null(tl_pg_get(res, r, 9));
        x->error = dup_or_null(tl_pg_get(res, r, 10));
        if ((err = tl_map_put(rels, x->id, x)))
            release_free(x);
    }
    tl_pg_res_free(res);
    tl_cols_cleanup(&ids);
    return err;
}

static tl_err_t fold(tl_batch_t *b, tl_map_t *rels, const tl_event_t *e)
{
    tl_uuid_t id;
    if (tl_uuid_parse(tl_event_str(e, "release_id"), &id))
        return tl_batch_reject(b, e, NULL, "invalid_event");
    release_t *r = tl_map_get(rels, id.s);
    tl_release_status_t s = r ? r->status : TL_RELEASE_NONE;
    if (!tl_release_advance(&s, e->type))
        return tl_batch_reject(b, e, id.s,
                               !r                                     ? TL_RN(unknown_release)
                               : !strcmp(e->type, "ReleaseRequested") ? TL_RN(duplicate_release)
                               : s == TL_RELEASE_COMPLETED || s == TL_RELEASE_FAILED
                                   ? TL_RN(release_finished)
                                   : TL_RN(duplicate_event)); /* a worker that ran the job again */
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)tl_ev_int(e->data, "recorded_at"));
    tl_err_t err = TL_OK;
    if (!r) {
        tl_uuid_t study;
        const char *name = tl_event_str(e, "name");
        json_t *cut = json_object_get(e->data, "cut");
        if (tl_uuid_parse(tl_event_str(e, "study_id"), &study) || !tl_release_name_valid(name) ||
            !json_is_array(cut))
            return tl_batch_reject(b, e, id.s, "invalid_event");
        if (!(r = calloc(1, sizeof *r)))
            return TL_ERR_NOMEM;
        snprintf(r->id, sizeof r->id, "%s", id.s);
        snprintf(r->study_id, sizeof r->study_id, "%s", study.s);
        snprintf(r->name, sizeof r->name, "%s", name);
        (void)tl_ev_copy_str(r->requested_by, sizeof r->requested_by, e->data, "actor_id");
        snprintf(r->requested_at, sizeof r->requested_at, "%s", at);
        r->cut = json_dumps(cut, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!r->cut || (err = tl_map_put(rels, r->id, r))) {
            release_free(r);
            return err ? err : TL_ERR_NOMEM;
        }
    } else if (s == TL_RELEASE_STARTED) {
        snprintf(r->started_at, sizeof r->started_at, "%s", at);
    } else {
        const char *what = tl_event_str(e, s == TL_RELEASE_COMPLETED ? "manifest" : "error");
        char **slot = s == TL_RELEASE_COMPLETED ? &r->manifest : &r->error;
        free(*slot);
        if (!(*slot = strdup(what ? what : "")))
            return TL_ERR_NOMEM;
        snprintf(r->finished_at, sizeof r->finished_at, "%s", at);
    }
    r->status = s;
    r->dirty = true;
    return err;
}

static const char *or_null(const char *s)
{
    return s && *s ? s : NULL;
}

tl_err_t tl_releases_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    tl_map_t rels;
    tl_map_init(&rels);
    bool any = false;
    tl_err_t err = load(pg, b, &rels, &any);
    for (size_t i = 0; any && i < b->n && !err; i++)
        if (release_event(b->events[i].type))
            err = fold(b, &rels, &b->events[i]);
    tl_cols_t rows;
    tl_cols_init(&rows, 11);
    for (size_t i = 0; i < rels.cap; i++) {
        release_t *r = rels.keys[i] ? rels.vals[i] : NULL;
        if (!r)
            continue;
        const char *row[] = {r->id,
                             r->study_id,
                             r->name,
                             tl_release_status_name(r->status),
                             r->cut,
                             r->requested_by,
                             or_null(r->requested_at),
                             or_null(r->started_at),
                             or_null(r->finished_at),
                             r->manifest,
                             r->error};
        if (!err && r->dirty)
            err = tl_cols_add_row(&rows, row, 11);
        release_free(r);
    }
    if (!err && rows.nrows)
        err = tl_batch_add_cols(b, sql_upsert, &rows);
    tl_cols_cleanup(&rows);
    tl_map_cleanup(&rels);
    return err;
}
