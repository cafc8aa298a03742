/* The route table, authentication and per-request plumbing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "tl_log.h"

static const tl_route_t routes[] = {
    {"GET", "/healthz", tl_h_healthz, true},
    {"GET", "/readyz", tl_h_readyz, true},
    {"POST", "/v1/studies", tl_h_study_create, false},
    {"GET", "/v1/studies/{study}", tl_h_study_get, false},
    {"POST", "/v1/studies/{study}/sites", tl_h_site_create, false},
    {"POST", "/v1/studies/{study}/participants", tl_h_participant_enrol, false},
    {"GET", "/v1/studies/{study}/participants", tl_h_participant_list, false},
    {"GET", "/v1/participants/{participant}", tl_h_participant_get, false},
    {"POST", "/v1/studies/{study}/visit-types", tl_h_visit_type_create, false},
    {"GET", "/v1/studies/{study}/visit-types", tl_h_visit_type_list, false},
    {"GET", "/v1/studies/{study}/visit-types/{visit_type}", tl_h_visit_type_get, false},
    {"PATCH", "/v1/studies/{study}/visit-types/{visit_type}", tl_h_visit_type_amend, false},
    {"POST", "/v1/studies/{study}/lock", tl_h_study_lock, false},
    {"POST", "/v1/studies/{study}/unlock", tl_h_study_unlock, false},
    {"GET", "/v1/studies/{study}/visits", tl_h_study_visits, false},
    {"GET", "/v1/studies/{study}/metrics", tl_h_study_metrics, false},
    {"GET", "/v1/participants/{participant}/schedule", tl_h_schedule_get, false},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/complete", tl_h_visit_complete,
     false},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/miss", tl_h_visit_miss, false},
    {"POST", "/v1/participants/{participant}/visits/{visit_type}/correct", tl_h_visit_correct,
     false},
    {"POST", "/v1/participants/{participant}/baseline", tl_h_baseline_change, false},
    {"POST", "/v1/participants/{participant}/withdraw", tl_h_participant_withdraw, false},
    {"POST", "/v1/participants/{participant}/complete", tl_h_participant_finish, false},
};

const tl_route_t *tl_gw_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

#define TL_SEGMENT_MAX 128

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

static bool token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* Until principals land (access-control issue) there is one bootstrap admin
 * token from the configuration. */
static bool authenticate(tl_gw_t *gw, tl_req_t *req)
{
    const char *a = req->authorization;
    if (!a || strncasecmp(a, "Bearer ", 7) || !gw->cfg.admin_token[0])
        return false;
    if (!token_equal(a + 7, gw->cfg.admin_token))
        return false;
    req->actor_id = "admin";
    req->actor_role = "admin";
    return true;
}

static bool json_content_type(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/json", 16))
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

void tl_gw_dispatch(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char store[TL_ROUTE_PARAMS][TL_SEGMENT_MAX];
    const tl_route_t *found = NULL;
    bool path_known = false;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !found; i++) {
        int n = 0;
        if (!route_match(routes[i].pattern, req->path, store, &n))
            continue;
        path_known = true;
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
        if (path_known) {
            tl_problem(resp, 405, "method-not-allowed", "Method not allowed", NULL, NULL);
            snprintf(resp->allow, sizeof resp->allow, "%s", allow);
        }
        else
            tl_problem(resp, 404, "not-found", "Not found", "no such route", NULL);
        return;
    }
    if (!found->public && !authenticate(gw, req)) {
        tl_problem(resp, 401, "unauthorized", "Authentication required",
                   "send Authorization: Bearer <token>", NULL);
        return;
    }
    if ((!strcmp(req->method, "POST") || !strcmp(req->method, "PATCH")) &&
        !json_content_type(req->content_type)) {
        tl_problem(resp, 415, "unsupported-media-type", "Unsupported media type",
                   "the body must be application/json", NULL);
        return;
    }
    found->handler(gw, req, resp);
    if (resp->status >= 500)
        tl_log_warn("request_failed", json_pack("{s:s, s:s, s:i}", "method", req->method,
                                                "route", found->pattern, "status",
                                                resp->status));
}
