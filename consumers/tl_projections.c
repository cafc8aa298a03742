/* The catalog of projections: one place that says what each one reads,
 * how it folds, and what a rebuild replaces. */
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

#include "access_store.h"
#include "audit.h"
#include "audit_store.h"
#include "forms_store.h"
#include "participants_store.h"
#include "schedules_store.h"
#include "tl_consumer.h"
#include "tl_topics.h"

static const char *const participants_topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
static const char *const participants_tables[] = {"studies", "sites", "participants",
                                                  "visit_types"};
/* 2: projection_offsets and projection_rejections; 3 and 5: the tables above */
static const int participants_migrations[] = {2, 3, 5};
/* schedule dates travel in the participant events: the protocol topic is
 * not needed (DESIGN.md §2) */
static const char *const schedules_topics[] = {TL_TOPIC_PARTICIPANT};
static const char *const schedules_tables[] = {"schedule_participants", "participant_visits"};
static const int schedules_migrations[] = {2, 6};

/* who may do what (docs/SECURITY.md); signing_credentials is not a
 * projection (migration 8) and a rebuild leaves it alone */
static const char *const access_topics[] = {TL_TOPIC_ACCESS};
static const char *const access_tables[] = {"principals", "access_tokens"};
static const int access_migrations[] = {2, 7};

/* case report forms: template versions come from the protocol topic, forms
 * from the participant stream; the fold of one never reads the other */
static const char *const forms_topics[] = {TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT};
static const char *const forms_tables[] = {"form_templates", "form_participants", "forms",
                                           "form_field_history"};
static const int forms_migrations[] = {2, 10, 11};

static const tl_projection_t projections[] = {
    {.name = TL_PROJECTION_PARTICIPANTS,
     .topics = participants_topics,
     .ntopics = N(participants_topics),
     .apply = tl_participants_store_apply,
     .tables = participants_tables,
     .ntables = N(participants_tables),
     .migrations = participants_migrations,
     .nmigrations = N(participants_migrations),
     .batch_default = 1000},
    {.name = TL_PROJECTION_SCHEDULES,
     .topics = schedules_topics,
     .ntopics = N(schedules_topics),
     .apply = tl_schedules_store_apply,
     .tables = schedules_tables,
     .ntables = N(schedules_tables),
     .migrations = schedules_migrations,
     .nmigrations = N(schedules_migrations),
     .batch_default = 1000},
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
     .topics = forms_topics,
     .ntopics = N(forms_topics),
     .apply = tl_forms_store_apply,
     .tables = forms_tables,
     .ntables = N(forms_tables),
     .migrations = forms_migrations,
     .nmigrations = N(forms_migrations),
     .batch_default = 1000},
    /* the archive takes every topic, dead letters included; it is the
     * source of rebuilds, so it has none itself. Its rows are wide and its
     * COPY has a fixed cost per transaction: larger batches keep it well
     * ahead of the log (bench/README.md) */
    {.name = TL_PROJECTION_AUDIT, .apply = tl_audit_store_apply, .raw = true,
     .batch_default = 5000},
};

const tl_projection_t *tl_projection_find(const char *name)
{
    for (size_t i = 0; name && i < N(projections); i++)
        if (!strcmp(projections[i].name, name))
            return &projections[i];
    return NULL;
}
