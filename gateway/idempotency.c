/* Idempotency-Key: the rule (tl_idem_judge) and the row of idempotency_keys
 * that binds a key to its first request (idempotency.h). */
#include "idempotency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "tl_json.h"
#include "tl_log.h"

/* Claims for a key between two passes over the expired ones. */
#define PRUNE_EVERY 1024
#define PRUNE_BATCH "1000"

tl_idem_verdict_t tl_idem_judge(const tl_idem_row_t *row, const char *principal_id,
                                const char *method, const char *path, const char *body_sha256)
{
    if (strcasecmp(row->principal_id, principal_id) || strcmp(row->method, method) ||
        strcmp(row->path, path) || strcmp(row->body_sha256, body_sha256))
        return TL_IDEM_REUSED;
    if (row->answered)
        return TL_IDEM_REPLAY;
    if (row->produced)
        return TL_IDEM_WAIT;
    return row->lease_active ? TL_IDEM_IN_PROGRESS : TL_IDEM_TAKE_OVER;
}

bool tl_idem_final(int status, const char *problem_type)
{
    if (status >= 200 && status < 300)
        return status != 202;
    if (status < 400 || status >= 500 || status == 408 || status == 429)
        return false;
    return !problem_type || strcmp(problem_type, "idempotency-key-in-progress");
}

/* $1 key; the lease, in milliseconds, is $8. One row: whether this claim
 * made the row, then the row that was there (NULLs when none, or when a
 * concurrent claim is not visible yet). */
static const char *const sql_claim =
    "WITH ins AS (INSERT INTO idempotency_keys (key, principal_id, method, path, body_sha256,"
    "   event_id, resource_id, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7,"
    "   now() + $8::int * interval '1 millisecond') ON CONFLICT (key) DO NOTHING RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM ins), k.principal_id, k.method, k.path, k.body_sha256,"
    "   k.event_id::text, k.resource_id::text, k.topic, k.partition, k.\"offset\", k.status,"
    "   k.answer, k.location, k.lease_until > now()"
    "  FROM (SELECT 1) one LEFT JOIN idempotency_keys k ON k.key = $1";

static const char *const sql_take_over =
    "UPDATE idempotency_keys SET lease_until = now() + $2::int * interval '1 millisecond'"
    " WHERE key = $1 AND status IS NULL AND topic IS NULL AND lease_until <= now() RETURNING 1";

static void prune(tl_gw_t *gw)
{
    char hours[24];
    snprintf(hours, sizeof hours, "%ld", gw->cfg.idempotency_hours);
    const char *params[] = {hours};
    tl_err_t err = tl_gw_exec(gw,
                              "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM"
                              " idempotency_keys WHERE created_at < now() - $1::int * interval"
                              " '1 hour' LIMIT " PRUNE_BATCH ")",
                              1, params, NULL);
    if (err)
        tl_log_warn("idempotency_prune_failed", json_pack("{s:s}", "error", tl_err_str(err)));
}

static void replay(const tl_pg_res_t *res, tl_resp_t *resp)
{
    json_decref(resp->body);
    resp->body = NULL;
    resp->status = (int)tl_pg_get_int(res, 0, 10);
    resp->problem = false;
    resp->text = strdup(tl_pg_get(res, 0, 11));
    resp->content_type = resp->status >= 400 ? "application/problem+json" : "application/json";
    resp->replayed = true;
    snprintf(resp->location, sizeof resp->location, "%s",
             tl_pg_get(res, 0, 12) ? tl_pg_get(res, 0, 12) : "");
    if (!resp->text)
        tl_problem_from_err(resp, TL_ERR_NOMEM);
}

static void in_progress(tl_resp_t *resp)
{
    tl_problem_r(resp, TL_R(idempotency_key_in_progress),
                 "a request with this Idempotency-Key is still running; retry shortly", NULL);
    resp->retry_after = 1;
}

/* The lease of a claim: the longest a request may take between the claim
 * and its answer, and some. */
static void lease_ms(const tl_gw_t *gw, char out[24])
{
    snprintf(out, 24, "%ld", gw->cfg.produce_timeout_ms + gw->cfg.ryw_timeout_ms + 10000);
}

/* The ids and the log position of the row into cmd and req. */
static bool adopt(const tl_pg_res_t *res, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp)
{
    if (tl_uuid_parse(tl_pg_get(res, 0, 5), &cmd->meta.event_id) ||
        tl_uuid_parse(tl_pg_get(res, 0, 6), &cmd->resource_id)) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        return false;
    }
    if (tl_pg_get(res, 0, 7)) {
        req->idem.produced = true;
        snprintf(req->idem.topic, sizeof req->idem.topic, "%s", tl_pg_get(res, 0, 7));
        req->idem.pos.partition = (int32_t)tl_pg_get_int(res, 0, 8);
        req->idem.pos.offset = tl_pg_get_int(res, 0, 9);
    }
    return true;
}

/* The body as the key binds it: its JSON with every secret member taken
 * out (a signing password, a one-time code) and the keys sorted, so that
 * the stored hash is no unsalted hash of a password to brute-force. A body
 * that is no JSON object is hashed as it is. */
static tl_err_t body_hash(const tl_req_t *req, char sha[TL_SHA256_STRLEN])
{
    static const char *const secrets[] = {"password", "current_password", "enrolment_code"};
    json_t *obj = NULL;
    char why[64];
    if (!req->body || tl_json_parse_object(req->body, req->body_len, &obj, why, sizeof why))
        return tl_sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0, sha);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        json_object_del(obj, secrets[i]);
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    tl_err_t err = text ? tl_sha256_hex(text, strlen(text), sha) : TL_ERR_NOMEM;
    free(text);
    json_decref(obj);
    return err;
}

