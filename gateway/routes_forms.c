/* Case report forms (DESIGN.md §5 Forms): templates, responses, amendments
 * with a reason, e-signatures, and the queries over them. The checks of
 * templates and answers are forms.c's; here they meet the projections and
 * the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_store.h"
#include "forms.h"
#include "forms_store.h"
#include "gateway.h"
#include "schedules.h"
#include "tl_json.h"
#include "tl_log.h"
#include "tl_secret.h"

/* ---- shared pieces ---- */

#define SQL_TEMPLATE_JSON                                                                          \
    "json_build_object('id', t.id, 'study_id', t.study_id, 'name', t.name,"                        \
    " 'version', t.version, 'title', t.title, 'fields', t.fields,"                                 \
    " 'published_at', t.published_at)"

/* A form over forms f, its visit's name from participant_visits v. */
#define SQL_FORM_JSON                                                                              \
    "json_build_object('id', f.id, 'participant_id', f.participant_id,"                            \
    " 'study_id', f.study_id, 'site_id', f.site_id, 'visit_type_id', f.visit_type_id,"             \
    " 'visit', v.name, 'template', f.template_name, 'template_id', f.template_id,"                 \
    " 'template_version', f.template_version, 'answers', f.answers, 'status', f.status,"           \
    " 'revision', f.revision, 'signature', CASE WHEN f.signed_by IS NULL THEN NULL"                \
    "   ELSE json_build_object('signed_by', f.signed_by, 'signer_name', f.signer_name,"            \
    "   'printed_name', COALESCE(f.signer_printed_name, f.signer_name),"                           \
    "   'meaning', f.signature_meaning, 'signed_at', f.signed_at, 'revision', f.revision,"         \
    "   'content_sha256', f.signature_content_sha256) END,"                                        \
    " 'submitted_by', f.submitted_by, 'submitted_at', f.submitted_at,"                             \
    " 'updated_at', f.updated_at, 'version', f.version)"
#define SQL_FORM_FROM                                                                              \
    " FROM forms f LEFT JOIN participant_visits v"                                                 \
    "   ON v.participant_id = f.participant_id AND v.visit_type_id = f.visit_type_id"

static const char *const sql_form =
    "SELECT " SQL_FORM_JSON "::text" SQL_FORM_FROM " WHERE f.id = $1";

static void invalid(tl_resp_t *resp, tl_reason_t why, json_t *errors)
{
    tl_problem_r(resp, why, "see errors: every problem is listed", errors);
}

static bool is_true(const tl_pg_res_t *res, int col)
{
    const char *v = tl_pg_get(res, 0, col);
    return v && !strcmp(v, "t");
}

/* ---- templates ---- */

