#include "tl_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tl_log.h"

/* librdkafka's own log lines go through our logger; they carry no payloads. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    tl_log(level <= 3 ? TL_LOG_ERROR : level <= 4 ? TL_LOG_WARN : TL_LOG_DEBUG, "kafka_log",
           json_pack("{s:s, s:s}", "facility", fac, "message", buf));
}

/* Set once any client of the process was refused by the cluster: wrong
 * SASL credentials, or a TLS handshake that failed (unknown CA, wrong
 * host name). A client being created then fails its start (TL_ERR_CONFIG)
 * instead of retrying for ever. */
static atomic_bool auth_failed;

static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) {
        /* librdkafka's reason names the mechanism or the certificate
         * problem, never a password */
        if (!atomic_exchange(&auth_failed, true))
            tl_log_error("kafka_authentication_failed",
                         json_pack("{s:s, s:s, s:s}", "code", rd_kafka_err2name(err), "reason",
                                   reason, "hint",
                                   "the cluster refused this client: check the credentials and"
                                   " TLS settings of TRIALOG_KAFKA_CONFIG_FILE"));
        return;
    }
    tl_log_warn("kafka_error", json_pack("{s:s, s:s}", "code", rd_kafka_err2name(err), "reason",
                                         reason));
}

bool tl_kafka_auth_failed(void)
{
    return atomic_load(&auth_failed);
}

/* Serves a client's callbacks (the error callback above among them): they
 * run only inside a poll, and a client that has not polled yet would not
 * know it was refused. A consumer's are served by its consumer poll (no
 * message can come before it subscribes or assigns). */
static void serve_callbacks(rd_kafka_t *rk, bool consumer)
{
    if (!consumer) {
        rd_kafka_poll(rk, 0);
        return;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 0);
    if (m)
        rd_kafka_message_destroy(m);
}

/* A new client's first request: TL_ERR_CONFIG when the cluster refused it
 * (credentials, TLS); an absent broker is not an error here (it may come). */
static tl_err_t first_contact(rd_kafka_t *rk, bool consumer, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (e)
        serve_callbacks(rk, consumer);
    return e && atomic_load(&auth_failed) ? TL_ERR_CONFIG : TL_OK;
}

static tl_err_t kafka_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return TL_OK;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:    /* a producer replaced after a fatal error */
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        return TL_ERR_UNAVAILABLE;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return TL_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        return TL_ERR_LOG_GAP;
    default:
        return TL_ERR_KAFKA;
    }
}

/* A request to the broker that failed (metadata, watermarks): anything
 * kafka_err has no better name for means the broker is not answering. */
static tl_err_t request_err(rd_kafka_resp_err_t e)
{
    tl_err_t err = kafka_err(e);
    return err == TL_ERR_KAFKA ? TL_ERR_UNAVAILABLE : err;
}

/* ---- client settings ---- */

/* What tl_kafka_client_init read: the process's client.id and the site's
 * settings (TRIALOG_KAFKA_CONFIG_FILE), applied to every client after the
 * built-in defaults. Set once at start, before any client exists. */
static struct {
    char client_id[128];
    char *keys[TL_KAFKA_CONFIG_MAX], *values[TL_KAFKA_CONFIG_MAX];
    size_t n;
} site = {.client_id = "trialog"};

/* Settings Trialog's guarantees rest on (idempotent acks=all produce, the
 * Java-compatible partitioner, offsets only in PostgreSQL, nothing skipped,
 * no topic made by accident) or that each program sets itself. */
static const char *const protected_keys[] = {
    "enable.idempotence", "acks", "request.required.acks", "enable.auto.commit",
    "auto.offset.reset", "isolation.level", "partitioner", "allow.auto.create.topics",
    "enable.auto.offset.store", "group.id", "bootstrap.servers", "metadata.broker.list",
    "client.id", "enable.gapless.guarantee", "message.timeout.ms", "delivery.timeout.ms"};

bool tl_kafka_config_key_protected(const char *key)
{
    for (size_t i = 0; i < sizeof protected_keys / sizeof protected_keys[0]; i++)
        if (!strcmp(key, protected_keys[i]))
            return true;
    return false;
}

static void site_clear(void)
{
    for (size_t i = 0; i < site.n; i++) {
        free(site.keys[i]);
        if (site.values[i])
            memset(site.values[i], 0, strlen(site.values[i])); /* may be a password */
        free(site.values[i]);
    }
    site.n = 0;
}

/* One "key=value" line of the file (trimmed, not a comment): checked against
 * librdkafka's own table with a throw-away conf, so a misspelt key fails at
 * start. Values are never printed: they can be passwords. */
static tl_err_t site_line(rd_kafka_conf_t *probe, const char *path, int lineno, char *line,
                          FILE *err)
{
    char *eq = strchr(line, '='), errstr[512];
    if (!eq) {
        fprintf(err, "%s:%d: expected key=value\n", path, lineno);
        return TL_ERR_CONFIG;
    }
    char *k = line, *v = eq + 1, *e = eq;
    while (e > k && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *e = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*k) {
        fprintf(err, "%s:%d: empty key\n", path, lineno);
        return TL_ERR_CONFIG;
    }
    if (tl_kafka_config_key_protected(k)) {
        fprintf(err, "%s:%d: %s cannot be set here: Trialog's guarantees depend on it\n", path,
                lineno, k);
        return TL_ERR_CONFIG;
    }
    if (site.n == TL_KAFKA_CONFIG_MAX) {
        fprintf(err, "%s: more than %d settings\n", path, TL_KAFKA_CONFIG_MAX);
        return TL_ERR_CONFIG;
    }
    rd_kafka_conf_res_t r = rd_kafka_conf_set(probe, k, v, errstr, sizeof errstr);
    if (r != RD_KAFKA_CONF_OK) {
        fprintf(err, "%s:%d: %s: %s\n", path, lineno, k,
                r == RD_KAFKA_CONF_UNKNOWN ? "no such librdkafka setting" : "invalid value");
        return TL_ERR_CONFIG;
    }
    site.keys[site.n] = strdup(k);
    site.values[site.n] = strdup(v);
    if (!site.keys[site.n] || !site.values[site.n]) {
        free(site.keys[site.n]);
        free(site.values[site.n]);
        return TL_ERR_NOMEM;
    }
    site.n++;
    return TL_OK;
}

