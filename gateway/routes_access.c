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
#include "tl_secret.h"

#define SQL_PRINCIPAL_JSON                                                                         \
    "SELECT json_build_object('id', p.id, 'name', p.name, 'role', p.role, 'site_ids',"             \
    " p.site_ids, 'active', p.active, 'has_signing_credential',"                                   \
    " p.signing_credential_id IS NOT NULL, 'created_at', p.created_at, 'updated_at',"              \
    " p.updated_at)::text FROM principals p WHERE p.id = $1"
#define TOKEN_JSON                                                                                 \
    "json_build_object('id', t.id, 'principal_id', t.principal_id, 'label', t.label,"              \
    " 'issued_at', t.issued_at, 'expires_at', t.expires_at, 'revoked_at', t.revoked_at,"           \
    " 'revoke_reason', t.revoke_reason)"
#define SQL_TOKEN_JSON "SELECT " TOKEN_JSON "::text FROM access_tokens t WHERE t.id = $1"
#define SQL_SITES_KNOWN "(SELECT count(*) FROM sites WHERE id = ANY($2::uuid[]))"

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
    tl_gw_found(resp, j, failed, "Principal not found");
}

void tl_h_me(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    principal_answer(gw, req->actor.id, resp);
}

void tl_h_principal_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    principal_answer(gw, req->params[0], resp);
}

void tl_h_principal_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *role = req->query(req->conn, "role");
    if (role && tl_role_parse(role) < 0) {
        tl_problem(resp, 400, "invalid-query", "Invalid query", "role: not a role", NULL);
        return;
    }
    const char *params[] = {role};
    bool failed = false;
    json_t *j = tl_gw_query_json(
        gw, resp,
        "SELECT COALESCE(json_agg(x ORDER BY x.name), '[]'::json)::text FROM ("
        "SELECT p.id, p.name, p.role, p.site_ids, p.active, p.created_at, p.updated_at"
        "  FROM principals p WHERE $1::text IS NULL OR p.role = $1"
        " ORDER BY p.name LIMIT 500) x",
        1, params, &failed);
    if (j) {
        resp->status = 200;
        resp->body = json_pack("{s:o}", "principals", j);
    }
}

/* A grant's role and sites, checked together (400 with field errors). The
 * ids are put in canonical form into *sites (new reference). */
static bool grant_ok(const json_t *body, tl_resp_t *resp, json_t **sites)
{
    const json_t *given = json_object_get(body, "site_ids");
    const char *why = tl_access_grant_check(tl_json_str(body, "role"), json_array_size(given));
    if (why) {
        json_t *errors = json_array();
        tl_json_error(errors, "site_ids",
                      !strcmp(why, "sites_required")
                          ? "coordinators, clinicians and monitors need at least one site"
                      : !strcmp(why, "sites_not_allowed")
                          ? "only coordinators, clinicians and monitors have sites"
                          : "too many sites");
        tl_problem(resp, 400, "validation-failed", "Invalid request body", NULL, errors);
        return false;
    }
    *sites = json_array();
    for (size_t i = 0; i < json_array_size(given); i++) {
        tl_uuid_t u;
        tl_uuid_parse(json_string_value(json_array_get(given, i)), &u);
        json_array_append_new(*sites, json_string(u.s));
    }
    return true;
}

/* The canonical ids of a grant as a uuid[] literal. */
static void sites_literal(const json_t *sites, char lit[TL_SITES_PARAM_LEN])
{
    char ids[TL_PRINCIPAL_SITES_MAX][TL_UUID_STRLEN];
    size_t n = json_array_size(sites);
    for (size_t i = 0; i < n && i < TL_PRINCIPAL_SITES_MAX; i++)
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_array_get(sites, i)));
    if (n > TL_PRINCIPAL_SITES_MAX ||
        !tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])ids, n, lit, TL_SITES_PARAM_LEN))
        snprintf(lit, TL_SITES_PARAM_LEN, "{}");
}

static bool sites_known(const tl_pg_res_t *check, int col, const json_t *payload, tl_resp_t *resp)
{
    long long known = tl_pg_get_int(check, 0, col);
    if (known != (long long)json_array_size(json_object_get(payload, "site_ids"))) {
        tl_problem(resp, 422, "unknown-site", "Unknown site", "a site_ids entry is not a site",
                   NULL);
        return false;
    }
    return true;
}

static const tl_json_field_t principal_fields[] = {
    {"name", TL_JF_STRING, true, 1, TL_PRINCIPAL_NAME_MAX, NULL},
    {"role", TL_JF_ENUM, true, 0, 0, role_options},
    {"site_ids", TL_JF_UUIDS, false, 0, TL_PRINCIPAL_SITES_MAX, NULL},
};

