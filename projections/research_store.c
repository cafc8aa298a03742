#include "research_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tl_avro.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_secret.h"
#include "tl_topics.h"
#include "tl_uuid.h"

struct tl_research_store {
    tl_research_cfg_t cfg;
    tl_producer_t *producer;
    size_t unflushed; /* records produced since the last flush */
};

tl_err_t tl_research_store_new(const tl_research_cfg_t *cfg, tl_producer_t *producer,
                               tl_research_store_t **out)
{
    tl_research_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return TL_ERR_NOMEM;
    s->cfg = *cfg;
    s->producer = producer;
    *out = s;
    return TL_OK;
}

void tl_research_store_destroy(tl_research_store_t *s)
{
    if (s)
        tl_secret_wipe(s->cfg.key, sizeof s->cfg.key);
    free(s);
}

tl_err_t tl_research_key_load(const char *path, tl_research_cfg_t *cfg)
{
    const char *why = NULL;
    struct stat st;
    ssize_t n = -1;
    int fd = path && *path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        why = path && *path ? "cannot_open" : "not_set";
    else if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        why = "not_a_file";
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        why = "readable_by_others"; /* chmod 600: the key undoes the pseudonyms */
    else if ((n = read(fd, cfg->key, sizeof cfg->key)) < 0)
        why = "cannot_read";
    else if (n == (ssize_t)sizeof cfg->key)
        why = "too_long";
    if (fd >= 0)
        close(fd);
    while (!why && n > 0 && strchr(" \t\r\n", cfg->key[n - 1]))
        n--;
    if (!why && n < TL_RESEARCH_KEY_MIN)
        why = "too_short";
    if (why) {
        tl_secret_wipe(cfg->key, sizeof cfg->key);
        tl_log_error("research_key_invalid",
                     json_pack("{s:s, s:s, s:i}", "file", path ? path : "", "reason", why,
                               "min_bytes", TL_RESEARCH_KEY_MIN));
        return TL_ERR_CONFIG;
    }
    cfg->key_len = (size_t)n;
    return TL_OK;
}

tl_err_t tl_research_cfg_load(const char *key_file, const char *dates, tl_research_cfg_t *cfg)
{
    if (!tl_research_dates_parse(dates, &cfg->dates)) {
        tl_log_error("research_dates_invalid", json_pack("{s:s}", "expected", "study_days|shifted"));
        return TL_ERR_CONFIG;
    }
    return tl_research_key_load(key_file, cfg);
}

/* ---- state ---- */

typedef struct form form_t;

typedef struct {
    tl_schedule_t s;
    tl_research_person_t person;
    form_t **forms; /* every form of the participant: a visit has one per template */
    size_t nforms, cap;
    /* folding for a release: the ObservationRecorded events the stream
     * took, with the schedule's version and baseline as they were then;
     * [{"ev", "version"}], owned, or NULL */
    json_t *observations;
} part_t;

struct form {
    tl_form_t f;
    json_t *pending; /* rows held back for want of the template version, or NULL */
};

/* A record to publish: its datum is datums[off, off + len) of the outbox. */
typedef struct {
    const char *type; /* static */
    char key[TL_PSEUDONYM_STRLEN];
    char ce_id[sizeof(tl_uuid_t)];
    size_t off, len;
} record_t;

/* What the records of one batch may take: they are bounded by what the
 * batch's events can make (a form record is smaller than its event), so
 * this is only a backstop. */
#define OUTBOX_MAX_BYTES ((size_t)1 << 30)

/* The batch's records in the order they happened. */
typedef struct {
    record_t *v;
    size_t n, cap;
    tl_buf_t datums;
} outbox_t;

typedef struct {
    const tl_research_cfg_t *cfg;
    tl_map_t parts;     /* participant id -> part_t */
    tl_map_t forms;     /* form id -> form_t */
    tl_map_t templates; /* "<template id>/<version>" -> fields (json_t, owned) */
    tl_arena_t rows;    /* every part_t and form_t */
    tl_map_t dirty_parts, dirty_forms;
    tl_cols_t new_templates;
    bool publish; /* false when folding for a release: the final rows only */
    outbox_t out;
} state_t;

static void state_init(state_t *st, const tl_research_cfg_t *cfg)
{
    memset(st, 0, sizeof *st);
    st->cfg = cfg;
    tl_map_init(&st->parts);
    tl_map_init(&st->forms);
    tl_map_init(&st->templates);
    tl_map_init(&st->dirty_parts);
    tl_map_init(&st->dirty_forms);
    tl_cols_init(&st->new_templates, 3);
    st->publish = true;
    tl_buf_init(&st->out.datums, OUTBOX_MAX_BYTES);
}

