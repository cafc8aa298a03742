/* tl_consumer: the consumer runtime every projection runs in.
 *
 * One consumer group per projection ("trialog-<name>"). Each batch of up to
 * batch_max messages is decoded, folded by the projection, and written in ONE
 * PostgreSQL transaction together with the next offsets (DESIGN.md §2); at
 * every assignment the consumer seeks to the stored offsets. Kafka's
 * committed offsets are informational. After each commit a NOTIFY on
 * TL_NOTIFY_CHANNEL ("<schema> <projection> <topic>:<partition>:<next_offset>
 * ...", schema being the one the batch was written to) wakes the gateway's
 * read-your-writes waiters. */
#ifndef TL_CONSUMER_H
#define TL_CONSUMER_H

#include <signal.h>
#include <stdbool.h>

#include "tl_batch.h"
#include "tl_kafka.h"
#include "tl_err.h"
#include "tl_pg.h"
#include "tl_schemas.h"

#define TL_NOTIFY_CHANNEL "trialog_projected"

typedef struct tl_consumer_cfg tl_consumer_cfg_t;

typedef struct {
    const char *name; /* projection name, also in projection_offsets */
    const char *const *topics;
    size_t ntopics;
    /* Folds b->events and appends its writes to b (see tl_batch.h). */
    tl_err_t (*apply)(tl_pg_t *pg, tl_batch_t *b);
    bool raw; /* the archive itself: wants headers; never reads from the archive */
    long batch_default; /* messages per transaction unless TRIALOG_BATCH_MAX says */
    /* what a rebuild makes afresh and swaps in: its tables, and the
     * migrations that create them (see tl_migrations_replay) */
    const char *const *tables;
    size_t ntables;
    const int *migrations;
    size_t nmigrations;
    /* Indexes of those tables that only the read side uses (no fold's
     * load reads through them): a rebuild makes its shadow tables without
     * them and builds each once, sorted, when the shadow has caught up,
     * which costs far less than keeping it up to date row by row. */
    const char *const *read_indexes;
    size_t nread_indexes;
    /* A projection that needs more than the database (the research export
     * publishes): open makes its context, which apply finds in b->ctx, from
     * the settings and the registry (borrowed, outlives it); close frees it.
     * NULL for the others. */
    tl_err_t (*open)(const tl_consumer_cfg_t *cfg, tl_registry_t *registry, void **ctx);
    void (*close)(void *ctx);
    /* Runs after the batch's statements and before their COMMIT; an error
     * rolls the batch back and it runs again. The research export waits
     * here for the delivery of what apply produced, so that the broker and
     * PostgreSQL work on the batch at the same time. NULL for the others. */
    tl_err_t (*before_commit)(void *ctx);
    /* Runs after each turn of the consumer's loop: a batch committed
     * (committed true) or a poll that brought nothing. The archive signs
     * its chain heads here (audit_checkpoint.h). NULL for the others. */
    tl_err_t (*after_turn)(void *ctx, tl_pg_t *pg, bool committed); /* an error stops it */
    /* The topic whose events fold per key alone (a participant's events
     * read and write that participant's rows only): batches of nothing
     * else take the projection's lock shared and run side by side. A
     * batch with any other event takes it exclusive. NULL: every batch is
     * exclusive. */
    const char *per_key_topic;
    /* A fold whose state is nothing but the log folded (no effect outside
     * its own rows): a batch that a database crash loses, with its offsets,
     * is folded again from the log. Its transactions may then commit without
     * waiting for the WAL flush (tl_consumer_cfg_t.sync_commit false). Not
     * the archive (the log's second copy), nor what produces or writes an
     * intent before producing (research, ingest), nor access (a revocation
     * lost that way would let a revoked token in until it is folded again). */
    bool async_commit_safe;
} tl_projection_t;

/* The key of a projection's transaction-level advisory lock, as SQL over $1,
 * the projection's name: every batch takes it (see per_key_topic). Per
 * schema, so a rebuild's shadow does not wait for the live projection. */
#define TL_PROJECTION_LOCK_KEY "hashtext(current_schema() || ' projection ' || $1)"

/* A consumed message's headers as the archive keeps them: [{"name",
 * "value"}], the value as text when it is UTF-8 without NUL (readable in
 * audits), else as "value_b64"; a header without value has "value": null.
 * New reference; NULL when out of memory. */
json_t *tl_consumer_headers_json(const tl_kafka_msg_t *m);

/* The projections this build knows, by name ("participants", "audit"), or
 * NULL. A projection with ntopics 0 reads every topic of tl_topics_archive. */
const tl_projection_t *tl_projection_find(const char *name);

struct tl_consumer_cfg {
    const char *brokers;
    const char *pg_dsn;
    const char *pg_schema; /* a search path: "shadow,main" for a rebuild */
    long batch_max;
    long poll_ms;
    const char *group;     /* NULL: "trialog-<projection>" */
    /* members > 0: no group; this consumer reads the partitions p of each
     * topic with p % members == member (a rebuild's workers) */
    int member, members;
    bool no_migrate;       /* a rebuild's shadow tables are made by the rebuild */
    /* false: synchronous_commit off for a projection that is async_commit_safe
     * (TRIALOG_PROJECTION_SYNC_COMMIT, docs/BENCHMARKS.md) */
    bool sync_commit;
    tl_registry_cfg_t registry;
    /* the research export (docs/ANALYSTS.md) */
    const char *research_key_file;
    const char *research_dates; /* "study_days" or "shifted" */
    const char *release_dir;    /* dataset releases' files (release_export.h) */
    /* the archive's checkpoints (audit_checkpoint.h) */
    const char *audit_key_file;
    long audit_checkpoint_every, audit_checkpoint_seconds;
    /* topics that replace the projection's (the ingest consumer's, from
     * TRIALOG_INGEST_SOURCES); borrowed */
    const char *const *topics;
    size_t ntopics;
};

/* The research export's settings (entries of a tl_config_var_t table; cfgp
 * a tl_consumer_cfg_t *): the projector's, and the CLI's for a rebuild. */
#define TL_RESEARCH_CONFIG_VARS(cfgp)                                                            \
    {"TRIALOG_RESEARCH_KEY_FILE", TL_CFG_STR, "", 0, 4000, false,                                \
     "research: the pseudonym key's file (mode 0600, at least 32 bytes)",                        \
     &(cfgp)->research_key_file},                                                                \
    {"TRIALOG_RESEARCH_DATES", TL_CFG_STR, "study_days", 0, 16, false,                        \
     "research and releases: study_days, or shifted (also real dates moved per participant)",    \
     &(cfgp)->research_dates},                                                                   \
    {                                                                                            \
        "TRIALOG_RELEASE_DIR", TL_CFG_STR, "var/releases", 1, 3000, false,                       \
            "releases: the directory the release files are written to (the gateway serves "      \
            "them from it)",                                                                     \
            &(cfgp)->release_dir                                                                 \
    }

/* Runs until *stop becomes non-zero (returns TL_OK) or a fatal error. */
tl_err_t tl_consumer_run(const tl_consumer_cfg_t *cfg, const tl_projection_t *proj,
                         volatile sig_atomic_t *stop);

#endif
