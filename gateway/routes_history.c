/* History: who did what, when and why, from the audit archive.
 *
 * A participant's history folds its stream from the archive with the same
 * pure folds the projections use (participants, schedules, forms), so each event's
 * "before -> after" per field is exactly what the projections saw. The
 * audit list answers from the archive's metadata columns only: it never
 * decodes payloads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forms.h"
#include "gateway.h"
#include "participants.h"
#include "schedules.h"
#include "tl_codec.h"
#include "tl_date.h"
#include "tl_json.h"
#include "tl_topics.h"

#define STREAM_MAX 10000 /* events of one participant folded for a history */
#define STR_(x) #x
#define STR(x) STR_(x)
#define PAGE_DEFAULT 100
#define PAGE_MAX 500

/* ---- participant history ---- */

static void set_date(json_t *o, const char *k, int32_t d, bool present)
{
    char buf[TL_DATE_STRLEN];
    if (present)
        tl_date_format(d, buf);
    json_object_set_new(o, k, present ? json_string(buf) : json_null());
}

static void set_text(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v && *v ? json_string(v) : json_null());
}

/* The participant's forms, as the fold of its stream makes them. */
typedef struct {
    tl_form_t *v;
    size_t n, cap;
} forms_t;

static void forms_cleanup(forms_t *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        tl_form_cleanup(&fs->v[i]);
    free(fs->v);
}

static const char *visit_name(const tl_schedule_t *s, const char *visit_type_id)
{
    for (size_t i = 0; i < s->nvisits; i++)
        if (!strcmp(s->visits[i].visit_type_id, visit_type_id))
            return s->visits[i].name;
    return visit_type_id;
}

/* "forms.Month 1.visual_acuity.answers.va_right", ".status", ... */
static void flatten_forms(json_t *o, const tl_schedule_t *s, const forms_t *fs)
{
    char k[TL_BYTES(TL_VISIT_NAME_MAX) + 3 * TL_JSON_NAME_MAX + 32];
    for (size_t i = 0; i < fs->n; i++) {
        const tl_form_t *f = &fs->v[i];
        bool is_signed = f->status == TL_FORM_SIGNED;
        int pre = snprintf(k, sizeof k, "forms.%s.%s.", visit_name(s, f->visit_type_id),
                           f->template_name);
        if (pre < 0 || (size_t)pre >= sizeof k - TL_JSON_NAME_MAX - 16)
            continue; /* cannot happen: names are bounded */
#define FK(member) (snprintf(k + pre, sizeof k - (size_t)pre, "%s", member), k)
        set_text(o, FK("status"), tl_form_status_name(f->status));
        json_object_set_new(o, FK("revision"), json_integer(f->revision));
        json_object_set_new(o, FK("template_version"), json_integer(f->template_version));
        set_text(o, FK("signed_by"), is_signed ? f->signer_name : NULL);
        set_text(o, FK("signature_meaning"), is_signed ? f->meaning : NULL);
#undef FK
        const char *field;
        json_t *v;
        json_object_foreach(f->answers, field, v)
        {
            snprintf(k + pre, sizeof k - (size_t)pre, "answers.%s", field);
            json_object_set(o, k, v);
        }
    }
}

/* What an observation the stream took adds, as changes from null:
 * "observations.<event id>.kind", ".observed_on", ".device", ".laterality",
 * ".values.<name>" (docs/CONNECTORS.md). Nothing changes an observation
 * afterwards, and no other event needs to compare them, so they are not
 * part of the flat state every event is diffed over. */
static void observation_changes(json_t *changes, const json_t *ev)
{
    const char *id = json_string_value(json_object_get(ev, "event_id")), *name;
    const json_t *values = json_object_get(ev, "values"), *v;
    char k[TL_UUID_STRLEN + TL_JSON_NAME_MAX + 64];
    json_t *o = json_object();
    if (!o || !id || strlen(id) >= TL_UUID_STRLEN)
        goto out; /* the stream refuses such an event: cannot happen */
#define OK_(member) (snprintf(k, sizeof k, "observations.%s.%s", id, member), k)
    set_text(o, OK_("kind"), json_string_value(json_object_get(ev, "kind")));
    set_date(o, OK_("observed_on"), (int32_t)json_integer_value(json_object_get(ev, "observed_on")),
             true);
    set_text(o, OK_("device"), json_string_value(json_object_get(ev, "device")));
    set_text(o, OK_("laterality"), json_string_value(json_object_get(ev, "laterality")));
#undef OK_
    json_object_foreach((json_t *)values, name, v)
    {
        snprintf(k, sizeof k, "observations.%s.values.%s", id, name);
        json_object_set(o, k, (json_t *)v);
    }
    json_object_foreach(o, name, v)
        json_array_append_new(changes,
                              json_pack("{s:s, s:n, s:O}", "field", name, "before", "after", v));
out:
    json_decref(o);
}