static tl_err_t site_load(const char *path, FILE *err)
{
    struct stat st;
    char line[TL_KAFKA_CONFIG_LINE_MAX + 2];
    tl_err_t rc = TL_OK;
    FILE *f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st)) {
        fprintf(err, "%s: cannot be read\n", path);
        if (f)
            fclose(f);
        return TL_ERR_CONFIG;
    }
    if (st.st_mode & 077) {
        fprintf(err, "%s: mode %03o lets others read it (it can hold passwords): chmod 600\n",
                path, (unsigned)(st.st_mode & 0777));
        fclose(f);
        return TL_ERR_CONFIG;
    }
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    for (int lineno = 1; fgets(line, sizeof line, f); lineno++) {
        size_t len = strlen(line);
        if (len > TL_KAFKA_CONFIG_LINE_MAX) {
            fprintf(err, "%s:%d: line longer than %d bytes\n", path, lineno,
                    TL_KAFKA_CONFIG_LINE_MAX);
            rc = TL_ERR_CONFIG;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            line[--len] = '\0';
        char *l = line;
        while (*l == ' ' || *l == '\t')
            l++;
        if (!*l || *l == '#')
            continue;
        tl_err_t e = site_line(probe, path, lineno, l, err);
        if (e)
            rc = e; /* every bad line is reported, not only the first */
    }
    memset(line, 0, sizeof line);
    rd_kafka_conf_destroy(probe);
    fclose(f);
    return rc;
}

tl_err_t tl_kafka_client_init(const char *program, const char *config_file, FILE *err)
{
    char host[64] = "";
    site_clear();
    if (gethostname(host, sizeof host - 1))
        snprintf(host, sizeof host, "localhost");
    /* client.id: what broker logs and quotas see; one per process */
    snprintf(site.client_id, sizeof site.client_id, "trialog-%s-%s-%ld", program, host,
             (long)getpid());
    for (char *c = site.client_id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_'))
            *c = '_';
    tl_err_t rc = config_file && *config_file ? site_load(config_file, err) : TL_OK;
    if (rc)
        site_clear();
    return rc;
}

void tl_kafka_client_cleanup(void)
{
    site_clear();
}

/* A partition's log start and end. Retried until timeout_ms while the
 * cluster says "not yet": a partition just created, or whose leader just
 * moved, answers "offset not available" or "not leader" until its new
 * leader has its high watermark (a broker restart, a failover, a topic that
 * `topics ensure` has just made). */
static rd_kafka_resp_err_t query_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                                            int64_t *lo, int64_t *hi, int timeout_ms)
{
    for (int64_t end = tl_log_mono_ms() + timeout_ms;;) {
        int64_t left = end - tl_log_mono_ms();
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi,
                                                                 left > 100 ? (int)left : 100);
        bool later = e == RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE ||
                     e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                     e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                     e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                     e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                     e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!later || tl_log_mono_ms() + 100 >= end)
            return e;
        usleep(100 * 1000);
    }
}

static rd_kafka_conf_t *conf_new(const char *const *kv, size_t n)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            tl_log_error("kafka_conf_invalid", json_pack("{s:s, s:s}", "key", kv[i], "why", errstr));
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    /* checked by tl_kafka_client_init; the value is never logged */
    for (size_t i = 0; i < site.n; i++) {
        if (rd_kafka_conf_set(conf, site.keys[i], site.values[i], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            tl_log_error("kafka_conf_invalid", json_pack("{s:s}", "key", site.keys[i]));
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (rd_kafka_conf_set(conf, "client.id", site.client_id, errstr, sizeof errstr)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_conf_set_error_cb(conf, kafka_error);
    return conf;
}

/* ---- producer ---- */

struct tl_kafka_producer {
    /* replaced (under the write lock) after a fatal error; every use of it
     * holds the read lock */
    rd_kafka_t *rk;
    pthread_rwlock_t lock;
    char *brokers;
    int timeout_ms;
    pthread_t poller;
    atomic_bool stop;
    atomic_long async_failed; /* delivery failures of fire-and-forget produces */
};

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    rd_kafka_resp_err_t err;
    tl_kafka_pos_t pos;
} delivery_t;

/* A message's opaque says who waits for its report: NULL, nobody (only a
 * failure is counted, for the flush); a delivery_t, a thread waiting in
 * tl_kafka_produce_sync; a tl_kafka_receipt_t, tagged in its low bit. */
#define RECEIPT_TAG ((uintptr_t)1)

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    delivery_t *d = m->_private;
    if (!d || ((uintptr_t)d & RECEIPT_TAG)) { /* an asynchronous produce */
        if (m->err)
            atomic_fetch_add(&((tl_kafka_producer_t *)opaque)->async_failed, 1);
        if (d) {
            tl_kafka_receipt_t *r = (tl_kafka_receipt_t *)((uintptr_t)d & ~RECEIPT_TAG);
            r->pos.partition = m->partition;
            r->pos.offset = m->offset;
            r->err = kafka_err(m->err);
        }
        return;
    }
    pthread_mutex_lock(&d->lock);
    d->err = m->err;
    d->pos.partition = m->partition;
    d->pos.offset = m->offset;
    d->done = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void *producer_poll_loop(void *arg)
{
    tl_kafka_producer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        pthread_rwlock_rdlock(&p->lock);
        rd_kafka_poll(p->rk, 50);
        pthread_rwlock_unlock(&p->lock);
    }
    return NULL;
}

/* A librdkafka producer with Trialog's settings for p; NULL on failure. */
static rd_kafka_t *producer_handle(tl_kafka_producer_t *p)
{
    char tmo[24], errstr[256];
    snprintf(tmo, sizeof tmo, "%d", p->timeout_ms);
    const char *kv[] = {"bootstrap.servers", p->brokers, "enable.idempotence", "true",
                        "acks",              "all",     "partitioner",        "murmur2_random",
                        "message.timeout.ms", tmo,      "linger.ms",          "1",
                        "socket.timeout.ms", tmo,       "allow.auto.create.topics", "false"};
    rd_kafka_conf_t *conf = conf_new(kv, sizeof kv / sizeof kv[0]);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        tl_log_error("kafka_producer_failed", json_pack("{s:s}", "why", errstr));
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* The idempotent producer hit a fatal error (librdkafka's word: it can
 * produce nothing more, e.g. a sequence the broker refused): a new one
 * takes its place, unless another thread replaced it already. What was in
 * flight on the old one fails (purged): its callers answer 503, and a
 * client retries with its Idempotency-Key. */
static void producer_replace(tl_kafka_producer_t *p, rd_kafka_t *failed)
{
    char why[256] = "";
    pthread_rwlock_wrlock(&p->lock);
    if (p->rk == failed) {
        rd_kafka_t *rk = producer_handle(p);
        if (rk) {
            rd_kafka_fatal_error(failed, why, sizeof why);
            rd_kafka_purge(failed, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            /* every purged message's report, so that no thread waits for one that
             * would never come (a flush serves them; they come at once, purged) */
            rd_kafka_flush(failed, 5000);
            rd_kafka_destroy(failed);
            p->rk = rk;
            tl_log_error("kafka_producer_replaced", json_pack("{s:s}", "fatal_error", why));
        }
    }
    pthread_rwlock_unlock(&p->lock);
}

/* True when rk has hit a fatal error (e is what a call on it returned). */
static bool is_fatal(rd_kafka_t *rk, rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FATAL || rd_kafka_fatal_error(rk, NULL, 0);
}

tl_err_t tl_kafka_producer_new(const char *brokers, int timeout_ms, tl_kafka_producer_t **out)
{
    *out = NULL;
    tl_kafka_producer_t *p = calloc(1, sizeof *p);
    if (!p || !(p->brokers = strdup(brokers))) {
        free(p);
        return TL_ERR_NOMEM;
    }
    p->timeout_ms = timeout_ms;
    /* a replacement must not wait for ever behind a stream of produces
     * (glibc prefers readers by default); nobody takes the lock twice */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    p->rk = producer_handle(p);
    if (!p->rk) {
        pthread_rwlock_destroy(&p->lock);
        free(p->brokers);
        free(p);
        return TL_ERR_KAFKA;
    }
    if (pthread_create(&p->poller, NULL, producer_poll_loop, p)) {
        rd_kafka_destroy(p->rk);
        pthread_rwlock_destroy(&p->lock);
        free(p->brokers);
        free(p);
        return TL_ERR_INTERNAL;
    }
    /* Connect now. librdkafka connects to a broker only when it needs one,
     * and an idempotent producer that is not asked for anything at once
     * gets its producer id only on a timer: the first produce of a producer
     * left idle for even 50 ms after creation waited ~1 s (the research
     * export's first batch, every rebuild worker's). A metadata request
     * brings the connection and the producer id up at once. An absent
     * broker is not this function's failure (it shows on the first
     * produce); a cluster that refuses this client is. */
    if (first_contact(p->rk, false, timeout_ms < 5000 ? timeout_ms : 5000)) {
        tl_kafka_producer_destroy(p);
        return TL_ERR_CONFIG;
    }
    *out = p;
    return TL_OK;
}

void tl_kafka_producer_destroy(tl_kafka_producer_t *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, 5000);
    atomic_store(&p->stop, true);
    pthread_join(p->poller, NULL);
    rd_kafka_destroy(p->rk);
    pthread_rwlock_destroy(&p->lock);
    free(p->brokers);
    free(p);
}

void tl_kafka_producer_test_fatal(tl_kafka_producer_t *p)
{
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_test_fatal_error(p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "a fatal error raised by a test");
    pthread_rwlock_unlock(&p->lock);
}

/* One message to the current producer. A producer that has hit a fatal
 * error takes nothing: it is replaced and the message goes to the new one
 * (it was never sent). *used is the handle the message went to. */
static rd_kafka_resp_err_t produce(tl_kafka_producer_t *p, const char *topic, int32_t partition,
                                   const void *key, size_t key_len, const void *value, size_t len,
                                   const tl_kafka_header_t *headers, size_t nheaders,
                                   int64_t timestamp_ms, void *d, rd_kafka_t **used)
{
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 2; attempt++) {
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
        for (size_t i = 0; i < nheaders; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                (ssize_t)headers[i].len);
        pthread_rwlock_rdlock(&p->lock);
        rd_kafka_t *rk = *used = p->rk;
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(d),
                              RD_KAFKA_V_END);
        pthread_rwlock_unlock(&p->lock);
        if (e)
            rd_kafka_headers_destroy(hdrs); /* ownership passes only on success */
        if (!e || !is_fatal(rk, e))
            break;
        producer_replace(p, rk);
    }
    return e;
}

