/* A study's data quality (docs/FORMS.md): what a data manager chases before a
 * database lock, counted per site and per visit type, with a work list.
 *
 * - missing_form: a completed visit lacks a form its visit type expects;
 * - missing_required, out_of_range, invalid_value: an answer the version
 *   its form is on refuses (fix "amend"), or, on a form of an older version,
 *   one the latest version refuses (a field made required, a range
 *   narrowed, an option dropped: fix "upgrade", an amendment moving the form
 *   to the latest version), found by the same validator that checks
 *   submissions (forms.c), so "valid" means one thing everywhere;
 * - unsigned_form: a form without a signature submitted more than
 *   unsigned_days before as_of;
 * - unexplained_deviation: a completed visit outside its window with no
 *   deviation reason (a log from before baseline changes needed one, or an
 *   event from elsewhere): a protocol deviation nobody has explained.
 *
 * Counts are always complete; the work list holds at most ITEMS_MAX items.
 * Forms are read in pages, so memory stays flat whatever the study's size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forms.h"
#include "gateway.h"
#include "tl_json.h"

#define ITEMS_MAX 1000
#define PAGE 500
#define STR_(x) #x
#define STR(x) STR_(x)
#define UNSIGNED_DAYS_DEFAULT 14
#define UNSIGNED_DAYS_MAX 3650

enum {
    MISSING_FORM,
    MISSING_REQUIRED,
    OUT_OF_RANGE,
    INVALID_VALUE,
    UNSIGNED_FORM,
    UNEXPLAINED_DEVIATION,
    NKINDS
};
static const char *const kind_names[NKINDS] = {"missing_form",  "missing_required",
                                               "out_of_range",  "invalid_value",
                                               "unsigned_form", "unexplained_deviation"};
/* the counters' names in totals, sites and visit types */
static const char *const count_names[NKINDS] = {
    "missing_forms",  "missing_required", "out_of_range",
    "invalid_values", "unsigned_forms",   "unexplained_deviations"};

typedef struct {
    json_t *sites;       /* [{site_id, code, counters}] */
    json_t *visit_types; /* [{visit_type_id, name, target_day, counters}] */
    json_t *templates;   /* name -> {version, fields}: each template's latest */
    json_t *versions;    /* "name/version" -> fields: every version a form is on */
    json_t *totals;      /* counters */
    json_t *items;
} report_t;

/* $1 study, $2 the caller's sites (NULL: all) */
/* clang-format off */
static const char *const sql_frame =
    "SELECT json_build_object("
    " 'sites', (SELECT COALESCE(json_agg(json_build_object('site_id', si.id, 'code', si.code)"
    "   ORDER BY si.code), '[]'::json) FROM sites si"
    "   WHERE si.study_id = s.id AND ($2::uuid[] IS NULL OR si.id = ANY($2::uuid[]))),"
    " 'visit_types', (SELECT COALESCE(json_agg(json_build_object('visit_type_id', t.id,"
    "   'name', t.name, 'target_day', t.target_day) ORDER BY t.target_day, t.id), '[]'::json)"
    "   FROM visit_types t WHERE t.study_id = s.id),"
    " 'templates', (SELECT COALESCE(json_object_agg(l.name, json_build_object('version',"
    "   l.version, 'fields', l.fields)), '{}'::json) FROM (SELECT DISTINCT ON (name) name,"
    "   version, fields FROM form_templates WHERE study_id = s.id ORDER BY name, version DESC) l),"
    " 'versions', (SELECT COALESCE(json_object_agg(o.name || '/' || o.version, o.fields),"
    "   '{}'::json) FROM form_templates o WHERE o.study_id = s.id AND (o.id, o.version) IN"
    "   (SELECT DISTINCT x.template_id, x.template_version FROM forms x WHERE x.study_id = s.id))"
    ")::text FROM studies s WHERE s.id = $1";

/* What SQL finds alone: missing forms and old unsigned ones. $1 study,
 * $2 as_of, $3 sites, $4 unsigned_days, $5 how many items */
