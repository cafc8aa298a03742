#include "forms_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forms.h"
#include "reasons.h"
#include "tl_date.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_topics.h"

typedef struct {
    tl_map_t templates; /* "<study>/<name>" -> tl_template_t, the latest version */
    tl_map_t parts;     /* participant id -> tl_stream_row_t */
    tl_map_t forms;     /* form id -> tl_form_t */
    /* the rows above, each kind freed together */
    tl_arena_t template_rows, part_rows, form_rows;
    tl_cols_t new_templates, history; /* append-only rows */
    tl_map_t dirty_parts, dirty_forms;
} state_t;

static void state_init(state_t *st)
{
    memset(st, 0, sizeof *st);
    tl_map_init(&st->templates);
    tl_map_init(&st->parts);
    tl_map_init(&st->forms);
    tl_map_init(&st->dirty_parts);
    tl_map_init(&st->dirty_forms);
    tl_cols_init(&st->new_templates, 8);
    tl_cols_init(&st->history, 11);
}

static void state_cleanup(state_t *st)
{
    for (size_t i = 0; i < st->form_rows.n; i++)
        tl_form_cleanup(st->form_rows.ptrs[i]);
    for (size_t i = 0; i < st->template_rows.n; i++)
        tl_template_cleanup(st->template_rows.ptrs[i]);
    tl_arena_cleanup(&st->template_rows);
    tl_arena_cleanup(&st->part_rows);
    tl_arena_cleanup(&st->form_rows);
    tl_map_cleanup(&st->templates);
    tl_map_cleanup(&st->parts);
    tl_map_cleanup(&st->forms);
    tl_map_cleanup(&st->dirty_parts);
    tl_map_cleanup(&st->dirty_forms);
    tl_cols_cleanup(&st->new_templates);
    tl_cols_cleanup(&st->history);
}

static tl_form_t *new_form(state_t *st)
{
    return tl_arena_calloc(&st->form_rows, sizeof(tl_form_t));
}

static tl_template_t *new_template(state_t *st)
{
    return tl_arena_calloc(&st->template_rows, sizeof(tl_template_t));
}

static void template_key(char *out, size_t size, const char *study, const char *name)
{
    snprintf(out, size, "%s/%s", study, name);
}

#define TEMPLATE_KEY_LEN (TL_UUID_STRLEN + TL_JSON_NAME_MAX + 2)

/* ---- loading ---- */

static const char *const sql_load_templates =
    "SELECT DISTINCT ON (t.study_id, t.name) t.id, t.study_id, t.name, t.version, t.title,"
    "       t.fields::text, (extract(epoch FROM t.published_at) * 1000000)::bigint,"
    "       t.last_event_id"
    "  FROM form_templates t JOIN unnest($1::uuid[], $2::text[]) k(study_id, name)"
    "    ON t.study_id = k.study_id AND t.name = k.name"
    " ORDER BY t.study_id, t.name, t.version DESC";
static const char *const sql_load_participants =
    "SELECT id, study_id, site_id, status, version,"
    "       (extract(epoch FROM updated_at) * 1000000)::bigint, last_event_id"
    "  FROM form_participants WHERE id = ANY($1::uuid[])";
/* the forms of participants whose form events the batch has */
static const char *const sql_load_forms =
    "SELECT id, participant_id, study_id, site_id, visit_type_id, template_id, template_name,"
    "       template_version, answers::text, status, revision, signed_by, signer_name,"
    "       signature_meaning, (extract(epoch FROM signed_at) * 1000000)::bigint,"
    "       submitted_by, (extract(epoch FROM submitted_at) * 1000000)::bigint,"
    "       (extract(epoch FROM updated_at) * 1000000)::bigint, version, last_event_id,"
    "       signer_printed_name, signature_content_sha256"
    "  FROM forms WHERE participant_id = ANY($1::uuid[])";

static tl_err_t load_template(state_t *st, const tl_pg_res_t *res, int r)
{
    tl_template_t *t = new_template(st);
    char key[TEMPLATE_KEY_LEN];
    if (!t)
        return TL_ERR_NOMEM;
    t->exists = true;
    tl_col_copy(t->id, sizeof t->id, tl_pg_get(res, r, 0));
    tl_col_copy(t->study_id, sizeof t->study_id, tl_pg_get(res, r, 1));
    tl_col_copy(t->name, sizeof t->name, tl_pg_get(res, r, 2));
    t->version = (int32_t)tl_pg_get_int(res, r, 3);
    tl_col_copy(t->title, sizeof t->title, tl_pg_get(res, r, 4));
    if (!(t->fields = json_loads(tl_pg_get(res, r, 5), 0, NULL)))
        return TL_ERR_NOMEM;
    t->published_at_us = tl_pg_get_int(res, r, 6);
    tl_col_copy(t->last_event_id, sizeof t->last_event_id, tl_pg_get(res, r, 7));
    template_key(key, sizeof key, t->study_id, t->name);
    return tl_map_put(&st->templates, key, t);
}

