#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"

/* Problem types are stable relative URIs from the reason table, each
 * documented in docs/openapi.yaml (test_openapi checks). */
void tl_problem_r(tl_resp_t *resp, tl_reason_t why, const char *detail, json_t *errors)
{
    const tl_reason_info_t *r = tl_reason_info(why);
    int status = r->status;
    const char *title = r->title;
    char uri[128];
    snprintf(uri, sizeof uri, "/problems/%s", r->type);
    json_decref(resp->body);
    resp->status = status;
    resp->problem = true;
    resp->body = json_pack("{s:s, s:s, s:i}", "type", uri, "title", title, "status", status);
    if (detail)
        json_object_set_new(resp->body, "detail", json_string(detail));
    if (errors)
        json_object_set_new(resp->body, "errors", errors);
}

void tl_problem_from_err(tl_resp_t *resp, tl_err_t err)
{
    switch (err) {
    case TL_ERR_UNAVAILABLE:
    case TL_ERR_TRANSIENT:
    case TL_ERR_TIMEOUT:
    case TL_ERR_DB:
    case TL_ERR_KAFKA:
        tl_problem_r(resp, TL_R(unavailable),
                     "the event log or the database is not available; the command may not have "
                     "been applied: retry it, with the same Idempotency-Key",
                     NULL);
        resp->retry_after = 1;
        break;
    case TL_ERR_TOO_LARGE:
        tl_problem_r(resp, TL_R(payload_too_large), NULL, NULL);
        break;
    default:
        tl_problem_r(resp, TL_R(internal), NULL, NULL);
        break;
    }
}

void tl_problem_refused(tl_resp_t *resp, const char *fold_reason)
{
    tl_reason_t why = tl_reason_parse(fold_reason);
    /* the fold's word is a code, never data: it can be shown as it is */
    tl_problem_r(resp, why ? why : TL_R(conflict), fold_reason, NULL);
}

char *tl_problem_render(const tl_resp_t *resp)
{
    return resp->body ? json_dumps(resp->body, TL_JSON_DUMP_FLAGS) : NULL;
}

void tl_problem_locked(tl_resp_t *resp)
{
    tl_problem_r(resp, TL_R(study_locked),
                 "the study is locked: no data changes until an admin unlocks it with a reason",
                 NULL);
}

void tl_problem_query(tl_resp_t *resp, json_t *errors)
{
    tl_problem_r(resp, TL_R(invalid_query), NULL, errors);
}
