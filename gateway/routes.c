/* The route table, authentication and per-request plumbing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "tl_json.h"
#include "tl_log.h"

/* Roles, for the table below. */
#define ADMIN TL_ROLE_BIT(TL_ROLE_ADMIN)
#define COORD TL_ROLE_BIT(TL_ROLE_COORDINATOR)
#define CLIN TL_ROLE_BIT(TL_ROLE_CLINICIAN)
#define MON TL_ROLE_BIT(TL_ROLE_MONITOR)
#define ANALYST TL_ROLE_BIT(TL_ROLE_ANALYST)
#define CONN TL_ROLE_BIT(TL_ROLE_CONNECTOR)
#define STAFF (ADMIN | COORD | CLIN | MON) /* identified data of their sites */
#define STUDY_READERS (STAFF | ANALYST)    /* study definitions and aggregates */
#define EVERYONE (STAFF | ANALYST | CONN)
#define SIGNERS TL_SIGNER_ROLES               /* sign clinical forms (access.h) */
/* The query parameters of every list: one page of at most limit items
 * after the cursor a page before gave as its next (README "Lists"). */
#define PAGE "limit,after"

/* The routes and the permission table in one (docs/SECURITY.md): who may
 * call each route, and what its first {x} is for site scoping. Analysts see
 * study definitions and aggregate metrics only (no participant-level data:
 * that reaches them de-identified through the research topics); connectors
 * publish to ingest topics and call nothing here but /v1/me. The last
 * column lists the query parameters a route reads: any other is refused. */
