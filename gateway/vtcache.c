/* The visit types of a study, for planning enrolments' schedules, cached.
 *
 * Every enrolment plans its schedule from its study's visit types. Reading
 * them as JSON with the enrolment's checks cost PostgreSQL about as much as
 * every other check of it together (docs/BENCHMARKS.md), for data that
 * changes only with protocol events. The participants projection applies
 * those from the protocol topic, so an answer is tagged with that
 * projection's progress on that topic as the waiter sees it: any protocol
 * event applied makes every cached answer stale, as the auth cache does
 * with access events. An answer is also kept at most MAX_AGE_MS, in case
 * notifications stop. Another gateway's amendment reaches this one with the
 * NOTIFY that tells of it, within milliseconds: the same window an
 * enrolment checked just before the amendment was applied has anyway. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "participants_store.h"
#include "tl_log.h"
#include "tl_map.h"
#include "tl_topics.h"

#define SLOTS 64
#define MAX_AGE_MS 1000

typedef struct {
    char study_id[TL_UUID_STRLEN]; /* "": empty */
    int64_t epoch;
    double loaded_ms; /* tl_log_mono_ms */
    size_t n;
    tl_visit_type_t *vts; /* n of them, owned */
} slot_t;

struct tl_vtcache {
    pthread_mutex_t lock;
    slot_t slots[SLOTS];
};

tl_err_t tl_vtcache_init(tl_gw_t *gw)
{
    struct tl_vtcache *c = calloc(1, sizeof *c);
    if (!c)
        return TL_ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    gw->vtcache = c;
    return TL_OK;
}

void tl_vtcache_cleanup(tl_gw_t *gw)
{
    struct tl_vtcache *c = gw->vtcache;
    if (!c)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        free(c->slots[i].vts);
    pthread_mutex_destroy(&c->lock);
    free(c);
    gw->vtcache = NULL;
}

static bool cache_get(struct tl_vtcache *c, const char *study, int64_t epoch, tl_visit_type_t *out,
                      size_t *n)
{
    slot_t *s = &c->slots[tl_map_hash(study) % SLOTS];
    pthread_mutex_lock(&c->lock);
    bool hit = s->epoch == epoch && !strcmp(s->study_id, study) &&
               tl_log_mono_ms() - s->loaded_ms < MAX_AGE_MS;
    if (hit) {
        memcpy(out, s->vts, s->n * sizeof *out);
        *n = s->n;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void cache_put(struct tl_vtcache *c, const char *study, int64_t epoch,
                      const tl_visit_type_t *vts, size_t n)
{
    tl_visit_type_t *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy)
        return; /* not cached: read again next time */
    memcpy(copy, vts, n * sizeof *copy);
    slot_t *s = &c->slots[tl_map_hash(study) % SLOTS];
    pthread_mutex_lock(&c->lock);
    free(s->vts);
    *s = (slot_t){.epoch = epoch, .loaded_ms = tl_log_mono_ms(), .n = n, .vts = copy};
    memcpy(s->study_id, study, sizeof s->study_id);
    pthread_mutex_unlock(&c->lock);
}

tl_err_t tl_gw_visit_types(tl_gw_t *gw, const char *study_id, tl_visit_type_t *out, size_t *n)
{
    *n = 0;
    if (strlen(study_id) != TL_UUID_STRLEN - 1)
        return TL_ERR_INVALID; /* callers pass a parsed id */
    /* the epoch before the read: if the projection moves meanwhile, the
     * answer is filed under the old epoch and read again next time */
    int64_t epoch = tl_waiter_epoch(gw->waiter, TL_PROJECTION_PARTICIPANTS, TL_TOPIC_PROTOCOL);
    if (gw->vtcache && cache_get(gw->vtcache, study_id, epoch, out, n))
        return TL_OK;
    tl_pg_res_t *res = NULL;
    const char *params[] = {study_id};
    tl_err_t err = tl_gw_exec(gw, TL_SQL_VISIT_TYPES_JSON("$1"), 1, params, &res);
    if (!err && !tl_gw_visit_types_parse(tl_pg_get(res, 0, 0), out, n))
        err = TL_ERR_INTERNAL;
    tl_pg_res_free(res);
    if (!err && gw->vtcache)
        cache_put(gw->vtcache, study_id, epoch, out, *n);
    return err;
}