static tl_err_t load_participant(state_t *st, const tl_pg_res_t *res, int r)
{
    tl_stream_row_t *p = tl_arena_calloc(&st->part_rows, sizeof *p);
    if (!p)
        return TL_ERR_NOMEM;
    p->exists = true;
    tl_col_copy(p->id, sizeof p->id, tl_pg_get(res, r, 0));
    tl_col_copy(p->study_id, sizeof p->study_id, tl_pg_get(res, r, 1));
    tl_col_copy(p->site_id, sizeof p->site_id, tl_pg_get(res, r, 2));
    tl_col_copy(p->status, sizeof p->status, tl_pg_get(res, r, 3));
    p->version = tl_pg_get_int(res, r, 4);
    p->updated_at_us = tl_pg_get_int(res, r, 5);
    tl_col_copy(p->last_event_id, sizeof p->last_event_id, tl_pg_get(res, r, 6));
    return tl_map_put(&st->parts, p->id, p);
}

static tl_err_t load_form(state_t *st, const tl_pg_res_t *res, int r)
{
    tl_form_t *f = new_form(st);
    if (!f)
        return TL_ERR_NOMEM;
    f->exists = true;
    tl_col_copy(f->id, sizeof f->id, tl_pg_get(res, r, 0));
    tl_col_copy(f->participant_id, sizeof f->participant_id, tl_pg_get(res, r, 1));
    tl_col_copy(f->study_id, sizeof f->study_id, tl_pg_get(res, r, 2));
    tl_col_copy(f->site_id, sizeof f->site_id, tl_pg_get(res, r, 3));
    tl_col_copy(f->visit_type_id, sizeof f->visit_type_id, tl_pg_get(res, r, 4));
    tl_col_copy(f->template_id, sizeof f->template_id, tl_pg_get(res, r, 5));
    tl_col_copy(f->template_name, sizeof f->template_name, tl_pg_get(res, r, 6));
    f->template_version = (int32_t)tl_pg_get_int(res, r, 7);
    if (!(f->answers = json_loads(tl_pg_get(res, r, 8), 0, NULL)))
        return TL_ERR_NOMEM;
    int status = tl_form_status_parse(tl_pg_get(res, r, 9));
    f->status = status < 0 ? TL_FORM_SUBMITTED : (tl_form_status_t)status;
    f->revision = (int32_t)tl_pg_get_int(res, r, 10);
    tl_col_copy(f->signed_by, sizeof f->signed_by, tl_pg_get(res, r, 11));
    tl_col_copy(f->signer_name, sizeof f->signer_name, tl_pg_get(res, r, 12));
    tl_col_copy(f->meaning, sizeof f->meaning, tl_pg_get(res, r, 13));
    tl_col_copy(f->printed_name, sizeof f->printed_name, tl_pg_get(res, r, 20));
    tl_col_copy(f->content_sha256, sizeof f->content_sha256, tl_pg_get(res, r, 21));
    f->signed_at_us = tl_pg_get(res, r, 14) ? tl_pg_get_int(res, r, 14) : 0;
    tl_col_copy(f->submitted_by, sizeof f->submitted_by, tl_pg_get(res, r, 15));
    f->submitted_at_us = tl_pg_get_int(res, r, 16);
    f->updated_at_us = tl_pg_get_int(res, r, 17);
    f->version = tl_pg_get_int(res, r, 18);
    tl_col_copy(f->last_event_id, sizeof f->last_event_id, tl_pg_get(res, r, 19));
    return tl_map_put(&st->forms, f->id, f);
}

