#include "participants_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "participants.h"
#include "reasons.h"
#include "rules.h"
#include "tl_date.h"
#include "tl_map.h"
#include "tl_topics.h"

typedef struct {
    tl_map_t studies, studies_by_protocol;
    tl_map_t sites, sites_by_code;
    tl_map_t parts, parts_by_code;
    tl_map_t vtypes; /* id -> tl_visit_type_row_t */
    tl_arena_t rows; /* every row loaded or made for this batch */
} state_t;

static void state_cleanup(state_t *st)
{
    tl_map_t *maps[] = {&st->studies, &st->studies_by_protocol, &st->sites, &st->sites_by_code,
                        &st->parts,   &st->parts_by_code,       &st->vtypes};
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        tl_map_cleanup(maps[i]);
    tl_arena_cleanup(&st->rows);
}

static void code_key(char *out, size_t size, const char *study_id, const char *code)
{
    snprintf(out, size, "%s|%s", study_id, code);
}

/* ---- loading ---- */

static const char *const sql_load_studies =
    "SELECT id, protocol_id, name, description,"
    "       (extract(epoch FROM registered_at) * 1000000)::bigint, last_event_id, locked,"
    "       lock_reason, (extract(epoch FROM lock_changed_at) * 1000000)::bigint"
    "  FROM studies WHERE id = ANY($1::uuid[]) OR protocol_id = ANY($2::text[])";
/* every visit type of the studies a batch defines or amends one of: names
 * and the baseline are unique per study */
static const char *const sql_load_visit_types =
    "SELECT id, study_id, name, target_day, window_before_days, window_after_days, required,"
    "       form_templates::text, revision, (extract(epoch FROM defined_at) * 1000000)::bigint,"
    "       (extract(epoch FROM updated_at) * 1000000)::bigint, last_event_id"
    "  FROM visit_types WHERE study_id = ANY($1::uuid[])";
/* Lookups by id or by (study, code) as a UNION of two index scans: an OR of
 * the two would make PostgreSQL scan the whole table for every batch. */
#define SITE_COLS                                                                                  \
    "SELECT x.id, x.study_id, x.code, x.name, (extract(epoch FROM x.added_at) * 1000000)::bigint," \
    " x.last_event_id FROM sites x"
static const char *const sql_load_sites =
    SITE_COLS " WHERE x.id = ANY($1::uuid[])"
              " UNION " SITE_COLS " JOIN unnest($2::uuid[], $3::text[]) AS u(s, c)"
              " ON x.study_id = u.s AND x.code = u.c";
#define PARTICIPANT_COLS                                                                           \
    "SELECT x.id, x.study_id, x.site_id, x.participant_code, x.status, x.birth_year, x.sex,"       \
    " x.consent_date - date '1970-01-01', x.baseline_date - date '1970-01-01',"                    \
    " (extract(epoch FROM x.enrolled_at) * 1000000)::bigint,"                                      \
    " (extract(epoch FROM x.updated_at) * 1000000)::bigint, x.version, x.last_event_id,"           \
    " x.end_date - date '1970-01-01' FROM participants x"
static const char *const sql_load_participants =
    PARTICIPANT_COLS " WHERE x.id = ANY($1::uuid[])"
                     " UNION " PARTICIPANT_COLS " JOIN unnest($2::uuid[], $3::text[]) AS u(s, c)"
                     " ON x.study_id = u.s AND x.participant_code = u.c";

static tl_err_t index_study(state_t *st, tl_study_t *s)
{
    tl_err_t err = tl_map_put(&st->studies, s->id, s);
    return err ? err : tl_map_put(&st->studies_by_protocol, s->protocol_id, s);
}

static tl_err_t index_site(state_t *st, tl_site_t *s)
{
    char k[TL_UUID_STRLEN + TL_BYTES(TL_CODE_MAX) + 2];
    code_key(k, sizeof k, s->study_id, s->code);
    tl_err_t err = tl_map_put(&st->sites, s->id, s);
    return err ? err : tl_map_put(&st->sites_by_code, k, s);
}

static tl_err_t index_participant(state_t *st, tl_participant_t *p)
{
    char k[TL_UUID_STRLEN + TL_BYTES(TL_CODE_MAX) + 2];
    code_key(k, sizeof k, p->study_id, p->code);
    tl_err_t err = tl_map_put(&st->parts, p->id, p);
    return err ? err : tl_map_put(&st->parts_by_code, k, p);
}