static void state_cleanup(state_t *st)
{
    for (size_t i = 0; i < st->parts.cap; i++)
        if (st->parts.keys[i]) {
            part_t *p = st->parts.vals[i];
            tl_schedule_cleanup(&p->s);
            free(p->forms);
            json_decref(p->observations);
        }
    for (size_t i = 0; i < st->forms.cap; i++)
        if (st->forms.keys[i]) {
            form_t *f = st->forms.vals[i];
            tl_form_cleanup(&f->f);
            json_decref(f->pending);
        }
    for (size_t i = 0; i < st->templates.cap; i++)
        if (st->templates.keys[i])
            json_decref(st->templates.vals[i]);
    tl_arena_cleanup(&st->rows);
    tl_map_cleanup(&st->parts);
    tl_map_cleanup(&st->forms);
    tl_map_cleanup(&st->templates);
    tl_map_cleanup(&st->dirty_parts);
    tl_map_cleanup(&st->dirty_forms);
    tl_cols_cleanup(&st->new_templates);
    free(st->out.v);
    tl_buf_cleanup(&st->out.datums);
}

static void template_key(char out[64], const char *template_id, long version)
{
    snprintf(out, 64, "%s/%ld", template_id, version);
}

static const json_t *template_fields(const state_t *st, const tl_form_t *f)
{
    char key[64];
    template_key(key, f->template_id, f->template_version);
    return tl_map_get(&st->templates, key);
}

static tl_err_t attach_form(part_t *p, form_t *f)
{
    if (p->nforms == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        form_t **n = realloc(p->forms, cap * sizeof *n);
        if (!n)
            return TL_ERR_NOMEM;
        p->forms = n;
        p->cap = cap;
    }
    p->forms[p->nforms++] = f;
    return TL_OK;
}

/* ---- the structs as the state columns keep them ---- */

/* What the folds read back: ids, dates, states and versions; never the
 * participant code or free text, which no research record carries. The
 * _from_json functions fill zeroed structs: a member the state lacks stays
 * empty (tl_ev_copy_str leaves dst alone). */
static json_t *part_json(const part_t *p)
{
    json_t *visits = json_array();
    for (size_t i = 0; visits && i < p->s.nvisits; i++) {
        const tl_visit_t *v = &p->s.visits[i];
        json_array_append_new(
            visits, json_pack("{s:s, s:s, s:i, s:b, s:i, s:i, s:i, s:i, s:i, s:b, s:I}", "id",
                              v->visit_type_id, "name", v->name, "target_day", (int)v->target_day,
                              "required", v->required, "due", (int)v->due, "window_start",
                              (int)v->window_start, "window_end", (int)v->window_end, "state",
                              (int)v->state, "actual_date", (int)v->actual_date, "in_window",
                              v->in_window, "version", (json_int_t)v->version));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:o, s:i, s:s, s:I}", "id", p->s.id,
                     "study_id", p->s.study_id, "site_id", p->s.site_id, "status", p->s.status,
                     "baseline_date", (int)p->s.baseline_date, "version", (json_int_t)p->s.version,
                     "visits", visits, "birth_year", (int)p->person.birth_year, "sex",
                     p->person.sex, "row_version", (json_int_t)p->person.row_version);
}

static tl_err_t part_from_json(part_t *p, const json_t *j)
{
    tl_schedule_t *s = &p->s;
    s->exists = true;
    (void)tl_ev_copy_str(s->id, sizeof s->id, j, "id");
    (void)tl_ev_copy_str(s->study_id, sizeof s->study_id, j, "study_id");
    (void)tl_ev_copy_str(s->site_id, sizeof s->site_id, j, "site_id");
    (void)tl_ev_copy_str(s->status, sizeof s->status, j, "status");
    s->baseline_date = (int32_t)tl_ev_int(j, "baseline_date");
    s->version = tl_ev_int(j, "version");
    p->person.birth_year = (int32_t)tl_ev_int(j, "birth_year");
    (void)tl_ev_copy_str(p->person.sex, sizeof p->person.sex, j, "sex");
    p->person.row_version = tl_ev_int(j, "row_version");
    const json_t *visits = json_object_get(j, "visits");
    size_t n = json_array_size(visits);
    if (n && !(s->visits = calloc(n, sizeof *s->visits)))
        return TL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *vj = json_array_get(visits, i);
        tl_visit_t *v = &s->visits[s->nvisits++];
        (void)tl_ev_copy_str(v->visit_type_id, sizeof v->visit_type_id, vj, "id");
        (void)tl_ev_copy_str(v->name, sizeof v->name, vj, "name");
        v->target_day = (int32_t)tl_ev_int(vj, "target_day");
        v->required = json_is_true(json_object_get(vj, "required"));
        v->due = (int32_t)tl_ev_int(vj, "due");
        v->window_start = (int32_t)tl_ev_int(vj, "window_start");
        v->window_end = (int32_t)tl_ev_int(vj, "window_end");
        int state = (int)tl_ev_int(vj, "state");
        v->state = state >= TL_VISIT_SCHEDULED && state <= TL_VISIT_CANCELLED
                       ? (tl_visit_state_t)state
                       : TL_VISIT_SCHEDULED;
        v->actual_date = (int32_t)tl_ev_int(vj, "actual_date");
        v->in_window = json_is_true(json_object_get(vj, "in_window"));
        v->version = tl_ev_int(vj, "version");
    }
    return TL_OK;
}