static tl_err_t load(tl_pg_t *pg, tl_batch_t *b, state_t *st)
{
    tl_cols_t tk, ids, fids;
    tl_cols_init(&tk, 2);
    tl_cols_init(&ids, 1);
    tl_cols_init(&fids, 1);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->topic, TL_TOPIC_PROTOCOL)) {
            if (!strcmp(e->type, "FormTemplatePublished") &&
                tl_uuid_valid(tl_event_str(e, "study_id")) && tl_event_str(e, "name")) {
                err = tl_cols_add(&tk, 0, tl_event_str(e, "study_id"));
                if (!err)
                    err = tl_cols_add(&tk, 1, tl_event_str(e, "name"));
                tl_cols_row_done(&tk);
            }
        } else if (tl_uuid_valid(tl_event_str(e, "participant_id"))) {
            err = tl_cols_add(&ids, 0, tl_event_str(e, "participant_id"));
            if (!err && tl_form_event(e->type))
                err = tl_cols_add(&fids, 0, tl_event_str(e, "participant_id"));
        }
    }
    if (!err)
        err = tl_cols_end(&tk);
    if (!err)
        err = tl_cols_end(&ids);
    if (!err)
        err = tl_cols_end(&fids);
    const char *const tp[] = {tk.col[0].data, tk.col[1].data};
    const char *const pp[] = {ids.col[0].data};
    const char *const fp[] = {fids.col[0].data};
    tl_pg_stmt_t q[3] = {{sql_load_templates, 2, tp, NULL, true},
                         {sql_load_participants, 1, pp, NULL, true},
                         {sql_load_forms, 1, fp, NULL, true}};
    if (!err)
        err = tl_pg_pipeline(pg, q, 3);
    for (int r = 0; !err && r < tl_pg_nrows(q[0].res); r++)
        err = load_template(st, q[0].res, r);
    for (int r = 0; !err && r < tl_pg_nrows(q[1].res); r++)
        err = load_participant(st, q[1].res, r);
    for (int r = 0; !err && r < tl_pg_nrows(q[2].res); r++)
        err = load_form(st, q[2].res, r);
    for (int i = 0; i < 3; i++)
        tl_pg_res_free(q[i].res);
    tl_cols_cleanup(&tk);
    tl_cols_cleanup(&ids);
    tl_cols_cleanup(&fids);
    return err;
}

/* ---- folding ---- */

static tl_err_t fold_template(tl_batch_t *b, state_t *st, const tl_event_t *e)
{
    const char *study = tl_event_str(e, "study_id"), *name = tl_event_str(e, "name");
    tl_uuid_t su;
    char key[TEMPLATE_KEY_LEN];
    if (tl_uuid_parse(study, &su) || !name || !tl_json_name_ok(name))
        return tl_batch_reject(b, e, NULL, "invalid_event");
    template_key(key, sizeof key, su.s, name);
    tl_template_t *t = tl_map_get(&st->templates, key);
    if (!t) {
        if (!(t = new_template(st)))
            return TL_ERR_NOMEM;
        tl_err_t err = tl_map_put(&st->templates, key, t);
        if (err)
            return err;
    }
    const char *why = tl_template_apply(t, e->data);
    if (why && !strcmp(why, "out_of_memory"))
        return TL_ERR_NOMEM;
    if (why)
        return tl_batch_reject(b, e, tl_event_str(e, "template_id"), why);
    char ver[16], ts[TL_TS_STRLEN];
    char *fields = json_dumps(t->fields, JSON_COMPACT | JSON_PRESERVE_ORDER);
    snprintf(ver, sizeof ver, "%d", t->version);
    tl_ts_format(t->published_at_us, ts);
    const char *row[] = {t->id,  t->study_id, t->name,         ver, t->title[0] ? t->title : NULL,
                         fields, ts,          t->last_event_id};
    tl_err_t err = fields ? tl_cols_add_row(&st->new_templates, row, 8) : TL_ERR_NOMEM;
    free(fields);
    return err;
}

/* The form a submission would duplicate: the same participant, visit and
 * template (the gateway lets a visit have one form of a template). */
static bool duplicate(const state_t *st, const tl_form_t *self, const json_t *ev)
{
    for (size_t i = 0; i < st->form_rows.n; i++) {
        const tl_form_t *f = st->form_rows.ptrs[i];
        if (f != self && tl_form_same_slot(f, ev))
            return true;
    }
    return false;
}

static tl_err_t add_history(state_t *st, const tl_event_t *e, const tl_form_t *f,
                            const json_t *history)
{
    char rev[16], ts[TL_TS_STRLEN];
    size_t i;
    const json_t *h;
    tl_err_t err = TL_OK;
    snprintf(rev, sizeof rev, "%d", f->revision);
    tl_ts_format(f->updated_at_us, ts);
    json_array_foreach(history, i, h)
    {
        char *before = json_dumps(json_object_get(h, "before"), JSON_ENCODE_ANY | JSON_COMPACT);
        char *after = json_dumps(json_object_get(h, "after"), JSON_ENCODE_ANY | JSON_COMPACT);
        const char *row[] = {f->id,
                             rev,
                             json_string_value(json_object_get(h, "field")),
                             before,
                             after,
                             e->type,
                             tl_event_str(e, "actor_id"),
                             tl_event_str(e, "actor_role"),
                             tl_event_str(e, "reason"),
                             ts,
                             f->last_event_id};
        err = before && after ? tl_cols_add_row(&st->history, row, 11) : TL_ERR_NOMEM;
        free(before);
        free(after);
        if (err)
            break;
    }
    return err;
}

