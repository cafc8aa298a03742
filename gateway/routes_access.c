/* Principals, bearer tokens and signing credentials (docs/SECURITY.md).
 * Every change is an event on trialog.access.v1, answered once the access
 * projection has it, like any other command. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "access_store.h"
#include "gateway.h"
#include "tl_json.h"
#include "tl_log.h"
#include "tl_secret.h"

#define SQL_PRINCIPAL_JSON                                                                         \
    "SELECT json_build_object('id', p.id, 'name', p.name, 'display_name', p.display_name,"         \
    " 'role', p.role, 'site_ids', p.site_ids, 'study_ids', p.study_ids, 'active', p.active, 'has_signing_credential',"       \
    " p.signing_credential_id IS NOT NULL, 'signing', json_build_object('expires_at',"             \
    " p.signing_expires_at, 'locked', p.signing_locked, 'failures', p.signing_failures,"           \
    " 'enrolment', CASE WHEN p.enrolment_state = 'none' THEN NULL ELSE " SQL_ENROLMENT_OBJ         \
    " END), 'created_at', p.created_at, 'updated_at', p.updated_at)::text"                         \
    " FROM principals p WHERE p.id = $1"
#define SQL_ENROLMENT_OBJ                                                                          \
    "json_build_object('id', p.enrolment_id, 'principal_id', p.id, 'state', p.enrolment_state,"    \
    " 'opened_by', p.enrolment_opened_by, 'approved_by', p.enrolment_approved_by,"                 \
    " 'code_expires_at', p.enrolment_code_expires_at)"
#define SQL_ENROLMENT_JSON "SELECT " SQL_ENROLMENT_OBJ "::text FROM principals p WHERE p.id = $1"
/* A command's check row: the principal's last event, then its row as
 * tl_principal_read reads it (from column 1). */
#define SQL_PRINCIPAL_CHECK "SELECT p.last_event_id::text, " TL_SQL_PRINCIPAL_COLS
#define TOKEN_JSON                                                                                 \
    "json_build_object('id', t.id, 'principal_id', t.principal_id, 'label', t.label,"              \
    " 'issued_at', t.issued_at, 'expires_at', t.expires_at, 'revoked_at', t.revoked_at,"           \
    " 'revoke_reason', t.revoke_reason)"
#define SQL_TOKEN_JSON "SELECT " TOKEN_JSON "::text FROM access_tokens t WHERE t.id = $1"
#define SQL_SITES_KNOWN "(SELECT count(*) FROM sites WHERE id = ANY($2::uuid[]))"
#define SQL_STUDIES_KNOWN "(SELECT count(*) FROM studies WHERE id = ANY($3::uuid[]))"

#define TOKEN_DAYS_DEFAULT 30
#define TOKEN_DAYS_MAX 365

static const char *const role_options[] = {"admin",   "coordinator", "clinician", "monitor",
                                           "analyst", "connector",   NULL};

static void principal_answer(tl_gw_t *gw, const char *id, tl_resp_t *resp)
{
    bool failed = false;
    const char *params[] = {id};
    json_t *j = tl_uuid_valid(id)
                    ? tl_gw_query_json(gw, resp, SQL_PRINCIPAL_JSON, 1, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "principal not found");
}

void tl_h_me(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    principal_answer(gw, req->actor.id, resp);
}

void tl_h_principal_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    principal_answer(gw, req->params[0], resp);
}

#define NAME_KEY(a) a ".name COLLATE \"C\", " a ".id"

/* $1 role (NULL: any) */
static const char *const sql_principal_list = TL_SQL_PAGE(
    "json_build_object('id', t.id, 'name', t.name, 'role', t.role, 'site_ids', t.site_ids,"
    " 'study_ids', t.study_ids, 'active', t.active, 'created_at', t.created_at,"
    " 'updated_at', t.updated_at)",
    NAME_KEY, "principals", "$1::text IS NULL OR t.role = $1");

void tl_h_principal_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *role = req->query(req->conn, "role");
    char lim[16], after[TL_UUID_STRLEN];
    bool has_after = false;
    if (role && tl_role_parse(role) < 0) {
        json_t *errors = json_array();
        tl_json_error(errors, "role", "is not a role");
        tl_problem_query(resp, errors);
        return;
    }
    if (!tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {role, lim, has_after ? after : NULL};
    bool failed = false;
    json_t *j = tl_gw_query_json(gw, resp, sql_principal_list, 3, params, &failed);
    tl_gw_found(resp, j, failed, "principals not found");
}

/* The canonical form of a JSON array of UUIDs (new reference). */
static json_t *canonical_ids(const json_t *given)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < json_array_size(given); i++) {
        tl_uuid_t u;
        tl_uuid_parse(json_string_value(json_array_get(given, i)), &u);
        json_array_append_new(ids, json_string(u.s));
    }
    return ids;
}

/* A grant's role, sites and studies, checked together (400 with field
 * errors). The ids are put in canonical form into *sites and *studies (new
 * references). */