static json_t *form_json(const tl_form_t *f)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O, s:i, s:i, s:I}", "id", f->id,
                     "participant_id", f->participant_id, "study_id", f->study_id, "visit_type_id",
                     f->visit_type_id, "template_id", f->template_id, "template_name",
                     f->template_name, "template_version", (int)f->template_version, "answers",
                     f->answers, "status", (int)f->status, "revision", (int)f->revision, "version",
                     (json_int_t)f->version);
}

static tl_err_t form_from_json(tl_form_t *f, const json_t *j)
{
    f->exists = true;
    (void)tl_ev_copy_str(f->id, sizeof f->id, j, "id");
    (void)tl_ev_copy_str(f->participant_id, sizeof f->participant_id, j, "participant_id");
    (void)tl_ev_copy_str(f->study_id, sizeof f->study_id, j, "study_id");
    (void)tl_ev_copy_str(f->visit_type_id, sizeof f->visit_type_id, j, "visit_type_id");
    (void)tl_ev_copy_str(f->template_id, sizeof f->template_id, j, "template_id");
    (void)tl_ev_copy_str(f->template_name, sizeof f->template_name, j, "template_name");
    f->template_version = (int32_t)tl_ev_int(j, "template_version");
    int status = (int)tl_ev_int(j, "status");
    f->status = status >= TL_FORM_SUBMITTED && status <= TL_FORM_SIGNED ? (tl_form_status_t)status
                                                                        : TL_FORM_SUBMITTED;
    f->revision = (int32_t)tl_ev_int(j, "revision");
    f->version = tl_ev_int(j, "version");
    const json_t *a = json_object_get(j, "answers");
    f->answers = json_is_object(a) ? json_deep_copy(a) : json_object();
    return f->answers ? TL_OK : TL_ERR_NOMEM;
}

/* ---- loading ---- */

static const char *const sql_load_parts =
    "SELECT state FROM research_participants WHERE participant_id = ANY($1::uuid[])";
static const char *const sql_load_forms =
    "SELECT participant_id, state, pending_rows FROM ("
    "  SELECT participant_id, state - 'pending' AS state, state -> 'pending' AS pending_rows"
    "    FROM research_forms"
    "   WHERE participant_id = ANY($1::uuid[]) OR (pending AND template_id = ANY($2::uuid[]))"
    ") f ORDER BY state ->> 'id'";
static const char *const sql_load_templates =
    "SELECT template_id, version, fields FROM research_templates"
    " WHERE template_id = ANY($1::uuid[])";

static json_t *parse_col(const char *v)
{
    return v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
}

static tl_err_t load_part(state_t *st, const char *text)
{
    json_t *j = parse_col(text);
    part_t *p = tl_arena_calloc(&st->rows, sizeof *p);
    tl_err_t err = j && p ? part_from_json(p, j) : TL_ERR_NOMEM;
    if (!err && tl_map_get(&st->parts, p->s.id))
        err = TL_ERR_INTERNAL;
    if (!err)
        err = tl_map_put(&st->parts, p->s.id, p);
    else if (p)
        tl_schedule_cleanup(&p->s);
    json_decref(j);
    return err;
}

static tl_err_t load_form(state_t *st, const char *pid, const char *text, const char *pending)
{
    json_t *j = parse_col(text);
    form_t *f = tl_arena_calloc(&st->rows, sizeof *f);
    tl_err_t err = j && f ? form_from_json(&f->f, j) : TL_ERR_NOMEM;
    if (!err && pending && !(f->pending = parse_col(pending)))
        err = TL_ERR_NOMEM;
    if (!err)
        err = tl_map_put(&st->forms, f->f.id, f);
    else if (f)
        tl_form_cleanup(&f->f), json_decref(f->pending);
    part_t *p = err ? NULL : tl_map_get(&st->parts, pid);
    if (p)
        err = attach_form(p, f);
    json_decref(j);
    return err;
}

/* Every version of the templates in ids (the batch's submissions') and of
 * those the loaded forms use. */
static tl_err_t load_templates(tl_pg_t *pg, state_t *st, tl_cols_t *ids)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < st->forms.cap && !err; i++)
        if (st->forms.keys[i])
            err = tl_cols_add(ids, 0, ((form_t *)st->forms.vals[i])->f.template_id);
    tl_pg_res_t *res = NULL;
    if (!err)
        err = tl_cols_exec(pg, sql_load_templates, ids, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        char key[64];
        template_key(key, tl_pg_get(res, r, 0), (long)tl_pg_get_int(res, r, 1));
        json_t *fields = parse_col(tl_pg_get(res, r, 2));
        if (!fields)
            err = TL_ERR_NOMEM;
        else if ((err = tl_map_put(&st->templates, key, fields)))
            json_decref(fields);
    }
    tl_pg_res_free(res);
    return err;
}

/* The participants the batch names with their forms, the forms waiting for
 * a template version the batch brings, and the versions of every template
 * those forms and the batch's submissions use. */
