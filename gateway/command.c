/* Command plumbing shared by every write route: body parsing, ids,
 * produce, read-your-writes wait, outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "forms_store.h"
#include "gateway.h"
#include "participants_store.h"
#include "rules.h"
#include "schedules_store.h"
#include "tl_date.h"
#include "tl_json.h"
#include "tl_log.h"
#include "tl_topics.h"

/* The body's reason is absent where the route requires one, or null or
 * blank where it is given (a reason of spaces says nothing). */
static bool reason_missing(const json_t *obj, const tl_json_field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fields[i].name, "reason"))
            continue;
        const json_t *r = json_object_get(obj, "reason");
        if (!r)
            return fields[i].required;
        if (json_is_null(r))
            return true;
        return json_is_string(r) && !tl_reason_given(json_string_value(r));
    }
    return false;
}

json_t *tl_gw_body(tl_req_t *req, tl_resp_t *resp, const void *fields, size_t nfields)
{
    char why[128];
    json_t *obj = NULL;
    if (tl_json_parse_object(req->body, req->body_len, &obj, why, sizeof why)) {
        tl_problem_r(resp, TL_R(malformed_json), why, NULL);
        return NULL;
    }
    json_t *errors = json_array();
    bool no_reason = reason_missing(obj, fields, nfields);
    if (tl_json_check(obj, fields, nfields, errors) || no_reason) {
        /* a missing or blank reason answers alike on every route; the
         * other faults of the body are listed with it */
        if (no_reason && !json_object_get(obj, "reason"))
            tl_json_error(errors, "reason", "is required");
        else if (no_reason && json_array_size(errors) == 0)
            tl_json_error(errors, "reason", "must say why");
        tl_problem_r(resp, no_reason ? TL_R(reason_required) : TL_R(validation_failed),
                     no_reason ? "a reason for the change is required"
                               : "one or more fields are invalid",
                     errors);
        json_decref(obj);
        return NULL;
    }
    json_decref(errors);
    return obj;
}

long tl_gw_query_long(tl_req_t *req, const char *name, long def, long min, long max, json_t *errors)
{
    const char *s = req->query(req->conn, name);
    if (!s)
        return def;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (!*s || *end || n < min || n > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "must be from %ld to %ld", min, max);
        tl_json_error(errors, name, msg);
        return def;
    }
    return n;
}

long tl_gw_query_limit(tl_req_t *req, long def, long max, json_t *errors)
{
    return tl_gw_query_long(req, "limit", def, 1, max, errors);
}

bool tl_gw_page(tl_req_t *req, long def, long max, char lim[16], char after[TL_UUID_STRLEN],
                bool *has_after, tl_resp_t *resp)
{
    json_t *errors = json_array();
    snprintf(lim, 16, "%ld", tl_gw_query_limit(req, def, max, errors));
    const char *a = req->query(req->conn, "after");
    tl_uuid_t id;
    *has_after = a != NULL;
    if (a && tl_uuid_parse(a, &id))
        tl_json_error(errors, "after", "is not a cursor: pass the next of the page before");
    else if (a)
        memcpy(after, id.s, TL_UUID_STRLEN);
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return false;
    }
    json_decref(errors);
    return true;
}

bool tl_gw_query_as_of(tl_req_t *req, char out[TL_DATE_STRLEN])
{
    const char *s = req->query(req->conn, "as_of");
    int32_t d = tl_date_today();
    if (s && tl_date_parse(s, &d))
        return false;
    tl_date_format(d, out);
    return true;
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

bool tl_cmd_init(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp)
{
    const char *key = req->idempotency_key;
    const char *corr = req->correlation_id;
    if (key) {
        size_t len = strlen(key);
        if (!len || len > TL_IDEMPOTENCY_KEY_MAX || !printable_ascii(key)) {
            tl_problem_r(resp, TL_R(invalid_idempotency_key), "1 to 200 printable ASCII characters",
                         NULL);
            return false;
        }
        if (!tl_idem_claim(gw, req, cmd, resp))
            return false;
    } else if (tl_uuid_v7(&cmd->meta.event_id) || tl_uuid_v7(&cmd->resource_id)) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        return false;
    }
    if (!corr || !*corr || strlen(corr) > 64 || !printable_ascii(corr))
        corr = cmd->meta.event_id.s;
    cmd->meta.actor_id = req->actor_id;
    cmd->meta.actor_role = req->actor_role;
    cmd->meta.correlation_id = corr;
    cmd->meta.source = "gateway";
    return true;
}