static const tl_json_field_t template_fields[] = {
    {"name", TL_JF_NAME, true, 0, 0, NULL},
    {"title", TL_JF_STRING, false, 1, TL_TEMPLATE_TITLE_MAX, NULL},
    {"fields", TL_JF_ARRAY, true, 1, TL_TEMPLATE_FIELDS_MAX, NULL},
    /* a new version changes the forms participants get: it may say why
     * (issue 26: every route that changes what participants get does) */
    {"reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
};

/* $1 study, $2 name, $3 the command's event: column 0 that event when a
 * version came of it (a retry; the first, should a log written before retries
 * were recognised hold it twice), else the latest version's event (or the
 * study's id: there is none yet); the study's lock; the latest version. */
static const char *const sql_template_check =
    "SELECT COALESCE((SELECT r.last_event_id::text FROM form_templates r"
    "    WHERE r.study_id = s.id AND r.name = $2 AND r.last_event_id = $3::uuid"
    "    ORDER BY r.version LIMIT 1),"
    "    l.last_event_id::text, s.id::text), s.locked, l.id, l.version, l.title, l.fields::text"
    "  FROM studies s LEFT JOIN LATERAL (SELECT * FROM form_templates t"
    "    WHERE t.study_id = s.id AND t.name = $2 ORDER BY t.version DESC LIMIT 1) l ON true"
    " WHERE s.id = $1";
/* $3 the version decided, $4 the command's event: a retry answers with the
 * version its event made */
static const char *const sql_template_version =
    "SELECT " SQL_TEMPLATE_JSON "::text FROM form_templates t"
    " WHERE t.study_id = $1 AND t.name = $2 AND t.version = COALESCE((SELECT r.version"
    "   FROM form_templates r WHERE r.study_id = $1 AND r.name = $2"
    "   AND r.last_event_id = $4::uuid ORDER BY r.version LIMIT 1), NULLIF($3, '')::int)";

typedef struct {
    tl_gw_t *gw;
    const json_t *body;
    json_t *fields; /* normalised */
    json_t *payload;
    const char *study_id;
    char version[16]; /* the answer's */
    const char *id;   /* the template's id when it is new */
} publish_ctx_t;

static bool publish_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    publish_ctx_t *c = ctx_in;
    if (is_true(check, 1)) {
        tl_problem_locked(resp);
        return false;
    }
    tl_template_t latest = {.exists = tl_pg_get(check, 0, 2) != NULL};
    const char *title = tl_json_str(c->body, "title");
    if (latest.exists) {
        latest.version = (int32_t)tl_pg_get_int(check, 0, 3);
        snprintf(latest.title, sizeof latest.title, "%s",
                 tl_pg_get(check, 0, 4) ? tl_pg_get(check, 0, 4) : "");
        latest.fields = json_loads(tl_pg_get(check, 0, 5), 0, NULL);
    }
    int32_t v = tl_template_next_version(&latest, title, c->fields);
    snprintf(c->version, sizeof c->version, "%d", (int)v);
    json_decref(latest.fields);
    if (latest.exists && v == latest.version) {
        /* nothing changed: the template as it is, no new version */
        const char *params[] = {c->study_id, tl_json_str(c->body, "name"), c->version,
                                cmd->meta.event_id.s};
        bool failed = false;
        json_t *j = tl_gw_query_json(c->gw, resp, sql_template_version, 4, params, &failed);
        if (j) {
            resp->status = 200;
            resp->body = j;
        } else if (!failed) {
            tl_problem_from_err(resp, TL_ERR_INTERNAL);
        }
        return false;
    }
    if (v > TL_TEMPLATE_VERSIONS_MAX) {
        tl_problem_r(resp, TL_R(too_many_versions), "a template has at most 1000 versions", NULL);
        return false;
    }
    json_object_set_new(c->payload, "study_id", json_string(c->study_id));
    json_object_set_new(c->payload, "template_id",
                        json_string(latest.exists ? tl_pg_get(check, 0, 2) : c->id));
    json_object_set(c->payload, "name", json_object_get(c->body, "name"));
    json_object_set_new(c->payload, "title", title ? json_string(title) : json_null());
    json_object_set_new(c->payload, "version", json_integer(v));
    json_object_set(c->payload, "fields", c->fields);
    return true;
}

void tl_h_form_template_publish(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "FormTemplatePublished", .projection = TL_PROJECTION_FORMS};
    json_t *body = tl_gw_body(req, resp, template_fields, 4), *errors = json_array();
    publish_ctx_t ctx = {.gw = gw, .body = body, .payload = json_object()};
    tl_uuid_t study;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    if (tl_uuid_parse(req->params[0], &study)) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        goto out;
    }
    if (!(ctx.fields = tl_template_fields_check(json_object_get(body, "fields"), errors))) {
        invalid(resp, TL_R(invalid_template), errors);
        errors = NULL;
        goto out;
    }
    ctx.study_id = study.s;
    ctx.id = cmd.resource_id.s;
    cmd.meta.reason = tl_json_str(body, "reason"); /* the envelope's, not a field of the event */
    const char *name = tl_json_str(body, "name");
    const char *check[] = {study.s, name, cmd.meta.event_id.s};
    const char *ans[] = {study.s, name, ctx.version, cmd.meta.event_id.s};
    const tl_update_t spec = {.check_sql = sql_template_check,
                              .check_params = check,
                              .ncheck = 3,
                              .not_found = "study not found",
                              .decide = publish_decide,
                              .ctx = &ctx,
                              .answer_sql = sql_template_version,
                              .answer_params = ans,
                              .nanswer = 4,
                              .status = 201};
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s/form-templates/%s", study.s, name);
    cmd.key = study.s;
    cmd.payload = ctx.payload;
    /* one protocol change of a study at a time */
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, study.s), resp);
out:
    json_decref(errors);
    json_decref(ctx.fields);
    json_decref(ctx.payload);
    json_decref(body);
}

