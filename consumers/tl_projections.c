/* The catalog of projections: one place that says what each one reads,
 * how it folds, and what a rebuild replaces. */
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

#include "access_store.h"
#include "audit_checkpoint.h"
#include "audit.h"
#include "audit_store.h"
#include "forms_store.h"
#include "participants_store.h"
#include "ingest_consumer.h"
#include "release_export.h"
#include "releases_store.h"
#include "research_store.h"
#include "schedules_store.h"
#include "tl_consumer.h"
#include "tl_log.h"
#include "tl_secret.h"
#include "tl_topics.h"

static const char *const participants_topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
static const char *const participants_tables[] = {"studies", "sites", "participants",
                                                  "visit_types", "releases", "observations"};
/* 2: projection_offsets and projection_rejections; 3, 5, 14 and 19: the
 * tables above; 20: participants.end_date */
static const int participants_migrations[] = {2, 3, 5, 14, 19, 20};
/* the fold looks participants up by id and by (study, code), never by these */
static const char *const participants_read_indexes[] = {"participants_by_site",
                                                        "participants_by_status"};

/* the studies' dataset releases ride along (releases_store.h) */
static tl_err_t participants_apply(tl_pg_t *pg, tl_batch_t *b)
{
    tl_err_t err = tl_participants_store_apply(pg, b);
    return err ? err : tl_releases_store_apply(pg, b);
}
/* schedule dates travel in the participant events: the protocol topic is
 * not needed (DESIGN.md §2) */
static const char *const schedules_topics[] = {TL_TOPIC_PARTICIPANT};
static const char *const schedules_tables[] = {"schedule_participants", "participant_visits"};
static const int schedules_migrations[] = {2, 6, 22};
/* the fold loads by participant: the primary keys */
static const char *const schedules_read_indexes[] = {"schedule_participants_by_study",
                                                     "participant_visits_by_due",
                                                     "participant_visits_by_window"};

/* who may do what (docs/SECURITY.md); signing_credentials is not a
 * projection (migration 8) and a rebuild leaves it alone */
static const char *const access_topics[] = {TL_TOPIC_ACCESS};
static const char *const access_tables[] = {"principals", "access_tokens"};
static const int access_migrations[] = {2, 7, 17, 21};

/* case report forms: template versions come from the protocol topic, forms
 * from the participant stream; the fold of one never reads the other */
static const char *const forms_topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
static const char *const forms_tables[] = {"form_templates", "form_participants", "forms",
                                           "form_field_history"};
static const int forms_migrations[] = {2, 10, 11, 18};
/* forms_by_participant serves the fold's load; this one the study's lists */
static const char *const forms_read_indexes[] = {"forms_by_study"};

/* the research export: its own copy of what the participant stream and
 * the template versions say (migration 13), and a producer for the
 * research topics */
static const char *const research_topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
static const char *const research_tables[] = {"research_participants", "research_forms",
                                              "research_templates"};
static const int research_migrations[] = {2, 13};

static const char *const release_topics[] = {TL_TOPIC_PROTOCOL};

typedef struct {
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
    tl_research_store_t *store;
} research_ctx_t;

static void research_close(void *p)
{
    research_ctx_t *c = p;
    if (!c)
        return;
    tl_research_store_destroy(c->store);
    tl_producer_destroy(c->producer);
    tl_kafka_producer_destroy(c->kafka);
    free(c);
}

static tl_err_t research_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry,
                              void **out)
{
    tl_research_cfg_t rc = {0};
    research_ctx_t *c = calloc(1, sizeof *c);
    tl_err_t err = c ? TL_OK : TL_ERR_NOMEM;
    if (!err)
        err = tl_research_cfg_load(cfg->research_key_file, cfg->research_dates, &rc);
    if (!err)
        err = tl_kafka_producer_new(cfg->brokers, TL_RESEARCH_FLUSH_MS, &c->kafka);
    if (!err)
        err = tl_producer_new(c->kafka, registry, &c->producer);
    if (!err)
        err = tl_research_store_new(&rc, c->producer, &c->store);
    tl_secret_wipe(&rc, sizeof rc);
    if (err) {
        research_close(c);
        c = NULL;
    }
    *out = c;
    return err;
}

