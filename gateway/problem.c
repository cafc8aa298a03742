#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"

/* Problem types are stable relative URIs, documented in docs/openapi.yaml. */
void tl_problem(tl_resp_t *resp, int status, const char *type, const char *title,
                const char *detail, json_t *errors)
{
    char uri[128];
    snprintf(uri, sizeof uri, "/problems/%s", type);
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
        tl_problem(resp, 503, "unavailable", "Service unavailable",
                   "the event log or the database is not available; the command may not have "
                   "been applied: retry it, with the same Idempotency-Key",
                   NULL);
        resp->retry_after = 1;
        break;
    case TL_ERR_TOO_LARGE:
        tl_problem(resp, 413, "payload-too-large", "Request too large", NULL, NULL);
        break;
    default:
        tl_problem(resp, 500, "internal", "Internal error", NULL, NULL);
        break;
    }
}

char *tl_problem_render(const tl_resp_t *resp)
{
    return resp->body ? json_dumps(resp->body, TL_JSON_DUMP_FLAGS) : NULL;
}

void tl_problem_locked(tl_resp_t *resp)
{
    tl_problem(resp, 422, "study-locked", "Study locked",
               "the study is locked: no data changes until an admin unlocks it with a reason",
               NULL);
}

void tl_problem_query(tl_resp_t *resp, json_t *errors)
{
    tl_problem(resp, 400, "invalid-query", "Invalid query parameters", NULL, errors);
}
