#include "schedules_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedules.h"
#include "tl_date.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_topics.h"

typedef struct {
    tl_schedule_t s;
    int64_t loaded_version; /* visits changed in this batch have a higher one */
} entry_t;

typedef struct {
    tl_map_t parts;  /* participant id -> entry_t */
    tl_arena_t rows; /* every entry_t of the batch */
} state_t;

static void state_cleanup(state_t *st)
{
    for (size_t i = 0; i < st->rows.n; i++)
        tl_schedule_cleanup(&((entry_t *)st->rows.ptrs[i])->s);
    tl_arena_cleanup(&st->rows);
    tl_map_cleanup(&st->parts);
}

static bool dup_col(char **dst, const char *v)
{
    return !v || (*dst = strdup(v)) != NULL;
}

/* ---- loading ---- */

static const char *const sql_load =
    "SELECT " TL_SQL_SCHEDULE_COLS TL_SQL_SCHEDULE_FROM " WHERE p.id = ANY($1::uuid[])"
    " ORDER BY p.id, v.target_day, v.visit_type_id";

tl_err_t tl_schedule_read(tl_schedule_t *s, const tl_pg_res_t *res, int col, int from, int to)
{
    memset(s, 0, sizeof *s);
    s->exists = true;
    tl_col_copy(s->id, sizeof s->id, tl_pg_get(res, from, col + 0));
    tl_col_copy(s->study_id, sizeof s->study_id, tl_pg_get(res, from, col + 1));
    tl_col_copy(s->site_id, sizeof s->site_id, tl_pg_get(res, from, col + 2));
    tl_col_copy(s->code, sizeof s->code, tl_pg_get(res, from, col + 3));
    tl_col_copy(s->status, sizeof s->status, tl_pg_get(res, from, col + 4));
    s->baseline_date = (int32_t)tl_pg_get_int(res, from, col + 5);
    s->version = tl_pg_get_int(res, from, col + 6);
    s->updated_at_us = tl_pg_get_int(res, from, col + 7);
    tl_col_copy(s->last_event_id, sizeof s->last_event_id, tl_pg_get(res, from, col + 8));
    s->has_consent = tl_pg_get(res, from, col + 9) != NULL;
    s->consent_date = s->has_consent ? (int32_t)tl_pg_get_int(res, from, col + 9) : 0;
    s->end_date = tl_pg_get(res, from, col + 10) ? (int32_t)tl_pg_get_int(res, from, col + 10) : 0;
    if (!(s->visits = calloc((size_t)(to - from) + 1, sizeof *s->visits)))
        return TL_ERR_NOMEM;
    col += 11;
    for (int i = from; i < to; i++) {
        if (!tl_pg_get(res, i, col)) /* a participant without visits: one row of NULLs */
            continue;
        tl_visit_t *v = &s->visits[s->nvisits++];
        tl_col_copy(v->visit_type_id, sizeof v->visit_type_id, tl_pg_get(res, i, col + 0));
        tl_col_copy(v->name, sizeof v->name, tl_pg_get(res, i, col + 1));
        v->target_day = (int32_t)tl_pg_get_int(res, i, col + 2);
        v->required = !strcmp(tl_pg_get(res, i, col + 3), "t");
        v->due = (int32_t)tl_pg_get_int(res, i, col + 4);
        v->window_start = (int32_t)tl_pg_get_int(res, i, col + 5);
        v->window_end = (int32_t)tl_pg_get_int(res, i, col + 6);
        int state = tl_visit_state_parse(tl_pg_get(res, i, col + 7));
        v->state = state < 0 ? TL_VISIT_SCHEDULED : (tl_visit_state_t)state;
        v->actual_date = (int32_t)tl_pg_get_int(res, i, col + 8);
        const char *iw = tl_pg_get(res, i, col + 9);
        v->in_window = iw && !strcmp(iw, "t");
        if (!dup_col(&v->deviation_reason, tl_pg_get(res, i, col + 10)) ||
            !dup_col(&v->missed_reason, tl_pg_get(res, i, col + 11)) ||
            !dup_col(&v->notes, tl_pg_get(res, i, col + 12)))
            return TL_ERR_NOMEM;
        v->version = tl_pg_get_int(res, i, col + 13);
        v->updated_at_us = tl_pg_get_int(res, i, col + 14);
        tl_col_copy(v->last_event_id, sizeof v->last_event_id, tl_pg_get(res, i, col + 15));
    }
    return TL_OK;
}