static bool grant_ok(const json_t *body, tl_resp_t *resp, json_t **sites, json_t **studies)
{
    const json_t *given = json_object_get(body, "site_ids");
    const json_t *granted = json_object_get(body, "study_ids");
    const char *why = tl_access_grant_new_check(tl_json_str(body, "role"), json_array_size(given),
                                                json_array_size(granted));
    if (why) {
        json_t *errors = json_array();
        bool study = !strncmp(why, "studies_", 8) || !strcmp(why, "too_many_studies");
        tl_json_error(errors, study ? "study_ids" : "site_ids",
                      !strcmp(why, "sites_required")
                          ? "coordinators, clinicians and monitors need at least one site"
                      : !strcmp(why, "sites_not_allowed")
                          ? "only coordinators, clinicians and monitors have sites"
                      : !strcmp(why, "studies_required") ? "an analyst needs at least one study"
                      : !strcmp(why, "studies_not_allowed") ? "only analysts are granted studies"
                      : study ? "too many studies"
                              : "too many sites");
        tl_problem_r(resp, TL_R(validation_failed), NULL, errors);
        return false;
    }
    *sites = canonical_ids(given);
    *studies = canonical_ids(granted);
    return true;
}

_Static_assert(TL_PRINCIPAL_STUDIES_MAX <= TL_PRINCIPAL_SITES_MAX, "ids_literal's room");

/* Canonical ids (at most max) as a uuid[] literal. */
static void ids_literal(const json_t *given, size_t max, char lit[TL_SITES_PARAM_LEN])
{
    char ids[TL_PRINCIPAL_SITES_MAX][TL_UUID_STRLEN];
    size_t n = json_array_size(given);
    for (size_t i = 0; i < n && i < max && i < TL_PRINCIPAL_SITES_MAX; i++)
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_array_get(given, i)));
    if (n > max || n > TL_PRINCIPAL_SITES_MAX ||
        !tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])ids, n, lit, TL_SITES_PARAM_LEN))
        snprintf(lit, TL_SITES_PARAM_LEN, "{}");
}

/* Whether every site and study of the grant in payload exists: the check
 * row's columns col (sites known) and col + 1 (studies known). */
static bool grant_known(const tl_pg_res_t *check, int col, const json_t *payload, tl_resp_t *resp)
{
    long long known = tl_pg_get_int(check, 0, col);
    if (known != (long long)json_array_size(json_object_get(payload, "site_ids"))) {
        tl_problem_r(resp, TL_R(unknown_site), "a site_ids entry is not a site", NULL);
        return false;
    }
    known = tl_pg_get_int(check, 0, col + 1);
    if (known != (long long)json_array_size(json_object_get(payload, "study_ids"))) {
        tl_problem_r(resp, TL_R(unknown_grant_study), "a study_ids entry is not a study", NULL);
        return false;
    }
    return true;
}

static const tl_json_field_t principal_fields[] = {
    {"name", TL_JF_STRING, true, 1, TL_PRINCIPAL_NAME_MAX, NULL},
    {"role", TL_JF_ENUM, true, 0, 0, role_options},
    {"site_ids", TL_JF_UUIDS, false, 0, TL_PRINCIPAL_SITES_MAX, NULL},
    {"display_name", TL_JF_STRING, false, 1, TL_DISPLAY_NAME_MAX, NULL},
    {"study_ids", TL_JF_UUIDS, false, 0, TL_PRINCIPAL_STUDIES_MAX, NULL},
};

static bool create_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    return grant_known(check, 2, ctx, resp);
}

void tl_h_principal_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "PrincipalCreated", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, principal_fields, 5), *sites = NULL, *payload = NULL;
    json_t *studies = NULL;
    if (!body)
        goto out;
    const char *name = tl_json_str(body, "name"), *display = tl_json_str(body, "display_name");
    if (!tl_principal_name_ok(name) || (display && !tl_display_name_ok(display))) {
        json_t *errors = json_array();
        if (!tl_principal_name_ok(name))
            tl_json_error(errors, "name",
                          "letters, digits and . _ @ - only, starting with a letter or digit");
        else
            tl_json_error(errors, "display_name", "no leading or trailing space");
        tl_problem_r(resp, TL_R(validation_failed), NULL, errors);
        goto out;
    }
    if (!tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    if (!grant_ok(body, resp, &sites, &studies))
        goto out;
    char sites_lit[TL_SITES_PARAM_LEN], studies_lit[TL_SITES_PARAM_LEN];
    ids_literal(sites, TL_PRINCIPAL_SITES_MAX, sites_lit);
    ids_literal(studies, TL_PRINCIPAL_STUDIES_MAX, studies_lit);
    payload = json_pack("{s:s, s:s, s:s, s:O, s:O, s:s?}", "principal_id", cmd.resource_id.s,
                        "name", name, "role", tl_json_str(body, "role"), "site_ids", sites,
                        "study_ids", studies, "display_name", display);
    const char *check[] = {name, sites_lit, studies_lit};
    const tl_create_t spec = {
        .read_sql = SQL_PRINCIPAL_JSON,
        .check_sql = "SELECT (" SQL_PRINCIPAL_JSON "),"
                     " (SELECT id::text FROM principals WHERE name = $2), (SELECT count(*)"
                     " FROM sites WHERE id = ANY($3::uuid[])), (SELECT count(*)"
                     " FROM studies WHERE id = ANY($4::uuid[]))",
        .check_params = check,
        .ncheck = 3,
        .dup = TL_R(duplicate_principal_name),
        .dup_detail = "a principal with this name exists",
        .rules = create_rules,
        .ctx = payload,
    };
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s", cmd.resource_id.s);
    cmd.key = cmd.resource_id.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, name), resp);