static const char *const sql_findings =
    "WITH f AS ("
    " SELECT 0 AS kind, v.participant_id, v.site_id, v.visit_type_id, tn.name AS template,"
    "   NULL::uuid AS form_id, NULL::timestamptz AS submitted_at, NULL::int AS days"
    "  FROM participant_visits v JOIN visit_types vt ON vt.id = v.visit_type_id"
    "  CROSS JOIN LATERAL jsonb_array_elements_text(vt.form_templates) tn(name)"
    "  WHERE v.study_id = $1 AND v.state = 'completed'"
    "   AND ($3::uuid[] IS NULL OR v.site_id = ANY($3::uuid[]))"
    "   AND NOT EXISTS (SELECT 1 FROM forms x WHERE x.participant_id = v.participant_id"
    "    AND x.visit_type_id = v.visit_type_id AND x.template_name = tn.name)"
    " UNION ALL"
    " SELECT 4, x.participant_id, x.site_id, x.visit_type_id, x.template_name, x.id,"
    "   x.submitted_at, $2::date - (x.submitted_at AT TIME ZONE 'UTC')::date"
    "  FROM forms x WHERE x.study_id = $1 AND x.status <> 'signed'"
    "   AND ($3::uuid[] IS NULL OR x.site_id = ANY($3::uuid[]))"
    "   AND $2::date - (x.submitted_at AT TIME ZONE 'UTC')::date > $4::int"
    " UNION ALL"
    " SELECT 5, v.participant_id, v.site_id, v.visit_type_id, NULL, NULL, NULL, NULL"
    "  FROM participant_visits v WHERE v.study_id = $1 AND v.state = 'completed'"
    "   AND NOT v.in_window AND btrim(COALESCE(v.deviation_reason, '')) = ''"
    "   AND ($3::uuid[] IS NULL OR v.site_id = ANY($3::uuid[])))"
    " SELECT json_build_object("
    "  'counts', (SELECT COALESCE(json_agg(json_build_object('kind', c.kind, 'site_id', c.site_id,"
    "    'visit_type_id', c.visit_type_id, 'n', c.n)), '[]'::json)"
    "    FROM (SELECT kind, site_id, visit_type_id, count(*) AS n FROM f GROUP BY 1, 2, 3) c),"
    "  'items', (SELECT COALESCE(json_agg(json_build_object('kind', i.kind,"
    "    'participant_id', i.participant_id, 'participant_code', p.participant_code,"
    "    'site_id', i.site_id, 'visit_type_id', i.visit_type_id, 'template', i.template,"
    "    'form_id', i.form_id, 'submitted_at', i.submitted_at, 'days_unsigned', i.days)),"
    "    '[]'::json) FROM (SELECT * FROM f ORDER BY kind, participant_id, visit_type_id, template"
    "    LIMIT $5::int) i LEFT JOIN participants p ON p.id = i.participant_id))::text";

/* A page of forms to validate: $1 study, $2 sites, $3 the last form id of
 * the page before (NULL: from the start) */
static const char *const sql_forms_page =
    "SELECT x.id::text, x.participant_id::text, p.participant_code, x.site_id::text,"
    "  x.visit_type_id::text, x.template_name, x.answers::text, x.template_version"
    " FROM forms x LEFT JOIN participants p ON p.id = x.participant_id"
    " WHERE x.study_id = $1 AND ($2::uuid[] IS NULL OR x.site_id = ANY($2::uuid[]))"
    "  AND ($3::uuid IS NULL OR x.id > $3::uuid)"
    " ORDER BY x.id LIMIT " STR(PAGE);
/* clang-format on */

/* Sets every counter of o to 0. */
static json_t *zero(json_t *o)
{
    for (int k = 0; o && k < NKINDS; k++)
        json_object_set_new(o, count_names[k], json_integer(0));
    return o;
}

/* The element of arr whose key is id, or NULL. */
static json_t *find(const json_t *arr, const char *key, const char *id)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (id && !strcmp(json_string_value(json_object_get(e, key)), id))
            return e;
    }
    return NULL;
}

static void bump(json_t *o, int kind, json_int_t n)
{
    json_t *c = o ? json_object_get(o, count_names[kind]) : NULL;
    if (c)
        json_integer_set(c, json_integer_value(c) + n);
}

static void count(report_t *r, int kind, const char *site_id, const char *visit_type_id,
                  json_int_t n)
{
    bump(r->totals, kind, n);
    bump(find(r->sites, "site_id", site_id), kind, n);
    bump(find(r->visit_types, "visit_type_id", visit_type_id), kind, n);
}

/* Adds item (taken over) to the work list, with its visit's name. */
static void add_item(report_t *r, json_t *item)
{
    if (!item)
        return;
    const json_t *vt = find(r->visit_types, "visit_type_id",
                            json_string_value(json_object_get(item, "visit_type_id")));
    json_object_set(item, "visit", vt ? json_object_get(vt, "name") : json_null());
    if (json_array_size(r->items) < ITEMS_MAX)
        json_array_append(r->items, item);
    json_decref(item);
}