static tl_err_t fold_form(state_t *st, const tl_event_t *e, tl_stream_row_t *p)
{
    tl_uuid_t fid;
    if (tl_uuid_parse(tl_event_str(e, "form_id"), &fid))
        return TL_OK; /* the stream checked it; nothing to do */
    tl_form_t *f = tl_map_get(&st->forms, fid.s), none = {0};
    json_t *history = json_array();
    if (!history)
        return TL_ERR_NOMEM;
    tl_form_t *target = f ? f : &none;
    const char *why = NULL;
    if (!strcmp(e->type, "FormSubmitted") && duplicate(st, f, e->data))
        why = TL_RN(form_exists);
    else
        why = tl_form_apply(target, e->type, e->data, history);
    tl_err_t err = TL_OK;
    if (why && !strcmp(why, "out_of_memory")) {
        err = TL_ERR_NOMEM;
    } else if (why) {
        /* gateway commands never get here (it checked the form at this
         * version); an event from elsewhere did, and the log keeps it */
        tl_log_warn("form_event_skipped",
                    json_pack("{s:s, s:s, s:i, s:I, s:s}", "event_type", e->type, "topic", e->topic,
                              "partition", e->partition, "offset", (json_int_t)e->offset, "reason",
                              why));
    } else {
        if (!f) {
            if (!(f = new_form(st))) {
                tl_form_cleanup(&none);
                json_decref(history);
                return TL_ERR_NOMEM;
            }
            *f = none;
            /* the participant's site, as enrolment set it */
            memcpy(f->site_id, p->site_id, sizeof f->site_id);
            err = tl_map_put(&st->forms, f->id, f);
        }
        if (!err)
            err = add_history(st, e, f, history);
        if (!err)
            err = tl_map_put(&st->dirty_forms, f->id, f);
    }
    json_decref(history);
    return err;
}

static tl_err_t fold_stream(tl_batch_t *b, state_t *st, const tl_event_t *e)
{
    tl_uuid_t u;
    if (tl_uuid_parse(tl_event_str(e, "participant_id"), &u))
        return tl_batch_reject(b, e, NULL, "invalid_event");
    tl_stream_row_t *p = tl_map_get(&st->parts, u.s), none = {0};
    tl_stream_row_t next = p ? *p : none;
    const char *why = tl_stream_row_apply(&next, e->type, e->data);
    if (why)
        return tl_batch_reject(b, e, u.s, why);
    if (!p) {
        if (!(p = tl_arena_calloc(&st->part_rows, sizeof *p)))
            return TL_ERR_NOMEM;
        *p = next;
        tl_err_t err = tl_map_put(&st->parts, p->id, p);
        if (err)
            return err;
    }
    *p = next;
    tl_err_t err = tl_map_put(&st->dirty_parts, p->id, p);
    if (!err && tl_form_event(e->type))
        err = fold_form(st, e, p);
    return err;
}

/* ---- writing ---- */

static const char *const sql_insert_templates =
    "INSERT INTO form_templates (id, study_id, name, version, title, fields, published_at,"
    "   last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[],"
    "   $6::jsonb[], $7::timestamptz[], $8::uuid[])";
static const char *const sql_upsert_participants =
    "INSERT INTO form_participants (id, study_id, site_id, status, version, updated_at,"
    "   last_event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[],"
    "   $6::timestamptz[], $7::uuid[])"
    " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version,"
    "   updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id";
static const char *const sql_upsert_forms =
    "INSERT INTO forms (id, participant_id, study_id, site_id, visit_type_id, template_id,"
    "   template_name, template_version, answers, status, revision, signed_by, signer_name,"
    "   signature_meaning, signed_at, submitted_by, submitted_at, updated_at, version,"
    "   last_event_id, signer_printed_name, signature_content_sha256)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[],"
    "   $6::uuid[], $7::text[], $8::int[], $9::jsonb[], $10::text[], $11::int[], $12::uuid[],"
    "   $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::timestamptz[],"
    "   $18::timestamptz[], $19::bigint[], $20::uuid[], $21::text[], $22::text[])"
    " ON CONFLICT (id) DO UPDATE SET answers = EXCLUDED.answers, status = EXCLUDED.status,"
    "   template_version = EXCLUDED.template_version,"
    "   revision = EXCLUDED.revision, signed_by = EXCLUDED.signed_by,"
    "   signer_name = EXCLUDED.signer_name, signature_meaning = EXCLUDED.signature_meaning,"
    "   signed_at = EXCLUDED.signed_at, updated_at = EXCLUDED.updated_at,"
    "   signer_printed_name = EXCLUDED.signer_printed_name,"
    "   signature_content_sha256 = EXCLUDED.signature_content_sha256,"
    "   version = EXCLUDED.version, last_event_id = EXCLUDED.last_event_id";