out:
    json_decref(payload);
    json_decref(studies);
    json_decref(sites);
    json_decref(body);
}

/* ---- changes to an existing principal ---- */

typedef struct {
    tl_gw_t *gw;
    const json_t *body;
    json_t *payload;
    const char *password;
} change_ctx_t;

static bool principal_param(tl_req_t *req, tl_uuid_t *id, tl_resp_t *resp)
{
    if (tl_uuid_parse(req->params[0], id)) {
        tl_problem_r(resp, TL_R(not_found), "principal not found", NULL);
        return false;
    }
    return true;
}

/* Nobody changes or disables their own access: an administrator could lock
 * every administrator out. */
static bool not_self(const tl_req_t *req, const tl_uuid_t *id, tl_resp_t *resp)
{
    if (strcasecmp(req->actor.id, id->s))
        return true;
    tl_problem_r(resp, TL_R(own_access), "another administrator changes or disables your access",
                 NULL);
    return false;
}

/* col: the check row's column saying whether the principal is active. */
static bool active_or_409(const tl_pg_res_t *check, int col, tl_resp_t *resp)
{
    const char *active = tl_pg_get(check, 0, col);
    if (active && !strcmp(active, "t"))
        return true;
    tl_problem_r(resp, TL_R(principal_disabled), "a disabled principal changes no more", NULL);
    return false;
}

static bool change_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    change_ctx_t *ctx = ctx_in;
    if (!active_or_409(check, 1, resp) ||
        (ctx->payload && !grant_known(check, 2, ctx->payload, resp)))
        return false;
    cmd->meta.reason = tl_json_str(ctx->body, "reason");
    return true;
}

/* Runs a command on principal id; the check row is its last event, whether
 * it is active, and how many of sites_lit are sites and of studies_lit
 * studies. */
static void principal_update(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_uuid_t *id,
                             const char *sites_lit, const char *studies_lit,
                             bool (*decide)(void *, const tl_pg_res_t *, tl_cmd_t *, tl_resp_t *),
                             change_ctx_t *ctx, tl_resp_t *resp)
{
    const char *params[] = {id->s, sites_lit ? sites_lit : "{}", studies_lit ? studies_lit : "{}"};
    const tl_update_t spec = {.check_sql = "SELECT last_event_id::text, active, " SQL_SITES_KNOWN
                                           ", " SQL_STUDIES_KNOWN " FROM principals WHERE id = $1",
                              .check_params = params,
                              .ncheck = 3,
                              .not_found = "principal not found",
                              .decide = decide,
                              .ctx = ctx,
                              .answer_sql = SQL_PRINCIPAL_JSON,
                              .answer_params = params,
                              .nanswer = 1,
                              .status = 200};
    snprintf(cmd->location, sizeof cmd->location, "/v1/principals/%s", id->s);
    cmd->key = id->s;
    tl_gw_update(gw, req, cmd, &spec, tl_gw_stripe(gw, id->s), resp);
}

static const tl_json_field_t change_fields[] = {
    {"role", TL_JF_ENUM, true, 0, 0, role_options},
    {"site_ids", TL_JF_UUIDS, false, 0, TL_PRINCIPAL_SITES_MAX, NULL},
    {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
    {"study_ids", TL_JF_UUIDS, false, 0, TL_PRINCIPAL_STUDIES_MAX, NULL},
};

void tl_h_principal_change(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "PrincipalRoleChanged", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, change_fields, 4), *sites = NULL, *payload = NULL;
    json_t *studies = NULL;
    tl_uuid_t id;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp) ||
        !not_self(req, &id, resp) || !grant_ok(body, resp, &sites, &studies))
        goto out;
    char lit[TL_SITES_PARAM_LEN], studies_lit[TL_SITES_PARAM_LEN];
    ids_literal(sites, TL_PRINCIPAL_SITES_MAX, lit);
    ids_literal(studies, TL_PRINCIPAL_STUDIES_MAX, studies_lit);
    payload = json_pack("{s:s, s:s, s:O, s:O}", "principal_id", id.s, "role",
                        tl_json_str(body, "role"), "site_ids", sites, "study_ids", studies);
    change_ctx_t ctx = {gw, body, payload, NULL};
    cmd.payload = payload;
    principal_update(gw, req, &cmd, &id, lit, studies_lit, change_decide, &ctx, resp);
