/* trialog-broker: the local Kafka-protocol broker for development and tests.
 *
 * librdkafka's mock cluster speaks the real Kafka wire protocol on loopback,
 * in memory. The library picks the port, so the bootstrap address is written
 * to a file (atomically) that scripts and tests read. Ends on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tl_config.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_topics.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int write_bootstrap(const char *path, const char *bootstraps)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", bootstraps) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    long partitions = 6;
    const char *file = "var/broker.bootstrap";
    const tl_config_var_t vars[] = {
        {"TRIALOG_BROKER_PARTITIONS", TL_CFG_INT, "6", 1, 64, false, "partitions per topic",
         &partitions},
        {"TRIALOG_BROKER_FILE", TL_CFG_STR, "var/broker.bootstrap", 0, 4000, false,
         "where the bootstrap address is written", &file},
    };
    tl_log_init("broker", TL_LOG_INFO);
    if (tl_config_load(vars, sizeof vars / sizeof vars[0], NULL, stderr))
        return 2;
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        tl_config_print(vars, sizeof vars / sizeof vars[0], stdout);
        return 0;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    tl_kafka_mock_t *mock = NULL;
    if (tl_kafka_mock_new((int)partitions, tl_topics_broker, tl_topics_broker_count, &mock)) {
        tl_log_error("broker_start_failed", NULL);
        return 1;
    }
    const char *bs = tl_kafka_mock_bootstraps(mock);
    if (write_bootstrap(file, bs)) {
        tl_log_error("bootstrap_file_failed", json_pack("{s:s}", "file", file));
        tl_kafka_mock_destroy(mock);
        return 1;
    }
    tl_log_info("broker_started", json_pack("{s:s, s:i, s:s}", "bootstrap", bs, "partitions",
                                            (int)partitions, "file", file));
    while (!stop_requested)
        pause();
    unlink(file);
    tl_kafka_mock_destroy(mock);
    tl_log_info("broker_stopped", NULL);
    return 0;
}