bool tl_idem_claim(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp)
{
    char sha[TL_SHA256_STRLEN], lease[24];
    if (body_hash(req, sha) || tl_uuid_v7(&cmd->meta.event_id) || tl_uuid_v7(&cmd->resource_id)) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        return false;
    }
    if (atomic_fetch_add(&gw->idem_claims, 1) % PRUNE_EVERY == PRUNE_EVERY - 1)
        prune(gw);
    lease_ms(gw, lease);
    const char *params[] = {req->idempotency_key, req->actor_id,      req->method, req->path, sha,
                            cmd->meta.event_id.s, cmd->resource_id.s, lease};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec_quick(gw, sql_claim, 8, params, &res);
    bool ok = false;
    if (err) {
        tl_problem_from_err(resp, err);
        goto out;
    }
    if (!strcmp(tl_pg_get(res, 0, 0), "t")) {
        req->idem.claimed = ok = true;
        goto out;
    }
    if (!tl_pg_get(res, 0, 1)) { /* claimed by a request not committed yet */
        in_progress(resp);
        goto out;
    }
    const tl_idem_row_t row = {
        .principal_id = tl_pg_get(res, 0, 1),
        .method = tl_pg_get(res, 0, 2),
        .path = tl_pg_get(res, 0, 3),
        .body_sha256 = tl_pg_get(res, 0, 4),
        .answered = tl_pg_get(res, 0, 10) && tl_pg_get(res, 0, 11),
        .produced = tl_pg_get(res, 0, 7) != NULL,
        .lease_active = !strcmp(tl_pg_get(res, 0, 13), "t"),
    };
    switch (tl_idem_judge(&row, req->actor_id, req->method, req->path, sha)) {
    case TL_IDEM_REUSED:
        tl_problem_r(resp, TL_R(idempotency_key_reused),
                     "this Idempotency-Key was used for another request (another body, principal "
                     "or route); use a new key for a new request",
                     NULL);
        break;
    case TL_IDEM_REPLAY:
        replay(res, resp);
        break;
    case TL_IDEM_IN_PROGRESS:
        in_progress(resp);
        break;
    case TL_IDEM_WAIT:
        req->idem.claimed = ok = adopt(res, req, cmd, resp);
        break;
    case TL_IDEM_TAKE_OVER: {
        const char *tp[] = {req->idempotency_key, lease};
        tl_pg_res_t *taken = NULL;
        if ((err = tl_gw_exec(gw, sql_take_over, 2, tp, &taken)))
            tl_problem_from_err(resp, err);
        else if (tl_pg_nrows(taken) != 1)
            in_progress(resp);
        else
            req->idem.claimed = ok = adopt(res, req, cmd, resp);
        tl_pg_res_free(taken);
        break;
    }
    }
out:
    tl_pg_res_free(res);
    return ok;
}

void tl_idem_produced(tl_gw_t *gw, tl_req_t *req, const char *topic, const tl_kafka_pos_t *pos)
{
    if (!req->idem.claimed)
        return;
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", pos->partition);
    snprintf(off, sizeof off, "%lld", (long long)pos->offset);
    const char *params[] = {req->idempotency_key, topic, part, off};
    tl_err_t err = tl_gw_exec_quick(gw,
                                    "UPDATE idempotency_keys SET topic = $2, partition = $3::int,"
                                    " \"offset\" = $4::bigint WHERE key = $1",
                                    4, params, NULL);
    /* the answer goes on; a retry that finds no position re-sends with the
     * same ids, which the projections apply once */
    if (err)
        tl_log_warn("idempotency_record_failed", json_pack("{s:s}", "error", tl_err_str(err)));
}

/* The answer as stored: the problem or the JSON body, without the member
 * shown once (a token). NULL when it is neither. */
static char *stored_text(const tl_resp_t *resp)
{
    if (resp->problem)
        return tl_problem_render(resp);
    if (!resp->body || resp->text || resp->file_fd1)
        return NULL;
    if (!resp->shown_once)
        return json_dumps(resp->body, TL_JSON_DUMP_FLAGS);
    json_t *copy = json_copy(resp->body);
    json_object_del(copy, resp->shown_once);
    char *text = copy ? json_dumps(copy, TL_JSON_DUMP_FLAGS) : NULL;
    json_decref(copy);
    return text;
}

void tl_idem_finish(tl_gw_t *gw, tl_req_t *req, const tl_resp_t *resp)
{
    if (!req->idem.claimed)
        return;
    const char *type =
        resp->problem ? json_string_value(json_object_get(resp->body, "type")) : NULL;
    const char *slash = type ? strrchr(type, '/') : NULL;
    char *text = tl_idem_final(resp->status, slash ? slash + 1 : type) ? stored_text(resp) : NULL;
    char status[8];
    snprintf(status, sizeof status, "%d", resp->status);
    const char *params[] = {req->idempotency_key, status, text, resp->location};
    tl_err_t err;
    if (text)
        err = tl_gw_exec_quick(gw,
                               "UPDATE idempotency_keys SET status = $2::int, answer = $3,"
                               " location = NULLIF($4, ''), lease_until = now() WHERE key = $1",
                               4, params, NULL);
    else if (!req->idem.attempted) /* nothing was sent: the key is free again */
        err = tl_gw_exec_quick(gw,
                               "DELETE FROM idempotency_keys WHERE key = $1 AND topic IS NULL"
                               " AND status IS NULL",
                               1, params, NULL);
    else /* in doubt: a retry may take over at once */
        err = tl_gw_exec_quick(gw, "UPDATE idempotency_keys SET lease_until = now() WHERE key = $1",
                               1, params, NULL);
    if (err)
        tl_log_warn("idempotency_record_failed", json_pack("{s:s}", "error", tl_err_str(err)));
    free(text);
}