/* The state the history compares, flat: "status", "visits.Month 1.due_date",
 * "forms.Month 1.visual_acuity.answers.va_right" (observations: see
 * observation_changes). */
static json_t *flatten(const tl_participant_t *p, const tl_schedule_t *s, const forms_t *fs)
{
    json_t *o = json_object();
    if (!p->exists)
        return o;
    set_text(o, "status", p->status);
    set_text(o, "site_id", p->site_id);
    set_date(o, "consent_date", p->consent_date, p->has_consent);
    set_date(o, "baseline_date", p->baseline_date, true);
    set_date(o, "withdrawal_date", p->end_date, !strcmp(p->status, "withdrawn"));
    set_date(o, "completion_date", p->end_date, !strcmp(p->status, "completed"));
    json_object_set_new(o, "birth_year", p->birth_year ? json_integer(p->birth_year) : json_null());
    set_text(o, "sex", p->sex);
    for (size_t i = 0; i < s->nvisits; i++) {
        const tl_visit_t *v = &s->visits[i];
        bool done = v->state == TL_VISIT_COMPLETED;
        char k[TL_BYTES(TL_VISIT_NAME_MAX) + 32];
#define VK(field) (snprintf(k, sizeof k, "visits.%s." field, v->name), k)
        set_text(o, VK("state"), tl_visit_state_name(v->state));
        set_date(o, VK("due_date"), v->due, true);
        set_date(o, VK("window_start"), v->window_start, true);
        set_date(o, VK("window_end"), v->window_end, true);
        set_date(o, VK("actual_date"), v->actual_date, done);
        json_object_set_new(o, VK("in_window"), done ? json_boolean(v->in_window) : json_null());
        set_text(o, VK("deviation_reason"), v->deviation_reason);
        set_text(o, VK("missed_reason"), v->missed_reason);
        set_text(o, VK("notes"), v->notes);
#undef VK
    }
    flatten_forms(o, s, fs);
    return o;
}

/* [{field, before, after}] for every field that differs, in after's order
 * and then the fields that disappeared. */
static json_t *diff(const json_t *before, const json_t *after)
{
    json_t *changes = json_array(), *v;
    const char *k;
    json_object_foreach((json_t *)after, k, v)
    {
        const json_t *b = json_object_get(before, k);
        if (!b || !json_equal(b, v))
            json_array_append_new(changes, json_pack("{s:s, s:O, s:O}", "field", k, "before",
                                                     b ? b : json_null(), "after", v));
    }
    json_object_foreach((json_t *)before, k, v)
    {
        if (!json_object_get(after, k))
            json_array_append_new(changes,
                                  json_pack("{s:s, s:O, s:n}", "field", k, "before", v, "after"));
    }
    return changes;
}

static json_t *ts_json(const json_t *ev, const char *key)
{
    char buf[TL_TS_STRLEN];
    const json_t *v = json_object_get(ev, key);
    if (!json_is_integer(v))
        return json_null();
    tl_ts_format(json_integer_value(v), buf);
    /* "YYYY-MM-DD HH:MM:SS.ffffff+00" (SQL's form) as RFC 3339, like every
     * other time the API answers: "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" */
    buf[10] = 'T';
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, ":00");
    return json_string(buf);
}

static json_t *event_item(const json_t *ev, const char *type, long long offset)
{
    const json_t *ver = json_object_get(ev, "stream_version");
    return json_pack("{s:I, s:O, s:s, s:o, s:o, s:{s:O, s:O}, s:O, s:O, s:O}", "offset",
                     (json_int_t)offset, "event_id", json_object_get(ev, "event_id"), "type", type,
                     "occurred_at", ts_json(ev, "occurred_at"), "recorded_at",
                     ts_json(ev, "recorded_at"), "actor", "id", json_object_get(ev, "actor_id"),
                     "role", json_object_get(ev, "actor_role"), "reason",
                     json_object_get(ev, "reason") ? json_object_get(ev, "reason") : json_null(),
                     "source", json_object_get(ev, "source"), "version", ver ? ver : json_null());
}