static tl_err_t load_visit_type(state_t *st, const tl_pg_res_t *res, int r)
{
    tl_visit_type_row_t *v = tl_arena_calloc(&st->rows, sizeof *v);
    if (!v)
        return TL_ERR_NOMEM;
    v->exists = true;
    tl_col_copy(v->vt.id, sizeof v->vt.id, tl_pg_get(res, r, 0));
    tl_col_copy(v->study_id, sizeof v->study_id, tl_pg_get(res, r, 1));
    tl_col_copy(v->vt.name, sizeof v->vt.name, tl_pg_get(res, r, 2));
    v->vt.target_day = (int32_t)tl_pg_get_int(res, r, 3);
    v->vt.window_before = (int32_t)tl_pg_get_int(res, r, 4);
    v->vt.window_after = (int32_t)tl_pg_get_int(res, r, 5);
    v->vt.required = !strcmp(tl_pg_get(res, r, 6), "t");
    json_t *forms = json_loads(tl_pg_get(res, r, 7), 0, NULL);
    for (size_t i = 0; i < json_array_size(forms) && i < TL_FORMS_PER_VISIT_MAX; i++)
        tl_col_copy(v->forms[v->nforms++], sizeof v->forms[0],
                    json_string_value(json_array_get(forms, i)));
    json_decref(forms);
    v->revision = (int32_t)tl_pg_get_int(res, r, 8);
    v->defined_at_us = tl_pg_get_int(res, r, 9);
    v->updated_at_us = tl_pg_get_int(res, r, 10);
    tl_col_copy(v->last_event_id, sizeof v->last_event_id, tl_pg_get(res, r, 11));
    return tl_map_put(&st->vtypes, v->vt.id, v);
}

static tl_err_t load_rows(state_t *st, tl_pg_stmt_t *q)
{
    tl_err_t err = TL_OK;
    for (int r = 0; r < tl_pg_nrows(q[0].res) && !err; r++) {
        tl_study_t *s = tl_arena_calloc(&st->rows, sizeof *s);
        if (!s)
            return TL_ERR_NOMEM;
        s->exists = true;
        tl_col_copy(s->id, sizeof s->id, tl_pg_get(q[0].res, r, 0));
        tl_col_copy(s->protocol_id, sizeof s->protocol_id, tl_pg_get(q[0].res, r, 1));
        tl_col_copy(s->name, sizeof s->name, tl_pg_get(q[0].res, r, 2));
        s->has_description = tl_pg_get(q[0].res, r, 3) != NULL;
        tl_col_copy(s->description, sizeof s->description, tl_pg_get(q[0].res, r, 3));
        s->registered_at_us = tl_pg_get_int(q[0].res, r, 4);
        tl_col_copy(s->last_event_id, sizeof s->last_event_id, tl_pg_get(q[0].res, r, 5));
        s->locked = !strcmp(tl_pg_get(q[0].res, r, 6), "t");
        tl_col_copy(s->lock_reason, sizeof s->lock_reason, tl_pg_get(q[0].res, r, 7));
        s->lock_changed_at_us = tl_pg_get_int(q[0].res, r, 8);
        err = index_study(st, s);
    }
    for (int r = 0; r < tl_pg_nrows(q[1].res) && !err; r++) {
        tl_site_t *s = tl_arena_calloc(&st->rows, sizeof *s);
        if (!s)
            return TL_ERR_NOMEM;
        s->exists = true;
        tl_col_copy(s->id, sizeof s->id, tl_pg_get(q[1].res, r, 0));
        tl_col_copy(s->study_id, sizeof s->study_id, tl_pg_get(q[1].res, r, 1));
        tl_col_copy(s->code, sizeof s->code, tl_pg_get(q[1].res, r, 2));
        tl_col_copy(s->name, sizeof s->name, tl_pg_get(q[1].res, r, 3));
        s->added_at_us = tl_pg_get_int(q[1].res, r, 4);
        tl_col_copy(s->last_event_id, sizeof s->last_event_id, tl_pg_get(q[1].res, r, 5));
        err = index_site(st, s);
    }
    for (int r = 0; r < tl_pg_nrows(q[2].res) && !err; r++) {
        const tl_pg_res_t *res = q[2].res;
        tl_participant_t *p = tl_arena_calloc(&st->rows, sizeof *p);
        if (!p)
            return TL_ERR_NOMEM;
        p->exists = true;
        tl_col_copy(p->id, sizeof p->id, tl_pg_get(res, r, 0));
        tl_col_copy(p->study_id, sizeof p->study_id, tl_pg_get(res, r, 1));
        tl_col_copy(p->site_id, sizeof p->site_id, tl_pg_get(res, r, 2));
        tl_col_copy(p->code, sizeof p->code, tl_pg_get(res, r, 3));
        tl_col_copy(p->status, sizeof p->status, tl_pg_get(res, r, 4));
        p->birth_year = (int32_t)tl_pg_get_int(res, r, 5);
        tl_col_copy(p->sex, sizeof p->sex, tl_pg_get(res, r, 6));
        p->has_consent = tl_pg_get(res, r, 7) != NULL;
        p->consent_date = (int32_t)tl_pg_get_int(res, r, 7);
        p->baseline_date = (int32_t)tl_pg_get_int(res, r, 8);
        p->enrolled_at_us = tl_pg_get_int(res, r, 9);
        p->updated_at_us = tl_pg_get_int(res, r, 10);
        p->version = tl_pg_get_int(res, r, 11);
        tl_col_copy(p->last_event_id, sizeof p->last_event_id, tl_pg_get(res, r, 12));
        p->end_date = (int32_t)tl_pg_get_int(res, r, 13);
        err = index_participant(st, p);
    }
    for (int r = 0; r < tl_pg_nrows(q[3].res) && !err; r++)
        err = load_visit_type(st, q[3].res, r);
    return err;
}