static tl_err_t load(tl_pg_t *pg, tl_batch_t *b, state_t *st)
{
    tl_cols_t ids, tids;
    tl_cols_init(&ids, 2);
    tl_cols_init(&tids, 1);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT) &&
            tl_uuid_valid(tl_event_str(e, "participant_id")))
            err = tl_cols_add(&ids, 0, tl_event_str(e, "participant_id"));
        else if (!strcmp(e->type, "FormTemplatePublished") &&
                 tl_uuid_valid(tl_event_str(e, "template_id")))
            err = tl_cols_add(&ids, 1, tl_event_str(e, "template_id"));
        if (!err && !strcmp(e->type, "FormSubmitted") &&
            tl_uuid_valid(tl_event_str(e, "template_id")))
            err = tl_cols_add(&tids, 0, tl_event_str(e, "template_id"));
    }
    if (!err)
        err = tl_cols_end(&ids);
    const char *const params[] = {ids.col[0].data, ids.col[1].data};
    tl_pg_stmt_t q[2] = {{sql_load_parts, 1, params, NULL, true},
                         {sql_load_forms, 2, params, NULL, true}};
    if (!err)
        err = tl_pg_pipeline(pg, q, 2);
    for (int r = 0; !err && r < tl_pg_nrows(q[0].res); r++)
        err = load_part(st, tl_pg_get(q[0].res, r, 0));
    for (int r = 0; !err && r < tl_pg_nrows(q[1].res); r++)
        err = load_form(st, tl_pg_get(q[1].res, r, 0), tl_pg_get(q[1].res, r, 1),
                        tl_pg_get(q[1].res, r, 2));
    tl_pg_res_free(q[0].res);
    tl_pg_res_free(q[1].res);
    if (!err)
        err = load_templates(pg, st, &tids);
    tl_cols_cleanup(&ids);
    tl_cols_cleanup(&tids);
    return err;
}

/* ---- publishing ---- */

/* Queues the record its builder just wrote to the outbox's datums after
 * mark (built: the builder's result). */
static tl_err_t emit(state_t *st, const char *type, const char *entity, const char *event_id,
                     const char *participant_id, size_t mark, tl_err_t built)
{
    static const tl_uuid_t ns = {.s = "5d1f07b2-8a43-5f0e-9c51-7e2a7c4b9a10"};
    outbox_t *o = &st->out;
    tl_err_t err = built;
    if (!err && o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 1024;
        record_t *v = realloc(o->v, cap * sizeof *v);
        if (v)
            o->v = v, o->cap = cap;
        else
            err = TL_ERR_NOMEM;
    }
    if (!err) {
        record_t *r = &o->v[o->n];
        char name[160];
        tl_uuid_t id;
        /* the same event and row make the same message id, on every replay */
        int n = snprintf(name, sizeof name, "%s/%s/%s", event_id, type, entity);
        err = tl_research_pseudonym(st->cfg, participant_id, r->key) && n > 0 &&
                      (size_t)n < sizeof name
                  ? tl_uuid_v5(&ns, name, (size_t)n, &id)
                  : TL_ERR_INVALID;
        if (!err) {
            r->type = type;
            memcpy(r->ce_id, id.s, sizeof r->ce_id);
            r->off = mark;
            r->len = o->datums.len - mark;
        }
    }
    if (err)
        tl_buf_truncate(&o->datums, mark);
    else
        o->n++;
    return err;
}

/* The rows a form held back go out, each as it was when it happened. */
static tl_err_t release_form(state_t *st, form_t *f, const json_t *fields)
{
    size_t k;
    const json_t *row;
    tl_err_t err = TL_OK;
    json_array_foreach(f->pending, k, row)
    {
        tl_form_t snap = {0};
        size_t mark = st->out.datums.len;
        err = form_from_json(&snap, json_object_get(row, "form"));
        if (!err)
            err = emit(st, "ResearchForm", snap.id,
                       json_string_value(json_object_get(row, "event_id")), snap.participant_id,
                       mark,
                       tl_research_form(st->cfg, &snap,
                                        json_string_value(json_object_get(row, "site_id")),
                                        (int32_t)tl_ev_int(row, "baseline_date"), fields,
                                        &st->out.datums));
        tl_form_cleanup(&snap);
        if (err)
            return err;
    }
    json_decref(f->pending);
    f->pending = NULL;
    return tl_map_put(&st->dirty_forms, f->f.id, f);
}

static tl_err_t emit_form(state_t *st, form_t *f, const part_t *p, const char *event_id)
{
    if (!st->publish)
        return TL_OK; /* folding for a release: the final rows only */
    const json_t *fields = template_fields(st, &f->f);
    tl_err_t err = fields && f->pending ? release_form(st, f, fields) : TL_OK;
    size_t mark = st->out.datums.len;
    if (fields)
        return err ? err
                   : emit(st, "ResearchForm", f->f.id, event_id, f->f.participant_id, mark,
                          tl_research_form(st->cfg, &f->f, p->s.site_id, p->s.baseline_date,
                                           fields, &st->out.datums));
    /* held back, with what the row depends on as it is now */
    if (!f->pending && !(f->pending = json_array()))
        return TL_ERR_NOMEM;
    if (json_array_size(f->pending) >= TL_RESEARCH_PENDING_MAX)
        json_array_remove(f->pending, 0);
    json_t *row =
        json_pack("{s:s, s:s, s:i, s:o}", "event_id", event_id ? event_id : "", "site_id",
                  p->s.site_id, "baseline_date", (int)p->s.baseline_date, "form", form_json(&f->f));
    return row && !json_array_append_new(f->pending, row) ? TL_OK : TL_ERR_NOMEM;
}

