/* trialog-bench-http: the HTTP ceilings the gateway is measured against,
 * served by the gateway's own HTTP module (same thread model, limits and
 * response path), so the difference to the gateway is the gateway's work.
 *
 *   trialog-bench-http trivial   every request: 200 with a small JSON body
 *   trialog-bench-http produce   every request: its body produced to Kafka
 *                                (idempotent, acks=all) on the stack's
 *                                broker (TRIALOG_KAFKA_BROKERS; a scratch
 *                                topic, made if missing) and, after the
 *                                delivery report, 202 with the partition and
 *                                offset
 *
 * Port: TRIALOG_HTTP_PORT (default 18090). Runs until SIGTERM or SIGINT.
 * Drive it with trialog-loadgen --mix ceiling. Not a test: judges nothing. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "tl_kafka.h"
#include "tl_log.h"

#define TOPIC "bench.ceiling.v1"
#define PARTITIONS 6

static tl_kafka_producer_t *producer;
static atomic_long seq;

static void trivial(void *ctx, tl_req_t *req, tl_resp_t *resp)
{
    (void)ctx;
    (void)req;
    resp->status = 200;
    resp->body = json_pack("{s:s}", "status", "ok");
}

static void produce(void *ctx, tl_req_t *req, tl_resp_t *resp)
{
    (void)ctx;
    char key[24];
    int klen = snprintf(key, sizeof key, "%ld", atomic_fetch_add(&seq, 1));
    tl_kafka_pos_t pos = {0};
    tl_err_t err = tl_kafka_produce_sync(producer, TOPIC, key, (size_t)klen, req->body,
                                         req->body_len, NULL, 0, &pos);
    resp->status = err ? 503 : 202;
    resp->body =
        json_pack("{s:i, s:I}", "partition", pos.partition, "offset", (json_int_t)pos.offset);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    tl_http_handler_fn handler = !strcmp(mode, "trivial")   ? trivial
                                 : !strcmp(mode, "produce") ? produce
                                                            : NULL;
    if (!handler) {
        fprintf(stderr, "usage: trialog-bench-http trivial|produce\n");
        return 2;
    }
    const char *port_s = getenv("TRIALOG_HTTP_PORT");
    char *end = NULL;
    long port = port_s ? strtol(port_s, &end, 10) : 18090;
    if (port < 1 || port > 65535 || (port_s && *end)) {
        fprintf(stderr, "bench-http: TRIALOG_HTTP_PORT must be a port number\n");
        return 2;
    }
    tl_log_init("bench-http", TL_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    tl_http_t *http = NULL;
    const tl_kafka_topic_spec_t topic = {TOPIC, PARTITIONS, 1, NULL, 0};
    const char *brokers = getenv("TRIALOG_KAFKA_BROKERS");
    tl_err_t err = TL_OK;
    if (handler == produce) {
        err = brokers ? tl_kafka_topics_ensure(brokers, &topic, 1, 30000, stderr) : TL_ERR_CONFIG;
        if (!err)
            err = tl_kafka_producer_new(brokers, 5000, &producer);
    }
    if (!err)
        err = tl_http_start(&(tl_http_opts_t){.port = (int)port, .max_connections = 1024}, handler,
                            NULL, &http);
    if (!err) {
        printf("bench-http %s on port %ld\n", mode, port);
        fflush(stdout);
        int sig = 0;
        sigwait(&sigs, &sig);
    } else {
        fprintf(stderr, "bench-http: could not start: %s\n", tl_err_name(err));
    }
    tl_http_stop(http);
    tl_kafka_producer_destroy(producer);
    return err ? 1 : 0;
}