#define TEMPLATE_KEY(a) a ".name COLLATE \"C\""
/* a template is its latest version; its id stays across versions */
#define LATEST_TEMPLATES                                                                           \
    "(SELECT DISTINCT ON (id) * FROM form_templates WHERE study_id = $1 ORDER BY id, version "     \
    "DESC)"

void tl_h_form_template_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false, has_after = false;
    char lim[16], after[TL_UUID_STRLEN];
    json_t *j = NULL;
    if (!tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {req->params[0], lim, has_after ? after : NULL};
    if (tl_uuid_valid(req->params[0]))
        j = tl_gw_query_json(
            gw, resp,
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM studies WHERE id = $1) THEN (" TL_SQL_PAGE(
                SQL_TEMPLATE_JSON, TEMPLATE_KEY, LATEST_TEMPLATES, "true") ") END",
            3, params, &failed);
    tl_gw_found(resp, j, failed, "study not found");
}

void tl_h_form_template_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *version = req->query(req->conn, "version");
    char *end = NULL;
    long v = version ? strtol(version, &end, 10) : 0;
    if (version && (!*version || *end || v < 1 || v > TL_TEMPLATE_VERSIONS_MAX)) {
        json_t *errors = json_array();
        tl_json_error(errors, "version", "must be a version number from 1 to 1000");
        tl_problem_query(resp, errors);
        return;
    }
    bool failed = false;
    json_t *j = NULL;
    const char *params[] = {req->params[0], req->params[1], version};
    if (tl_uuid_valid(req->params[0]) && tl_json_name_ok(req->params[1]))
        j = tl_gw_query_json(gw, resp,
                             "SELECT (" SQL_TEMPLATE_JSON "::jsonb || jsonb_build_object("
                             "'latest_version', max(t.version) OVER ()))::text"
                             " FROM form_templates t WHERE t.study_id = $1 AND t.name = $2"
                             " ORDER BY ($3::int IS NOT NULL AND t.version = $3::int) DESC,"
                             " t.version DESC LIMIT 1",
                             3, params, &failed);
    /* a version that does not exist is not the latest one */
    if (j && version && json_integer_value(json_object_get(j, "version")) != v) {
        json_decref(j);
        j = NULL;
    }
    tl_gw_found(resp, j, failed, "form template not found");
}

/* ---- responses ---- */

static const tl_json_field_t submit_fields[] = {
    {"template", TL_JF_NAME, true, 0, 0, NULL},
    {"answers", TL_JF_OBJECT, true, 0, TL_TEMPLATE_FIELDS_MAX, NULL},
};

/* $1 participant, $2 the visit's id or name, $3 template name, $4 the new
 * form's id: the stream (last event, version, study, site), the lock, the
 * visit, the template's latest version, a form the visit has of it, the
 * form itself when this is a retry, and the visit type's name and the
 * templates it lists. */
static const char *const sql_submit_check =
    "SELECT p.last_event_id::text, p.version, p.study_id, p.site_id, COALESCE(s.locked, false),"
    "       v.visit_type_id, v.state, t.id, t.version, t.fields::text,"
    "       (SELECT f.id FROM forms f WHERE f.participant_id = p.id"
    "          AND f.visit_type_id = v.visit_type_id AND f.template_name = $3 LIMIT 1),"
    "       (SELECT (" SQL_FORM_JSON ")::text" SQL_FORM_FROM " WHERE f.id = $4),"
    "       COALESCE(vt.name, v.name), vt.form_templates::text"
    "  FROM schedule_participants p LEFT JOIN studies s ON s.id = p.study_id"
    "  LEFT JOIN LATERAL (SELECT * FROM participant_visits v WHERE v.participant_id = p.id"
    "    AND (v.visit_type_id::text = lower($2) OR lower(v.name) = lower($2))"
    "    ORDER BY v.visit_type_id::text = lower($2) DESC LIMIT 1) v ON true"
    "  LEFT JOIN visit_types vt ON vt.id = v.visit_type_id"
    "  LEFT JOIN LATERAL (SELECT * FROM form_templates t WHERE t.study_id = p.study_id"
    "    AND t.name = $3 ORDER BY t.version DESC LIMIT 1) t ON true"
    " WHERE p.id = $1";