/* Adds each actor's principal name (NULL for the operator's CLI and
 * connectors, which are not principals). */
static bool name_actors(tl_gw_t *gw, json_t *items, tl_resp_t *resp)
{
    tl_buf_t ids;
    tl_buf_init(&ids, 1024 * 1024);
    tl_pg_array_begin(&ids);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *a = json_string_value(json_object_get(json_object_get(it, "actor"), "id"));
        if (a)
            tl_pg_array_add(&ids, a);
    }
    tl_pg_array_end(&ids);
    const char *params[] = {ids.data};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw,
                              "SELECT DISTINCT id::text, name FROM principals"
                              " WHERE id::text = ANY($1::text[])",
                              1, params, &res);
    json_array_foreach(items, i, it)
    {
        json_t *actor = json_object_get(it, "actor");
        const char *a = json_string_value(json_object_get(actor, "id"));
        const char *name = NULL;
        for (int r = 0; !err && a && r < tl_pg_nrows(res); r++)
            if (!strcmp(tl_pg_get(res, r, 0), a))
                name = tl_pg_get(res, r, 1);
        json_object_set_new(actor, "name", name ? json_string(name) : json_null());
    }
    tl_pg_res_free(res);
    tl_buf_cleanup(&ids);
    if (err)
        tl_problem_from_err(resp, err);
    return !err;
}

static const char *const sql_stream =
    "SELECT a.\"offset\", translate(encode(a.value, 'base64'), E'\\n', ''), r.reason"
    "  FROM audit_log a LEFT JOIN projection_rejections r ON r.projection = 'participants'"
    "   AND r.topic = a.topic AND r.partition = a.partition AND r.\"offset\" = a.\"offset\""
    " WHERE a.topic = '" TL_TOPIC_PARTICIPANT "' AND a.key = convert_to($1, 'UTF8')"
    "   AND a.value IS NOT NULL"
    " ORDER BY a.partition, a.\"offset\" LIMIT " STR(STREAM_MAX);

/* Folds a form event the stream accepted into the form it names, as the
 * forms projection does; one the form cannot take changes nothing. */
static void fold_form(forms_t *fs, const char *type, const json_t *ev)
{
    const char *id = json_string_value(json_object_get(ev, "form_id"));
    tl_form_t *f = NULL, none = {0};
    bool submit = !strcmp(type, "FormSubmitted");
    for (size_t i = 0; id && i < fs->n && !f; i++)
        if (!strcmp(fs->v[i].id, id))
            f = &fs->v[i];
    for (size_t i = 0; submit && i < fs->n; i++)
        if (&fs->v[i] != f && tl_form_same_slot(&fs->v[i], ev))
            return; /* the visit has this form already, as the forms projection sees it */
    if (!f && fs->n == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 8;
        tl_form_t *v = realloc(fs->v, cap * sizeof *v);
        if (!v)
            return;
        fs->v = v;
        fs->cap = cap;
    }
    json_t *history = json_array();
    if (history && !tl_form_apply(f ? f : &none, type, ev, history) && !f)
        fs->v[fs->n++] = none;
    json_decref(history);
}

/* Folds one archived event into p, s and fs; the item says what it changed. */
static json_t *fold_one(tl_gw_t *gw, const char *b64, const char *refused, long long offset,
                        tl_participant_t *p, tl_schedule_t *s, forms_t *fs)
{
    tl_buf_t raw;
    json_t *ev = NULL, *item = NULL;
    const char *fullname = NULL;
    tl_buf_init(&raw, 16 * 1024 * 1024);
    if (tl_b64_decode(&raw, b64) || tl_gw_decode(gw, raw.data, raw.len, &ev, &fullname))
        goto out; /* undecodable: the projections refused it too; nothing to show */
    const char *type = strrchr(fullname, '.') ? strrchr(fullname, '.') + 1 : fullname;
    json_t *before = flatten(p, s, fs);
    const char *why = refused;
    if (!why) {
        tl_participant_t next = *p;
        why = tl_participant_apply(&next, type, ev);
        if (!why) {
            const char *skipped = NULL;
            *p = next;
            tl_schedule_apply(s, type, ev, &skipped);
            if (tl_form_event(type))
                fold_form(fs, type, ev);
        }
    }
    json_t *after = flatten(p, s, fs);
    item = event_item(ev, type, offset);
    json_object_set_new(item, "applied", json_boolean(!why));
    json_object_set_new(item, "refused", why ? json_string(why) : json_null());
    json_t *changes = diff(before, after);
    if (!why && !strcmp(type, "ObservationRecorded"))
        observation_changes(changes, ev);
    json_object_set_new(item, "changes", changes);
    json_decref(before);
    json_decref(after);
out:
    json_decref(ev);
    tl_buf_cleanup(&raw);
    return item;
}