tl_err_t tl_kafka_produce_sync(tl_kafka_producer_t *p, const char *topic, const void *key,
                               size_t key_len, const void *value, size_t len,
                               const tl_kafka_header_t *headers, size_t nheaders,
                               tl_kafka_pos_t *pos)
{
    delivery_t d = {.done = false};
    rd_kafka_t *used = NULL;
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    rd_kafka_resp_err_t e = produce(p, topic, RD_KAFKA_PARTITION_UA, key, key_len, value, len,
                                    headers, nheaders, 0, &d, &used);
    if (!e) {
        pthread_mutex_lock(&d.lock);
        while (!d.done)
            pthread_cond_wait(&d.cond, &d.lock);
        pthread_mutex_unlock(&d.lock);
        e = d.err;
        *pos = d.pos;
        /* failed in flight on a producer that hit a fatal error: whether it
         * was written is unknown (503, the client retries with its key) */
        if (e && e != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT && e != RD_KAFKA_RESP_ERR__PURGE_QUEUE) {
            pthread_rwlock_rdlock(&p->lock);
            bool fatal = p->rk == used && is_fatal(used, e);
            pthread_rwlock_unlock(&p->lock);
            if (fatal)
                producer_replace(p, used);
        }
    }
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.lock);
    if (e)
        tl_log_warn("kafka_produce_failed",
                    json_pack("{s:s, s:s}", "topic", topic, "code", rd_kafka_err2name(e)));
    return kafka_err(e);
}

tl_err_t tl_kafka_produce_async(tl_kafka_producer_t *p, const char *topic, int32_t partition,
                                const void *key, size_t key_len, const void *value, size_t len,
                                const tl_kafka_header_t *headers, size_t nheaders,
                                tl_kafka_receipt_t *receipt)
{
    return tl_kafka_produce_at(p, topic, partition, key, key_len, value, len, headers, nheaders, 0,
                               receipt);
}