out:
    json_decref(payload);
    json_decref(studies);
    json_decref(sites);
    json_decref(body);
}

static const tl_json_field_t reason_fields[] = {
    {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
};

void tl_h_principal_disable(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "PrincipalDisabled", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, reason_fields, 1), *payload = NULL;
    tl_uuid_t id;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp) ||
        !not_self(req, &id, resp))
        goto out;
    payload = json_pack("{s:s}", "principal_id", id.s);
    change_ctx_t ctx = {gw, body, NULL, NULL};
    cmd.payload = payload;
    principal_update(gw, req, &cmd, &id, NULL, NULL, change_decide, &ctx, resp);
out:
    json_decref(payload);
    json_decref(body);
}

/* ---- signing credentials (docs/SECURITY.md "Signing credentials") ----
 *
 * No single person can make a signature attributed to someone else
 * (21 CFR 11.200(a)(2)): an administrator opens an enrolment for a
 * principal who signs, a second administrator approves it and is shown a
 * one-time code once, and the principal sets its credential with its own
 * token and that code. A credential is changed only with the current one.
 * The rules are access.h's; these handlers do the I/O around them. */

/* The details the signing rules' reasons answer with. */
typedef struct {
    tl_reason_t why;
    const char *detail;
} signing_reason_t;

static const signing_reason_t signing_reasons[] = {
    {TL_R(principal_disabled), "a disabled principal changes no more"},
    {TL_R(role_does_not_sign),
     "only the roles the permission table lets sign have a signing credential"},
    {TL_R(two_person_rule),
     "an enrolment is opened by one administrator, approved by another (not the principal, not "
     "an identity the opener granted or issued the token of) and used by the principal with a "
     "token the approver did not issue"},
    {TL_R(no_open_enrolment),
     "this enrolment is not open: approved, used, replaced by a newer one, or unknown"},
    {TL_R(no_approved_enrolment),
     "an administrator opens an enrolment for you and another approves it first"},
    {TL_R(enrolment_expired), "the one-time code is past its time: ask for a new enrolment"},
    {TL_R(invalid_enrolment_code), "the one-time code is not the approved enrolment's"},
    {TL_R(not_own_credential), "a signing credential is set by its principal only"},
    {TL_R(no_signing_credential),
     "an administrator opens an enrolment, another approves it, then you set your credential "
     "with its one-time code (POST /v1/principals/{id}/signing-credential)"},
    {TL_R(signing_credential_locked),
     "too many wrong signing passwords: a new enrolment (two administrators) unlocks signing"},
    {TL_R(signing_credential_expired),
     "replace it with the current one (POST /v1/principals/{id}/signing-credential)"},
};

void tl_problem_signing(tl_resp_t *resp, const char *why)
{
    for (size_t i = 0; i < sizeof signing_reasons / sizeof signing_reasons[0]; i++) {
        const signing_reason_t *r = &signing_reasons[i];
        if (r->why == tl_reason_parse(why)) {
            tl_problem_r(resp, r->why, r->detail, NULL);
            return;
        }
    }
    tl_problem_refused(resp, why);
}

typedef struct {
    tl_req_t *req;
    const json_t *body;
    json_t *payload;
    const char *enrolment_id;        /* approve: {enrolment} */
    const char *code_sha256;         /* set with an enrolment: its code's hash */
    const char *verified_credential; /* set by a change: the credential checked */
} signing_ctx_t;

/* The check row of a signing command on principal id: SQL_PRINCIPAL_CHECK
 * (the principal from column 1) and, in column 21, who granted the acting
 * principal its role. */
static void signing_update(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_uuid_t *id,
                           bool (*decide)(void *, const tl_pg_res_t *, tl_cmd_t *, tl_resp_t *),
                           signing_ctx_t *ctx, const char *answer_sql, int status, tl_resp_t *resp)
{
    const char *params[] = {id->s, req->actor.id};
    const tl_update_t spec = {.check_sql = SQL_PRINCIPAL_CHECK
                              ", (SELECT g.granted_by FROM principals g"
                              " WHERE g.id = $2::uuid) FROM principals p WHERE p.id = $1",
                              .check_params = params,
                              .ncheck = 2,
                              .not_found = "principal not found",
                              .decide = decide,
                              .ctx = ctx,
                              .answer_sql = answer_sql,
                              .answer_params = params,
                              .nanswer = 1,
                              .status = status};
    cmd->key = id->s;
    cmd->payload = ctx->payload;
    tl_gw_update(gw, req, cmd, &spec, tl_gw_stripe(gw, id->s), resp);
}

