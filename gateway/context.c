/* Process-wide gateway state: per-thread connections and command locks. */
#include "gateway.h"

static void pg_thread_end(void *pg)
{
    tl_pg_destroy(pg);
}

void tl_gw_init(tl_gw_t *gw)
{
    pthread_key_create(&gw->pg_key, pg_thread_end);
    for (int i = 0; i < TL_LOCK_STRIPES; i++)
        pthread_mutex_init(&gw->stripes[i], NULL);
}

tl_pg_t *tl_gw_pg(tl_gw_t *gw)
{
    tl_pg_t *pg = pthread_getspecific(gw->pg_key);
    if (pg && tl_pg_broken(pg)) {
        tl_pg_destroy(pg);
        pg = NULL;
        pthread_setspecific(gw->pg_key, NULL);
    }
    if (!pg && tl_pg_connect(gw->cfg.pg_dsn, gw->cfg.pg_schema, "gateway", &pg) == TL_OK)
        pthread_setspecific(gw->pg_key, pg);
    return pg;
}

pthread_mutex_t *tl_gw_stripe(tl_gw_t *gw, const char *key)
{
    unsigned h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &gw->stripes[h % TL_LOCK_STRIPES];
}