tl_err_t tl_kafka_produce_at(tl_kafka_producer_t *p, const char *topic, int32_t partition,
                             const void *key, size_t key_len, const void *value, size_t len,
                             const tl_kafka_header_t *headers, size_t nheaders,
                             int64_t timestamp_ms, tl_kafka_receipt_t *receipt)
{
    rd_kafka_resp_err_t e;
    void *opaque = receipt ? (void *)((uintptr_t)receipt | RECEIPT_TAG) : NULL;
    if (receipt)
        *receipt = (tl_kafka_receipt_t){.pos = {-1, -1}, .err = TL_ERR_UNAVAILABLE};
    if (partition < 0)
        partition = RD_KAFKA_PARTITION_UA;
    /* a full local queue is back-pressure: wait for deliveries, then retry */
    rd_kafka_t *used = NULL;
    for (int i = 0; (e = produce(p, topic, partition, key, key_len, value, len, headers, nheaders,
                                 timestamp_ms, opaque, &used)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
                    i < 1000;
         i++) {
        pthread_rwlock_rdlock(&p->lock);
        rd_kafka_poll(p->rk, 10);
        pthread_rwlock_unlock(&p->lock);
    }
    return kafka_err(e);
}

tl_err_t tl_kafka_producer_flush(tl_kafka_producer_t *p, int timeout_ms)
{
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    pthread_rwlock_unlock(&p->lock);
    /* on a timeout, reports are still to come: they count for the next
     * flush (or the drain), not lost */
    long failed = e ? atomic_load(&p->async_failed) : atomic_exchange(&p->async_failed, 0);
    if (failed)
        tl_log_warn("kafka_async_failed", json_pack("{s:i}", "messages", (int)failed));
    return e || failed ? TL_ERR_UNAVAILABLE : TL_OK;
}

void tl_kafka_producer_drain(tl_kafka_producer_t *p)
{
    /* every message gets its report within message.timeout.ms; waiting for
     * all of them is bounded by that, the loop only guards a broken clock */
    pthread_rwlock_rdlock(&p->lock);
    for (int i = 0; i < 600 && rd_kafka_outq_len(p->rk) > 0; i++)
        rd_kafka_flush(p->rk, 1000);
    if (rd_kafka_outq_len(p->rk) > 0)
        tl_log_error("kafka_drain_stuck", json_pack("{s:i}", "messages", rd_kafka_outq_len(p->rk)));
    pthread_rwlock_unlock(&p->lock);
    atomic_store(&p->async_failed, 0);
}

int tl_kafka_producer_partitions(tl_kafka_producer_t *p, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    int n = -1;
    if (rkt && !rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms) && md->topic_cnt == 1 &&
        !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    pthread_rwlock_unlock(&p->lock);
    return n;
}

tl_err_t tl_kafka_producer_watermarks(tl_kafka_producer_t *p, const char *topic,
                                      int32_t partition, int64_t *lo, int64_t *hi, int timeout_ms)
{
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t e = query_watermarks(p->rk, topic, partition, lo, hi, timeout_ms);
    pthread_rwlock_unlock(&p->lock);
    return e ? TL_ERR_UNAVAILABLE : TL_OK;
}

tl_err_t tl_kafka_producer_ping(tl_kafka_producer_t *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_t *rk = p->rk;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    bool fatal = rd_kafka_fatal_error(rk, NULL, 0) != 0;
    pthread_rwlock_unlock(&p->lock);
    if (fatal) { /* unusable for good: a new one, for the next command */
        producer_replace(p, rk);
        e = RD_KAFKA_RESP_ERR__FATAL;
    }
    return e ? TL_ERR_UNAVAILABLE : TL_OK;
}

/* ---- consumer ---- */

struct tl_kafka_consumer {
    rd_kafka_t *rk;
    tl_kafka_start_fn start;
    void *user;
    bool tiered; /* partitions behind the log start are read from the archive */
    bool grouped; /* a member of a consumer group (else it assigned itself) */
    tl_err_t fatal;
    double retry_at; /* tl_log_mono_ms when a failed assignment is tried again; 0: none */
    int retry_ms;    /* its backoff, doubling to 10 s */
    rd_kafka_topic_partition_list_t *assigned; /* what the group gave us, or we took */
    rd_kafka_topic_partition_list_t *behind;   /* of those, what the broker no longer has */
};

/* Where a partition stands against the broker's log: TL_OK to read it from
 * the broker, TL_ERR_LOG_GAP (fatal) beyond the end, *behind when the next
 * offset is below the log start (the archive has it). */
static tl_err_t check_start(tl_kafka_consumer_t *c, const char *topic, int32_t part, int64_t off,
                            bool *behind)
{
    int64_t lo = 0, hi = 0;
    *behind = false;
    rd_kafka_resp_err_t e = query_watermarks(c->rk, topic, part, &lo, &hi, 10000);
    if (e)
        return request_err(e);
    if (off > hi) {
        tl_log_error("offset_beyond_log_end",
                     json_pack("{s:s, s:i, s:I, s:I, s:s}", "topic", topic, "partition", part,
                               "stored_offset", (json_int_t)off, "log_end", (json_int_t)hi, "hint",
                               "the cluster does not have messages this consumer has applied: "
                               "either TRIALOG_KAFKA_BROKERS names another cluster than the one "
                               "these offsets came from, or the cluster lost its data or was "
                               "replaced; then restore its log from the archive with `trialog "
                               "reseed` before anything produces to it (docs/DURABLE_LOG.md)"));
        return TL_ERR_LOG_GAP;
    }
    if (off < lo) {
        if (!c->tiered) {
            tl_log_error("offset_below_log_start",
                         json_pack("{s:s, s:i, s:I, s:I}", "topic", topic, "partition", part,
                                   "stored_offset", (json_int_t)off, "log_start", (json_int_t)lo));
            return TL_ERR_LOG_GAP;
        }
        *behind = true;
    }
    return TL_OK;
}

/* (Re)assigns every partition of the group's assignment at its stored
 * offset, except those behind the broker's log start. */
static tl_err_t assign_stored(tl_kafka_consumer_t *c)
{
    rd_kafka_topic_partition_list_t *go = rd_kafka_topic_partition_list_new(c->assigned->cnt);
    rd_kafka_topic_partition_list_destroy(c->behind);
    c->behind = rd_kafka_topic_partition_list_new(0);
    tl_err_t err = TL_OK;
    for (int i = 0; i < c->assigned->cnt && !err; i++) {
        const rd_kafka_topic_partition_t *tp = &c->assigned->elems[i];
        int64_t off = 0;
        bool behind = false;
        err = c->start(c->user, tp->topic, tp->partition, &off);
        if (!err)
            err = check_start(c, tp->topic, tp->partition, off, &behind);
        if (!err)
            rd_kafka_topic_partition_list_add(behind ? c->behind : go, tp->topic, tp->partition)
                ->offset = off;
    }
    if (!err) {
        rd_kafka_assign(c->rk, go);
        tl_log_info("partitions_assigned", json_pack("{s:i, s:i}", "count", go->cnt,
                                                     "behind_log_start", c->behind->cnt));
    } else {
        rd_kafka_assign(c->rk, NULL);
    }
    rd_kafka_topic_partition_list_destroy(go);
    return err;
}

/* Assigns the group's partitions at their stored offsets. One that failed
 * for a reason that passes (a broker restarting, a partition's leader
 * moving, the database briefly away) is tried again from the poll, with
 * backoff, instead of stopping the consumer; anything else stops it. */
static void assign_or_retry(tl_kafka_consumer_t *c)
{
    tl_err_t e = assign_stored(c);
    if (!e) {
        c->retry_at = 0;
        c->retry_ms = 0;
        return;
    }
    if (!tl_err_is_retriable(e)) {
        c->fatal = e;
        return;
    }
    c->retry_ms = !c->retry_ms ? 250 : c->retry_ms >= 5000 ? 10000 : 2 * c->retry_ms;
    c->retry_at = tl_log_mono_ms() + c->retry_ms;
    tl_log_warn("assignment_retry",
                json_pack("{s:s, s:i}", "error", tl_err_name(e), "in_ms", c->retry_ms));
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    tl_kafka_consumer_t *c = opaque;
    rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = rd_kafka_topic_partition_list_new(0);
    c->retry_at = 0;
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_topic_partition_list_destroy(c->behind);
        c->behind = rd_kafka_topic_partition_list_new(0);
        rd_kafka_assign(rk, NULL);
        return;
    }
    rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = rd_kafka_topic_partition_list_copy(parts);
    assign_or_retry(c);
}