static tl_err_t load(tl_pg_t *pg, tl_batch_t *b, state_t *st)
{
    tl_err_t err = TL_OK;
    tl_cols_t sq, siq, pq, vq;
    tl_cols_init(&sq, 2);
    tl_cols_init(&siq, 3);
    tl_cols_init(&pq, 3);
    tl_cols_init(&vq, 1);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->type, "StudyRegistered")) {
            err = tl_cols_add_uuid(&sq, 0, tl_event_str(e, "study_id"));
            if (!err && tl_event_str(e, "protocol_id"))
                err = tl_cols_add(&sq, 1, tl_event_str(e, "protocol_id"));
        } else if (!strcmp(e->type, "StudyLocked") || !strcmp(e->type, "StudyUnlocked")) {
            err = tl_cols_add_uuid(&sq, 0, tl_event_str(e, "study_id"));
        } else if (!strcmp(e->type, "VisitTypeDefined") || !strcmp(e->type, "VisitTypeAmended")) {
            err = tl_cols_add_uuid(&sq, 0, tl_event_str(e, "study_id"));
            if (!err)
                err = tl_cols_add_uuid(&vq, 0, tl_event_str(e, "study_id"));
        } else if (!strcmp(e->type, "SiteAdded")) {
            err = tl_cols_add_uuid(&sq, 0, tl_event_str(e, "study_id"));
            if (!err)
                err = tl_cols_add_uuid(&siq, 0, tl_event_str(e, "site_id"));
            if (!err && tl_event_str(e, "code")) {
                err = tl_cols_add_uuid(&siq, 1, tl_event_str(e, "study_id"));
                if (!err)
                    err = tl_cols_add(&siq, 2, tl_event_str(e, "code"));
            }
        } else if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT)) {
            err = tl_cols_add_uuid(&pq, 0, tl_event_str(e, "participant_id"));
            if (!err && !strcmp(e->type, "ParticipantEnrolled") &&
                tl_event_str(e, "participant_code")) {
                err = tl_cols_add_uuid(&pq, 1, tl_event_str(e, "study_id"));
                if (!err)
                    err = tl_cols_add(&pq, 2, tl_event_str(e, "participant_code"));
            }
        }
    }
    tl_cols_t *all[] = {&sq, &siq, &pq, &vq};
    for (int i = 0; i < 4 && !err; i++)
        err = tl_cols_end(all[i]);
    tl_pg_stmt_t q[4] = {
        {sql_load_studies, 2, (const char *const[]){sq.col[0].data, sq.col[1].data}, NULL, true},
        {sql_load_sites, 3,
         (const char *const[]){siq.col[0].data, siq.col[1].data, siq.col[2].data}, NULL, true},
        {sql_load_participants, 3,
         (const char *const[]){pq.col[0].data, pq.col[1].data, pq.col[2].data}, NULL, true},
        {sql_load_visit_types, 1, (const char *const[]){vq.col[0].data}, NULL, true},
    };
    if (!err)
        err = tl_pg_pipeline(pg, q, 4);
    if (!err)
        err = load_rows(st, q);
    for (int i = 0; i < 4; i++)
        tl_pg_res_free(q[i].res);
    tl_cols_cleanup(&sq);
    tl_cols_cleanup(&siq);
    tl_cols_cleanup(&pq);
    tl_cols_cleanup(&vq);
    return err;
}