static bool sql_part(tl_gw_t *gw, tl_resp_t *resp, report_t *r, const char *const params[5])
{
    bool failed = false;
    json_t *j = tl_gw_query_json(gw, resp, sql_findings, 5, params, &failed);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "counts"), i, e)
    {
        count(r, (int)json_integer_value(json_object_get(e, "kind")),
              json_string_value(json_object_get(e, "site_id")),
              json_string_value(json_object_get(e, "visit_type_id")),
              json_integer_value(json_object_get(e, "n")));
    }
    json_array_foreach(json_object_get(j, "items"), i, e)
    {
        json_t *item = json_deep_copy(e);
        int kind = (int)json_integer_value(json_object_get(e, "kind"));
        json_object_set_new(item, "kind", json_string(kind_names[kind]));
        if (kind == MISSING_FORM) {
            json_object_del(item, "form_id");
            json_object_del(item, "submitted_at");
            json_object_del(item, "days_unsigned");
        }
        add_item(r, item);
    }
    json_decref(j);
    return !failed;
}

static int kind_of(const char *code)
{
    if (!strcmp(code, "required"))
        return MISSING_REQUIRED;
    if (!strcmp(code, "below_min") || !strcmp(code, "above_max"))
        return OUT_OF_RANGE;
    return INVALID_VALUE;
}

/* One form against the version it is on and, when there is a later one,
 * the latest (forms.c's tl_form_quality: the fix names which). */
static void check_form(report_t *r, const tl_pg_res_t *res, int row)
{
    const char *site = tl_pg_get(res, row, 3), *vt = tl_pg_get(res, row, 4);
    const char *name = tl_pg_get(res, row, 5);
    int32_t version = (int32_t)tl_pg_get_int(res, row, 7);
    char key[TL_JSON_NAME_MAX + 16];
    snprintf(key, sizeof key, "%s/%d", name, (int)version);
    const json_t *latest = json_object_get(r->templates, name);
    json_t *answers = json_loads(tl_pg_get(res, row, 6), 0, NULL);
    json_t *findings = json_array();
    if (latest && answers && findings)
        tl_form_quality(answers, version, json_object_get(r->versions, key),
                        (int32_t)json_integer_value(json_object_get(latest, "version")),
                        json_object_get(latest, "fields"), findings);
    size_t i;
    json_t *e;
    json_array_foreach(findings, i, e)
    {
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *code = json_string_value(json_object_get(e, "code"));
        int kind = kind_of(code);
        const json_t *value = json_object_get(answers, field);
        const char *pcode = tl_pg_get(res, row, 2);
        count(r, kind, site, vt, 1);
        add_item(r, json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:O, s:i, s:s, s:s, s:O?, s:O,"
                              " s:O}",
                              "kind", kind_names[kind], "participant_id", tl_pg_get(res, row, 1),
                              "participant_code", pcode ? json_string(pcode) : json_null(),
                              "site_id", site, "visit_type_id", vt, "template", name, "form_id",
                              tl_pg_get(res, row, 0), "template_version",
                              json_object_get(e, "template_version"), "form_template_version",
                              (int)version, "field", field, "code", code, "detail",
                              json_object_get(e, "detail"), "value", value ? value : json_null(),
                              "fix", json_object_get(e, "fix")));
    }
    json_decref(findings);
    json_decref(answers);
}

static bool forms_part(tl_gw_t *gw, tl_resp_t *resp, report_t *r, const char *study,
                       const char *sites)
{
    char last[TL_UUID_STRLEN] = "";
    tl_err_t err = TL_OK;
    for (;;) {
        const char *params[] = {study, sites, *last ? last : NULL};
        tl_pg_res_t *res = NULL;
        err = tl_gw_exec(gw, sql_forms_page, 3, params, &res);
        int n = err ? 0 : tl_pg_nrows(res);
        for (int row = 0; row < n; row++)
            check_form(r, res, row);
        if (n)
            snprintf(last, sizeof last, "%s", tl_pg_get(res, n - 1, 0));
        tl_pg_res_free(res);
        if (err || n < PAGE)
            break;
    }
    if (err)
        tl_problem_from_err(resp, err);
    return !err;
}

