/* Authentication (bearer token -> principal) and site scoping.
 *
 * A token is looked up by its SHA-256 in the access projection. Answers are
 * cached (a fixed table, direct-mapped by the hash) and tagged with the
 * access projection's epoch as the waiter sees it: any access event that
 * is applied (a revocation, a role change) makes every cached answer stale,
 * so the next request reads the projection again. A revocation answered
 * 200 by this gateway has been applied, so the revoked token fails on the
 * very next request here; other gateways learn of it from the same NOTIFY,
 * within milliseconds. Expiry is checked on every request. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access_store.h"
#include "gateway.h"
#include "tl_codec.h"
#include "tl_map.h"
#include "tl_producer.h"
#include "tl_secret.h"

#define CACHE_SLOTS 1024

typedef struct {
    char sha256[TL_SHA256_STRLEN]; /* "": empty slot */
    int64_t epoch;
    int64_t expires_at_us;
    tl_actor_t actor;
} slot_t;

struct tl_auth_cache {
    pthread_mutex_t lock;
    slot_t slots[CACHE_SLOTS];
};

static const char *const sql_token =
    "SELECT p.id, p.role, p.site_ids::text, (extract(epoch FROM t.expires_at) * 1000000)::bigint,"
    "       t.issued_by, p.study_ids::text"
    "  FROM access_tokens t JOIN principals p ON p.id = t.principal_id"
    " WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND p.active";

tl_err_t tl_auth_init(tl_gw_t *gw)
{
    struct tl_auth_cache *c = calloc(1, sizeof *c);
    if (!c)
        return TL_ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    gw->auth = c;
    return TL_OK;
}

void tl_auth_cleanup(tl_gw_t *gw)
{
    if (!gw->auth)
        return;
    pthread_mutex_destroy(&gw->auth->lock);
    free(gw->auth);
    gw->auth = NULL;
}

static bool token_shaped(const char *t)
{
    if (strncmp(t, TL_TOKEN_PREFIX, 4))
        return false;
    size_t n = 0;
    for (t += 4; (*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f'); t++)
        n++;
    return !*t && n == TL_TOKEN_STRLEN - 5;
}

static void unauthorized(tl_resp_t *resp, tl_reason_t why, const char *detail)
{
    tl_problem_r(resp, why, detail, NULL);
}

static bool cache_get(struct tl_auth_cache *c, const char *sha, int64_t epoch, slot_t *out)
{
    if (!c)
        return false;
    slot_t *s = &c->slots[tl_map_hash(sha) % CACHE_SLOTS];
    pthread_mutex_lock(&c->lock);
    bool hit = s->epoch == epoch && !strcmp(s->sha256, sha);
    if (hit)
        *out = *s;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void cache_put(struct tl_auth_cache *c, const slot_t *v)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->slots[tl_map_hash(v->sha256) % CACHE_SLOTS] = *v;
    pthread_mutex_unlock(&c->lock);
}

/* The token's principal from the projection into v; *found false when it
 * is unknown, revoked or its principal disabled. */
static tl_err_t lookup(tl_gw_t *gw, const char *sha, slot_t *v, bool *found)
{
    tl_pg_res_t *res = NULL;
    const char *params[] = {sha};
    tl_err_t err = tl_gw_exec_quick(gw, sql_token, 1, params, &res);
    *found = !err && tl_pg_nrows(res) == 1;
    if (*found) {
        snprintf(v->actor.id, sizeof v->actor.id, "%s", tl_pg_get(res, 0, 0));
        v->actor.role = tl_role_parse(tl_pg_get(res, 0, 1));
        v->actor.nsites =
            tl_pg_uuids_parse(tl_pg_get(res, 0, 2), v->actor.sites, TL_PRINCIPAL_SITES_MAX);
        v->expires_at_us = tl_pg_get_int(res, 0, 3);
        snprintf(v->actor.token_issued_by, sizeof v->actor.token_issued_by, "%s",
                 tl_pg_get(res, 0, 4) ? tl_pg_get(res, 0, 4) : "");
        v->actor.nstudies =
            tl_pg_uuids_parse(tl_pg_get(res, 0, 5), v->actor.studies, TL_PRINCIPAL_STUDIES_MAX);
        *found = v->actor.role >= 0;
    }
    tl_pg_res_free(res);
    return err;
}

/* The token of "Bearer <token>", or of "Basic base64(<any user>:<token>)",
 * which Kafka clients' schema registry settings send
 * (basic.auth.user.info), into buf; NULL when neither. */
static const char *token_of(const char *a, char *buf, size_t size)
{
    if (a && !strncasecmp(a, "Bearer ", 7))
        return a + 7;
    if (!a || strncasecmp(a, "Basic ", 6) || strlen(a + 6) > 4 * size / 3)
        return NULL;
    tl_buf_t raw;
    tl_buf_init(&raw, size);
    const char *colon = NULL, *token = NULL;
    if (!tl_b64_decode(&raw, a + 6) && !tl_buf_append(&raw, "", 1) &&
        strlen(raw.data) == raw.len - 1 && (colon = strchr(raw.data, ':')) &&
        strlen(colon + 1) < size) {
        snprintf(buf, size, "%s", colon + 1);
        token = buf;
    }
    tl_buf_cleanup(&raw);
    return token;
}

bool tl_auth_authenticate(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char basic[256];
    const char *token = token_of(req->authorization, basic, sizeof basic);
    if (!token) {
        unauthorized(resp, TL_R(unauthorized),
                     "send Authorization: Bearer <token> (or Basic with the token as password)");
        return false;
    }
    slot_t v = {0};
    if (!token_shaped(token) || tl_sha256_hex(token, strlen(token), v.sha256)) {
        unauthorized(resp, TL_R(invalid_token),
                     "the bearer token is unknown, revoked, or its principal is disabled");
        return false;
    }
    /* the epoch before the read: if the projection moves meanwhile, the
     * answer is filed under the old epoch and read again next time */
    v.epoch = tl_waiter_epoch(gw->waiter, TL_PROJECTION_ACCESS, NULL);
    if (!cache_get(gw->auth, v.sha256, v.epoch, &v)) {
        bool found = false;
        tl_err_t err = lookup(gw, v.sha256, &v, &found);
        if (err) {
            tl_problem_from_err(resp, err);
            return false;
        }
        if (!found) {
            unauthorized(resp, TL_R(invalid_token),
                         "the bearer token is unknown, revoked, or its principal is disabled");
            return false;
        }
        cache_put(gw->auth, &v);
    }
    if (v.expires_at_us <= tl_now_us()) {
        unauthorized(resp, TL_R(token_expired), "ask an administrator for a new token");
        return false;
    }
    req->actor = v.actor;
    req->actor_id = req->actor.id;
    req->actor_role = tl_role_name(req->actor.role);
    return true;
}

bool tl_auth_has_site(const tl_req_t *req, const char *site_id)
{
    if (!tl_role_site_scoped(req->actor.role))
        return true;
    for (size_t i = 0; site_id && i < req->actor.nsites; i++)
        if (!strcasecmp(req->actor.sites[i], site_id))
            return true;
    return false;
}

const char *tl_auth_sites_param(const tl_req_t *req, char *buf, size_t size)
{
    if (!tl_role_site_scoped(req->actor.role))
        return NULL;
    /* an empty array (never NULL) when it does not fit: nothing is seen */
    if (!tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])req->actor.sites, req->actor.nsites, buf,
                            size))
        snprintf(buf, size, "{}");
    return buf;
}