static bool create_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    return sites_known(check, 2, ctx, resp);
}

void tl_h_principal_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "PrincipalCreated", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, principal_fields, 3), *sites = NULL, *payload = NULL;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    const char *name = tl_json_str(body, "name");
    if (!tl_principal_name_ok(name)) {
        json_t *errors = json_array();
        tl_json_error(errors, "name",
                      "letters, digits and . _ @ - only, starting with a letter or digit");
        tl_problem(resp, 400, "validation-failed", "Invalid request body", NULL, errors);
        goto out;
    }
    if (!grant_ok(body, resp, &sites))
        goto out;
    char sites_lit[TL_SITES_PARAM_LEN];
    sites_literal(sites, sites_lit);
    payload = json_pack("{s:s, s:s, s:s, s:O}", "principal_id", cmd.resource_id.s, "name", name,
                        "role", tl_json_str(body, "role"), "site_ids", sites);
    const char *check[] = {name, sites_lit};
    const tl_create_t spec = {
        .read_sql = SQL_PRINCIPAL_JSON,
        .check_sql = "SELECT (" SQL_PRINCIPAL_JSON "),"
                     " (SELECT id::text FROM principals WHERE name = $2), (SELECT count(*)"
                     " FROM sites WHERE id = ANY($3::uuid[]))",
        .check_params = check,
        .ncheck = 2,
        .dup_slug = "duplicate-principal-name",
        .dup_title = "Principal name already used",
        .dup_detail = "a principal with this name exists",
        .dup_reason = "duplicate_principal_name",
        .rules = create_rules,
        .ctx = payload,
    };
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s", cmd.resource_id.s);
    cmd.key = cmd.resource_id.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, name), resp);
out:
    json_decref(payload);
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
        tl_problem(resp, 404, "not-found", "Principal not found", NULL, NULL);
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
    tl_problem(resp, 422, "own-access", "Own access",
               "another administrator changes or disables your access", NULL);
    return false;
}

/* col: the check row's column saying whether the principal is active. */
static bool active_or_409(const tl_pg_res_t *check, int col, tl_resp_t *resp)
{
    const char *active = tl_pg_get(check, 0, col);
    if (active && !strcmp(active, "t"))
        return true;
    tl_problem(resp, 409, "principal-disabled", "Principal disabled",
               "a disabled principal changes no more", NULL);
    return false;
}

static bool change_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    change_ctx_t *ctx = ctx_in;
    if (!active_or_409(check, 1, resp) ||
        (ctx->payload && !sites_known(check, 2, ctx->payload, resp)))
        return false;
    cmd->meta.reason = tl_json_str(ctx->body, "reason");
    return true;
}

/* Runs a command on principal id; the check row is its last event, whether
 * it is active, and how many of sites_lit are sites. */
static void principal_update(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_uuid_t *id,
                             const char *sites_lit,
                             bool (*decide)(void *, const tl_pg_res_t *, tl_cmd_t *, tl_resp_t *),
                             change_ctx_t *ctx, tl_resp_t *resp)
{
    const char *params[] = {id->s, sites_lit ? sites_lit : "{}"};
    const tl_update_t spec = {.check_sql = "SELECT last_event_id::text, active, " SQL_SITES_KNOWN
                                           " FROM principals WHERE id = $1",
                              .check_params = params,
                              .ncheck = 2,
                              .not_found_title = "Principal not found",
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
};

void tl_h_principal_change(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "PrincipalRoleChanged", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, change_fields, 3), *sites = NULL, *payload = NULL;
    tl_uuid_t id;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp) ||
        !not_self(req, &id, resp) || !grant_ok(body, resp, &sites))
        goto out;
    char lit[TL_SITES_PARAM_LEN];
    sites_literal(sites, lit);
    payload = json_pack("{s:s, s:s, s:O}", "principal_id", id.s, "role", tl_json_str(body, "role"),
                        "site_ids", sites);
    change_ctx_t ctx = {gw, body, payload, NULL};
    cmd.payload = payload;
    principal_update(gw, req, &cmd, &id, lit, change_decide, &ctx, resp);
out:
    json_decref(payload);
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
    principal_update(gw, req, &cmd, &id, NULL, change_decide, &ctx, resp);
out:
    json_decref(payload);
    json_decref(body);
}

/* ---- signing credentials ---- */

static const tl_json_field_t signing_fields[] = {
    {"password", TL_JF_STRING, true, TL_PASSWORD_MIN, TL_PASSWORD_MAX, NULL},
};