/* ---- folding ---- */

/* Ids are compared in their canonical lowercase form. */
static const char *norm_id(const tl_event_t *e, const char *key, tl_uuid_t *u)
{
    return tl_uuid_parse(tl_event_str(e, key), u) ? NULL : u->s;
}

static tl_err_t fold_study(tl_batch_t *b, state_t *st, const tl_event_t *e, tl_map_t *dirty)
{
    tl_uuid_t u;
    const char *id = norm_id(e, "study_id", &u);
    tl_study_t *s = id ? tl_map_get(&st->studies, id) : NULL;
    tl_study_t next = {0};
    if (s)
        next = *s;
    const char *pid = tl_event_str(e, "protocol_id");
    tl_study_t *other = pid ? tl_map_get(&st->studies_by_protocol, pid) : NULL;
    const char *why =
        other && other != s ? "duplicate_protocol_id" : tl_study_apply(&next, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, id, why);
    if (!s && !(s = tl_arena_calloc(&st->rows, sizeof *s)))
        return TL_ERR_NOMEM;
    *s = next;
    tl_err_t err = index_study(st, s);
    return err ? err : tl_map_put(dirty, s->id, s);
}

static tl_err_t fold_site(tl_batch_t *b, state_t *st, const tl_event_t *e, tl_map_t *dirty)
{
    tl_uuid_t u, su;
    const char *agg = norm_id(e, "site_id", &u), *study = norm_id(e, "study_id", &su);
    const char *code = tl_event_str(e, "code");
    if (!study || !tl_map_get(&st->studies, study))
        return tl_batch_reject(b, e, agg, "unknown_study");
    tl_site_t *s = agg ? tl_map_get(&st->sites, agg) : NULL;
    char k[TL_UUID_STRLEN + TL_BYTES(TL_CODE_MAX) + 2];
    code_key(k, sizeof k, study, code ? code : "");
    tl_site_t *other = tl_map_get(&st->sites_by_code, k);
    tl_site_t next = {0};
    if (s)
        next = *s;
    const char *why =
        other && other != s ? "duplicate_site_code" : tl_site_apply(&next, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, agg, why);
    if (!s && !(s = tl_arena_calloc(&st->rows, sizeof *s)))
        return TL_ERR_NOMEM;
    *s = next;
    tl_err_t err = index_site(st, s);
    return err ? err : tl_map_put(dirty, s->id, s);
}

/* The row of observations an ObservationRecorded the participant took
 * makes: its values readable through the API (docs/CONNECTORS.md). */
static tl_err_t add_observation(tl_cols_t *obs, const tl_participant_t *p, const tl_event_t *e)
{
    const json_t *ev = e->data, *origin = json_object_get(ev, "ingest");
    char ver[24], day[TL_DATE_STRLEN], at[40];
    char *values = json_dumps(json_object_get(ev, "values"), JSON_COMPACT);
    if (!values)
        return TL_ERR_NOMEM;
    snprintf(ver, sizeof ver, "%lld", (long long)p->version);
    tl_date_format((int32_t)tl_ev_int(ev, "observed_on"), day);
    tl_ts_format(tl_ev_int(ev, "recorded_at"), at);
    const char *v[] = {p->last_event_id,
                       p->id,
                       p->study_id,
                       p->site_id,
                       ver,
                       tl_event_str(e, "source"),
                       tl_event_str(e, "kind"),
                       day,
                       tl_event_str(e, "device"),
                       tl_event_str(e, "laterality"),
                       values,
                       json_string_value(json_object_get(origin, "connector_event_id")),
                       at};
    tl_err_t err = tl_cols_add_row(obs, v, 13);
    free(values);
    return err;
}