typedef struct {
    const json_t *body;
    json_t *payload;
} submit_ctx_t;

/* The participant's next stream version and site, from columns 1 and 3 of
 * a check row. */
static void stream_meta(const tl_pg_res_t *check, tl_cmd_t *cmd)
{
    cmd->meta.stream_version = tl_pg_get_int(check, 0, 1) + 1;
    cmd->meta.site_id = tl_pg_get(check, 0, 3);
}

/* 422 template-not-in-visit: the visit type (its name) does not list the
 * template; the problem names the templates it does (listed: its
 * form_templates as text, NULL when unknown). */
static void not_in_visit(tl_resp_t *resp, const char *visit_type, const char *template,
                         const char *listed)
{
    json_t *names = listed ? json_loads(listed, 0, NULL) : NULL, *t;
    char detail[96 + TL_BYTES(TL_VISIT_NAME_MAX) + TL_FORMS_PER_VISIT_MAX * (TL_JSON_NAME_MAX + 2)];
    size_t i, len;
    int n = snprintf(detail, sizeof detail, "the visit type %s takes %s", visit_type,
                     json_array_size(names) ? "the templates " : "no form templates");
    len = n > 0 ? (size_t)n : 0;
    json_array_foreach(names, i, t)
    {
        n = snprintf(detail + len, sizeof detail - len, "%s%s", i ? ", " : "",
                     json_string_value(t) ? json_string_value(t) : "");
        len = n > 0 && (size_t)n < sizeof detail - len ? len + (size_t)n : len;
    }
    n = snprintf(detail + len, sizeof detail - len,
                 ", not %s: a form is entered at a visit whose type lists its template", template);
    (void)n;
    json_t *errors = json_array();
    tl_json_error(errors, "template", "the visit type does not list this template");
    tl_problem_r(resp, TL_R(template_not_in_visit), detail, errors);
    json_object_set_new(resp->body, "visit_type", json_string(visit_type));
    json_object_set_new(resp->body, "templates", names ? names : json_array());
}

static bool submit_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    submit_ctx_t *c = ctx_in;
    const char *retried = tl_pg_get(check, 0, 11);
    if (retried) { /* the same Idempotency-Key: the form it made */
        json_t *j = json_loads(retried, 0, NULL);
        if (j)
            tl_gw_created(resp, j, cmd->location, true);
        else
            tl_problem_from_err(resp, TL_ERR_INTERNAL);
        return false;
    }
    if (is_true(check, 4)) {
        tl_problem_locked(resp);
        return false;
    }
    const char *state = tl_pg_get(check, 0, 6);
    if (!tl_pg_get(check, 0, 5)) {
        tl_problem_r(resp, TL_R(not_found),
                     "no visit of this participant has this visit type id or name", NULL);
        return false;
    }
    if (strcmp(state, "completed")) {
        tl_problem_r(resp, TL_R(visit_not_completed),
                     "forms are entered for a completed visit: complete the visit first", NULL);
        return false;
    }
    if (!tl_pg_get(check, 0, 7)) {
        json_t *errors = json_array();
        tl_json_error(errors, "template", "the study has no form template of this name");
        invalid(resp, TL_R(unknown_template), errors);
        return false;
    }
    /* the protocol says which forms a visit takes: no form of another
     * template slips in unasked for (data quality would never see it) */
    const char *template = tl_json_str(c->body, "template");
    json_t *listed = json_loads(tl_pg_get(check, 0, 13) ? tl_pg_get(check, 0, 13) : "[]", 0, NULL);
    bool in_visit = tl_form_template_listed(listed, template);
    json_decref(listed);
    if (!in_visit) {
        not_in_visit(resp, tl_pg_get(check, 0, 12) ? tl_pg_get(check, 0, 12) : "", template,
                     tl_pg_get(check, 0, 13));
        return false;
    }
    const char *existing = tl_pg_get(check, 0, 10);
    if (existing) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "the visit has this form already (/v1/forms/%s): amend it with a reason",
                 existing);
        tl_problem_r(resp, TL_R(form_already_submitted), detail, NULL);
        snprintf(resp->location, sizeof resp->location, "/v1/forms/%s", existing);
        return false;
    }
    json_t *fields = json_loads(tl_pg_get(check, 0, 9), 0, NULL), *errors = json_array();
    const json_t *answers = json_object_get(c->body, "answers");
    size_t n = fields && errors ? tl_answers_check(fields, answers, errors) : 1;
    json_decref(fields);
    if (n) {
        if (json_array_size(errors))
            invalid(resp, TL_R(invalid_answers), errors);
        else
            tl_problem_from_err(resp, TL_ERR_NOMEM);
        if (!json_array_size(errors))
            json_decref(errors);
        return false;
    }
    json_decref(errors);
    json_t *p = c->payload;
    json_object_set_new(p, "participant_id", json_string(cmd->key));
    json_object_set_new(p, "study_id", json_string(tl_pg_get(check, 0, 2)));
    json_object_set_new(p, "visit_type_id", json_string(tl_pg_get(check, 0, 5)));
    json_object_set_new(p, "form_id", json_string(cmd->resource_id.s));
    json_object_set_new(p, "template_id", json_string(tl_pg_get(check, 0, 7)));
    json_object_set(p, "template_name", json_object_get(c->body, "template"));
    json_object_set_new(p, "template_version", json_integer(tl_pg_get_int(check, 0, 8)));
    json_object_set_new(p, "answers", tl_answers_compact(answers));
    stream_meta(check, cmd);
    return true;
}