typedef struct {
    json_t *item;
    int target_day, kind;
} sort_key_t;

static int kind_index(const json_t *item)
{
    const char *k = json_string_value(json_object_get(item, "kind"));
    for (int i = 0; k && i < NKINDS; i++)
        if (!strcmp(kind_names[i], k))
            return i;
    return NKINDS;
}

static int strcmp_member(const json_t *a, const json_t *b, const char *key)
{
    const char *x = json_string_value(json_object_get(a, key));
    const char *y = json_string_value(json_object_get(b, key));
    return strcmp(x ? x : "", y ? y : "");
}

/* participant, visit in protocol order, template, kind, field */
static int item_cmp(const void *pa, const void *pb)
{
    const sort_key_t *ka = pa, *kb = pb;
    const json_t *a = ka->item, *b = kb->item;
    int c = strcmp_member(a, b, "participant_code");
    if (!c)
        c = strcmp_member(a, b, "participant_id");
    if (!c)
        c = ka->target_day - kb->target_day;
    if (!c)
        c = strcmp_member(a, b, "visit_type_id");
    if (!c)
        c = strcmp_member(a, b, "template");
    if (!c)
        c = ka->kind - kb->kind;
    if (!c)
        c = strcmp_member(a, b, "field");
    return c;
}

/* The work list in a stable order (new reference). */
static json_t *sorted_items(const report_t *r)
{
    size_t n = json_array_size(r->items);
    sort_key_t *v = calloc(n ? n : 1, sizeof *v);
    json_t *out = json_array();
    if (!v || !out) {
        free(v);
        return out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(r->items, i);
        const json_t *vt = find(r->visit_types, "visit_type_id",
                                json_string_value(json_object_get(item, "visit_type_id")));
        v[i] = (sort_key_t){item, (int)json_integer_value(json_object_get(vt, "target_day")),
                            kind_index(item)};
    }
    qsort(v, n, sizeof *v, item_cmp);
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i].item);
    free(v);
    return out;
}

void tl_h_study_data_quality(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char as_of[TL_DATE_STRLEN], days[16], cap[16], sites_buf[TL_SITES_PARAM_LEN];
    json_t *errors = json_array();
    long unsigned_days =
        tl_gw_query_long(req, "unsigned_days", UNSIGNED_DAYS_DEFAULT, 0, UNSIGNED_DAYS_MAX, errors);
    if (!tl_gw_query_as_of(req, as_of))
        tl_json_error(errors, "as_of", "must be a calendar date YYYY-MM-DD");
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    const char *study = req->params[0];
    const char *sites = tl_auth_sites_param(req, sites_buf, sizeof sites_buf);
    bool failed = false;
    const char *fparams[] = {study, sites};
    json_t *frame =
        tl_uuid_valid(study) ? tl_gw_query_json(gw, resp, sql_frame, 2, fparams, &failed) : NULL;
    if (!frame) {
        tl_gw_found(resp, NULL, failed, "study not found");
        return;
    }
    report_t r = {.sites = json_object_get(frame, "sites"),
                  .visit_types = json_object_get(frame, "visit_types"),
                  .templates = json_object_get(frame, "templates"),
                  .versions = json_object_get(frame, "versions"),
                  .totals = zero(json_object()),
                  .items = json_array()};
    size_t i;
    json_t *e;
    json_array_foreach(r.sites, i, e) zero(e);
    json_array_foreach(r.visit_types, i, e) zero(e);
    snprintf(days, sizeof days, "%ld", unsigned_days);
    snprintf(cap, sizeof cap, "%d", ITEMS_MAX);
    const char *params[] = {study, as_of, sites, days, cap};
    if (sql_part(gw, resp, &r, params) && forms_part(gw, resp, &r, study, sites)) {
        json_int_t total = 0;
        for (int k = 0; k < NKINDS; k++)
            total += json_integer_value(json_object_get(r.totals, count_names[k]));
        resp->status = 200;
        resp->body =
            json_pack("{s:s, s:s, s:i, s:o, s:O, s:O, s:o, s:b}", "study_id", study, "as_of", as_of,
                      "unsigned_days", (int)unsigned_days, "totals", r.totals, "sites", r.sites,
                      "visit_types", r.visit_types, "items", sorted_items(&r), "items_truncated",
                      total > (json_int_t)json_array_size(r.items));
        r.totals = NULL;
    }
    json_decref(r.totals);
    json_decref(r.items);
    json_decref(frame);
}