const char *tl_auth_studies_param(const tl_req_t *req, char *buf, size_t size)
{
    if (req->actor.role != TL_ROLE_ANALYST)
        return NULL;
    if (!tl_pg_uuids_format((const char(*)[TL_UUID_STRLEN])req->actor.studies,
                            req->actor.nstudies, buf, size))
        snprintf(buf, size, "{}");
    return buf;
}

bool tl_auth_study_granted(const tl_req_t *req, const char *study_id, tl_resp_t *resp)
{
    if (req->actor.role != TL_ROLE_ANALYST)
        return true;
    for (size_t i = 0; study_id && i < req->actor.nstudies; i++)
        if (!strcasecmp(req->actor.studies[i], study_id))
            return true;
    /* 403, not the site roles' 404: the answer tells an analyst to ask
     * for a grant (docs/ANALYSTS.md), not that a study it was told of does
     * not exist */
    tl_problem_r(resp, TL_R(study_not_granted), "the analyst is not granted this study", NULL);
    return false;
}

static const char *const sql_study_scope =
    "SELECT EXISTS (SELECT 1 FROM sites WHERE study_id = $1 AND id = ANY($2::uuid[]))";
static const char *const sql_participant_site = "SELECT site_id FROM participants WHERE id = $1";
static const char *const sql_form_site = "SELECT site_id FROM forms WHERE id = $1";

bool tl_auth_in_scope(tl_gw_t *gw, const tl_route_t *route, tl_req_t *req, tl_resp_t *resp)
{
    const char *id = req->params[0];
    if (req->actor.role == TL_ROLE_ADMIN || route->scope == TL_SCOPE_NONE)
        return true;
    if (route->scope == TL_SCOPE_STUDY && req->actor.role == TL_ROLE_ANALYST)
        return tl_auth_study_granted(req, id, resp);
    if (route->scope == TL_SCOPE_SELF) {
        if (id && !strcasecmp(id, req->actor.id))
            return true;
        tl_problem_r(resp, TL_R(not_found), "principal not found", NULL);
        return false;
    }
    char sites[TL_SITES_PARAM_LEN];
    const char *sp = tl_auth_sites_param(req, sites, sizeof sites);
    if (!sp)
        return true; /* sees every site */
    bool study = route->scope == TL_SCOPE_STUDY, form = route->scope == TL_SCOPE_FORM;
    bool ok = false;
    tl_err_t err = TL_OK;
    if (tl_uuid_valid(id)) {
        tl_pg_res_t *res = NULL;
        const char *params[] = {id, sp};
        const char *sql = study ? sql_study_scope : form ? sql_form_site : sql_participant_site;
        err = tl_gw_exec(gw, sql, study ? 2 : 1, params, &res);
        const char *v = err ? NULL : tl_pg_get(res, 0, 0);
        /* an unknown participant or form is the handler's 404 */
        ok = study ? v && !strcmp(v, "t") : !err && (!tl_pg_nrows(res) || tl_auth_has_site(req, v));
        tl_pg_res_free(res);
    }
    if (err)
        tl_problem_from_err(resp, err);
    else if (!ok)
        tl_problem_r(resp, TL_R(not_found),
                     study  ? "study not found"
                     : form ? "form not found"
                            : "participant not found",
                     NULL);
    return ok;
}