void tl_h_form_submit(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "FormSubmitted", .projection = TL_PROJECTION_FORMS};
    json_t *body = tl_gw_body(req, resp, submit_fields, 2);
    submit_ctx_t ctx = {.body = body, .payload = json_object()};
    tl_uuid_t pid;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    if (tl_uuid_parse(req->params[0], &pid)) {
        tl_problem_r(resp, TL_R(not_found), "participant not found", NULL);
        goto out;
    }
    const char *check[] = {pid.s, req->params[1], tl_json_str(body, "template"), cmd.resource_id.s};
    const char *ans[] = {cmd.resource_id.s};
    const tl_update_t spec = {.check_sql = sql_submit_check,
                              .check_params = check,
                              .ncheck = 4,
                              .not_found = "participant not found",
                              .decide = submit_decide,
                              .ctx = &ctx,
                              .answer_sql = sql_form,
                              .answer_params = ans,
                              .nanswer = 1,
                              .status = 201};
    snprintf(cmd.location, sizeof cmd.location, "/v1/forms/%s", cmd.resource_id.s);
    cmd.key = pid.s;
    cmd.payload = ctx.payload;
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, pid.s), resp);
out:
    json_decref(ctx.payload);
    json_decref(body);
}

/* ---- amendments and signatures: commands on a form ---- */

/* $1 form, $2 the command's event: its participant's stream (last event,
 * or the command's own when an amendment of the form came of it: a retry;
 * version, study, site), the lock, and the form (participant, status,
 * revision, answers, the fields of its template version, that version),
 * its template's latest version with its fields when later than the
 * form's, and the template's name. */
static const char *const sql_form_check =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM form_field_history h WHERE h.form_id = f.id"
    "         AND h.event_id = $2::uuid) THEN $2::uuid::text ELSE p.last_event_id::text END,"
    "       p.version, f.study_id, f.site_id, COALESCE(s.locked, false),"
    "       f.participant_id, f.status, f.revision, f.answers::text, t.fields::text,"
    "       f.template_version, l.version,"
    "       CASE WHEN l.version > f.template_version THEN l.fields::text END, f.template_name"
    "  FROM forms f JOIN schedule_participants p ON p.id = f.participant_id"
    "  LEFT JOIN studies s ON s.id = f.study_id"
    "  JOIN form_templates t ON t.id = f.template_id AND t.version = f.template_version"
    "  JOIN LATERAL (SELECT l.version, l.fields FROM form_templates l WHERE l.id = f.template_id"
    "    ORDER BY l.version DESC LIMIT 1) l ON true"
    " WHERE f.id = $1";

typedef struct {
    const json_t *body;
    json_t *payload;
    const char *form_id;
    /* signatures */
    const tl_principal_t *signer;
} form_ctx_t;

/* What every event on a form carries (its decide checked the lock first). */
static void form_common(form_ctx_t *c, const tl_pg_res_t *check, tl_cmd_t *cmd)
{
    json_object_set_new(c->payload, "participant_id", json_string(tl_pg_get(check, 0, 5)));
    json_object_set_new(c->payload, "study_id", json_string(tl_pg_get(check, 0, 2)));
    json_object_set_new(c->payload, "form_id", json_string(c->form_id));
    stream_meta(check, cmd);
}

