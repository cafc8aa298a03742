/* trialog-projector: runs one projection's consumer.
 * Usage: trialog-projector [--print-config] participants|schedules|access|forms|research|release-export|ingest|audit */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit_checkpoint.h"
#include "ingest_consumer.h"
#include "tl_config.h"
#include "tl_consumer.h"
#include "tl_kafka.h"
#include "tl_log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    if (!stop_requested) /* a second signal does not put the deadline off */
        alarm(TL_KAFKA_SHUTDOWN_GRACE_S); /* SIGALRM ends a shutdown that hangs */
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    tl_consumer_cfg_t cfg = {0};
    bool debug = false;
    const char *sources = NULL, *kafka_config = NULL;
    static char topics[TL_INGEST_SOURCES_MAX][TL_INGEST_TOPIC_LEN];
    static const char *topic_list[TL_INGEST_SOURCES_MAX];
    const tl_config_var_t vars[] = {
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, NULL, 0, 1000, false, "Kafka bootstrap servers",
         &cfg.brokers},
        TL_KAFKA_CONFIG_VAR(&kafka_config),
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true,
         "libpq connection string", &cfg.pg_dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, TL_PG_SCHEMA_MAX, false, "database schema",
         &cfg.pg_schema},
        {"TRIALOG_BATCH_MAX", TL_CFG_INT, "0", 0, 20000, false,
         "messages per transaction (0: the projection's default)", &cfg.batch_max},
        {"TRIALOG_POLL_MS", TL_CFG_INT, "100", 1, 10000, false, "wait for a first message",
         &cfg.poll_ms},
        TL_REGISTRY_CONFIG_VARS(&cfg.registry),
        TL_RESEARCH_CONFIG_VARS(&cfg),
        TL_AUDIT_CONFIG_VARS(&cfg),
        {"TRIALOG_INGEST_SOURCES", TL_CFG_STR, "", 0, 1000, false,
         "ingest: the connectors' sources, comma-separated; each is read from "
         "trialog.ingest.<source>.v1",
         &sources},
        {"TRIALOG_PROJECTION_SYNC_COMMIT", TL_CFG_BOOL, "true", 0, 0, false,
         "false: the folds of the log alone (participants, schedules, forms) commit"
         " without waiting for the WAL flush (a crash loses batches they fold again)",
         &cfg.sync_commit},
        {"TRIALOG_DEBUG", TL_CFG_BOOL, "false", 0, 0, false, "debug logs", &debug},
    };
    const size_t nvars = sizeof vars / sizeof vars[0];
    bool print = argc > 1 && !strcmp(argv[1], "--print-config");
    const char *name = argc > 1 + print ? argv[1 + print] : NULL;
    const tl_projection_t *found = tl_projection_find(name);
    tl_projection_t proj = found ? *found : (tl_projection_t){0};
    if (!proj.name) {
        fprintf(stderr, "usage: trialog-projector [--print-config] participants|schedules|access|forms|research|release-export|ingest|audit\n");
        return 2;
    }
    if (tl_config_load(vars, nvars, NULL, stderr))
        return 2;
    if (print) {
        tl_config_print(vars, nvars, stdout);
        return 0;
    }
    if (!strcmp(proj.name, TL_PROJECTION_INGEST)) {
        int n = tl_ingest_topics(sources, topics, TL_INGEST_SOURCES_MAX);
        if (n <= 0) {
            fprintf(stderr, "TRIALOG_INGEST_SOURCES: 1 to %d source names (a-z 0-9 _ -),"
                            " comma-separated\n", TL_INGEST_SOURCES_MAX);
            return 2;
        }
        for (int i = 0; i < n; i++)
            topic_list[i] = topics[i];
        cfg.topics = topic_list;
        cfg.ntopics = (size_t)n;
    }
    if (!cfg.batch_max)
        cfg.batch_max = proj.batch_default;
    tl_log_init("projector", debug ? TL_LOG_DEBUG : TL_LOG_INFO);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (tl_kafka_client_init(proj.name, kafka_config, stderr))
        return 2;
    int rc = tl_consumer_run(&cfg, &proj, &stop_requested) ? 1 : 0;
    tl_kafka_client_cleanup();
    return rc;
}