/* A template version arrived: the forms that waited for it go out. */
static tl_err_t release_pending(state_t *st, const char *template_id, long version,
                                const json_t *fields)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < st->forms.cap && !err; i++) {
        form_t *f = st->forms.keys[i] ? st->forms.vals[i] : NULL;
        if (f && f->pending && !strcmp(f->f.template_id, template_id) &&
            f->f.template_version == version)
            err = release_form(st, f, fields);
    }
    return err;
}

/* ---- folding ---- */

static tl_err_t fold_template(state_t *st, const tl_event_t *e)
{
    tl_uuid_t t;
    json_int_t version = tl_ev_int(e->data, "version");
    if (tl_uuid_parse(tl_event_str(e, "template_id"), &t) || version < 1 ||
        version > TL_TEMPLATE_VERSIONS_MAX)
        return TL_OK; /* the forms projection records why; no form can use it */
    char key[64];
    template_key(key, t.s, (long)version);
    if (tl_map_get(&st->templates, key))
        return TL_OK; /* a version is written once; the first one stands */
    json_t *errors = json_array();
    json_t *fields =
        errors ? tl_template_fields_check(json_object_get(e->data, "fields"), errors) : NULL;
    json_decref(errors);
    if (!fields)
        return TL_OK;
    char ver[16], *text = json_dumps(fields, JSON_COMPACT);
    snprintf(ver, sizeof ver, "%ld", (long)version);
    const char *row[] = {t.s, ver, text};
    tl_err_t err = text ? tl_map_put(&st->templates, key, fields) : TL_ERR_NOMEM;
    if (err)
        json_decref(fields);
    if (!err)
        err = tl_cols_add_row(&st->new_templates, row, 3);
    free(text);
    if (!err)
        err = release_pending(st, t.s, (long)version, fields);
    return err;
}

static bool duplicate(const part_t *p, const form_t *self, const json_t *ev)
{
    for (size_t i = 0; i < p->nforms; i++)
        if (p->forms[i] != self && tl_form_same_slot(&p->forms[i]->f, ev))
            return true;
    return false;
}

static tl_err_t fold_form(state_t *st, const tl_event_t *e, part_t *p)
{
    tl_uuid_t fid;
    if (tl_uuid_parse(tl_event_str(e, "form_id"), &fid))
        return TL_OK;
    form_t *f = tl_map_get(&st->forms, fid.s);
    tl_form_t none = {0};
    json_t *history = json_array();
    if (!history)
        return TL_ERR_NOMEM;
    /* the forms projection's decisions, so both keep the same forms */
    const char *why = !strcmp(e->type, "FormSubmitted") && duplicate(p, f, e->data)
                          ? "form_exists"
                          : tl_form_apply(f ? &f->f : &none, e->type, e->data, history);
    json_decref(history);
    tl_err_t err = TL_OK;
    if (why && !strcmp(why, "out_of_memory"))
        err = TL_ERR_NOMEM;
    if (why)
        return err; /* the forms projection logs the skip */
    if (!f) {
        if (!(f = tl_arena_calloc(&st->rows, sizeof *f))) {
            tl_form_cleanup(&none);
            return TL_ERR_NOMEM;
        }
        f->f = none;
        if ((err = tl_map_put(&st->forms, f->f.id, f)) || (err = attach_form(p, f)))
            return err;
    }
    err = tl_map_put(&st->dirty_forms, f->f.id, f);
    return err ? err : emit_form(st, f, p, tl_event_str(e, "event_id"));
}

/* An observation is published as it is taken; a release keeps it for
 * the participant's rows at the end. Its study day counts from the
 * baseline of the moment it was taken: a later baseline change does not
 * move it (it is not re-published either), so the topic and a release
 * say the same. */
static tl_err_t fold_observation(state_t *st, part_t *p, const tl_event_t *e)
{
    char entity[24];
    snprintf(entity, sizeof entity, "%lld", (long long)p->s.version);
    if (st->publish) {
        size_t mark = st->out.datums.len;
        return emit(st, "ResearchObservation", entity, tl_event_str(e, "event_id"), p->s.id, mark,
                    tl_research_observation(st->cfg, &p->s, e->data, &st->out.datums));
    }
    if (!p->observations && !(p->observations = json_array()))
        return TL_ERR_NOMEM;
    json_t *row = json_pack("{s:O, s:I, s:i}", "ev", e->data, "version", (json_int_t)p->s.version,
                            "baseline_date", (int)p->s.baseline_date);
    return row && !json_array_append_new(p->observations, row) ? TL_OK : TL_ERR_NOMEM;
}