static tl_err_t research_apply(tl_pg_t *pg, tl_batch_t *b)
{
    research_ctx_t *c = b->ctx;
    return tl_research_store_apply(c->store, pg, b);
}

static tl_err_t research_before_commit(void *p)
{
    research_ctx_t *c = p;
    return tl_research_store_flush(c->store);
}

static const tl_projection_t projections[] = {
    {.name = TL_PROJECTION_PARTICIPANTS,
     .async_commit_safe = true,
     .topics = participants_topics,
     .ntopics = N(participants_topics),
     .apply = participants_apply,
     .tables = participants_tables,
     .ntables = N(participants_tables),
     .migrations = participants_migrations,
     .nmigrations = N(participants_migrations),
     .read_indexes = participants_read_indexes,
     .nread_indexes = N(participants_read_indexes),
     .batch_default = 1000,
     .per_key_topic = TL_TOPIC_PARTICIPANT},
    {.name = TL_PROJECTION_SCHEDULES,
     .async_commit_safe = true,
     .topics = schedules_topics,
     .ntopics = N(schedules_topics),
     .apply = tl_schedules_store_apply,
     .tables = schedules_tables,
     .ntables = N(schedules_tables),
     .migrations = schedules_migrations,
     .nmigrations = N(schedules_migrations),
     .read_indexes = schedules_read_indexes,
     .nread_indexes = N(schedules_read_indexes),
     .batch_default = 1000,
     .per_key_topic = TL_TOPIC_PARTICIPANT},
    {.name = TL_PROJECTION_ACCESS,
     .topics = access_topics,
     .ntopics = N(access_topics),
     .apply = tl_access_store_apply,
     .tables = access_tables,
     .ntables = N(access_tables),
     .migrations = access_migrations,
     .nmigrations = N(access_migrations),
     .batch_default = 1000},
    {.name = TL_PROJECTION_FORMS,
     .async_commit_safe = true,
     .topics = forms_topics,
     .ntopics = N(forms_topics),
     .apply = tl_forms_store_apply,
     .tables = forms_tables,
     .ntables = N(forms_tables),
     .migrations = forms_migrations,
     .nmigrations = N(forms_migrations),
     .read_indexes = forms_read_indexes,
     .nread_indexes = N(forms_read_indexes),
     .batch_default = 1000,
     .per_key_topic = TL_TOPIC_PARTICIPANT},
    {.name = TL_PROJECTION_RESEARCH,
     .topics = research_topics,
     .ntopics = N(research_topics),
     .apply = research_apply,
     .before_commit = research_before_commit,
     .tables = research_tables,
     .ntables = N(research_tables),
     .migrations = research_migrations,
     .nmigrations = N(research_migrations),
     .open = research_open,
     .close = research_close,
     .batch_default = 1000,
     .per_key_topic = TL_TOPIC_PARTICIPANT},
    /* the dataset release worker: reads the release requests of the
     * protocol topic and cuts the files from the archive; no tables */
    {.name = TL_PROJECTION_RELEASE_EXPORT,
     .topics = release_topics,
     .ntopics = N(release_topics),
     .apply = tl_release_export_apply,
     .open = tl_release_export_open,
     .close = tl_release_export_close,
     .batch_default = 100},
    /* connectors' records into the participant stream (its topics come
     * from TRIALOG_INGEST_SOURCES); ingest_events remembers its choices */
    {.name = TL_PROJECTION_INGEST,
     .apply = tl_ingest_apply,
     .open = tl_ingest_open,
     .close = tl_ingest_close,
     .batch_default = 500},
    /* the archive takes every topic, dead letters included; it is the
     * source of rebuilds, so it has none itself. It signs its chain heads
     * (audit_checkpoint.h). Its rows are wide and its
     * COPY has a fixed cost per transaction: larger batches keep it well
     * ahead of the log (bench/README.md) */
    {.name = TL_PROJECTION_AUDIT, .apply = tl_audit_store_apply, .raw = true,
     .open = tl_audit_checkpoint_open,
     .close = tl_audit_checkpoint_close,
     .after_turn = tl_audit_checkpoint_turn,
     .batch_default = 5000},
};

const tl_projection_t *tl_projection_find(const char *name)
{
    for (size_t i = 0; name && i < N(projections); i++)
        if (!strcmp(projections[i].name, name))
            return &projections[i];
    return NULL;
}