static bool open_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    signing_ctx_t *c = ctx_in;
    tl_principal_t p;
    tl_principal_read(check, 0, 1, &p);
    const char *why = tl_enrolment_open_check(&p, c->req->actor.id);
    if (why) {
        tl_problem_signing(resp, why);
        return false;
    }
    cmd->meta.reason = tl_json_str(c->body, "reason");
    return true;
}

void tl_h_signing_enrolment_open(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "SigningEnrolmentOpened", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, reason_fields, 1);
    signing_ctx_t ctx = {.req = req, .body = body};
    tl_uuid_t id;
    if (!body || !principal_param(req, &id, resp) || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    ctx.payload = json_pack("{s:s, s:s}", "principal_id", id.s, "enrolment_id", cmd.resource_id.s);
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s/signing-enrolments/%s", id.s,
             cmd.resource_id.s);
    signing_update(gw, req, &cmd, &id, open_decide, &ctx, SQL_ENROLMENT_JSON, 201, resp);
out:
    json_decref(ctx.payload);
    json_decref(body);
}

static bool approve_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    signing_ctx_t *c = ctx_in;
    tl_principal_t p;
    tl_principal_read(check, 0, 1, &p);
    const char *why =
        tl_enrolment_approve_check(&p, c->enrolment_id, c->req->actor.id, tl_pg_get(check, 0, 1 + TL_SQL_PRINCIPAL_NCOLS),
                                   c->req->actor.token_issued_by);
    if (why) {
        tl_problem_signing(resp, why);
        return false;
    }
    cmd->meta.reason = tl_json_str(c->body, "reason");
    return true;
}

static const tl_json_field_t approve_fields[] = {
    {"reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
};

void tl_h_signing_enrolment_approve(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "SigningEnrolmentApproved", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, approve_fields, 1);
    signing_ctx_t ctx = {.req = req, .body = body};
    char code[TL_TOKEN_STRLEN], sha[TL_SHA256_STRLEN];
    tl_uuid_t id, enrolment;
    if (!body || !principal_param(req, &id, resp))
        goto out;
    if (tl_uuid_parse(req->params[1], &enrolment)) {
        tl_problem_r(resp, TL_R(not_found), "enrolment not found", NULL);
        goto out;
    }
    if (!tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    /* the one-time code: 256 random bits, shown once to the approver;
     * only its SHA-256 enters the log */
    if (tl_token_new(code) || tl_sha256_hex(code, strlen(code), sha)) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        goto out;
    }
    int64_t expires = tl_now_us() + gw->cfg.signing_code_hours * 3600LL * 1000000LL;
    ctx.enrolment_id = enrolment.s;
    ctx.payload =
        json_pack("{s:s, s:s, s:s, s:I}", "principal_id", id.s, "enrolment_id", enrolment.s,
                  "code_sha256", sha, "code_expires_at", (json_int_t)expires);
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s/signing-enrolments/%s", id.s,
             enrolment.s);
    signing_update(gw, req, &cmd, &id, approve_decide, &ctx, SQL_ENROLMENT_JSON, 200, resp);
    /* shown once, and only by the request whose event carries its hash */
    if (resp->status == 200 && !resp->replayed && !req->idem.produced &&
        json_is_object(resp->body)) {
        json_object_set_new(resp->body, "code", json_string(code));
        resp->shown_once = "code";
    }
out:
    tl_secret_wipe(code, sizeof code);
    json_decref(ctx.payload);
    json_decref(body);
}

bool tl_signer_load(tl_gw_t *gw, const char *id, const char *form_id, tl_principal_t *p, char *hash,
                    size_t hash_size, char site[TL_UUID_STRLEN], tl_resp_t *resp)
{
    const char *params[] = {id, form_id};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw,
                              "SELECT " TL_SQL_PRINCIPAL_COLS ", c.hash,"
                              " (SELECT f.site_id::text FROM forms f WHERE f.id = $2::uuid)"
                              "  FROM principals p LEFT JOIN signing_credentials c"
                              "    ON c.credential_id = p.signing_credential_id"
                              " WHERE p.id = $1",
                              2, params, &res);
    bool ok = !err && tl_pg_nrows(res) == 1;
    if (err)
        tl_problem_from_err(resp, err);
    else if (!ok)
        tl_problem_r(resp, TL_R(not_found), "principal not found", NULL);
    if (ok) {
        tl_principal_read(res, 0, 0, p);
        const char *h = tl_pg_get(res, 0, TL_SQL_PRINCIPAL_NCOLS);
        const char *s = tl_pg_get(res, 0, TL_SQL_PRINCIPAL_NCOLS + 1);
        snprintf(hash, hash_size, "%s", h ? h : "");
        snprintf(site, TL_UUID_STRLEN, "%s", s ? s : "");
    }
    tl_pg_res_free(res);
    return ok;
}

static bool failure_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    (void)ctx_in;
    (void)check;
    (void)cmd;
    (void)resp;
    return true;
}