static tl_err_t fold_participant(tl_batch_t *b, state_t *st, const tl_event_t *e,
                                 tl_map_t *dirty, tl_cols_t *obs)
{
    tl_uuid_t u, su;
    const char *agg = norm_id(e, "participant_id", &u);
    if (!agg)
        return tl_batch_reject(b, e, NULL, "invalid_event");
    tl_participant_t *p = tl_map_get(&st->parts, agg);
    tl_participant_t next = {0};
    if (p)
        next = *p;
    const char *why = NULL;
    if (!strcmp(e->type, "ParticipantEnrolled")) {
        char k[TL_UUID_STRLEN + TL_BYTES(TL_CODE_MAX) + 2];
        const char *study = norm_id(e, "study_id", &su),
                   *code = tl_event_str(e, "participant_code");
        code_key(k, sizeof k, study ? study : "", code ? code : "");
        tl_participant_t *other = tl_map_get(&st->parts_by_code, k);
        if (other && other != p)
            why = TL_RN(duplicate_participant_code);
    }
    if (!why)
        why = tl_participant_apply(&next, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, agg, why);
    if (!p && !(p = tl_arena_calloc(&st->rows, sizeof *p)))
        return TL_ERR_NOMEM;
    *p = next;
    tl_err_t err = index_participant(st, p);
    if (!err && !strcmp(e->type, "ObservationRecorded"))
        err = add_observation(obs, p, e);
    return err ? err : tl_map_put(dirty, p->id, p);
}

/* The study's other visit types must keep the protocol's shape: the same
 * rule the gateway applies before producing (rules.h). */
static const char *protocol_conflict(const state_t *st, const tl_visit_type_row_t *n)
{
    static __thread tl_visit_type_t others[TL_VISIT_TYPES_MAX + 1];
    size_t nothers = 0;
    for (size_t i = 0; i < st->vtypes.cap && nothers <= TL_VISIT_TYPES_MAX; i++) {
        const tl_visit_type_row_t *o = st->vtypes.vals[i];
        if (st->vtypes.keys[i] && !strcmp(o->study_id, n->study_id) && strcmp(o->vt.id, n->vt.id))
            others[nothers++] = o->vt;
    }
    tl_verdict_t v;
    return tl_rule_protocol_shape(&n->vt, others, nothers, &v) ? NULL : tl_reason_name(v.why);
}

static tl_err_t fold_visit_type(tl_batch_t *b, state_t *st, const tl_event_t *e, tl_map_t *dirty)
{
    tl_uuid_t u, su;
    const char *agg = norm_id(e, "visit_type_id", &u), *study = norm_id(e, "study_id", &su);
    if (!study || !tl_map_get(&st->studies, study))
        return tl_batch_reject(b, e, agg, "unknown_study");
    tl_visit_type_row_t *v = agg ? tl_map_get(&st->vtypes, agg) : NULL;
    tl_visit_type_row_t next = {0};
    if (v)
        next = *v;
    const char *why = tl_visit_type_apply(&next, e->type, e->data);
    if (!why)
        why = protocol_conflict(st, &next);
    if (why)
        return tl_batch_reject(b, e, agg, why);
    if (!v && !(v = tl_arena_calloc(&st->rows, sizeof *v)))
        return TL_ERR_NOMEM;
    *v = next;
    tl_err_t err = tl_map_put(&st->vtypes, v->vt.id, v);
    return err ? err : tl_map_put(dirty, v->vt.id, v);
}

/* ---- writing ---- */

static const char *const sql_upsert_studies =
    "INSERT INTO studies (id, protocol_id, name, description, registered_at, last_event_id,"
    "   locked, lock_reason, lock_changed_at)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
    "                      $6::uuid[], $7::boolean[], $8::text[], $9::timestamptz[])"
    " ON CONFLICT (id) DO UPDATE SET protocol_id = EXCLUDED.protocol_id, name = EXCLUDED.name,"
    "   description = EXCLUDED.description, last_event_id = EXCLUDED.last_event_id,"
    "   locked = EXCLUDED.locked, lock_reason = EXCLUDED.lock_reason,"
    "   lock_changed_at = EXCLUDED.lock_changed_at";