/* 422 template-version-not-latest, naming the versions there are. */
static void not_latest(tl_resp_t *resp, const tl_pg_res_t *check)
{
    char detail[256];
    snprintf(detail, sizeof detail,
             "the form is on version %lld of %s and its latest version is %lld: an amendment"
             " moves a form to the latest version only, never back",
             (long long)tl_pg_get_int(check, 0, 10), tl_pg_get(check, 0, 13),
             (long long)tl_pg_get_int(check, 0, 11));
    json_t *errors = json_array();
    tl_json_error(errors, "template_version", "must be the template's latest version");
    tl_problem_r(resp, TL_R(template_version_not_latest), detail, errors);
}

static bool amend_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    form_ctx_t *c = ctx_in;
    json_t *current = json_loads(tl_pg_get(check, 0, 8), 0, NULL);
    json_t *fields = json_loads(tl_pg_get(check, 0, 9), 0, NULL);
    const char *latest_text = tl_pg_get(check, 0, 12);
    json_t *latest = latest_text ? json_loads(latest_text, 0, NULL) : NULL;
    json_t *errors = json_array();
    tl_amended_t out = {0};
    bool ok = false;
    if (is_true(check, 4)) {
        tl_problem_locked(resp);
        goto out;
    }
    if (!current || !fields || !errors || (latest_text && !latest)) {
        tl_problem_from_err(resp, TL_ERR_NOMEM);
        goto out;
    }
    const tl_amend_t a = {.answers = current,
                          .version = (int32_t)tl_pg_get_int(check, 0, 10),
                          .fields = fields,
                          .latest_version = (int32_t)tl_pg_get_int(check, 0, 11),
                          .latest_fields = latest,
                          .patch = json_object_get(c->body, "answers"),
                          .to_version = (int32_t)tl_json_int(c->body, "template_version", 0)};
    const char *why = tl_form_amend_check(&a, &out, errors);
    tl_reason_t r = tl_reason_parse(why);
    if (r == TL_R(template_version_not_latest)) {
        not_latest(resp, check);
    } else if (r == TL_R(nothing_to_amend)) {
        tl_problem_r(
            resp, r,
            "the amendment changes none of the form's answers and not its template version", NULL);
    } else if (r == TL_R(invalid_answers)) {
        /* the whole answer set, against the version the form ends on */
        invalid(resp, r, errors);
        errors = NULL;
    } else if (why) {
        tl_problem_from_err(resp, TL_ERR_NOMEM);
    }
    if (why)
        goto out;
    json_object_set(c->payload, "changes", out.changes);
    json_object_set_new(c->payload, "signature_removed",
                        json_boolean(!strcmp(tl_pg_get(check, 0, 6), "signed")));
    json_object_set_new(c->payload, "template_version",
                        out.version != a.version ? json_integer(out.version) : json_null());
    cmd->meta.reason = tl_json_str(c->body, "reason");
    form_common(c, check, cmd);
    ok = true;
out:
    json_decref(current);
    json_decref(fields);
    json_decref(latest);
    json_decref(out.answers);
    json_decref(out.changes);
    json_decref(errors);
    return ok;
}

static bool sign_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    form_ctx_t *c = ctx_in;
    if (is_true(check, 4)) {
        tl_problem_locked(resp);
        return false;
    }
    /* what the signer reviewed must be what the form says now */
    int64_t revision = tl_pg_get_int(check, 0, 7);
    if (tl_json_int(c->body, "revision", 0) != revision) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "the form is at revision %lld: review it as it is now, then sign that revision",
                 (long long)revision);
        tl_problem_r(resp, TL_R(revision_mismatch), detail, NULL);
        return false;
    }
    if (!strcmp(tl_pg_get(check, 0, 6), "signed")) {
        tl_problem_r(resp, TL_R(already_signed),
                     "the form is signed as it is; an amendment removes the signature", NULL);
        return false;
    }
    char content[65];
    json_t *answers = json_loads(tl_pg_get(check, 0, 8), 0, NULL);
    tl_err_t err = answers ? tl_form_content_sha256(c->form_id, (int)tl_pg_get_int(check, 0, 10),
                                                    (int)revision, answers, content)
                           : TL_ERR_INTERNAL;
    json_decref(answers);
    if (err) {
        tl_problem_from_err(resp, err);
        return false;
    }
    const tl_principal_t *p = c->signer;
    json_object_set_new(c->payload, "form_revision", json_integer(revision));
    json_object_set(c->payload, "meaning", json_object_get(c->body, "meaning"));
    json_object_set_new(c->payload, "signer_name", json_string(p->name));
    json_object_set_new(c->payload, "printed_name",
                        json_string(p->display_name[0] ? p->display_name : p->name));
    json_object_set_new(c->payload, "content_sha256", json_string(content));
    json_object_set_new(c->payload, "credential_id", json_string(p->signing_credential_id));
    form_common(c, check, cmd);
    return true;
}

