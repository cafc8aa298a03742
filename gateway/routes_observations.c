/* A participant's observations from connectors (docs/CONNECTORS.md): what
 * the participants projection took of each ObservationRecorded, oldest
 * first, in pages. Who may read them and at which sites is the route
 * table's business (a participant read, site scoped). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 500

/* $1 participant, $2 the cursor (a stream version, or NULL), $3 the limit;
 * NULL (no row) when there is no such participant */
static const char *const sql_observations =
    "SELECT json_build_object('participant_id', p.id,"
    "  'items', COALESCE((SELECT json_agg(x.j ORDER BY x.v) FROM (SELECT o.stream_version AS v,"
    "     json_build_object('event_id', o.event_id, 'version', o.stream_version,"
    "       'source', o.source, 'kind', o.kind, 'observed_on', o.observed_on,"
    "       'device', o.device, 'laterality', o.laterality, 'values', o.observed_values,"
    "       'connector_event_id', o.connector_event_id, 'recorded_at', o.recorded_at) AS j"
    "     FROM observations o WHERE o.participant_id = p.id"
    "      AND ($2::bigint IS NULL OR o.stream_version > $2::bigint)"
    "     ORDER BY o.stream_version LIMIT $3::int) x), '[]'::json),"
    "  'next', (SELECT CASE WHEN count(*) = $3::int THEN max(y.v)::text END"
    "     FROM (SELECT o.stream_version AS v FROM observations o WHERE o.participant_id = p.id"
    "      AND ($2::bigint IS NULL OR o.stream_version > $2::bigint)"
    "     ORDER BY o.stream_version LIMIT $3::int) y))::text"
    " FROM participants p WHERE p.id = $1";

void tl_h_participant_observations(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    json_t *errors = json_array(), *j = NULL;
    bool failed = false;
    long limit = tl_gw_query_limit(req, PAGE_DEFAULT, PAGE_MAX, errors);
    /* "next" of the page before: the last stream version it showed */
    long long after = tl_gw_query_long(req, "after", -1, 0, LONG_MAX, errors);
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    char lim[16], cur[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(cur, sizeof cur, "%lld", after);
    const char *params[] = {req->params[0], after >= 0 ? cur : NULL, lim};
    if (tl_uuid_valid(req->params[0]))
        j = tl_gw_query_json(gw, resp, sql_observations, 3, params, &failed);
    tl_gw_found(resp, j, failed, "participant not found");
}