static tl_err_t load(tl_pg_t *pg, tl_batch_t *b, state_t *st)
{
    tl_cols_t ids;
    tl_pg_res_t *res = NULL;
    tl_cols_init(&ids, 1);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (e->type && tl_uuid_valid(tl_event_str(e, "participant_id")))
            err = tl_cols_add(&ids, 0, tl_event_str(e, "participant_id"));
    }
    if (!err)
        err = tl_cols_end(&ids);
    const char *const params[] = {ids.col[0].data};
    if (!err)
        err = tl_pg_exec(pg, sql_load, 1, params, &res);
    /* rows come ordered by participant: each one's run is one schedule */
    int rows = err ? 0 : tl_pg_nrows(res);
    for (int r = 0, end; !err && r < rows; r = end) {
        const char *pid = tl_pg_get(res, r, 0);
        for (end = r; end < rows && !strcmp(tl_pg_get(res, end, 0), pid); end++)
            ;
        entry_t *e = tl_arena_calloc(&st->rows, sizeof(entry_t));
        if (!e)
            err = TL_ERR_NOMEM;
        if (!err)
            err = tl_schedule_read(&e->s, res, 0, r, end);
        if (!err) {
            e->loaded_version = e->s.version;
            err = tl_map_put(&st->parts, e->s.id, e);
        }
    }
    tl_pg_res_free(res);
    tl_cols_cleanup(&ids);
    return err;
}

/* ---- folding ---- */

static tl_err_t fold(tl_batch_t *b, state_t *st, const tl_event_t *e, tl_map_t *dirty)
{
    tl_uuid_t u;
    if (tl_uuid_parse(tl_event_str(e, "participant_id"), &u))
        return tl_batch_reject(b, e, NULL, "invalid_event");
    entry_t *en = tl_map_get(&st->parts, u.s);
    tl_schedule_t none = {0};
    const char *skipped = NULL;
    tl_schedule_t *s = en ? &en->s : &none;
    const char *why = tl_schedule_apply(s, e->type, e->data, &skipped);
    if (why && !strcmp(why, "out_of_memory"))
        return TL_ERR_NOMEM;
    if (why)
        return tl_batch_reject(b, e, u.s, why);
    if (skipped)
        /* gateway commands never get here (it validated the visit at this
         * version); an event from elsewhere did, and the log keeps it */
        tl_log_warn("visit_event_skipped",
                    json_pack("{s:s, s:s, s:i, s:I, s:s}", "event_type", e->type, "topic", e->topic,
                              "partition", e->partition, "offset", (json_int_t)e->offset, "reason",
                              skipped));
    if (!en) {
        if (!(en = tl_arena_calloc(&st->rows, sizeof(entry_t)))) {
            tl_schedule_cleanup(&none);
            return TL_ERR_NOMEM;
        }
        en->s = none;
        tl_err_t err = tl_map_put(&st->parts, en->s.id, en);
        if (err)
            return err;
    }
    return tl_map_put(dirty, en->s.id, en);
}

/* ---- writing ---- */

static const char *const sql_upsert_participants =
    "INSERT INTO schedule_participants (id, study_id, site_id, participant_code, status,"
    "   baseline_date, version, updated_at, last_event_id, consent_date, end_date)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],"
    "   $6::date[], $7::bigint[], $8::timestamptz[], $9::uuid[], $10::date[], $11::date[])"
    " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
    "   baseline_date = EXCLUDED.baseline_date, version = EXCLUDED.version,"
    "   updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id,"
    "   consent_date = EXCLUDED.consent_date, end_date = EXCLUDED.end_date";