size_t tl_kafka_consumer_behind(tl_kafka_consumer_t *c, size_t i, const char **topic,
                                int32_t *partition)
{
    size_t n = c->behind ? (size_t)c->behind->cnt : 0;
    if (i < n) {
        *topic = c->behind->elems[i].topic;
        *partition = c->behind->elems[i].partition;
    }
    return n;
}

tl_err_t tl_kafka_consumer_reassign(tl_kafka_consumer_t *c)
{
    tl_err_t err = c->assigned ? assign_stored(c) : TL_OK;
    if (err)
        c->fatal = err;
    return err;
}

tl_err_t tl_kafka_consumer_watermarks(tl_kafka_consumer_t *c, const char *topic,
                                      int32_t partition, int64_t *lo, int64_t *hi)
{
    rd_kafka_resp_err_t e =
        query_watermarks(c->rk, topic, partition, lo, hi, 10000);
    return e ? TL_ERR_UNAVAILABLE : TL_OK;
}

/* A consumer, in group (which it joins by subscribing) or, group NULL, in
 * none: it assigns partitions itself and never joins or commits. */
static tl_err_t consumer_create(const char *brokers, const char *group, bool tiered,
                                tl_kafka_start_fn start, void *user, tl_kafka_consumer_t **out)
{
    char errstr[256];
    const char *kv[] = {"bootstrap.servers",  brokers, "enable.auto.commit", "false",
                        "auto.offset.reset", "error", "enable.partition.eof", "false",
                        "allow.auto.create.topics", "false",
                        /* A member that vanished (SIGKILL) holds its partitions
                         * until its session times out: keep that short. */
                        "session.timeout.ms", "6000",  "heartbeat.interval.ms", "1000",
                        /* A pattern subscription (the archive's ingest
                         * topics) sees a topic created since within this. */
                        "topic.metadata.refresh.interval.ms", "5000",
                        /* consumer_poll needs one, even if it never joins */
                        "group.id",           group ? group : "trialog-unjoined"};
    *out = NULL;
    tl_kafka_consumer_t *c = calloc(1, sizeof *c);
    rd_kafka_conf_t *conf = conf_new(kv, sizeof kv / sizeof kv[0]);
    if (!c || !conf) {
        tl_err_t err = c ? TL_ERR_CONFIG : TL_ERR_NOMEM;
        free(c);
        if (conf)
            rd_kafka_conf_destroy(conf);
        return err;
    }
    c->start = start;
    c->user = user;
    c->tiered = tiered;
    c->grouped = group != NULL;
    c->assigned = rd_kafka_topic_partition_list_new(0);
    c->behind = rd_kafka_topic_partition_list_new(0);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) {
        tl_log_error("kafka_consumer_failed", json_pack("{s:s}", "why", errstr));
        rd_kafka_conf_destroy(conf);
        tl_kafka_consumer_destroy(c);
        return TL_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(c->rk);
    if (first_contact(c->rk, true, 5000)) {
        tl_kafka_consumer_destroy(c);
        return TL_ERR_CONFIG;
    }
    *out = c;
    return TL_OK;
}

tl_err_t tl_kafka_consumer_new(const char *brokers, const char *group, const char *const *topics,
                               size_t ntopics, bool tiered, tl_kafka_start_fn start, void *user,
                               tl_kafka_consumer_t **out)
{
    tl_kafka_consumer_t *c = NULL;
    tl_err_t err = consumer_create(brokers, group, tiered, start, user, &c);
    if (err)
        return err;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        tl_kafka_consumer_destroy(c);
        return kafka_err(e);
    }
    *out = c;
    return TL_OK;
}