void tl_signing_failed(tl_gw_t *gw, tl_req_t *req, const tl_cmd_t *attempt, const tl_principal_t *p,
                       const char *form_id, const char *site_id, tl_resp_t *resp)
{
    /* the failure is the request's own event: a retry of it (the same
     * Idempotency-Key and body) finds it, and counts nothing twice */
    tl_cmd_t cmd = {.type = "SignatureAttemptFailed", .projection = TL_PROJECTION_ACCESS};
    cmd.meta = attempt->meta;
    cmd.meta.site_id = site_id;
    cmd.meta.stream_version = 0;
    tl_uuid_t id;
    tl_uuid_parse(p->id, &id);
    signing_ctx_t ctx = {.req = req};
    ctx.payload =
        json_pack("{s:s, s:s?, s:i, s:i}", "principal_id", id.s, "form_id", form_id, "failures",
                  p->signing_failures + 1, "max_failures", (int)gw->cfg.signing_max_failures);
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s", id.s);
    /* counted before the answer, whatever the client prefers: the next
     * attempt (after the guard) must see this one */
    const char *prefer = req->prefer;
    req->prefer = NULL;
    signing_update(gw, req, &cmd, &id, failure_decide, &ctx, SQL_PRINCIPAL_JSON, 200, resp);
    req->prefer = prefer;
    json_decref(ctx.payload);
    if (resp->status != 200)
        return; /* not recorded (503): the attempt is refused all the same */
    const json_t *signing = json_object_get(resp->body, "signing");
    bool locked = json_is_true(json_object_get(signing, "locked"));
    json_int_t failures = json_integer_value(json_object_get(signing, "failures"));
    if (locked) {
        tl_problem_signing(resp, "signing_credential_locked");
        return;
    }
    char detail[160];
    snprintf(detail, sizeof detail,
             "re-authentication failed: nothing was signed; %lld more wrong password(s) lock the "
             "signing credential",
             (long long)(gw->cfg.signing_max_failures - failures));
    /* not 401: the bearer token is fine, and clients read 401 as "log out" */
    tl_problem_r(resp, TL_R(signing_credential_invalid), detail, NULL);
}

void tl_signing_cleared(tl_gw_t *gw, tl_req_t *req, const tl_principal_t *p)
{
    if (!p->signing_failures)
        return;
    json_t *payload = json_pack("{s:s}", "principal_id", p->id);
    tl_event_meta_t meta = {
        .actor_id = req->actor_id, .actor_role = req->actor_role, .source = "gateway"};
    tl_err_t err = payload ? tl_uuid_v7(&meta.event_id) : TL_ERR_NOMEM;
    meta.correlation_id = meta.event_id.s;
    tl_kafka_pos_t pos;
    if (!err)
        err = tl_producer_send(gw->producer, "SigningFailuresCleared", p->id, payload, &meta, &pos);
    if (err) /* the count stays: a later failure locks sooner, never later */
        tl_log_warn("signing_failures_not_cleared",
                    json_pack("{s:s, s:s}", "principal_id", p->id, "error", tl_err_str(err)));
    json_decref(payload);
}

static const tl_json_field_t credential_fields[] = {
    {"password", TL_JF_STRING, true, TL_PASSWORD_MIN, TL_PASSWORD_MAX, NULL},
    {"enrolment_code", TL_JF_STRING, false, 1, TL_TOKEN_STRLEN, NULL},
    {"current_password", TL_JF_STRING, false, 1, TL_PASSWORD_MAX, NULL},
};

/* Re-checked under the principal's lock with its state as it is now; the
 * slow hashes were computed before. */
static bool credential_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd,
                              tl_resp_t *resp)
{
    signing_ctx_t *c = ctx_in;
    tl_principal_t p;
    tl_principal_read(check, 0, 1, &p);
    const char *why = NULL;
    if (c->code_sha256) {
        why = tl_enrolment_use_check(&p, c->req->actor.id, c->req->actor.token_issued_by,
                                     c->code_sha256, tl_now_us());
        if (!why)
            json_object_set_new(c->payload, "enrolment_id", json_string(p.enrolment_id));
    } else {
        why = tl_signing_check(&p, tl_now_us());
        if (why && !strcmp(why, "signing_credential_expired"))
            why = NULL; /* an expired credential is replaced with itself */
        if (!why && strcmp(p.signing_credential_id, c->verified_credential)) {
            tl_problem_r(resp, TL_R(version_conflict),
                         "the signing credential changed meanwhile; try again", NULL);
            return false;
        }
    }
    if (why) {
        tl_problem_signing(resp, why);
        return false;
    }
    (void)cmd;
    return true;
}

/* Stores the new credential's slow hash under its id: inert until the
 * event that names it is applied; the hash never enters the log. */