static const char *const sql_upsert_visits =
    "INSERT INTO participant_visits (participant_id, visit_type_id, study_id, site_id, name,"
    "   target_day, required, due_date, window_start, window_end, state, actual_date,"
    "   in_window, deviation_reason, missed_reason, notes, version, updated_at, last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],"
    "   $6::int[], $7::boolean[], $8::date[], $9::date[], $10::date[], $11::text[],"
    "   $12::date[], $13::boolean[], $14::text[], $15::text[], $16::text[], $17::bigint[],"
    "   $18::timestamptz[], $19::uuid[])"
    " ON CONFLICT (participant_id, visit_type_id) DO UPDATE SET name = EXCLUDED.name,"
    "   target_day = EXCLUDED.target_day, required = EXCLUDED.required,"
    "   due_date = EXCLUDED.due_date, window_start = EXCLUDED.window_start,"
    "   window_end = EXCLUDED.window_end, state = EXCLUDED.state,"
    "   actual_date = EXCLUDED.actual_date, in_window = EXCLUDED.in_window,"
    "   deviation_reason = EXCLUDED.deviation_reason, missed_reason = EXCLUDED.missed_reason,"
    "   notes = EXCLUDED.notes, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,"
    "   last_event_id = EXCLUDED.last_event_id";

static tl_err_t add_visit(tl_cols_t *c, const tl_schedule_t *s, const tl_visit_t *v)
{
    char td[16], due[TL_DATE_STRLEN], ws[TL_DATE_STRLEN], we[TL_DATE_STRLEN];
    char ad[TL_DATE_STRLEN], ver[24], ua[TL_TS_STRLEN];
    bool done = v->state == TL_VISIT_COMPLETED;
    snprintf(td, sizeof td, "%d", v->target_day);
    tl_date_format(v->due, due);
    tl_date_format(v->window_start, ws);
    tl_date_format(v->window_end, we);
    if (done)
        tl_date_format(v->actual_date, ad);
    snprintf(ver, sizeof ver, "%lld", (long long)v->version);
    tl_ts_format(v->updated_at_us, ua);
    const char *row[] = {s->id,
                         v->visit_type_id,
                         s->study_id,
                         s->site_id,
                         v->name,
                         td,
                         v->required ? "t" : "f",
                         due,
                         ws,
                         we,
                         tl_visit_state_name(v->state),
                         done ? ad : NULL,
                         done ? (v->in_window ? "t" : "f") : NULL,
                         v->deviation_reason,
                         v->missed_reason,
                         v->notes,
                         ver,
                         ua,
                         v->last_event_id};
    return tl_cols_add_row(c, row, 19);
}

static tl_err_t write(tl_batch_t *b, const tl_map_t *dirty)
{
    tl_cols_t p, v;
    tl_err_t err = TL_OK;
    tl_cols_init(&p, 11);
    tl_cols_init(&v, 19);
    for (size_t i = 0; i < dirty->cap && !err; i++) {
        const entry_t *e = dirty->vals[i];
        if (!dirty->keys[i])
            continue;
        const tl_schedule_t *s = &e->s;
        char bd[TL_DATE_STRLEN], ver[24], ua[TL_TS_STRLEN], cd[TL_DATE_STRLEN], ed[TL_DATE_STRLEN];
        tl_date_format(s->baseline_date, bd);
        tl_date_format(s->consent_date, cd);
        tl_date_format(s->end_date, ed);
        snprintf(ver, sizeof ver, "%lld", (long long)s->version);
        tl_ts_format(s->updated_at_us, ua);
        const char *row[] = {s->id,
                             s->study_id,
                             s->site_id,
                             s->code,
                             s->status,
                             bd,
                             ver,
                             ua,
                             s->last_event_id,
                             s->has_consent ? cd : NULL,
                             s->end_date ? ed : NULL};
        err = tl_cols_add_row(&p, row, 11);
        for (size_t j = 0; j < s->nvisits && !err; j++)
            if (s->visits[j].version > e->loaded_version)
                err = add_visit(&v, s, &s->visits[j]);
    }
    if (!err && p.nrows)
        err = tl_batch_add_cols(b, sql_upsert_participants, &p);
    if (!err && v.nrows)
        err = tl_batch_add_cols(b, sql_upsert_visits, &v);
    tl_cols_cleanup(&p); /* a no-op for columns the batch took */
    tl_cols_cleanup(&v);
    return err;
}

tl_err_t tl_schedules_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    state_t st = {0};
    tl_map_t dirty;
    tl_map_init(&st.parts);
    tl_map_init(&dirty);
    tl_err_t err = load(pg, b, &st);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (e->type && !strcmp(e->topic, TL_TOPIC_PARTICIPANT))
            err = fold(b, &st, e, &dirty);
    }
    if (!err)
        err = write(b, &dirty);
    tl_map_cleanup(&dirty);
    state_cleanup(&st);
    return err;
}
