/* trialog-gateway: HTTP commands in, Avro events out. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "http.h"
#include "tl_config.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_migrations.h"

static void gateway_handler(void *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_gw_dispatch(gw, req, resp);
}

/* What tl_config cannot check by itself: the HTTP edge's address and
 * origins (each unset when tl_config refused it already). Every error is
 * reported, beside tl_config_load's. */
static bool edge_config_ok(tl_gw_t *gw, FILE *err)
{
    struct sockaddr_storage addr;
    socklen_t len;
    char why[200];
    bool ok = !gw->cfg.http_bind || tl_edge_bind_parse(gw->cfg.http_bind, 0, &addr, &len);
    if (!ok)
        fprintf(err,
                "config: TRIALOG_HTTP_BIND must be an IPv4 or IPv6 address, not a host name\n");
    if (gw->cfg.cors_origins && !tl_cors_parse(gw->cfg.cors_origins, &gw->cors, why, sizeof why)) {
        fprintf(err, "config: TRIALOG_HTTP_CORS_ORIGINS: %s\n", why);
        ok = false;
    }
    return ok;
}

int main(int argc, char **argv)
{
    static tl_gw_t gw;
    tl_gw_config_t *c = &gw.cfg;
    const char *kafka_config = NULL;
    const tl_config_var_t vars[] = {
        {"TRIALOG_HTTP_PORT", TL_CFG_INT, "8080", 1, 65535, false, "listening port", &c->port},
        {"TRIALOG_HTTP_BIND", TL_CFG_STR, "0.0.0.0", 1, 64, false,
         "address to listen on: an IPv4 or IPv6 literal", &c->http_bind},
        {"TRIALOG_HTTP_MAX_CONNECTIONS", TL_CFG_INT, "1024", 1, 10000, false,
         "concurrent HTTP connections (a thread each)", &c->max_connections},
        {"TRIALOG_HTTP_MAX_CONNECTIONS_PER_IP", TL_CFG_INT, "64", 0, 10000, false,
         "concurrent HTTP connections from one client address (0: no cap)",
         &c->max_connections_per_ip},
        {"TRIALOG_HTTP_TIMEOUT_S", TL_CFG_INT, "30", 1, 3600, false,
         "idle connections close; a request body must arrive within it", &c->http_timeout_s},
        {"TRIALOG_HTTP_HEADER_TIMEOUT_S", TL_CFG_INT, "10", 1, 300, false,
         "a request's headers must arrive whole within it", &c->header_timeout_s},
        {"TRIALOG_HTTP_CORS_ORIGINS", TL_CFG_STR, "", 0, 4096, false,
         "browser origins that may call, comma-separated (scheme://host[:port]; none: no CORS)",
         &c->cors_origins},
        {"TRIALOG_PG_POOL", TL_CFG_INT, "8", 1, 256, false,
         "database connections shared by the request threads", &c->pg_pool},
        {"TRIALOG_RYW_TIMEOUT_MS", TL_CFG_INT, "5000", 0, 60000, false,
         "read-your-writes wait before answering 202", &c->ryw_timeout_ms},
        {"TRIALOG_PRODUCE_TIMEOUT_MS", TL_CFG_INT, "5000", 100, 300000, false,
         "how long a produce may take before 503", &c->produce_timeout_ms},
        {"TRIALOG_ARCHIVE_MAX_LAG", TL_CFG_INT, "0", 0, 1000000000, false,
         "messages a partition may be ahead of the archive before commands get 503, besides"
         " what the topics' retention allows (0: no cap of its own)",
         &c->archive_max_lag},
        {"TRIALOG_IDEMPOTENCY_KEY_HOURS", TL_CFG_INT, "168", 1, 8760, false,
         "how long an Idempotency-Key stays bound to its first request (at least)",
         &c->idempotency_hours},
        {"TRIALOG_SIGNING_MAX_FAILURES", TL_CFG_INT, "5", 1, 100, false,
         "consecutive wrong signing passwords that lock a signing credential",
         &c->signing_max_failures},
        {"TRIALOG_SIGNING_CREDENTIAL_DAYS", TL_CFG_INT, "365", 1, 3650, false,
         "how long a signing credential signs before it must be replaced",
         &c->signing_credential_days},
        {"TRIALOG_SIGNING_CODE_HOURS", TL_CFG_INT, "72", 1, 720, false,
         "how long an approved enrolment's one-time code may set a signing credential",
         &c->signing_code_hours},
        {"TRIALOG_SIGNING_CONCURRENCY", TL_CFG_INT, "2", 1, 64, false,
         "signing password checks at once (each is 600,000 PBKDF2 iterations)",
         &c->signing_concurrency},
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, NULL, 0, 1000, false, "Kafka bootstrap servers",
         &c->brokers},
        TL_KAFKA_CONFIG_VAR(&kafka_config),
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true, "libpq connection string",
         &c->pg_dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, TL_PG_SCHEMA_MAX, false, "database schema",
         &c->pg_schema},
        TL_REGISTRY_CONFIG_VARS(&c->registry),
        {"TRIALOG_RELEASE_DIR", TL_CFG_STR, "var/releases", 1, 3000, false,
         "the dataset releases' files, as the release export writes them", &c->release_dir},
        {"TRIALOG_DEBUG", TL_CFG_BOOL, "false", 0, 0, false, "debug logs", &c->debug},
    };
    const size_t nvars = sizeof vars / sizeof vars[0];
    tl_err_t err = tl_config_load(vars, nvars, NULL, stderr);
    bool edge_ok = edge_config_ok(&gw, stderr);
    if (err || !edge_ok)
        return 2;
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        tl_config_print(vars, nvars, stdout);
        return 0;
    }
    tl_log_init("gateway", c->debug ? TL_LOG_DEBUG : TL_LOG_INFO);
    if (tl_kafka_client_init("gateway", kafka_config, stderr))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits this */

    tl_pg_t *pg = NULL;
    tl_http_t *http = NULL;
    for (int attempt = 0; attempt < 60; attempt++) {
        if (!(err = tl_pg_connect(c->pg_dsn, c->pg_schema, "gateway", &pg)))
            break;
        sleep(1);
    }
    if (!err)
        err = tl_gw_init(&gw);
    if (!err)
        err = tl_migrate(pg);
    if (!err)
        err = tl_registry_open_with(pg, &c->registry, &gw.registry);
    tl_pg_destroy(pg);
    if (!err)
        err = tl_kafka_producer_new(c->brokers, (int)c->produce_timeout_ms, &gw.kafka);
    if (!err)
        err = tl_producer_new(gw.kafka, gw.registry, &gw.producer);
    if (!err)
        err = tl_waiter_new(c->pg_dsn, c->pg_schema, &gw.waiter);
    if (!err)
        err = tl_bp_new(gw.kafka, c->brokers, c->pg_dsn, c->pg_schema, c->archive_max_lag,
                        &gw.bp);
    if (!err)
        err = tl_http_start(&(tl_http_opts_t){.bind = c->http_bind,
                                              .port = (int)c->port,
                                              .max_connections = (int)c->max_connections,
                                              .max_per_ip = (int)c->max_connections_per_ip,
                                              .timeout_s = (int)c->http_timeout_s,
                                              .header_timeout_s = (int)c->header_timeout_s,
                                              .stats = &gw.http},
                            gateway_handler, &gw, &http);
    if (!err) {
        tl_log_info("gateway_started",
                    json_pack("{s:s, s:i, s:i, s:i}", "bind", c->http_bind, "port", (int)c->port,
                              "max_connections", (int)c->max_connections, "cors_origins",
                              (int)gw.cors.n));
        int sig = 0;
        sigwait(&sigs, &sig);
        tl_log_info("gateway_stopping", json_pack("{s:i}", "signal", sig));
        alarm(TL_KAFKA_SHUTDOWN_GRACE_S); /* SIGALRM ends a shutdown that hangs */
    } else {
        tl_log_error("gateway_start_failed", json_pack("{s:s}", "error", tl_err_name(err)));
    }
    tl_http_stop(http);
    tl_bp_destroy(gw.bp);
    tl_waiter_destroy(gw.waiter);
    tl_producer_destroy(gw.producer);
    tl_kafka_producer_destroy(gw.kafka);
    tl_registry_destroy(gw.registry);
    tl_gw_cleanup(&gw);
    tl_kafka_client_cleanup();
    return err ? 1 : 0;
}