static const char *const sql_upsert_visit_types =
    "INSERT INTO visit_types (id, study_id, name, target_day, window_before_days,"
    "   window_after_days, required, form_templates, revision, defined_at, updated_at,"
    "   last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::int[], $6::int[],"
    "   $7::boolean[], $8::jsonb[], $9::int[], $10::timestamptz[], $11::timestamptz[],"
    "   $12::uuid[])"
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, target_day = EXCLUDED.target_day,"
    "   window_before_days = EXCLUDED.window_before_days,"
    "   window_after_days = EXCLUDED.window_after_days, required = EXCLUDED.required,"
    "   form_templates = EXCLUDED.form_templates, revision = EXCLUDED.revision,"
    "   updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id";
static const char *const sql_upsert_sites =
    "INSERT INTO sites (id, study_id, code, name, added_at, last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    "                      $6::uuid[])"
    " ON CONFLICT (id) DO UPDATE SET code = EXCLUDED.code, name = EXCLUDED.name,"
    "   last_event_id = EXCLUDED.last_event_id";
static const char *const sql_upsert_participants =
    "INSERT INTO participants (id, study_id, site_id, participant_code, status, birth_year, sex,"
    "   consent_date, baseline_date, enrolled_at, updated_at, version, last_event_id, end_date)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],"
    "   $6::int[], $7::text[], $8::date[], $9::date[], $10::timestamptz[], $11::timestamptz[],"
    "   $12::bigint[], $13::uuid[], $14::date[])"
    " ON CONFLICT (id) DO UPDATE SET site_id = EXCLUDED.site_id, status = EXCLUDED.status,"
    "   birth_year = EXCLUDED.birth_year, sex = EXCLUDED.sex,"
    "   consent_date = EXCLUDED.consent_date, baseline_date = EXCLUDED.baseline_date,"
    "   updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,"
    "   last_event_id = EXCLUDED.last_event_id, end_date = EXCLUDED.end_date";

/* an event applied twice is the same row (a batch that runs again) */
static const char *const sql_insert_observations =
    "INSERT INTO observations (event_id, participant_id, study_id, site_id, stream_version,"
    "  source, kind, observed_on, device, laterality, observed_values, connector_event_id,"
    "  recorded_at)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[],"
    "  $6::text[], $7::text[], $8::date[], $9::text[], $10::text[], $11::jsonb[], $12::text[],"
    "  $13::timestamptz[])"
    " ON CONFLICT (event_id) DO NOTHING";

static tl_err_t write_studies(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 9);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_study_t *s = m->vals[i];
        char ts[40], lts[40];
        if (!m->keys[i])
            continue;
        tl_ts_format(s->registered_at_us, ts);
        if (s->lock_changed_at_us)
            tl_ts_format(s->lock_changed_at_us, lts);
        const char *v[] = {s->id,
                           s->protocol_id,
                           s->name,
                           s->has_description ? s->description : NULL,
                           ts,
                           s->last_event_id,
                           s->locked ? "t" : "f",
                           s->lock_changed_at_us ? s->lock_reason : NULL,
                           s->lock_changed_at_us ? lts : NULL};
        err = tl_cols_add_row(&c, v, 9);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_studies, &c);
    tl_cols_cleanup(&c);
    return err;
}

static tl_err_t write_sites(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 6);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_site_t *s = m->vals[i];
        char ts[40];
        if (!m->keys[i])
            continue;
        tl_ts_format(s->added_at_us, ts);
        const char *v[] = {s->id, s->study_id, s->code, s->name, ts, s->last_event_id};
        err = tl_cols_add_row(&c, v, 6);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_sites, &c);
    tl_cols_cleanup(&c);
    return err;
}