static const char *const sql_insert_history =
    "INSERT INTO form_field_history (form_id, revision, field, before, after, event_type,"
    "   actor_id, actor_role, reason, recorded_at, event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::jsonb[], $5::jsonb[],"
    "   $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::uuid[])";

static tl_err_t add_form(tl_cols_t *c, const tl_form_t *f)
{
    char tv[16], rev[16], sa[TL_TS_STRLEN], sub[TL_TS_STRLEN], ua[TL_TS_STRLEN], ver[24];
    bool is_signed = f->status == TL_FORM_SIGNED;
    char *answers = json_dumps(f->answers, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!answers)
        return TL_ERR_NOMEM;
    snprintf(tv, sizeof tv, "%d", f->template_version);
    snprintf(rev, sizeof rev, "%d", f->revision);
    snprintf(ver, sizeof ver, "%lld", (long long)f->version);
    tl_ts_format(f->signed_at_us, sa);
    tl_ts_format(f->submitted_at_us, sub);
    tl_ts_format(f->updated_at_us, ua);
    const char *row[] = {f->id,
                         f->participant_id,
                         f->study_id,
                         f->site_id,
                         f->visit_type_id,
                         f->template_id,
                         f->template_name,
                         tv,
                         answers,
                         tl_form_status_name(f->status),
                         rev,
                         is_signed ? f->signed_by : NULL,
                         is_signed ? f->signer_name : NULL,
                         is_signed ? f->meaning : NULL,
                         is_signed ? sa : NULL,
                         f->submitted_by,
                         sub,
                         ua,
                         ver,
                         f->last_event_id,
                         is_signed && f->printed_name[0] ? f->printed_name : NULL,
                         is_signed && f->content_sha256[0] ? f->content_sha256 : NULL};
    tl_err_t err = tl_cols_add_row(c, row, 22);
    free(answers);
    return err;
}

static tl_err_t write(tl_batch_t *b, state_t *st)
{
    tl_cols_t p, f;
    tl_err_t err = TL_OK;
    tl_cols_init(&p, 7);
    tl_cols_init(&f, 22);
    for (size_t i = 0; i < st->dirty_parts.cap && !err; i++) {
        const tl_stream_row_t *r = st->dirty_parts.vals[i];
        if (!st->dirty_parts.keys[i])
            continue;
        char ver[24], ua[TL_TS_STRLEN];
        snprintf(ver, sizeof ver, "%lld", (long long)r->version);
        tl_ts_format(r->updated_at_us, ua);
        const char *row[] = {r->id, r->study_id, r->site_id, r->status, ver, ua, r->last_event_id};
        err = tl_cols_add_row(&p, row, 7);
    }
    for (size_t i = 0; i < st->dirty_forms.cap && !err; i++)
        if (st->dirty_forms.keys[i])
            err = add_form(&f, st->dirty_forms.vals[i]);
    if (!err && st->new_templates.nrows)
        err = tl_batch_add_cols(b, sql_insert_templates, &st->new_templates);
    if (!err && p.nrows)
        err = tl_batch_add_cols(b, sql_upsert_participants, &p);
    if (!err && f.nrows)
        err = tl_batch_add_cols(b, sql_upsert_forms, &f);
    if (!err && st->history.nrows)
        err = tl_batch_add_cols(b, sql_insert_history, &st->history);
    tl_cols_cleanup(&p); /* a no-op for columns the batch took */
    tl_cols_cleanup(&f);
    return err;
}

tl_err_t tl_forms_store_apply(tl_pg_t *pg, tl_batch_t *b)
{
    state_t st;
    state_init(&st);
    tl_err_t err = load(pg, b, &st);
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT))
            err = fold_stream(b, &st, e);
        else if (!strcmp(e->topic, TL_TOPIC_PROTOCOL) && !strcmp(e->type, "FormTemplatePublished"))
            err = fold_template(b, &st, e);
    }
    if (!err)
        err = write(b, &st);
    state_cleanup(&st);
    return err;
}