static bool prefers_async(const char *prefer)
{
    return prefer && strcasestr(prefer, "respond-async") != NULL;
}

static void accepted(tl_resp_t *resp, const tl_cmd_t *cmd, const char *topic,
                     const tl_kafka_pos_t *pos)
{
    json_decref(resp->body);
    resp->status = 202;
    resp->problem = false;
    resp->body = json_pack("{s:s, s:s, s:s, s:{s:s, s:i, s:I}}", "id", cmd->resource_id.s,
                           "event_id", cmd->meta.event_id.s, "status", "accepted", "log", "topic",
                           topic, "partition", pos->partition, "offset", (json_int_t)pos->offset);
    snprintf(resp->location, sizeof resp->location, "%s", cmd->location);
}

/* After the wait, in one round trip: why the projection refused the event
 * (into cmd->reason; *rejected) and the resource as read_sql, with its n
 * params, reads it (*found, NULL when there is none). */
static tl_err_t read_outcome(tl_gw_t *gw, tl_cmd_t *cmd, const char *read_sql, int n,
                             const char *const *read_params, bool *rejected, json_t **found)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", cmd->pos.partition);
    snprintf(off, sizeof off, "%lld", (long long)cmd->pos.offset);
    const char *params[TL_READ_PARAMS_MAX + 4];
    if (n > TL_READ_PARAMS_MAX)
        return TL_ERR_INTERNAL;
    for (int i = 0; i < n; i++)
        params[i] = read_params[i];
    params[n] = cmd->projection;
    params[n + 1] = cmd->topic;
    params[n + 2] = part;
    params[n + 3] = off;
    tl_buf_t sql;
    tl_buf_init(&sql, 16384);
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_buf_printf(&sql,
                                 "SELECT (SELECT reason FROM projection_rejections"
                                 " WHERE projection = $%d AND topic = $%d AND partition = $%d::int"
                                 " AND \"offset\" = $%d::bigint), (%s)",
                                 n + 1, n + 2, n + 3, n + 4, read_sql);
    if (!err)
        err = tl_gw_exec_quick(gw, sql.data, n + 4, params, &res);
    const char *reason = err ? NULL : tl_pg_get(res, 0, 0);
    const char *text = err ? NULL : tl_pg_get(res, 0, 1);
    *rejected = reason != NULL;
    if (reason)
        snprintf(cmd->reason, sizeof cmd->reason, "%s", reason);
    if (text && !(*found = json_loads(text, JSON_DECODE_ANY, NULL)))
        err = TL_ERR_INTERNAL;
    tl_pg_res_free(res);
    tl_buf_cleanup(&sql);
    return err;
}

typedef enum { TL_CMD_APPLIED, TL_CMD_REJECTED, TL_CMD_ANSWERED } tl_cmd_outcome_t;

/* Read-your-writes means every projection a client reads the event's topic
 * from has it: after a 201 for an enrolment, the schedule and the forms
 * projection's stream state are there too (the next command of the
 * participant is checked against them). */
static bool wait_readers(tl_gw_t *gw, const char *projection, const char *topic,
                         const tl_kafka_pos_t *pos)
{
    static const char *const stream_readers[] = {TL_PROJECTION_PARTICIPANTS,
                                                 TL_PROJECTION_SCHEDULES, TL_PROJECTION_FORMS};
    const char *readers[TL_WAITER_PROJECTIONS_MAX] = {projection};
    size_t n = 1;
    for (size_t i = 0; !strcmp(topic, TL_TOPIC_PARTICIPANT) && i < 3; i++)
        if (strcmp(stream_readers[i], projection))
            readers[n++] = stream_readers[i];
    return !tl_waiter_wait_all(gw->waiter, readers, n, topic, pos->partition, pos->offset,
                               (int)gw->cfg.ryw_timeout_ms);
}