void tl_h_participant_history(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    json_t *errors = json_array(), *items = NULL;
    long limit = tl_gw_query_limit(req, PAGE_DEFAULT, PAGE_MAX, errors);
    const char *after_s = req->query(req->conn, "after");
    long long after = -1;
    if (after_s) {
        char *end = NULL;
        after = strtoll(after_s, &end, 10);
        if (!*after_s || *end || after < 0)
            tl_json_error(errors, "after", "is not a cursor");
    }
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    tl_uuid_t id;
    tl_pg_res_t *res = NULL;
    tl_participant_t p = {0};
    tl_schedule_t s = {0};
    forms_t fs = {0};
    bool more = false;
    if (tl_uuid_parse(req->params[0], &id)) {
        tl_problem_r(resp, TL_R(not_found), "participant not found", NULL);
        return;
    }
    const char *params[] = {id.s};
    tl_err_t err = tl_gw_exec(gw, sql_stream, 1, params, &res);
    if (err) {
        tl_problem_from_err(resp, err);
        goto out;
    }
    if (!tl_pg_nrows(res)) { /* none archived yet, or no such participant */
        bool failed = false;
        json_t *known = tl_gw_query_json(gw, resp, "SELECT 'true' FROM participants WHERE id = $1",
                                         1, params, &failed);
        if (!known && !failed)
            tl_problem_r(resp, TL_R(not_found), "participant not found", NULL);
        json_decref(known);
        if (!known)
            goto out;
    }
    items = json_array();
    for (int r = 0; r < tl_pg_nrows(res) && !more; r++) {
        long long off = tl_pg_get_int(res, r, 0);
        json_t *item = fold_one(gw, tl_pg_get(res, r, 1), tl_pg_get(res, r, 2), off, &p, &s, &fs);
        if (item && off > after && (long)json_array_size(items) == limit)
            more = true;
        if (item && off > after && !more)
            json_array_append(items, item);
        json_decref(item);
    }
    if (!name_actors(gw, items, resp))
        goto out;
    json_t *last = json_array_get(items, json_array_size(items) - 1);
    char next[24];
    if (more)
        snprintf(next, sizeof next, "%lld",
                 (long long)json_integer_value(json_object_get(last, "offset")));
    resp->status = 200;
    resp->body = json_pack("{s:s, s:O, s:o}", "participant_id", id.s, "items", items, "next",
                           more ? json_string(next) : json_null());
out:
    json_decref(items);
    forms_cleanup(&fs);
    tl_schedule_cleanup(&s);
    tl_pg_res_free(res);
}

/* ---- the audit list ---- */

/* clang-format off */
static const char *const sql_audit =
    "SELECT COALESCE(json_agg(x.j ORDER BY x.us, x.t, x.p, x.o), '[]'::json)::text,"
    " max(x.us)::text || ':' || (array_agg(x.p ORDER BY x.us DESC, x.t DESC, x.p DESC, x.o DESC))[1]"
    "   || ':' || (array_agg(x.o ORDER BY x.us DESC, x.t DESC, x.p DESC, x.o DESC))[1]"
    "   || ':' || (array_agg(x.t ORDER BY x.us DESC, x.t DESC, x.p DESC, x.o DESC))[1],"
    " count(*)"
    " FROM (SELECT (extract(epoch FROM a.recorded_at) * 1000000)::bigint AS us, a.topic AS t,"
    "   a.partition AS p, a.\"offset\" AS o,"
    "   json_build_object('topic', a.topic, 'partition', a.partition, 'offset', a.\"offset\","
    "     'event_id', a.event_id, 'type', substr(a.event_type, length('org.trialog.') + 1),"
    "     'occurred_at', a.occurred_at, 'recorded_at', a.recorded_at,"
    "     'actor', json_build_object('id', a.actor_id, 'role', a.actor_role, 'name',"
    "       (SELECT name FROM principals WHERE id::text = a.actor_id)),"
    "     'site_id', a.site_id, 'reason', a.reason,"
    "     'participant_id', CASE WHEN a.topic = '" TL_TOPIC_PARTICIPANT "'"
    "       THEN convert_from(a.key, 'UTF8') END) AS j"
    "  FROM audit_log a"
    "  WHERE a.event_type IS NOT NULL AND a.topic NOT LIKE '" TL_TOPIC_INGEST_PREFIX "%'"
    "    AND a.topic <> '" TL_TOPIC_AUDIT "'" /* the archive's own checkpoints: audit verify's */
    "    AND ($1::text IS NULL OR (a.topic = '" TL_TOPIC_PARTICIPANT "'"
    "         AND a.key = convert_to($1, 'UTF8')))"
    "    AND ($2::text IS NULL OR a.actor_id = $2)"
    "    AND ($3::text IS NULL OR a.event_type = 'org.trialog.' || $3)"
    "    AND ($4::date IS NULL OR a.recorded_at >= $4::date)"
    "    AND ($5::date IS NULL OR a.recorded_at < $5::date + 1)"
    "    AND ($6::uuid[] IS NULL OR a.site_id = ANY($6::uuid[]))"
    "    AND ($7::bigint IS NULL OR ((extract(epoch FROM a.recorded_at) * 1000000)::bigint,"
    "         a.topic, a.partition, a.\"offset\") > ($7::bigint, $10::text, $8::int, $9::bigint))"
    "  ORDER BY a.recorded_at, a.topic, a.partition, a.\"offset\" LIMIT $11::int) x";