static bool credential_store(tl_gw_t *gw, const char *credential_id, const char *principal_id,
                             const char *password, tl_resp_t *resp)
{
    char hash[TL_PASSWORD_HASH_STRLEN];
    tl_err_t err = tl_password_hash(password, 0, hash);
    const char *params[] = {credential_id, principal_id, hash};
    if (!err)
        err = tl_gw_exec(gw,
                         "INSERT INTO signing_credentials (credential_id, principal_id, hash)"
                         " VALUES ($1, $2, $3) ON CONFLICT (credential_id) DO NOTHING",
                         3, params, NULL);
    tl_secret_wipe(hash, sizeof hash);
    if (err == TL_ERR_INVALID) {
        json_t *errors = json_array();
        tl_json_error(errors, "password", "must be 12 to 256 bytes");
        tl_problem_r(resp, TL_R(validation_failed), NULL, errors);
    } else if (err) {
        tl_problem_from_err(resp, err);
    }
    return !err;
}

/* The principal's own credential: with an approved enrolment's code, or
 * with the current credential (a wrong one counts as a failed signature). */
static void credential_set(tl_gw_t *gw, tl_req_t *req, const json_t *body, tl_cmd_t *cmd,
                           const tl_uuid_t *id, tl_resp_t *resp)
{
    const char *code = tl_json_str(body, "enrolment_code");
    const char *current = tl_json_str(body, "current_password");
    tl_principal_t p;
    char hash[TL_PASSWORD_HASH_STRLEN], code_sha[TL_SHA256_STRLEN], site[TL_UUID_STRLEN];
    if (!tl_signer_load(gw, id->s, NULL, &p, hash, sizeof hash, site, resp))
        return;
    signing_ctx_t ctx = {.req = req, .body = body};
    const char *why = NULL;
    if (code) {
        if (tl_sha256_hex(code, strlen(code), code_sha)) {
            tl_problem_from_err(resp, TL_ERR_INTERNAL);
            return;
        }
        why = tl_enrolment_use_check(&p, req->actor.id, req->actor.token_issued_by, code_sha,
                                     tl_now_us());
        ctx.code_sha256 = code_sha;
    } else {
        why = tl_signing_check(&p, tl_now_us());
        if (why && !strcmp(why, "signing_credential_expired"))
            why = NULL;
        if (!why && !tl_password_verify(current, hash)) {
            tl_signing_failed(gw, req, cmd, &p, NULL, NULL, resp);
            return;
        }
        ctx.verified_credential = p.signing_credential_id;
    }
    if (why) {
        tl_problem_signing(resp, why);
        return;
    }
    if (!credential_store(gw, cmd->resource_id.s, id->s, tl_json_str(body, "password"), resp))
        return;
    int64_t expires = tl_now_us() + gw->cfg.signing_credential_days * 86400LL * 1000000LL;
    ctx.payload = json_pack("{s:s, s:s, s:s, s:I}", "principal_id", id->s, "credential_id",
                            cmd->resource_id.s, "method", code ? "enrolment" : "change",
                            "expires_at", (json_int_t)expires);
    snprintf(cmd->location, sizeof cmd->location, "/v1/principals/%s", id->s);
    signing_update(gw, req, cmd, id, credential_decide, &ctx, SQL_PRINCIPAL_JSON, 200, resp);
    json_decref(ctx.payload);
}

void tl_h_signing_credential_set(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "SigningCredentialSet", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, credential_fields, 3);
    tl_uuid_t id;
    if (!body || !principal_param(req, &id, resp))
        goto out;
    if (!tl_json_str(body, "enrolment_code") == !tl_json_str(body, "current_password")) {
        json_t *errors = json_array();
        tl_json_error(errors, "enrolment_code",
                      "give either the one-time code of an approved enrolment or "
                      "current_password, not both");
        tl_problem_r(resp, TL_R(validation_failed), NULL, errors);
        goto out;
    }
    if (strcasecmp(id.s, req->actor.id)) {
        tl_problem_signing(resp, "not_own_credential");
        goto out;
    }
    if (!tl_cmd_init(gw, req, &cmd, resp) || !tl_sign_guard_enter(gw, req->actor.id, resp))
        goto out;
    credential_set(gw, req, body, &cmd, &id, resp);
    tl_sign_guard_leave(gw, req->actor.id);
out:
    json_decref(body);
}

/* ---- tokens ---- */

static const tl_json_field_t token_fields[] = {
    {"expires_in_days", TL_JF_INTEGER, false, 1, TOKEN_DAYS_MAX, NULL},
    {"label", TL_JF_STRING, false, 1, TL_TOKEN_LABEL_MAX, NULL},
};

/* Whoever issues a token sees it. An administrator who could hold another
 * administrator's token would be two administrators, and the two-person
 * rule of signing enrolments one person: another administrator's tokens
 * come from the operator's CLI only (`trialog admin issue-token`). */