tl_err_t tl_kafka_consumer_new_member(const char *brokers, const char *const *topics,
                                      size_t ntopics, int member, int members, bool tiered,
                                      tl_kafka_start_fn start, void *user,
                                      tl_kafka_consumer_t **out)
{
    tl_kafka_consumer_t *c = NULL;
    const struct rd_kafka_metadata *md = NULL;
    *out = NULL;
    if (members < 1 || member < 0 || member >= members)
        return TL_ERR_INVALID;
    for (size_t i = 0; i < ntopics; i++)
        if (topics[i][0] == '^') /* a pattern needs a group's subscription */
            return TL_ERR_INVALID;
    tl_err_t err = consumer_create(brokers, NULL, tiered, start, user, &c);
    rd_kafka_resp_err_t e = err ? RD_KAFKA_RESP_ERR_NO_ERROR
                                : rd_kafka_metadata(c->rk, 1, NULL, &md, 10000);
    if (!err && e)
        err = request_err(e);
    /* Every topic must be there now: unlike a group's member, this one never
     * sees a topic or partition that appears later, and would wait for its
     * events forever. */
    for (size_t i = 0; !err && i < ntopics; i++) {
        const rd_kafka_metadata_topic_t *mt = NULL;
        for (int t = 0; !mt && t < md->topic_cnt; t++)
            if (!strcmp(md->topics[t].topic, topics[i]))
                mt = &md->topics[t];
        if (!mt || mt->err || mt->partition_cnt < 1) {
            tl_log_error("topic_unavailable",
                         json_pack("{s:s, s:s}", "topic", topics[i], "why",
                                   mt && mt->err ? rd_kafka_err2name(mt->err) : "no partitions"));
            err = TL_ERR_UNAVAILABLE;
            break;
        }
        for (int p = 0; p < mt->partition_cnt; p++)
            if (mt->partitions[p].id % members == member)
                rd_kafka_topic_partition_list_add(c->assigned, topics[i], mt->partitions[p].id);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (!err)
        err = assign_stored(c);
    if (err) {
        tl_kafka_consumer_destroy(c);
        return err;
    }
    *out = c;
    return TL_OK;
}

void tl_kafka_consumer_destroy(tl_kafka_consumer_t *c)
{
    if (!c)
        return;
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    rd_kafka_topic_partition_list_destroy(c->assigned);
    rd_kafka_topic_partition_list_destroy(c->behind);
    free(c);
}

tl_err_t tl_kafka_consumer_poll(tl_kafka_consumer_t *c, tl_kafka_msg_t *msgs, size_t max,
                                int timeout_ms, size_t *n)
{
    tl_err_t err = TL_OK;
    *n = 0;
    if (c->retry_at && tl_log_mono_ms() >= c->retry_at)
        assign_or_retry(c);
    while (*n < max && !c->fatal) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, *n ? 0 : timeout_ms);
        if (!m)
            break;
        if (m->err) {
            tl_err_t e = kafka_err(m->err);
            tl_log_warn("kafka_consume_error",
                        json_pack("{s:s, s:s, s:i, s:I}", "code", rd_kafka_err2name(m->err),
                                  "topic", m->rkt ? rd_kafka_topic_name(m->rkt) : "", "partition",
                                  m->partition, "offset", (json_int_t)m->offset));
            rd_kafka_message_destroy(m);
            if (e == TL_ERR_LOG_GAP) {
                /* fell behind the broker's retention: re-plan the assignment,
                 * which sends that partition to the archive (or stops) */
                if (!c->tiered || tl_kafka_consumer_reassign(c))
                    c->fatal = TL_ERR_LOG_GAP;
                break;
            }
            continue;
        }
        tl_kafka_msg_t *o = &msgs[(*n)++];
        o->topic = rd_kafka_topic_name(m->rkt);
        o->partition = m->partition;
        o->offset = m->offset;
        o->key = m->key;
        o->key_len = m->key_len;
        o->value = m->payload;
        o->len = m->len;
        o->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
        o->rkm = m;
    }
    if (c->fatal) {
        err = c->fatal;
        tl_kafka_msgs_release(msgs, *n);
        *n = 0;
    }
    return err;
}

void tl_kafka_msgs_release(tl_kafka_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].rkm)
            rd_kafka_message_destroy(msgs[i].rkm);
        msgs[i].rkm = NULL;
    }
}

bool tl_kafka_msg_header(const tl_kafka_msg_t *m, size_t i, const char **name,
                         const void **value, size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    if (!m->rkm || rd_kafka_message_headers(m->rkm, &h) || !h)
        return false;
    return rd_kafka_header_get_all(h, i, name, value, len) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void tl_kafka_consumer_commit_info(tl_kafka_consumer_t *c, const tl_kafka_msg_t *msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, msgs[i].topic, msgs[i].partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(l, msgs[i].topic, msgs[i].partition);
        if (msgs[i].offset + 1 > tp->offset)
            tp->offset = msgs[i].offset + 1;
    }
    if (l->cnt && c->grouped)
        rd_kafka_commit(c->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}


/* ---- admin ---- */

/* A short-lived handle for admin requests (topics, configs, records). */
static tl_err_t admin_new(const char *brokers, const char *log_level, rd_kafka_t **out)
{
    char errstr[256];
    const char *kv[] = {"bootstrap.servers", brokers, "allow.auto.create.topics", "false",
                        "log_level", log_level};
    rd_kafka_conf_t *conf = conf_new(kv, sizeof kv / sizeof kv[0]);
    *out = NULL;
    if (!conf)
        return TL_ERR_CONFIG;
    *out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!*out) {
        tl_log_error("kafka_admin_failed", json_pack("{s:s}", "why", errstr));
        rd_kafka_conf_destroy(conf);
        return TL_ERR_KAFKA;
    }
    return TL_OK;
}

/* Waits for the result event of the admin request just sent to q. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, int timeout_ms)
{
    for (;;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
        if (!ev || rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev); /* logs, errors: already reported */
    }
}

/* One admin request: its options and result queue (admin_begin), the
 * request sent with them, its result event (admin_wait), all freed by
 * admin_end. */
typedef struct {
    rd_kafka_queue_t *q;
    rd_kafka_AdminOptions_t *o;
    rd_kafka_event_t *ev;
} admin_req_t;

static void admin_begin(admin_req_t *r, rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms)
{
    char errstr[256];
    r->q = rd_kafka_queue_new(rk);
    r->o = rd_kafka_AdminOptions_new(rk, op);
    r->ev = NULL;
    rd_kafka_AdminOptions_set_request_timeout(r->o, timeout_ms, errstr, sizeof errstr);
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(r->o, timeout_ms, errstr, sizeof errstr);
}

/* The result event, or NULL when the request failed as a whole (reported to
 * report when it is not NULL). */
static rd_kafka_event_t *admin_result(admin_req_t *r, rd_kafka_event_type_t type, int timeout_ms,
                                      FILE *report, const char *what)
{
    r->ev = admin_wait(r->q, type, timeout_ms + 5000);
    if (r->ev && !rd_kafka_event_error(r->ev))
        return r->ev;
    if (report)
        fprintf(report, "FAILED  %s: %s\n", what,
                r->ev ? rd_kafka_event_error_string(r->ev) : "no answer from the cluster");
    return NULL;
}

static void admin_end(admin_req_t *r)
{
    if (r->ev)
        rd_kafka_event_destroy(r->ev);
    rd_kafka_AdminOptions_destroy(r->o);
    rd_kafka_queue_destroy(r->q);
}

tl_err_t tl_kafka_cluster_wait(const char *brokers, int want, int timeout_ms, int *count)
{
    rd_kafka_t *rk = NULL;
    /* a broker still starting refuses connections: expected here, not logged */
    tl_err_t err = admin_new(brokers, "2", &rk);
    *count = 0;
    for (int64_t end = tl_log_mono_ms() + timeout_ms; !err;) {
        const struct rd_kafka_metadata *md = NULL;
        int64_t left = end - tl_log_mono_ms();
        int wait_ms = left < 100 ? 100 : left > 2000 ? 2000 : (int)left;
        if (!rd_kafka_metadata(rk, 0, NULL, &md, wait_ms)) {
            *count = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
        } else {
            serve_callbacks(rk, false);
        }
        if (*count >= want)
            break;
        if (atomic_load(&auth_failed)) { /* it will not get better by waiting */
            err = TL_ERR_CONFIG;
            break;
        }
        if (tl_log_mono_ms() >= end) {
            err = TL_ERR_UNAVAILABLE;
            break;
        }
        usleep(200 * 1000);
    }
    if (rk)
        rd_kafka_destroy(rk);
    return err;
}