static bool changes_participant_row(const char *type)
{
    return !strcmp(type, "ParticipantEnrolled") || !strcmp(type, "BaselineChanged") ||
           !strcmp(type, "ParticipantWithdrawn") || !strcmp(type, "ParticipantCompleted");
}

/* A refusal goes to the batch, when there is one (a release has none). */
static tl_err_t refuse(tl_batch_t *b, const tl_event_t *e, const char *id, const char *why)
{
    return b ? tl_batch_reject(b, e, id, why) : TL_OK;
}

static tl_err_t fold_stream(tl_batch_t *b, state_t *st, const tl_event_t *e)
{
    tl_uuid_t u;
    if (tl_uuid_parse(tl_event_str(e, "participant_id"), &u))
        return refuse(b, e, NULL, "invalid_event");
    part_t *p = tl_map_get(&st->parts, u.s);
    tl_schedule_t none = {0};
    const char *skipped = NULL;
    const char *why = tl_schedule_apply(p ? &p->s : &none, e->type, e->data, &skipped);
    if (why && !strcmp(why, "out_of_memory"))
        return TL_ERR_NOMEM;
    if (why)
        return refuse(b, e, u.s, why);
    if (!p) {
        if (!(p = tl_arena_calloc(&st->rows, sizeof *p))) {
            tl_schedule_cleanup(&none);
            return TL_ERR_NOMEM;
        }
        p->s = none;
        tl_err_t err = tl_map_put(&st->parts, p->s.id, p);
        if (err)
            return err;
    }
    tl_err_t err = tl_map_put(&st->dirty_parts, p->s.id, p);
    const char *event_id = tl_event_str(e, "event_id");
    int64_t v = p->s.version;
    bool rebased = !strcmp(e->type, "BaselineChanged");
    if (!strcmp(e->type, "ParticipantEnrolled")) {
        json_int_t by = tl_ev_int(e->data, "birth_year");
        p->person.birth_year = by > 0 && by < 10000 ? (int32_t)by : 0;
        const char *sex = tl_event_str(e, "sex");
        snprintf(p->person.sex, sizeof p->person.sex, "%s", sex && strlen(sex) == 1 ? sex : "");
    }
    bool publish = st->publish;
    tl_buf_t *datums = &st->out.datums;
    if (!err && changes_participant_row(e->type))
        p->person.row_version = v;
    if (!err && publish && changes_participant_row(e->type)) {
        size_t mark = datums->len;
        err = emit(st, "ResearchParticipant", p->s.id, event_id, p->s.id, mark,
                   tl_research_participant(st->cfg, &p->s, &p->person, datums));
    }
    /* study days count from the baseline: a new one moves every row */
    for (size_t i = 0; !err && publish && i < p->s.nvisits; i++) {
        size_t mark = datums->len;
        if (rebased || p->s.visits[i].version == v)
            err = emit(st, "ResearchVisit", p->s.visits[i].visit_type_id, event_id, p->s.id,
                       mark, tl_research_visit(st->cfg, &p->s, &p->s.visits[i], datums));
    }
    if (!err && tl_form_event(e->type))
        err = fold_form(st, e, p);
    for (size_t i = 0; !err && publish && rebased && i < p->nforms; i++)
        err = emit_form(st, p->forms[i], p, event_id);
    if (!err && !strcmp(e->type, "ObservationRecorded"))
        err = fold_observation(st, p, e);
    return err;
}

/* ---- writing ---- */

static const char *const sql_upsert_parts =
    "INSERT INTO research_participants (participant_id, state)"
    " SELECT * FROM unnest($1::uuid[], $2::jsonb[])"
    " ON CONFLICT (participant_id) DO UPDATE SET state = EXCLUDED.state";
static const char *const sql_upsert_forms =
    "INSERT INTO research_forms (form_id, participant_id, template_id, pending, state)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::boolean[], $5::jsonb[])"
    " ON CONFLICT (form_id) DO UPDATE SET pending = EXCLUDED.pending, state = EXCLUDED.state";
static const char *const sql_insert_templates =
    "INSERT INTO research_templates (template_id, version, fields)"
    " SELECT * FROM unnest($1::uuid[], $2::int[], $3::jsonb[])"
    " ON CONFLICT DO NOTHING";

static tl_err_t write_state(tl_batch_t *b, state_t *st)
{
    tl_cols_t parts, forms;
    tl_cols_init(&parts, 2);
    tl_cols_init(&forms, 5);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < st->dirty_parts.cap && !err; i++) {
        if (!st->dirty_parts.keys[i])
            continue;
        const part_t *p = st->dirty_parts.vals[i];
        json_t *j = part_json(p);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        const char *row[] = {p->s.id, text};
        err = text ? tl_cols_add_row(&parts, row, 2) : TL_ERR_NOMEM;
        free(text);
        json_decref(j);
    }
    for (size_t i = 0; i < st->dirty_forms.cap && !err; i++) {
        if (!st->dirty_forms.keys[i])
            continue;
        const form_t *f = st->dirty_forms.vals[i];
        json_t *j = form_json(&f->f);
        if (j && f->pending)
            json_object_set(j, "pending", f->pending);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        const char *row[] = {f->f.id, f->f.participant_id, f->f.template_id, f->pending ? "t" : "f",
                             text};
        err = text ? tl_cols_add_row(&forms, row, 5) : TL_ERR_NOMEM;
        free(text);
        json_decref(j);
    }
    if (!err && st->new_templates.nrows)
        err = tl_batch_add_cols(b, sql_insert_templates, &st->new_templates);
    if (!err && parts.nrows)
        err = tl_batch_add_cols(b, sql_upsert_parts, &parts);
    if (!err && forms.nrows)
        err = tl_batch_add_cols(b, sql_upsert_forms, &forms);
    tl_cols_cleanup(&parts);
    tl_cols_cleanup(&forms);
    return err;
}