/* Runs a command on the form {form}: the participant's stream is locked,
 * and the answer is the form. */
static void form_command(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, form_ctx_t *ctx,
                         bool (*decide)(void *, const tl_pg_res_t *, tl_cmd_t *, tl_resp_t *),
                         int status, tl_resp_t *resp)
{
    tl_uuid_t form;
    tl_pg_res_t *res = NULL;
    if (tl_uuid_parse(req->params[0], &form)) {
        tl_problem_r(resp, TL_R(not_found), "form not found", NULL);
        return;
    }
    /* the stream to lock: the form's participant */
    const char *params[] = {form.s, cmd->meta.event_id.s};
    tl_err_t err =
        tl_gw_exec(gw, "SELECT participant_id FROM forms WHERE id = $1", 1, params, &res);
    const char *pid = err ? NULL : tl_pg_get(res, 0, 0);
    if (err)
        tl_problem_from_err(resp, err);
    else if (!pid)
        tl_problem_r(resp, TL_R(not_found), "form not found", NULL);
    if (!pid)
        goto out;
    ctx->form_id = form.s;
    const tl_update_t spec = {.check_sql = sql_form_check,
                              .check_params = params,
                              .ncheck = 2,
                              .not_found = "form not found",
                              .decide = decide,
                              .ctx = ctx,
                              .answer_sql = sql_form,
                              .answer_params = params,
                              .nanswer = 1,
                              .status = status};
    snprintf(cmd->location, sizeof cmd->location, "/v1/forms/%s", form.s);
    cmd->key = pid;
    cmd->payload = ctx->payload;
    tl_gw_update(gw, req, cmd, &spec, tl_gw_stripe(gw, pid), resp);
out:
    tl_pg_res_free(res);
}

void tl_h_form_amend(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"answers", TL_JF_OBJECT, false, 0, TL_TEMPLATE_FIELDS_MAX, NULL},
        {"reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
        {"template_version", TL_JF_INTEGER, false, 1, TL_TEMPLATE_VERSIONS_MAX, NULL},
    };
    tl_cmd_t cmd = {.type = "FormAmended", .projection = TL_PROJECTION_FORMS};
    json_t *body = tl_gw_body(req, resp, f, 3);
    form_ctx_t ctx = {.body = body, .payload = json_object()};
    if (body && !json_object_get(body, "answers") && !json_object_get(body, "template_version")) {
        json_t *errors = json_array();
        tl_json_error(errors, "answers",
                      "is required, unless template_version moves the form to the latest version");
        tl_problem_r(resp, TL_R(validation_failed), "one or more fields are invalid", errors);
    } else if (body && !tl_json_str(body, "reason")) {
        /* well formed, but a change of clinical data without a reason is a
         * rule broken (21 CFR 11.10(e)), not a malformed request */
        json_t *errors = json_array();
        tl_json_error(errors, "reason", "a reason for change is required");
        invalid(resp, TL_R(reason_required), errors);
    } else if (body && tl_cmd_init(gw, req, &cmd, resp)) {
        form_command(gw, req, &cmd, &ctx, amend_decide, 200, resp);
    }
    json_decref(ctx.payload);
    json_decref(body);
}

/* The signer's credential: re-authentication separate from the bearer
 * token (21 CFR 11.200), with the credential's rules (access.h) first.
 * false: resp holds why not; a wrong password is an event (lockout). */