static const tl_route_t routes[] = {
    {"GET", "/healthz", tl_h_healthz, TL_PUBLIC, TL_SCOPE_NONE, NULL},
    {"GET", "/readyz", tl_h_readyz, TL_PUBLIC, TL_SCOPE_NONE, NULL},
    {"GET", "/metrics", tl_h_metrics, TL_PUBLIC, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/me", tl_h_me, EVERYONE, TL_SCOPE_NONE, NULL},
    {"POST", "/v1/principals", tl_h_principal_create, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/principals", tl_h_principal_list, ADMIN, TL_SCOPE_NONE, "role," PAGE},
    {"GET", "/v1/principals/{principal}", tl_h_principal_get, EVERYONE, TL_SCOPE_SELF, NULL},
    {"PATCH", "/v1/principals/{principal}", tl_h_principal_change, ADMIN, TL_SCOPE_NONE, NULL},
    {"POST", "/v1/principals/{principal}/disable", tl_h_principal_disable, ADMIN, TL_SCOPE_NONE,
     NULL},
    {"POST", "/v1/principals/{principal}/tokens", tl_h_token_issue, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/principals/{principal}/tokens", tl_h_token_list, EVERYONE, TL_SCOPE_SELF, PAGE},
    {"POST", "/v1/principals/{principal}/tokens/{token}/revoke", tl_h_token_revoke, EVERYONE,
     TL_SCOPE_SELF, NULL},
    /* signing credentials: two administrators open and approve an
     * enrolment, the signer sets its own credential (docs/SECURITY.md) */
    {"POST", "/v1/principals/{principal}/signing-enrolments", tl_h_signing_enrolment_open, ADMIN,
     TL_SCOPE_NONE, NULL},
    {"POST", "/v1/principals/{principal}/signing-enrolments/{enrolment}/approve",
     tl_h_signing_enrolment_approve, ADMIN, TL_SCOPE_NONE, NULL},
    {"POST", "/v1/principals/{principal}/signing-credential", tl_h_signing_credential_set,
     SIGNERS, TL_SCOPE_SELF, NULL},
    {"POST", "/v1/studies", tl_h_study_create, ADMIN, TL_SCOPE_NONE, NULL},
    /* the studies the caller may see: all, those of its sites, or those
     * granted to it (an analyst) */
    {"GET", "/v1/studies", tl_h_study_list, STUDY_READERS, TL_SCOPE_NONE, PAGE},
    {"GET", "/v1/studies/{study}", tl_h_study_get, STUDY_READERS, TL_SCOPE_STUDY, NULL},
    {"POST", "/v1/studies/{study}/sites", tl_h_site_create, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/studies/{study}/sites", tl_h_site_list, STUDY_READERS, TL_SCOPE_STUDY, PAGE},
    {"POST", "/v1/studies/{study}/participants", tl_h_participant_enrol, ADMIN | COORD,
     TL_SCOPE_STUDY, NULL},
    {"GET", "/v1/studies/{study}/participants", tl_h_participant_list, STAFF, TL_SCOPE_STUDY,
     "site,status,code," PAGE},
    {"GET", "/v1/participants/{participant}", tl_h_participant_get, STAFF, TL_SCOPE_PARTICIPANT,
     NULL},
    {"POST", "/v1/studies/{study}/visit-types", tl_h_visit_type_create, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/studies/{study}/visit-types", tl_h_visit_type_list, STUDY_READERS,
     TL_SCOPE_STUDY, PAGE},
    {"GET", "/v1/studies/{study}/visit-types/{visit_type}", tl_h_visit_type_get, STUDY_READERS,
     TL_SCOPE_STUDY, NULL},
    {"PATCH", "/v1/studies/{study}/visit-types/{visit_type}", tl_h_visit_type_amend, ADMIN,
     TL_SCOPE_NONE, NULL},
    {"POST", "/v1/studies/{study}/lock", tl_h_study_lock, ADMIN, TL_SCOPE_NONE, NULL},
    {"POST", "/v1/studies/{study}/unlock", tl_h_study_unlock, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/studies/{study}/visits", tl_h_study_visits, STAFF, TL_SCOPE_STUDY,
     "as_of,status,from,to,site," PAGE},
    {"GET", "/v1/studies/{study}/metrics", tl_h_study_metrics, STUDY_READERS, TL_SCOPE_STUDY,
     "as_of"},
    {"GET", "/v1/studies/{study}/data-quality", tl_h_study_data_quality, STAFF, TL_SCOPE_STUDY,
     "as_of,unsigned_days"},
    /* the schema registry API (Confluent REST subset, DESIGN.md §4): every
     * principal reads schemas; connectors register their ingest topics' */
    /* the query parameters Confluent's clients send: nothing here is ever
     * deleted or normalised, so deleted, deletedOnly, normalize, format,
     * fetchMaxId, subject and verbose change no answer (docs/CONNECTORS.md) */
    {"GET", "/registry/subjects", tl_h_registry_subjects, EVERYONE, TL_SCOPE_NONE,
     "deleted,deletedOnly"},
    {"POST", "/registry/subjects/{subject}", tl_h_registry_lookup, EVERYONE, TL_SCOPE_NONE,
     "normalize,deleted,format"},
    {"GET", "/registry/subjects/{subject}/versions", tl_h_registry_versions, EVERYONE,
     TL_SCOPE_NONE, "deleted,deletedOnly"},
    {"POST", "/registry/subjects/{subject}/versions", tl_h_registry_register, ADMIN | CONN,
     TL_SCOPE_NONE, "normalize"},
    {"GET", "/registry/subjects/{subject}/versions/{version}", tl_h_registry_version, EVERYONE,
     TL_SCOPE_NONE, "deleted,format"},
    {"GET", "/registry/schemas/ids/{id}", tl_h_registry_schema, EVERYONE, TL_SCOPE_NONE,
     "subject,format,fetchMaxId"},
    {"POST", "/registry/compatibility/subjects/{subject}/versions/{version}",
     tl_h_registry_compatibility, ADMIN | CONN, TL_SCOPE_NONE, "verbose,normalize"},
    {"GET", "/registry/config", tl_h_registry_config_get, EVERYONE, TL_SCOPE_NONE, NULL},
    {"PUT", "/registry/config", tl_h_registry_config_put, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/registry/config/{subject}", tl_h_registry_config_get, EVERYONE, TL_SCOPE_NONE,
     "defaultToGlobal"},
    {"PUT", "/registry/config/{subject}", tl_h_registry_config_put, ADMIN, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/participants/{participant}/schedule", tl_h_schedule_get, STAFF,
     TL_SCOPE_PARTICIPANT, "as_of"},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/complete", tl_h_visit_complete,
     ADMIN | COORD, TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/miss", tl_h_visit_miss,
     ADMIN | COORD, TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/reopen", tl_h_visit_reopen,
     ADMIN | COORD, TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/correct", tl_h_visit_correct,
     ADMIN | COORD, TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/baseline", tl_h_baseline_change, ADMIN | COORD,
     TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/withdraw", tl_h_participant_withdraw, ADMIN | COORD,
     TL_SCOPE_PARTICIPANT, NULL},
    {"POST", "/v1/participants/{participant}/complete", tl_h_participant_finish, ADMIN | COORD,
     TL_SCOPE_PARTICIPANT, NULL},
    {"GET", "/v1/participants/{participant}/history", tl_h_participant_history, ADMIN | MON,
     TL_SCOPE_PARTICIPANT, PAGE},
    {"GET", "/v1/participants/{participant}/observations", tl_h_participant_observations, STAFF,
     TL_SCOPE_PARTICIPANT, PAGE},
    /* case report forms: clinicians enter and sign them, coordinators
     * enter them, monitors read them; admins enter but never sign
     * (docs/SECURITY.md) */
    {"POST", "/v1/studies/{study}/form-templates", tl_h_form_template_publish, ADMIN,
     TL_SCOPE_NONE, NULL},
    {"GET", "/v1/studies/{study}/form-templates", tl_h_form_template_list, STUDY_READERS,
     TL_SCOPE_STUDY, PAGE},
    {"GET", "/v1/studies/{study}/form-templates/{template}", tl_h_form_template_get,
     STUDY_READERS, TL_SCOPE_STUDY, "version"},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/forms", tl_h_form_submit,
     ADMIN | COORD | CLIN, TL_SCOPE_PARTICIPANT, NULL},
    {"GET", "/v1/participants/{participant}/forms", tl_h_participant_forms, STAFF,
     TL_SCOPE_PARTICIPANT, PAGE},
    {"GET", "/v1/forms/{form}", tl_h_form_get, STAFF, TL_SCOPE_FORM, NULL},
    {"PATCH", "/v1/forms/{form}", tl_h_form_amend, ADMIN | COORD | CLIN, TL_SCOPE_FORM, NULL},
    {"POST", "/v1/forms/{form}/sign", tl_h_form_sign, SIGNERS, TL_SCOPE_FORM, NULL},
    {"GET", "/v1/audit", tl_h_audit_list, ADMIN | MON, TL_SCOPE_NONE,
     "participant,actor,type,from,to," PAGE},
    /* dataset releases: de-identified files for analysts (docs/ANALYSTS.md) */
    {"POST", "/v1/studies/{study}/releases", tl_h_release_create, ADMIN | ANALYST,
     TL_SCOPE_STUDY, NULL},
    {"GET", "/v1/studies/{study}/releases", tl_h_release_list, ADMIN | ANALYST, TL_SCOPE_STUDY,
     PAGE},
    {"GET", "/v1/releases/{release}", tl_h_release_get, ADMIN | ANALYST, TL_SCOPE_NONE, NULL},
    {"GET", "/v1/releases/{release}/files/{file}", tl_h_release_file, ADMIN | ANALYST,
     TL_SCOPE_NONE, NULL},
};

const tl_route_t *tl_gw_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

#define TL_SEGMENT_MAX 256 /* a registry subject: up to 255 */

/* Matches path against pattern, capturing {x} segments into params (copied
 * into store). */
static bool route_match(const char *pattern, const char *path, char store[][TL_SEGMENT_MAX],
                        int *nparams)
{
    int n = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return false;
        pattern++;
        path++;
        const char *pe = strchr(pattern, '/'), *se = strchr(path, '/');
        size_t plen = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t slen = se ? (size_t)(se - path) : strlen(path);
        if (plen && pattern[0] == '{') {
            if (!slen || slen >= TL_SEGMENT_MAX || n == TL_ROUTE_PARAMS)
                return false;
            memcpy(store[n], path, slen);
            store[n++][slen] = '\0';
        } else if (plen != slen || strncmp(pattern, path, plen)) {
            return false;
        }
        pattern += plen;
        path += slen;
    }
    *nparams = n;
    return !*pattern && !*path;
}

bool tl_gw_query_known(const char *accepted, const char *name)
{
    size_t n = strlen(name);
    for (const char *a = accepted; n && a && *a;) {
        const char *end = strchr(a, ',');
        size_t len = end ? (size_t)(end - a) : strlen(a);
        if (len == n && !strncmp(a, name, n))
            return true;
        a = end ? end + 1 : NULL;
    }
    return false;
}

typedef struct {
    const char *accepted;
    json_t *errors;
} unknown_t;

static bool note_unknown(void *ctx, const char *name)
{
    unknown_t *u = ctx;
    if (!tl_gw_query_known(u->accepted, name) && json_array_size(u->errors) < 16)
        tl_json_error(u->errors, name, "is not a query parameter of this route");
    return true;
}

/* A query parameter the route does not read answers 400 naming it, rather
 * than the whole list it did not filter (a client misspelling "status"
 * must not get every participant as if filtered). */
static bool query_known(const tl_route_t *route, tl_req_t *req, tl_resp_t *resp)
{
    if (!req->query_names)
        return true;
    unknown_t u = {route->query, json_array()};
    req->query_names(req->conn, note_unknown, &u);
    if (!json_array_size(u.errors)) {
        json_decref(u.errors);
        return true;
    }
    tl_problem_query(resp, u.errors);
    return false;
}

/* application/json, or the schema registry's own JSON types (Confluent
 * clients send those) */
static bool json_content_type(const char *ct)
{
    static const char *const types[] = {"application/json",
                                        "application/vnd.schemaregistry.v1+json",
                                        "application/vnd.schemaregistry+json"};
    for (size_t i = 0; ct && i < sizeof types / sizeof types[0]; i++) {
        size_t n = strlen(types[i]);
        if (!strncasecmp(ct, types[i], n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
            return true;
    }
    return false;
}

static bool registry_path(const char *path)
{
    return !strncmp(path, "/registry/", 10) || !strcmp(path, "/registry");
}

/* OPTIONS on a known path: its methods, and for a CORS preflight from an
 * allowed origin asking for one of them, leave to call (no authentication:
 * browsers send none with a preflight). Anything else from a browser gets
 * 403 and no CORS headers. */
static void options(tl_gw_t *gw, const tl_req_t *req, tl_resp_t *resp, const char *methods)
{
    if (req->origin && req->cors_method &&
        (!tl_cors_match(&gw->cors, req->origin) ||
         !tl_edge_method_listed(methods, req->cors_method))) {
        tl_problem_r(resp, TL_R(cors_refused),
                     "the origin may not call this gateway, or not with this method", NULL);
        return;
    }
    resp->status = 204;
    resp->cors_preflight = req->origin && req->cors_method;
    snprintf(resp->allow, sizeof resp->allow, "%s%s", methods,
             resp->cors_preflight ? "" : ", OPTIONS");
}

/* Finds the route of req and answers it; returns the route (NULL: none
 * matched method and path) and in *pattern the first pattern matching the
 * path alone (NULL: no route has it). */
static const tl_route_t *dispatch(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp,
                                  const char **pattern);

/* The headers the router adds to any answer: no-store on whatever needed
 * a principal (or was refused for want of one), the RFC 6750 challenge on
 * 401, and CORS for an allowed origin. */
static void edge_headers(tl_gw_t *gw, const tl_req_t *req, tl_resp_t *resp, const tl_route_t *found)
{
    resp->no_store =
        (found && found->roles != TL_PUBLIC) || resp->status == 401 || resp->status == 403;
    if (resp->status == 401) {
        /* a token sent and refused is invalid_token; none (or another
         * scheme), or a signing password refused, has no error code */
        const char *type = json_string_value(json_object_get(resp->body, "type"));
        bool refused_token = type && (!strcmp(type, "/problems/invalid-token") ||
                                      !strcmp(type, "/problems/token-expired"));
        resp->authenticate = refused_token ? "Bearer realm=\"trialog\", error=\"invalid_token\""
                                           : "Bearer realm=\"trialog\"";
    }
    resp->cors_vary = gw->cors.n > 0; /* whether CORS headers come depends on Origin */
    resp->cors_origin = tl_cors_match(&gw->cors, req->origin);
}

/* A 401 or 403: logged (never the token, the body or the path's values:
 * the route's pattern and the principal's id) and counted. */
static void log_refused(tl_gw_t *gw, const tl_req_t *req, const tl_resp_t *resp,
                        const tl_route_t *found, const char *pattern)
{
    atomic_fetch_add(&gw->refused[resp->status == 401 ? 0 : 1], 1);
    json_t *f =
        json_pack("{s:s, s:s?, s:i, s:O?}", "method", found ? found->method : "OPTIONS", "route",
                  pattern, "status", resp->status, "type", json_object_get(resp->body, "type"));
    if (f && req->actor_id)
        json_object_set_new(f, "principal", json_string(req->actor_id));
    tl_log_warn("request_refused", f);
}

void tl_gw_dispatch(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *pattern = NULL;
    const tl_route_t *found = dispatch(gw, req, resp, &pattern);
    edge_headers(gw, req, resp, found);
    if (resp->status == 401 || resp->status == 403)
        log_refused(gw, req, resp, found, pattern);
    if (registry_path(req->path))
        tl_registry_api_error(resp); /* Confluent's error shape there */
    int class = resp->status / 100;
    atomic_fetch_add(&gw->answered[class >= 1 && class <= 5 ? class : 5], 1);
}

static const tl_route_t *dispatch(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp, const char **pattern)
{
    char store[TL_ROUTE_PARAMS][TL_SEGMENT_MAX];
    const tl_route_t *found = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !found; i++) {
        int n = 0;
        if (!route_match(routes[i].pattern, req->path, store, &n))
            continue;
        if (!*pattern)
            *pattern = routes[i].pattern;
        if (strcmp(routes[i].method, req->method)) {
            size_t len = strlen(allow);
            snprintf(allow + len, sizeof allow - len, "%s%s", len ? ", " : "", routes[i].method);
            continue;
        }
        found = &routes[i];
        for (int j = 0; j < n; j++)
            req->params[j] = store[j];
    }
    if (!found) {
        if (*pattern && !strcmp(req->method, "OPTIONS")) {
            options(gw, req, resp, allow);
        } else if (*pattern) {
            tl_problem_r(resp, TL_R(method_not_allowed), NULL, NULL);
            snprintf(resp->allow, sizeof resp->allow, "%s", allow);
        } else {
            tl_problem_r(resp, TL_R(not_found), "no such route", NULL);
        }
        return NULL;
    }
    if (found->roles != TL_PUBLIC) {
        if (!tl_auth_authenticate(gw, req, resp))
            return found;
        if (!(found->roles & TL_ROLE_BIT(req->actor.role))) {
            tl_problem_r(resp, TL_R(forbidden), "the principal's role may not do this", NULL);
            return found;
        }
        if (!tl_auth_in_scope(gw, found, req, resp))
            return found;
    }
    if (!query_known(found, req, resp))
        return found;
    if ((!strcmp(req->method, "POST") || !strcmp(req->method, "PATCH") ||
         !strcmp(req->method, "PUT")) &&
        !json_content_type(req->content_type)) {
        tl_problem_r(resp, TL_R(unsupported_media_type), "the body must be application/json", NULL);
        return found;
    }
    found->handler(gw, req, resp);
    tl_idem_finish(gw, req, resp);
    if (resp->status >= 500)
        tl_log_warn("request_failed", json_pack("{s:s, s:s, s:i}", "method", req->method, "route",
                                                found->pattern, "status", resp->status));
    return found;
}