static bool token_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    const tl_req_t *req = ctx;
    if (!tl_pg_get(check, 0, 2)) {
        tl_problem_r(resp, TL_R(not_found), "principal not found", NULL);
        return false;
    }
    const char *role = tl_pg_get(check, 0, 3);
    if (role && tl_role_parse(role) == TL_ROLE_ADMIN &&
        strcasecmp(tl_pg_get(check, 0, 4), req->actor.id)) {
        tl_problem_r(resp, TL_R(two_person_rule),
                     "an administrator's tokens are issued by the operator (trialog admin "
                     "issue-token), never by another administrator, who would then hold them",
                     NULL);
        return false;
    }
    return active_or_409(check, 2, resp);
}

void tl_h_token_issue(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "TokenIssued", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, token_fields, 2), *payload = NULL;
    char token[TL_TOKEN_STRLEN], sha[TL_SHA256_STRLEN];
    tl_uuid_t id;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp))
        goto out;
    if (tl_token_new(token) || tl_sha256_hex(token, strlen(token), sha)) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        goto out;
    }
    int64_t days = tl_json_int(body, "expires_in_days", TOKEN_DAYS_DEFAULT);
    int64_t now = tl_now_us();
    const json_t *label = json_object_get(body, "label");
    payload =
        json_pack("{s:s, s:s, s:s, s:O, s:I}", "principal_id", id.s, "token_id", cmd.resource_id.s,
                  "token_sha256", sha, "label", label ? label : json_null(), "expires_at",
                  (json_int_t)(now + days * 86400LL * 1000000LL));
    cmd.meta.occurred_at_us = now;
    const char *check[] = {id.s};
    /* column 1 NULL: a token duplicates nothing; column 2: its principal */
    const tl_create_t spec = {
        .read_sql = SQL_TOKEN_JSON,
        .check_sql = "SELECT (" SQL_TOKEN_JSON "), NULL::text,"
                     " (SELECT active FROM principals WHERE id = $2),"
                     " (SELECT role FROM principals WHERE id = $2), $2::text",
        .check_params = check,
        .ncheck = 1,
        .dup = TL_R(duplicate_token),
        .dup_detail = NULL,

        .rules = token_rules,
        .ctx = req,
    };
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s/tokens/%s", id.s,
             cmd.resource_id.s);
    cmd.key = id.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, id.s), resp);
    /* shown once: a retried request (same Idempotency-Key) gets the token's
     * metadata only */
    if (resp->status == 201 && !resp->replayed && !req->idem.produced &&
        json_is_object(resp->body)) {
        json_object_set_new(resp->body, "token", json_string(token));
        resp->shown_once = "token";
    }
out:
    tl_secret_wipe(token, sizeof token);
    json_decref(payload);
    json_decref(body);
}

#define ISSUED_KEY(a) a ".issued_at, " a ".id"

static const char *const sql_token_list =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM principals WHERE id = $1) THEN (" TL_SQL_PAGE(
        TOKEN_JSON, ISSUED_KEY, "access_tokens", "t.principal_id = $1") ") END";

void tl_h_token_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_uuid_t id;
    char lim[16], after[TL_UUID_STRLEN];
    bool has_after = false;
    if (!principal_param(req, &id, resp) ||
        !tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {id.s, lim, has_after ? after : NULL};
    bool failed = false;
    json_t *j = tl_gw_query_json(gw, resp, sql_token_list, 3, params, &failed);
    tl_gw_found(resp, j, failed, "principal not found");
}

typedef struct {
    const char *principal;
    const json_t *body;
} revoke_ctx_t;

static bool revoke_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    revoke_ctx_t *ctx = ctx_in;
    if (strcmp(tl_pg_get(check, 0, 1), ctx->principal)) {
        tl_problem_r(resp, TL_R(not_found), "token not found", NULL);
        return false;
    }
    if (!strcmp(tl_pg_get(check, 0, 2), "t")) {
        tl_problem_r(resp, TL_R(already_revoked), NULL, NULL);
        return false;
    }
    cmd->meta.reason = tl_json_str(ctx->body, "reason");
    return true;
}

void tl_h_token_revoke(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "TokenRevoked", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, reason_fields, 1), *payload = NULL;
    tl_uuid_t id, token;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp))
        goto out;
    if (tl_uuid_parse(req->params[1], &token)) {
        tl_problem_r(resp, TL_R(not_found), "token not found", NULL);
        goto out;
    }
    payload = json_pack("{s:s, s:s}", "principal_id", id.s, "token_id", token.s);
    const char *params[] = {token.s};
    revoke_ctx_t ctx = {id.s, body};
    const tl_update_t spec = {
        .check_sql = "SELECT last_event_id::text, principal_id::text, revoked_at IS NOT NULL"
                     " FROM access_tokens WHERE id = $1",
        .check_params = params,
        .ncheck = 1,
        .not_found = "token not found",
        .decide = revoke_decide,
        .ctx = &ctx,
        .answer_sql = SQL_TOKEN_JSON,
        .answer_params = params,
        .nanswer = 1,
        .status = 200};
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s/tokens/%s", id.s, token.s);
    cmd.key = id.s;
    cmd.payload = payload;
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, id.s), resp);
out:
    json_decref(payload);
    json_decref(body);
}