static bool signer_verified(tl_gw_t *gw, tl_req_t *req, const tl_cmd_t *cmd, const char *password,
                            tl_principal_t *p, tl_resp_t *resp)
{
    char hash[TL_PASSWORD_HASH_STRLEN], site[TL_UUID_STRLEN];
    if (!tl_signer_load(gw, req->actor.id, req->params[0], p, hash, sizeof hash, site, resp))
        return false;
    const char *why = tl_signing_check(p, tl_now_us());
    if (why) {
        tl_problem_signing(resp, why);
        return false;
    }
    if (tl_password_verify(password, hash))
        return true;
    tl_signing_failed(gw, req, cmd, p, req->params[0], site[0] ? site : NULL, resp);
    return false;
}

void tl_h_form_sign(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"meaning", TL_JF_ENUM, true, 0, 0, tl_signature_meanings},
        {"password", TL_JF_STRING, true, 1, TL_PASSWORD_MAX, NULL},
        {"revision", TL_JF_INTEGER, true, 1, INT32_MAX, NULL},
    };
    tl_cmd_t cmd = {.type = "FormSigned", .projection = TL_PROJECTION_FORMS};
    json_t *body = tl_gw_body(req, resp, f, 3);
    form_ctx_t ctx = {.body = body, .payload = json_object()};
    tl_principal_t signer;
    if (!body || !tl_uuid_valid(req->params[0]) || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    /* one password check at a time per signer, a few in all; the slow hash
     * is checked before the participant's stream is locked */
    if (!tl_sign_guard_enter(gw, req->actor.id, resp))
        goto out;
    if (signer_verified(gw, req, &cmd, tl_json_str(body, "password"), &signer, resp)) {
        ctx.signer = &signer;
        form_command(gw, req, &cmd, &ctx, sign_decide, 200, resp);
        if (resp->status == 200 || resp->status == 202)
            tl_signing_cleared(gw, req, &signer);
    }
    tl_sign_guard_leave(gw, req->actor.id);
out:
    if (body && !tl_uuid_valid(req->params[0]))
        tl_problem_r(resp, TL_R(not_found), "form not found", NULL);
    json_decref(ctx.payload);
    json_decref(body);
}

/* ---- queries ---- */

void tl_h_form_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    json_t *j = NULL;
    if (tl_uuid_valid(req->params[0]))
        j = tl_gw_query_json(
            gw, resp,
            "SELECT (" SQL_FORM_JSON "::jsonb || jsonb_build_object('history',"
            " COALESCE((SELECT json_agg(json_build_object('revision', h.revision,"
            "   'field', h.field, 'before', h.before, 'after', h.after,"
            "   'event_type', h.event_type, 'actor_id', h.actor_id, 'actor_role', h.actor_role,"
            "   'reason', h.reason, 'recorded_at', h.recorded_at, 'event_id', h.event_id)"
            "   ORDER BY h.revision, h.field) FROM form_field_history h WHERE h.form_id = f.id),"
            "  '[]'::json)))::text" SQL_FORM_FROM " WHERE f.id = $1",
            1, req->params, &failed);
    tl_gw_found(resp, j, failed, "form not found");
}

/* forms by their visit's day, then template; a form of a visit the
 * schedule no longer has last */
#define FORM_KEY(a)                                                                                \
    "COALESCE(" a ".target_day, 2147483647), " a ".template_name COLLATE \"C\", " a ".id"
#define PARTICIPANT_FORMS                                                                          \
    "(SELECT f.id, f.template_name, v.target_day, " SQL_FORM_JSON " AS j" SQL_FORM_FROM            \
    "  WHERE f.participant_id = $1)"

void tl_h_participant_forms(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false, has_after = false;
    char lim[16], after[TL_UUID_STRLEN];
    json_t *j = NULL;
    if (!tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {req->params[0], lim, has_after ? after : NULL};
    if (tl_uuid_valid(req->params[0]))
        j = tl_gw_query_json(gw, resp,
                             "SELECT CASE WHEN EXISTS (SELECT 1 FROM participants WHERE id = $1)"
                             " THEN (SELECT (q.page::jsonb || jsonb_build_object('participant_id',"
                             " $1::uuid))::text FROM (" TL_SQL_PAGE(
                                 "t.j", FORM_KEY, PARTICIPANT_FORMS, "true") ") q(page)) END",
                             3, params, &failed);
    tl_gw_found(resp, j, failed, "participant not found");
}