/* Produces the batch's records without waiting; tl_research_store_flush
 * waits for them before the batch commits. */
static tl_err_t publish(tl_research_store_t *rs, const outbox_t *o)
{
    size_t i;
    tl_err_t err = TL_OK;
    for (i = 0; i < o->n && !err; i++) {
        const record_t *r = &o->v[i];
        err = tl_producer_send_datum(rs->producer, r->type, r->key, o->datums.data + r->off,
                                     r->len, r->ce_id, TL_RESEARCH_SOURCE);
    }
    rs->unflushed += err ? i - 1 : i;
    if (err)
        tl_log_error("research_publish_failed",
                     json_pack("{s:s, s:i}", "error", tl_err_name(err), "records", (int)o->n));
    return err == TL_ERR_INVALID ? TL_ERR_INTERNAL : err ? TL_ERR_UNAVAILABLE : TL_OK;
}

tl_err_t tl_research_store_flush(tl_research_store_t *rs)
{
    double t0 = tl_log_mono_ms();
    size_t n = rs->unflushed;
    tl_err_t err = n ? tl_producer_flush(rs->producer, TL_RESEARCH_FLUSH_MS) : TL_OK;
    rs->unflushed = 0;
    if (err)
        tl_log_error("research_publish_failed",
                     json_pack("{s:s, s:i}", "error", tl_err_name(err), "records", (int)n));
    else if (n)
        tl_log(TL_LOG_DEBUG, "research_flushed",
               json_pack("{s:i, s:f}", "records", (int)n, "flush_ms", tl_log_mono_ms() - t0));
    /* records are identical when the batch runs again: at least once */
    return err ? TL_ERR_UNAVAILABLE : TL_OK;
}

tl_err_t tl_research_store_apply(tl_research_store_t *rs, tl_pg_t *pg, tl_batch_t *b)
{
    state_t st;
    double t0 = tl_log_mono_ms(), t1, t2, t3; /* for the debug log: where a batch's time goes */
    state_init(&st, &rs->cfg);
    tl_err_t err = load(pg, b, &st);
    t1 = tl_log_mono_ms();
    for (size_t i = 0; i < b->n && !err; i++) {
        const tl_event_t *e = &b->events[i];
        if (!e->type)
            continue;
        if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT))
            err = fold_stream(b, &st, e);
        else if (!strcmp(e->type, "FormTemplatePublished"))
            err = fold_template(&st, e);
    }
    t2 = tl_log_mono_ms();
    if (!err)
        err = publish(rs, &st.out);
    t3 = tl_log_mono_ms();
    if (!err)
        err = write_state(b, &st);
    if (!err)
        tl_log(TL_LOG_DEBUG, "research_batch",
               json_pack("{s:i, s:i, s:f, s:f, s:f, s:f}", "events", (int)b->n, "records",
                         (int)st.out.n, "load_ms", t1 - t0, "fold_ms", t2 - t1,
                         "produce_ms", t3 - t2, "write_ms", tl_log_mono_ms() - t3));
    state_cleanup(&st);
    return err;
}

/* ---- in memory, for releases ---- */

/* The record types, in the order of the fold's schemas. */
static const char *const record_types[] = {"ResearchParticipant", "ResearchVisit",
                                           "ResearchForm", "ResearchObservation"};
#define NRECORD_TYPES (sizeof record_types / sizeof record_types[0])

struct tl_research_fold {
    tl_research_cfg_t cfg;
    state_t st; /* publish false: nothing is published */
    /* the built-in schemas of record_types, to hand the records over as
     * JSON, and the datum each is written to first */
    tl_avro_schema_t *schemas[NRECORD_TYPES];
    tl_buf_t datum;
};

tl_err_t tl_research_fold_new(const tl_research_cfg_t *cfg, tl_research_fold_t **out)
{
    tl_research_fold_t *f = calloc(1, sizeof *f);
    *out = f;
    if (!f)
        return TL_ERR_NOMEM;
    f->cfg = *cfg;
    state_init(&f->st, &f->cfg);
    f->st.publish = false;
    tl_buf_init(&f->datum, OUTBOX_MAX_BYTES);
    tl_err_t err = TL_OK;
    for (size_t t = 0; t < NRECORD_TYPES && !err; t++) {
        err = TL_ERR_INTERNAL;
        for (size_t i = 0; i < tl_schema_source_count; i++)
            if (!strcmp(tl_schema_sources[i].name, record_types[t]))
                err = tl_avro_schema_parse(tl_schema_sources[i].avsc, tl_schema_sources[i].len,
                                           &f->schemas[t]);
    }
    if (err) {
        tl_research_fold_destroy(f);
        *out = NULL;
    }
    return err;
}