/* Produces the event and, unless the client prefers respond-async, waits
 * until the projections applied it, then reads the outcome (read_outcome).
 * APPLIED / REJECTED (cmd->reason set) leave the answer to the caller, with
 * the resource read back in *found (new reference or NULL); ANSWERED means
 * resp is complete (202 or 503). */
static tl_cmd_outcome_t run(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp,
                            const char *read_sql, int nread, const char *const *read_params,
                            json_t **found)
{
    tl_kafka_pos_t pos = {0};
    int64_t lag = 0;
    *found = NULL;
    const tl_event_type_t *t = tl_registry_type(gw->registry, cmd->type);
    if (t && req->idem.produced && !strcmp(req->idem.topic, t->topic)) {
        /* a retry of a command whose event the log has: that event's outcome */
        cmd->topic = t->topic;
        cmd->pos = pos = req->idem.pos;
        goto written;
    }
    if (tl_bp_engaged(gw->bp, &lag)) {
        tl_problem_r(resp, TL_R(log_back_pressure),
                     "the audit archive is behind the event log; nothing was changed; retry "
                     "shortly",
                     NULL);
        resp->retry_after = 1;
        return TL_CMD_ANSWERED;
    }
    req->idem.attempted = t != NULL;
    tl_err_t err =
        t ? tl_producer_send(gw->producer, cmd->type, cmd->key, cmd->payload, &cmd->meta, &pos)
          : TL_ERR_INTERNAL;
    cmd->topic = t ? t->topic : NULL;
    cmd->pos = pos;
    if (err) {
        tl_problem_from_err(resp, err);
        if (err == TL_ERR_UNAVAILABLE)
            json_object_set_new(resp->body, "detail",
                                json_string("the event log did not confirm the write; retry "
                                            "with the same Idempotency-Key"));
        return TL_CMD_ANSWERED;
    }
    tl_bp_produced(gw->bp, t->topic, pos.partition, pos.offset);
    tl_idem_produced(gw, req, t->topic, &pos);
    if (tl_log_enabled(TL_LOG_DEBUG))
        tl_log(TL_LOG_DEBUG, "event_produced",
               json_pack("{s:s, s:s, s:s, s:i, s:I}", "event_id", cmd->meta.event_id.s, "type",
                         cmd->type, "topic", t->topic, "partition", pos.partition, "offset",
                         (json_int_t)pos.offset));
written:;
    bool rejected = false;
    /* Durable in the log but not (yet) visible, or its outcome unreadable:
     * say so, never fail it. */
    if (prefers_async(req->prefer) || !wait_readers(gw, cmd->projection, t->topic, &pos) ||
        read_outcome(gw, cmd, read_sql, nread, read_params, &rejected, found)) {
        json_decref(*found);
        *found = NULL;
        accepted(resp, cmd, t->topic, &pos);
        return TL_CMD_ANSWERED;
    }
    return rejected ? TL_CMD_REJECTED : TL_CMD_APPLIED;
}

json_t *tl_gw_query_json(tl_gw_t *gw, tl_resp_t *resp, const char *sql, int n,
                         const char *const *params, bool *failed)
{
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw, sql, n, params, &res);
    *failed = err != TL_OK;
    if (err) {
        tl_problem_from_err(resp, err);
        return NULL;
    }
    const char *text = tl_pg_get(res, 0, 0);
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    tl_pg_res_free(res);
    return j;
}

void tl_gw_found(tl_resp_t *resp, json_t *j, bool failed, const char *not_found)
{
    if (j) {
        resp->status = 200;
        resp->body = j;
    } else if (!failed) {
        tl_problem_r(resp, TL_R(not_found), not_found, NULL);
    }
}

void tl_gw_created(tl_resp_t *resp, json_t *body, const char *location, bool replayed)
{
    json_decref(resp->body);
    resp->status = 201; /* a replay answers as the original did */
    resp->problem = false;
    resp->body = body;
    resp->replayed = replayed;
    snprintf(resp->location, sizeof resp->location, "%s", location);
}

static void duplicate(tl_resp_t *resp, const tl_create_t *spec)
{
    tl_problem_r(resp, spec->dup, spec->dup_detail, NULL);
}