/* The topic's metadata entry in md, or NULL. */
static const rd_kafka_metadata_topic_t *md_topic(const struct rd_kafka_metadata *md,
                                                 const char *name)
{
    for (int t = 0; t < md->topic_cnt; t++)
        if (!strcmp(md->topics[t].topic, name))
            return &md->topics[t];
    return NULL;
}

static tl_err_t create_missing(rd_kafka_t *rk, const tl_kafka_topic_spec_t *specs,
                               const bool *missing, size_t n, int timeout_ms, FILE *report)
{
    char errstr[256];
    tl_err_t err = TL_OK;
    size_t k = 0;
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof *nt);
    if (!nt)
        return TL_ERR_NOMEM;
    for (size_t i = 0; i < n && !err; i++) {
        if (!missing[i])
            continue;
        nt[k] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, specs[i].replication,
                                      errstr, sizeof errstr);
        if (!nt[k]) {
            fprintf(report, "FAILED  %s: %s\n", specs[i].name, errstr);
            err = TL_ERR_INVALID;
            break;
        }
        for (size_t c = 0; c < specs[i].nconfigs; c++)
            rd_kafka_NewTopic_set_config(nt[k], specs[i].configs[c].name,
                                         specs[i].configs[c].value);
        k++;
    }
    if (!err && k) {
        admin_req_t req;
        admin_begin(&req, rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms);
        rd_kafka_CreateTopics(rk, nt, k, req.o, req.q);
        rd_kafka_event_t *ev = admin_result(&req, RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms,
                                            report, "creating topics");
        if (!ev) {
            err = TL_ERR_UNAVAILABLE;
        } else {
            size_t cnt = 0;
            const rd_kafka_topic_result_t **res =
                rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
            for (size_t r = 0; r < cnt; r++) {
                rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[r]);
                const char *name = rd_kafka_topic_result_name(res[r]);
                if (!e) {
                    fprintf(report, "created %s\n", name);
                } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                    /* (made meanwhile by another ensure: checked next run) */
                    fprintf(report, "FAILED  %s: %s\n", name,
                            rd_kafka_topic_result_error_string(res[r]));
                    err = e == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ? TL_ERR_CONFIG
                                                                           : TL_ERR_KAFKA;
                }
            }
        }
        admin_end(&req);
    }
    for (size_t i = 0; i < k; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    return err;
}

/* Each config of an existing topic's spec against what the cluster says. */
static tl_err_t check_configs(rd_kafka_t *rk, const tl_kafka_topic_spec_t *specs,
                              const bool *missing, bool *differs, size_t n, int timeout_ms,
                              FILE *report)
{
    tl_err_t err = TL_OK;
    size_t k = 0;
    rd_kafka_ConfigResource_t **rs = calloc(n ? n : 1, sizeof *rs);
    if (!rs)
        return TL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (!missing[i] && specs[i].nconfigs)
            rs[k++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, specs[i].name);
    if (k) {
        admin_req_t req;
        admin_begin(&req, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms);
        rd_kafka_DescribeConfigs(rk, rs, k, req.o, req.q);
        rd_kafka_event_t *ev = admin_result(&req, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                                            timeout_ms, report, "reading topic configs");
        if (!ev) {
            err = TL_ERR_UNAVAILABLE;
        } else {
            size_t cnt = 0;
            const rd_kafka_ConfigResource_t **res = rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &cnt);
            for (size_t r = 0; r < cnt; r++) {
                const char *name = rd_kafka_ConfigResource_name(res[r]);
                const tl_kafka_topic_spec_t *spec = NULL;
                size_t at = 0;
                for (size_t i = 0; !spec && i < n; i++)
                    if (!strcmp(specs[i].name, name))
                        spec = &specs[at = i];
                if (!spec || rd_kafka_ConfigResource_error(res[r])) {
                    fprintf(report, "FAILED  %s: its configs could not be read\n", name);
                    err = TL_ERR_KAFKA;
                    continue;
                }
                size_t ne = 0;
                const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(res[r], &ne);
                for (size_t c = 0; c < spec->nconfigs; c++) {
                    const char *have = NULL;
                    for (size_t e = 0; e < ne; e++)
                        if (!strcmp(rd_kafka_ConfigEntry_name(es[e]), spec->configs[c].name))
                            have = rd_kafka_ConfigEntry_value(es[e]);
                    if (!have || strcmp(have, spec->configs[c].value)) {
                        fprintf(report, "MISMATCH %s: %s is %s, expected %s\n", name,
                                spec->configs[c].name, have ? have : "(unset)",
                                spec->configs[c].value);
                        differs[at] = true;
                    }
                }
            }
        }
        admin_end(&req);
    }
    for (size_t i = 0; i < k; i++)
        rd_kafka_ConfigResource_destroy(rs[i]);
    free(rs);
    return err;
}

/* Until every topic of specs has a leader for each partition in the
 * brokers' metadata (a topic just created has none for a moment: a producer
 * or a watermark query then sees it as missing). */