/* clang-format on */

/* "after" is the "next" of the page before: "<recorded_at µs>:<partition>:<offset>:<topic>" */
static bool parse_audit_cursor(const char *s, char us[24], char part[16], char off[24],
                               char topic[256])
{
    long long a, c;
    int b, used = 0;
    if (!s || strlen(s) > 300 || sscanf(s, "%lld:%d:%lld:%n", &a, &b, &c, &used) != 3 || !used ||
        a < 0 || b < 0 || c < 0 || !s[used] || strlen(s + used) >= 256)
        return false;
    snprintf(us, 24, "%lld", a);
    snprintf(part, 16, "%d", b);
    snprintf(off, 24, "%lld", c);
    snprintf(topic, 256, "%s", s + used);
    return true;
}

void tl_h_audit_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *participant = req->query(req->conn, "participant");
    const char *actor = req->query(req->conn, "actor");
    const char *type = req->query(req->conn, "type");
    const char *from = req->query(req->conn, "from"), *to = req->query(req->conn, "to");
    const char *after = req->query(req->conn, "after");
    char us[24], part[16], off[24], topic[256], lim[16], sites[TL_SITES_PARAM_LEN];
    json_t *errors = json_array();
    long limit = tl_gw_query_limit(req, PAGE_DEFAULT, PAGE_MAX, errors);
    int32_t d;
    if (participant && !tl_uuid_valid(participant))
        tl_json_error(errors, "participant", "must be a UUID");
    if (actor && (!*actor || strlen(actor) > 100))
        tl_json_error(errors, "actor", "must be 1 to 100 characters");
    if (type && !tl_registry_type(gw->registry, type))
        tl_json_error(errors, "type", "is not an event type");
    if (from && tl_date_parse(from, &d))
        tl_json_error(errors, "from", "must be a calendar date YYYY-MM-DD");
    if (to && tl_date_parse(to, &d))
        tl_json_error(errors, "to", "must be a calendar date YYYY-MM-DD");
    if (after && !parse_audit_cursor(after, us, part, off, topic))
        tl_json_error(errors, "after", "is not a cursor");
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    tl_uuid_t pid;
    if (participant)
        tl_uuid_parse(participant, &pid);
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *params[] = {participant ? pid.s : NULL,
                            actor,
                            type,
                            from,
                            to,
                            tl_auth_sites_param(req, sites, sizeof sites),
                            after ? us : NULL,
                            after ? part : NULL,
                            after ? off : NULL,
                            after ? topic : NULL,
                            lim};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw, sql_audit, 11, params, &res);
    json_t *items = err ? NULL : json_loads(tl_pg_get(res, 0, 0), 0, NULL);
    if (err || !items) {
        tl_problem_from_err(resp, err ? err : TL_ERR_INTERNAL);
    } else {
        bool full = tl_pg_get_int(res, 0, 2) == limit;
        const char *next = tl_pg_get(res, 0, 1);
        resp->status = 200;
        resp->body = json_pack("{s:o, s:o}", "items", items, "next",
                               full && next ? json_string(next) : json_null());
    }
    tl_pg_res_free(res);
}
