/* Password checks of signatures: at most one at a time per principal and
 * cfg.signing_concurrency in all, so that a stream of wrong passwords (each
 * check is 600,000 PBKDF2 iterations) cannot keep every core busy, and a
 * principal's concurrent attempts cannot outrun the failure count that
 * locks its credential. A request that finds no room is answered 429 at
 * once; it never queues. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"

struct tl_sign_guard {
    pthread_mutex_t lock;
    size_t cap;
    char (*busy)[TL_UUID_STRLEN]; /* principals being checked; "" free */
};

tl_err_t tl_sign_guard_init(tl_gw_t *gw)
{
    struct tl_sign_guard *g = calloc(1, sizeof *g);
    size_t cap = gw->cfg.signing_concurrency > 0 ? (size_t)gw->cfg.signing_concurrency : 1;
    if (!g || !(g->busy = calloc(cap, sizeof *g->busy))) {
        free(g);
        return TL_ERR_NOMEM;
    }
    g->cap = cap;
    pthread_mutex_init(&g->lock, NULL);
    gw->sign_guard = g;
    return TL_OK;
}

void tl_sign_guard_cleanup(tl_gw_t *gw)
{
    if (!gw->sign_guard)
        return;
    pthread_mutex_destroy(&gw->sign_guard->lock);
    free(gw->sign_guard->busy);
    free(gw->sign_guard);
    gw->sign_guard = NULL;
}

bool tl_sign_guard_enter(tl_gw_t *gw, const char *principal_id, tl_resp_t *resp)
{
    struct tl_sign_guard *g = gw->sign_guard;
    if (!g)
        return true;
    size_t free_slot = g->cap;
    bool self = false;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->cap; i++) {
        if (!g->busy[i][0] && free_slot == g->cap)
            free_slot = i;
        else if (g->busy[i][0] && !strcasecmp(g->busy[i], principal_id))
            self = true;
    }
    bool ok = !self && free_slot < g->cap;
    if (ok)
        memcpy(g->busy[free_slot], principal_id, TL_UUID_STRLEN);
    pthread_mutex_unlock(&g->lock);
    if (!ok) {
        tl_problem_r(resp, TL_R(signing_busy),
                     self ? "another signature of this principal is being checked; retry shortly"
                          : "the server checks as many signatures as it may at once; retry shortly",
                     NULL);
        resp->retry_after = 1;
    }
    return ok;
}

void tl_sign_guard_leave(tl_gw_t *gw, const char *principal_id)
{
    struct tl_sign_guard *g = gw->sign_guard;
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->cap; i++)
        if (!strcasecmp(g->busy[i], principal_id)) {
            g->busy[i][0] = '\0';
            break;
        }
    pthread_mutex_unlock(&g->lock);
}