static tl_err_t await_leaders(rd_kafka_t *rk, const tl_kafka_topic_spec_t *specs, size_t n,
                              int timeout_ms)
{
    for (int64_t end = tl_log_mono_ms() + timeout_ms;;) {
        const struct rd_kafka_metadata *md = NULL;
        bool ready = !rd_kafka_metadata(rk, 1, NULL, &md, 5000);
        for (size_t i = 0; ready && i < n; i++) {
            const rd_kafka_metadata_topic_t *t = md_topic(md, specs[i].name);
            ready = t && !t->err && t->partition_cnt > 0;
            for (int p = 0; ready && p < t->partition_cnt; p++)
                ready = !t->partitions[p].err && t->partitions[p].leader >= 0;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (ready)
            return TL_OK;
        if (tl_log_mono_ms() >= end)
            return TL_ERR_UNAVAILABLE;
        usleep(100 * 1000);
    }
}

tl_err_t tl_kafka_topics_ensure(const char *brokers, const tl_kafka_topic_spec_t *specs, size_t n,
                                int timeout_ms, FILE *report)
{
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    bool *missing = calloc(n ? n : 1, sizeof *missing);
    bool *differs = calloc(n ? n : 1, sizeof *differs);
    tl_err_t err = missing && differs ? admin_new(brokers, "6", &rk) : TL_ERR_NOMEM;
    if (!err) {
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
        if (e)
            serve_callbacks(rk, false);
        if (e && atomic_load(&auth_failed)) {
            fprintf(report, "FAILED  the cluster refused this client (authentication or TLS):"
                            " check TRIALOG_KAFKA_CONFIG_FILE\n");
            err = TL_ERR_CONFIG;
        } else if (e) {
            fprintf(report, "FAILED  the cluster did not answer: %s\n", rd_kafka_err2str(e));
            err = request_err(e);
        }
    }
    for (size_t i = 0; !err && i < n; i++) {
        const rd_kafka_metadata_topic_t *t = md_topic(md, specs[i].name);
        if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            missing[i] = true;
            continue;
        }
        /* The partition count decides where each key lands: never changed
         * here, since that would split a participant's stream. */
        if (t->partition_cnt != specs[i].partitions) {
            fprintf(report, "MISMATCH %s: %d partitions, expected %d\n", specs[i].name,
                    t->partition_cnt, specs[i].partitions);
            differs[i] = true;
        }
        for (int p = 0; p < t->partition_cnt; p++)
            if (t->partitions[p].replica_cnt != specs[i].replication) {
                fprintf(report, "MISMATCH %s: partition %d has %d replicas, expected %d\n",
                        specs[i].name, t->partitions[p].id, t->partitions[p].replica_cnt,
                        specs[i].replication);
                differs[i] = true;
                break;
            }
    }
    if (!err)
        err = check_configs(rk, specs, missing, differs, n, timeout_ms, report);
    if (!err)
        err = create_missing(rk, specs, missing, n, timeout_ms, report);
    if (!err && await_leaders(rk, specs, n, timeout_ms)) {
        fprintf(report, "FAILED  not every partition has a leader after %d ms\n", timeout_ms);
        err = TL_ERR_UNAVAILABLE;
    }
    bool conflict = false;
    for (size_t i = 0; !err && i < n; i++) {
        conflict = conflict || differs[i];
        if (!differs[i] && !missing[i])
            fprintf(report, "ok      %s\n", specs[i].name);
    }
    if (!err && conflict)
        err = TL_ERR_CONFLICT;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        rd_kafka_destroy(rk);
    free(missing);
    free(differs);
    return err;
}

tl_err_t tl_kafka_topic_config(const char *brokers, const char *topic, size_t n,
                               const char *const *names, char *const *values, size_t size,
                               int timeout_ms)
{
    rd_kafka_t *rk = NULL;
    tl_err_t err = admin_new(brokers, "6", &rk);
    if (err)
        return err;
    rd_kafka_ConfigResource_t *r = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    admin_req_t req;
    admin_begin(&req, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms);
    rd_kafka_DescribeConfigs(rk, &r, 1, req.o, req.q);
    rd_kafka_event_t *ev =
        admin_result(&req, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms, NULL, NULL);
    size_t cnt = 0, ne = 0;
    const rd_kafka_ConfigResource_t **res =
        ev ? rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
                                                       &cnt)
           : NULL;
    bool answered = res && cnt == 1 && !rd_kafka_ConfigResource_error(res[0]);
    const rd_kafka_ConfigEntry_t **es = answered ? rd_kafka_ConfigResource_configs(res[0], &ne)
                                                 : NULL;
    for (size_t i = 0; answered && !err && i < n; i++) {
        err = TL_ERR_NOT_FOUND;
        for (size_t e = 0; e < ne; e++)
            if (!strcmp(rd_kafka_ConfigEntry_name(es[e]), names[i])) {
                const char *v = rd_kafka_ConfigEntry_value(es[e]);
                snprintf(values[i], size, "%s", v ? v : "");
                err = TL_OK;
            }
    }
    if (!answered)
        err = TL_ERR_UNAVAILABLE;
    admin_end(&req);
    rd_kafka_ConfigResource_destroy(r);
    rd_kafka_destroy(rk);
    return err;
}

tl_err_t tl_kafka_delete_records(const char *brokers, const char *topic, int32_t partition,
                                 int64_t before, int timeout_ms)
{
    rd_kafka_t *rk = NULL;
    tl_err_t err = admin_new(brokers, "6", &rk);
    if (err)
        return err;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = before;
    rd_kafka_DeleteRecords_t *d = rd_kafka_DeleteRecords_new(l);
    admin_req_t req;
    admin_begin(&req, rk, RD_KAFKA_ADMIN_OP_DELETERECORDS, timeout_ms);
    rd_kafka_DeleteRecords(rk, &d, 1, req.o, req.q);
    rd_kafka_event_t *ev =
        admin_result(&req, RD_KAFKA_EVENT_DELETERECORDS_RESULT, timeout_ms, NULL, NULL);
    const rd_kafka_topic_partition_list_t *res =
        ev ? rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev)) : NULL;
    if (!res || res->cnt != 1)
        err = TL_ERR_UNAVAILABLE;
    else if (res->elems[0].err)
        err = request_err(res->elems[0].err);
    admin_end(&req);
    rd_kafka_DeleteRecords_destroy(d);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return err;
}

/* The metadata of one topic, through a short-lived admin handle. */
static const rd_kafka_metadata_topic_t *topic_metadata(const char *brokers, const char *topic,
                                                       int timeout_ms, rd_kafka_t **rk,
                                                       const struct rd_kafka_metadata **md)
{
    *md = NULL;
    if (admin_new(brokers, "2", rk))
        return NULL;
    if (rd_kafka_metadata(*rk, 1, NULL, md, timeout_ms)) {
        *md = NULL;
        return NULL;
    }
    const rd_kafka_metadata_topic_t *t = md_topic(*md, topic);
    return t && !t->err ? t : NULL;
}

static void topic_metadata_done(rd_kafka_t *rk, const struct rd_kafka_metadata *md)
{
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk)
        rd_kafka_destroy(rk);
}

int tl_kafka_partition_leader(const char *brokers, const char *topic, int32_t partition,
                              int timeout_ms)
{
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *t = topic_metadata(brokers, topic, timeout_ms, &rk, &md);
    int leader = -1;
    for (int p = 0; t && p < t->partition_cnt; p++)
        if (t->partitions[p].id == partition && !t->partitions[p].err)
            leader = t->partitions[p].leader;
    topic_metadata_done(rk, md);
    return leader;
}

bool tl_kafka_topic_in_sync(const char *brokers, const char *topic, int want, int timeout_ms)
{
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *t = topic_metadata(brokers, topic, timeout_ms, &rk, &md);
    bool ok = t && t->partition_cnt > 0;
    for (int p = 0; ok && p < t->partition_cnt; p++)
        ok = !t->partitions[p].err && t->partitions[p].leader >= 0 &&
             t->partitions[p].isr_cnt >= want;
    topic_metadata_done(rk, md);
    return ok;
}