void tl_gw_create(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_create_t *spec,
                  pthread_mutex_t *lock, tl_resp_t *resp)
{
    const char *params[1 + TL_CHECK_PARAMS_MAX] = {cmd->resource_id.s};
    int nparams = 1 + (spec->ncheck < TL_CHECK_PARAMS_MAX ? spec->ncheck : TL_CHECK_PARAMS_MAX);
    for (int i = 1; i < nparams; i++)
        params[i] = spec->check_params[i - 1];
    tl_pg_res_t *check = NULL;
    json_t *found = NULL;
    pthread_mutex_lock(lock);
    if (req->idem.produced) /* the event is in the log: its outcome only */
        goto run;
    tl_err_t err = tl_gw_exec_quick(gw, spec->check_sql, nparams, params, &check);
    if (err) {
        tl_problem_from_err(resp, err);
        goto out;
    }
    const char *existing = tl_pg_get(check, 0, 0);
    if (existing) {
        if ((found = json_loads(existing, JSON_DECODE_ANY, NULL)))
            tl_gw_created(resp, found, cmd->location, true);
        else
            tl_problem_from_err(resp, TL_ERR_INTERNAL);
        goto out;
    }
    if (spec->rules && !spec->rules(spec->ctx, check, resp))
        goto out;
    if (tl_pg_get(check, 0, 1)) {
        duplicate(resp, spec);
        goto out;
    }
run:;
    tl_cmd_outcome_t o = run(gw, req, cmd, resp, spec->read_sql, 1, params, &found);
    if (o == TL_CMD_ANSWERED)
        goto out;
    /* A refused event whose resource exists is a redelivered retry. */
    if (found)
        tl_gw_created(resp, found, cmd->location, o == TL_CMD_REJECTED);
    else if (tl_reason_parse(cmd->reason) == spec->dup)
        duplicate(resp, spec);
    else
        tl_problem_refused(resp, cmd->reason);
out:
    pthread_mutex_unlock(lock);
    tl_pg_res_free(check);
}

/* A retried update the projection has already applied: answers as the
 * original did (a failed read has resp hold its 503). */
static void answer_replay(tl_gw_t *gw, const tl_update_t *spec, tl_cmd_t *cmd, tl_resp_t *resp)
{
    bool failed = false;
    json_t *j =
        tl_gw_query_json(gw, resp, spec->answer_sql, spec->nanswer, spec->answer_params, &failed);
    if (j) {
        tl_gw_created(resp, j, cmd->location, true);
        resp->status = spec->status;
    } else if (!failed) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
    }
}

void tl_gw_update(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_update_t *spec,
                  pthread_mutex_t *lock, tl_resp_t *resp)
{
    tl_pg_res_t *check = NULL;
    json_t *found = NULL;
    pthread_mutex_lock(lock);
    if (req->idem.produced) /* the event is in the log: its outcome only */
        goto run;
    tl_err_t err = tl_gw_exec_quick(gw, spec->check_sql, spec->ncheck, spec->check_params, &check);
    if (err) {
        tl_problem_from_err(resp, err);
        goto out;
    }
    const char *last = tl_pg_get(check, 0, 0);
    if (!last) {
        tl_problem_r(resp, TL_R(not_found), spec->not_found, NULL);
        goto out;
    }
    if (!strcmp(last, cmd->meta.event_id.s)) {
        answer_replay(gw, spec, cmd, resp);
        goto out;
    }
    if (!spec->decide(spec->ctx, check, cmd, resp))
        goto out;
run:;
    tl_cmd_outcome_t o =
        run(gw, req, cmd, resp, spec->answer_sql, spec->nanswer, spec->answer_params, &found);
    if (o == TL_CMD_APPLIED && found) {
        tl_gw_created(resp, found, cmd->location, false);
        resp->status = spec->status;
    } else if (o == TL_CMD_APPLIED) {
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
    } else if (o == TL_CMD_REJECTED && !strcmp(cmd->reason, "version_conflict")) {
        tl_problem_r(resp, TL_R(version_conflict),
                     "another command changed it first; read it again and retry", NULL);
    } else if (o == TL_CMD_REJECTED) {
        tl_problem_refused(resp, cmd->reason);
    }
    if (o != TL_CMD_APPLIED)
        json_decref(found); /* a refused update answers with no resource */
out:
    pthread_mutex_unlock(lock);
    tl_pg_res_free(check);
}