static tl_err_t write_participants(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 14);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_participant_t *p = m->vals[i];
        if (!m->keys[i])
            continue;
        char by[16], cd[TL_DATE_STRLEN], bd[TL_DATE_STRLEN], ea[40], ua[40], ver[24];
        char ed[TL_DATE_STRLEN];
        tl_date_format(p->end_date, ed);
        snprintf(by, sizeof by, "%d", p->birth_year);
        tl_date_format(p->consent_date, cd);
        tl_date_format(p->baseline_date, bd);
        tl_ts_format(p->enrolled_at_us, ea);
        tl_ts_format(p->updated_at_us, ua);
        snprintf(ver, sizeof ver, "%lld", (long long)p->version);
        const char *v[] = {p->id,
                           p->study_id,
                           p->site_id,
                           p->code,
                           p->status,
                           p->birth_year ? by : NULL,
                           p->sex[0] ? p->sex : NULL,
                           p->has_consent ? cd : NULL,
                           bd,
                           ea,
                           ua,
                           ver,
                           p->last_event_id,
                           p->end_date ? ed : NULL};
        err = tl_cols_add_row(&c, v, 14);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_participants, &c);
    tl_cols_cleanup(&c);
    return err;
}

static tl_err_t write_visit_types(tl_batch_t *b, const tl_map_t *m)
{
    tl_cols_t c;
    tl_err_t err = TL_OK;
    tl_cols_init(&c, 12);
    for (size_t i = 0; i < m->cap && !err; i++) {
        const tl_visit_type_row_t *r = m->vals[i];
        if (!m->keys[i])
            continue;
        char td[16], wb[16], wa[16], rev[16], da[40], ua[40];
        snprintf(td, sizeof td, "%d", r->vt.target_day);
        snprintf(wb, sizeof wb, "%d", r->vt.window_before);
        snprintf(wa, sizeof wa, "%d", r->vt.window_after);
        snprintf(rev, sizeof rev, "%d", r->revision);
        tl_ts_format(r->defined_at_us, da);
        tl_ts_format(r->updated_at_us, ua);
        json_t *forms = json_array();
        for (size_t f = 0; f < r->nforms; f++)
            json_array_append_new(forms, json_string(r->forms[f]));
        char *ft = json_dumps(forms, JSON_COMPACT);
        json_decref(forms);
        if (!ft) {
            err = TL_ERR_NOMEM;
            break;
        }
        const char *v[] = {
            r->vt.id, r->study_id, r->vt.name,      td, wb, wa, r->vt.required ? "t" : "f", ft, rev,
            da,       ua,          r->last_event_id};
        err = tl_cols_add_row(&c, v, 12);
        free(ft);
    }
    if (!err && c.nrows)
        return tl_batch_add_cols(b, sql_upsert_visit_types, &c);
    tl_cols_cleanup(&c);
    return err;
}

tl_err_t tl_participants_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    state_t st = {0};
    tl_map_t dirty_studies, dirty_sites, dirty_parts, dirty_vtypes;
    tl_map_init(&dirty_vtypes);
    tl_map_init(&dirty_studies);
    tl_map_init(&dirty_sites);
    tl_map_init(&dirty_parts);
    tl_cols_t obs;
    tl_cols_init(&obs, 13);
    tl_err_t err = load(pg, b, &st);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT))
            err = fold_participant(b, &st, e, &dirty_parts, &obs);
        else if (!strcmp(e->type, "StudyRegistered") || !strcmp(e->type, "StudyLocked") ||
                 !strcmp(e->type, "StudyUnlocked"))
            err = fold_study(b, &st, e, &dirty_studies);
        else if (!strcmp(e->type, "VisitTypeDefined") || !strcmp(e->type, "VisitTypeAmended"))
            err = fold_visit_type(b, &st, e, &dirty_vtypes);
        else if (!strcmp(e->type, "SiteAdded"))
            err = fold_site(b, &st, e, &dirty_sites);
    }
    if (!err)
        err = write_studies(b, &dirty_studies);
    if (!err)
        err = write_sites(b, &dirty_sites);
    if (!err)
        err = write_participants(b, &dirty_parts);
    if (!err)
        err = write_visit_types(b, &dirty_vtypes);
    if (!err && obs.nrows)
        err = tl_batch_add_cols(b, sql_insert_observations, &obs); /* takes obs over */
    else
        tl_cols_cleanup(&obs);
    tl_map_cleanup(&dirty_vtypes);
    tl_map_cleanup(&dirty_studies);
    tl_map_cleanup(&dirty_sites);
    tl_map_cleanup(&dirty_parts);
    state_cleanup(&st);
    return err;
}