/* The slow hash is stored before the event that names it: until the event
 * is applied the row is inert (nothing reads an unnamed credential), and the
 * hash never enters the log. */
static bool signing_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    change_ctx_t *ctx = ctx_in;
    char hash[TL_PASSWORD_HASH_STRLEN];
    if (!active_or_409(check, 1, resp))
        return false;
    tl_err_t err = tl_password_hash(ctx->password, 0, hash);
    if (err == TL_ERR_INVALID) {
        json_t *errors = json_array();
        tl_json_error(errors, "password", "must be 12 to 256 bytes");
        tl_problem(resp, 400, "validation-failed", "Invalid request body", NULL, errors);
        return false;
    }
    const char *params[] = {cmd->resource_id.s, cmd->key, hash};
    if (!err)
        err = tl_gw_exec(ctx->gw,
                         "INSERT INTO signing_credentials (credential_id, principal_id, hash)"
                         " VALUES ($1, $2, $3) ON CONFLICT (credential_id) DO NOTHING",
                         3, params, NULL);
    if (err) {
        tl_problem_from_err(resp, err);
        return false;
    }
    return true;
}

void tl_h_signing_credential_set(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "SigningCredentialSet", .projection = TL_PROJECTION_ACCESS};
    json_t *body = tl_gw_body(req, resp, signing_fields, 1), *payload = NULL;
    tl_uuid_t id;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !principal_param(req, &id, resp))
        goto out;
    payload = json_pack("{s:s, s:s}", "principal_id", id.s, "credential_id", cmd.resource_id.s);
    change_ctx_t ctx = {gw, body, NULL, tl_json_str(body, "password")};
    cmd.payload = payload;
    principal_update(gw, req, &cmd, &id, NULL, signing_decide, &ctx, resp);
out:
    json_decref(payload);
    json_decref(body);
}

/* ---- tokens ---- */

static const tl_json_field_t token_fields[] = {
    {"expires_in_days", TL_JF_INTEGER, false, 1, TOKEN_DAYS_MAX, NULL},
    {"label", TL_JF_STRING, false, 1, TL_TOKEN_LABEL_MAX, NULL},
};

static bool token_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    (void)ctx;
    if (!tl_pg_get(check, 0, 2)) {
        tl_problem(resp, 404, "not-found", "Principal not found", NULL, NULL);
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
                     " (SELECT active FROM principals WHERE id = $2), NULL",
        .check_params = check,
        .ncheck = 1,
        .dup_slug = "conflict",
        .dup_title = "Command refused",
        .dup_detail = NULL,
        .dup_reason = "duplicate_token",
        .rules = token_rules,
    };
    snprintf(cmd.location, sizeof cmd.location, "/v1/principals/%s/tokens/%s", id.s,
             cmd.resource_id.s);
    cmd.key = id.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, id.s), resp);
    /* shown once: a retried request (same Idempotency-Key) gets the token's
     * metadata only */
    if (resp->status == 201 && !resp->replayed && json_is_object(resp->body)) {
        json_object_set_new(resp->body, "token", json_string(token));
        resp->shown_once = "token";
    }
out:
    tl_secret_wipe(token, sizeof token);
    json_decref(payload);
    json_decref(body);
}

void tl_h_token_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_uuid_t id;
    if (!principal_param(req, &id, resp))
        return;
    const char *params[] = {id.s};
    bool failed = false;
    json_t *j =
        tl_gw_query_json(gw, resp,
                         "SELECT CASE WHEN EXISTS (SELECT 1 FROM principals WHERE id = $1) THEN"
                         " COALESCE((SELECT json_agg(" TOKEN_JSON " ORDER BY t.issued_at, t.id)"
                         " FROM access_tokens t WHERE t.principal_id = $1), '[]'::json)::text END",
                         1, params, &failed);
    if (j) {
        resp->status = 200;
        resp->body = json_pack("{s:o}", "tokens", j);
    } else if (!failed) {
        tl_problem(resp, 404, "not-found", "Principal not found", NULL, NULL);
    }
}

typedef struct {
    const char *principal;
    const json_t *body;
} revoke_ctx_t;

static bool revoke_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    revoke_ctx_t *ctx = ctx_in;
    if (strcmp(tl_pg_get(check, 0, 1), ctx->principal)) {
        tl_problem(resp, 404, "not-found", "Token not found", NULL, NULL);
        return false;
    }
    if (!strcmp(tl_pg_get(check, 0, 2), "t")) {
        tl_problem(resp, 409, "already-revoked", "Token already revoked", NULL, NULL);
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
        tl_problem(resp, 404, "not-found", "Token not found", NULL, NULL);
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
        .not_found_title = "Token not found",
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