void tl_research_fold_destroy(tl_research_fold_t *f)
{
    if (!f)
        return;
    state_cleanup(&f->st);
    for (size_t t = 0; t < NRECORD_TYPES; t++)
        tl_avro_schema_destroy(f->schemas[t]);
    tl_buf_cleanup(&f->datum);
    tl_secret_wipe(&f->cfg, sizeof f->cfg);
    free(f);
}

tl_err_t tl_research_fold_event(tl_research_fold_t *f, const tl_event_t *e)
{
    state_t *st = &f->st;
    tl_err_t err = TL_OK;
    if (!e->type)
        return TL_OK;
    if (!strcmp(e->topic, TL_TOPIC_PARTICIPANT))
        err = fold_stream(NULL, st, e);
    else if (!strcmp(e->type, "FormTemplatePublished"))
        err = fold_template(st, e);
    /* the release's rows are made from the state at the end; nothing
     * needs writing back */
    tl_cols_cleanup(&st->new_templates);
    tl_cols_init(&st->new_templates, 3);
    return err;
}

static int part_cmp(const void *a, const void *b)
{
    return strcmp((*(part_t *const *)a)->s.id, (*(part_t *const *)b)->s.id);
}

static const char *visit_name(const part_t *p, const char *visit_type_id)
{
    for (size_t i = 0; i < p->s.nvisits; i++)
        if (!strcmp(p->s.visits[i].visit_type_id, visit_type_id))
            return p->s.visits[i].name;
    return "";
}

/* The record its builder wrote to f->datum (built: the builder's result),
 * as JSON to fn. */
static tl_err_t hand(tl_research_fold_t *f, size_t type, tl_err_t built,
                     tl_research_record_fn fn, void *user, const char *visit_name)
{
    json_t *r = NULL;
    tl_err_t err = built ? built
                         : tl_avro_decode(f->schemas[type], f->datum.data, f->datum.len, &r);
    if (!err)
        err = fn(user, record_types[type], r, visit_name);
    json_decref(r);
    tl_buf_reset(&f->datum);
    return err;
}

static tl_err_t hand_over(tl_research_fold_t *f, const part_t *p, tl_research_record_fn fn,
                          void *user, size_t *held)
{
    const tl_research_cfg_t *c = &f->cfg;
    tl_err_t err = hand(f, 0, tl_research_participant(c, &p->s, &p->person, &f->datum), fn,
                        user, NULL);
    for (size_t i = 0; !err && i < p->s.nvisits; i++)
        err = hand(f, 1, tl_research_visit(c, &p->s, &p->s.visits[i], &f->datum), fn, user,
                   NULL);
    for (size_t i = 0; !err && i < p->nforms; i++) {
        const tl_form_t *form = &p->forms[i]->f;
        const json_t *fields = template_fields(&f->st, form);
        if (!fields) {
            (*held)++;
            continue;
        }
        err = hand(f, 2,
                   tl_research_form(c, form, p->s.site_id, p->s.baseline_date, fields, &f->datum),
                   fn, user, visit_name(p, form->visit_type_id));
    }
    size_t i;
    const json_t *o;
    json_array_foreach(p->observations, i, o)
    {
        /* the schedule as it was when the observation was taken */
        tl_schedule_t then = p->s;
        then.version = json_integer_value(json_object_get(o, "version"));
        then.baseline_date = (int32_t)json_integer_value(json_object_get(o, "baseline_date"));
        if (err)
            break;
        err = hand(f, 3, tl_research_observation(c, &then, json_object_get(o, "ev"), &f->datum),
                   fn, user, NULL);
    }
    return err;
}

tl_err_t tl_research_fold_flush(tl_research_fold_t *f, const char *study_id,
                                tl_research_record_fn fn, void *user, size_t *held)
{
    state_t *st = &f->st;
    part_t **parts = st->parts.len ? calloc(st->parts.len, sizeof *parts) : NULL;
    size_t n = 0;
    tl_err_t err = st->parts.len && !parts ? TL_ERR_NOMEM : TL_OK;
    for (size_t i = 0; !err && i < st->parts.cap; i++)
        if (st->parts.keys[i] && n < st->parts.len)
            parts[n++] = st->parts.vals[i];
    if (n > 1)
        qsort(parts, n, sizeof *parts, part_cmp);
    for (size_t i = 0; !err && i < n; i++)
        if (parts[i]->s.exists && !strcmp(parts[i]->s.study_id, study_id))
            err = hand_over(f, parts[i], fn, user, held);
    free(parts);
    /* forget the participants and their forms; keep the template versions */
    tl_map_t templates = st->templates;
    st->templates = (tl_map_t){0};
    state_cleanup(st);
    state_init(st, &f->cfg);
    tl_map_cleanup(&st->templates);
    st->templates = templates;
    st->publish = false;
    return err;
}
