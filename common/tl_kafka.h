/* tl_kafka: the only module that includes librdkafka.
 *
 * Producer: idempotent, acks=all, murmur2_random; tl_kafka_produce_sync waits
 * for the delivery report, so a 2xx is only ever given for a durable write.
 * Consumer: a consumer group with manual offsets; where to start is asked of
 * the caller at every assignment (offsets live in PostgreSQL), and
 * auto.offset.reset=error so nothing is ever skipped silently.
 * Admin: topics as code (create, check), a topic's config, DeleteRecords.
 * Every client gets the built-in settings, then the site's
 * (tl_kafka_client_init), never overriding the guarantees above. */
#ifndef TL_KAFKA_H
#define TL_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tl_err.h"

/* Seconds a program asked to stop has to finish. librdkafka's close and
 * destroy can block for ever when the broker goes away at the wrong moment
 * (in-flight requests keep a broker handle alive), so a stopping program arms
 * alarm() with this and SIGALRM ends it. Offsets live in PostgreSQL, so that
 * costs nothing but the goodbye. */
#define TL_KAFKA_SHUTDOWN_GRACE_S 30

typedef struct tl_kafka_producer tl_kafka_producer_t;
typedef struct tl_kafka_consumer tl_kafka_consumer_t;

typedef struct {
    const char *name;
    const void *value;
    size_t len;
} tl_kafka_header_t;

typedef struct {
    int32_t partition;
    int64_t offset;
} tl_kafka_pos_t;

/* timeout_ms bounds every produce (message.timeout.ms). Connects before it
 * returns (at most 2 s, or timeout_ms if less; an absent broker is not an
 * error here). Caller frees with tl_kafka_producer_destroy. */
tl_err_t tl_kafka_producer_new(const char *brokers, int timeout_ms, tl_kafka_producer_t **out);
void tl_kafka_producer_destroy(tl_kafka_producer_t *p);
/* Produces one message and waits for its delivery report. All pointers are
 * borrowed. On success pos holds where it landed. Broker unreachable or too
 * slow -> TL_ERR_UNAVAILABLE. */
tl_err_t tl_kafka_produce_sync(tl_kafka_producer_t *p, const char *topic, const void *key,
                               size_t key_len, const void *value, size_t len,
                               const tl_kafka_header_t *headers, size_t nheaders,
                               tl_kafka_pos_t *pos);
/* Where a message produced without waiting landed: its delivery report
 * fills it in, by the time tl_kafka_producer_flush returns. */
typedef struct {
    tl_kafka_pos_t pos;
    tl_err_t err; /* TL_OK once delivered; TL_ERR_UNAVAILABLE until then */
} tl_kafka_receipt_t;

/* Produces without waiting (batches, tools, loads, re-seed); a full queue
 * waits. tl_kafka_producer_flush then waits for every delivery and fails if
 * any message since the last flush was not delivered. partition: -1 lets
 * the partitioner choose from the key. receipt: NULL, or borrowed until the
 * flush, which fills it in. */
tl_err_t tl_kafka_produce_async(tl_kafka_producer_t *p, const char *topic, int32_t partition,
                                const void *key, size_t key_len, const void *value, size_t len,
                                const tl_kafka_header_t *headers, size_t nheaders,
                                tl_kafka_receipt_t *receipt);
/* The same with the message's own timestamp (ms since the epoch; 0: now):
 * the re-seed gives each message the time the broker first logged it. */
tl_err_t tl_kafka_produce_at(tl_kafka_producer_t *p, const char *topic, int32_t partition,
                             const void *key, size_t key_len, const void *value, size_t len,
                             const tl_kafka_header_t *headers, size_t nheaders,
                             int64_t timestamp_ms, tl_kafka_receipt_t *receipt);
tl_err_t tl_kafka_producer_flush(tl_kafka_producer_t *p, int timeout_ms);
/* Waits until every message produced so far has had its delivery report
 * (delivered or failed), forgetting the failures: for a caller that gives
 * up on a batch (it will produce it again) and must not free the receipts
 * it handed over while reports can still write to them. */
void tl_kafka_producer_drain(tl_kafka_producer_t *p);
/* A producer that hits a fatal error (librdkafka: the idempotent producer
 * can produce nothing more) is replaced by a new one, with the same
 * settings, at the next produce or ping; what was in flight on it fails
 * (TL_ERR_UNAVAILABLE: a client retries with its Idempotency-Key). This
 * raises such an error, for tests. */
void tl_kafka_producer_test_fatal(tl_kafka_producer_t *p);
/* Partition count of topic, or -1 when unknown or unreachable. */
int tl_kafka_producer_partitions(tl_kafka_producer_t *p, const char *topic, int timeout_ms);
tl_err_t tl_kafka_producer_watermarks(tl_kafka_producer_t *p, const char *topic,
                                      int32_t partition, int64_t *lo, int64_t *hi, int timeout_ms);
/* Asks the cluster for its metadata: TL_OK when a broker answers. */
tl_err_t tl_kafka_producer_ping(tl_kafka_producer_t *p, int timeout_ms);

typedef struct {
    const char *topic; /* borrowed from the message */
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    int64_t timestamp_ms; /* broker or producer time; -1 if unknown */
    void *rkm;            /* internal; NULL for messages that came from the archive */
} tl_kafka_msg_t;

/* Header i of a consumed message; name and value are borrowed from it.
 * false past the last header. */
bool tl_kafka_msg_header(const tl_kafka_msg_t *m, size_t i, const char **name,
                         const void **value, size_t *len);

/* Called at every assignment for every partition: set *offset to the next
 * offset to read (0 when nothing is stored). */
typedef tl_err_t (*tl_kafka_start_fn)(void *user, const char *topic, int32_t partition,
                                      int64_t *offset);

/* tiered: a partition whose stored offset is below the broker's log start is
 * left out of the assignment and reported by tl_kafka_consumer_behind, for the
 * caller to read from the archive; without it that is a fatal TL_ERR_LOG_GAP. */
tl_err_t tl_kafka_consumer_new(const char *brokers, const char *group, const char *const *topics,
                               size_t ntopics, bool tiered, tl_kafka_start_fn start, void *user,
                               tl_kafka_consumer_t **out);
/* A consumer in no group that takes partitions p % members == member of each
 * of topics the broker has now, at their stored offsets (start), like a
 * group's member: for the rebuild's workers, which split the log among
 * themselves and need no broker to do it (joining a group costs seconds:
 * the broker's initial rebalance delay). Every topic must exist now
 * (TL_ERR_UNAVAILABLE: it would never see one made later); no pattern
 * topics (TL_ERR_INVALID); no offsets are committed to Kafka. Caller frees
 * with tl_kafka_consumer_destroy. */
tl_err_t tl_kafka_consumer_new_member(const char *brokers, const char *const *topics,
                                      size_t ntopics, int member, int members, bool tiered,
                                      tl_kafka_start_fn start, void *user,
                                      tl_kafka_consumer_t **out);
/* Partition i of those behind the log start (left unassigned); returns how
 * many there are. topic is borrowed until the next poll or reassign. */
size_t tl_kafka_consumer_behind(tl_kafka_consumer_t *c, size_t i, const char **topic,
                                int32_t *partition);
/* Plans the assignment again from the stored offsets (after catching up). */
tl_err_t tl_kafka_consumer_reassign(tl_kafka_consumer_t *c);
tl_err_t tl_kafka_consumer_watermarks(tl_kafka_consumer_t *c, const char *topic,
                                      int32_t partition, int64_t *lo, int64_t *hi);
void tl_kafka_consumer_destroy(tl_kafka_consumer_t *c);
/* Fills up to max messages, waiting at most timeout_ms for the first. A gap
 * in the log (stored offset outside what the broker has) -> TL_ERR_LOG_GAP.
 * Release the messages with tl_kafka_msgs_release. */
tl_err_t tl_kafka_consumer_poll(tl_kafka_consumer_t *c, tl_kafka_msg_t *msgs, size_t max,
                                int timeout_ms, size_t *n);
void tl_kafka_msgs_release(tl_kafka_msg_t *msgs, size_t n);
/* Commits the offsets after msgs to Kafka, asynchronously; informational only. */
void tl_kafka_consumer_commit_info(tl_kafka_consumer_t *c, const tl_kafka_msg_t *msgs, size_t n);

/* ---- client settings ---- */

#define TL_KAFKA_CONFIG_MAX 128       /* settings in TRIALOG_KAFKA_CONFIG_FILE */
#define TL_KAFKA_CONFIG_LINE_MAX 4096 /* bytes a line */

/* Once at a program's start, before any client: client.id becomes
 * "trialog-<program>-<host>-<pid>" and config_file (NULL or "" for none), a
 * key=value file of librdkafka settings (TLS, SASL, racks, timeouts), is read
 * and applied to every producer, consumer and admin client after the
 * built-in settings. The file must not be readable by group or others;
 * unknown keys, bad values and keys Trialog sets itself
 * (tl_kafka_config_key_protected) are refused, every one reported to err as
 * file:line: key (never a value). TL_ERR_CONFIG then. */
tl_err_t tl_kafka_client_init(const char *program, const char *config_file, FILE *err);
/* The row of a program's tl_config table for the file (dst: const char **). */
#define TL_KAFKA_CONFIG_VAR(dst)                                                                 \
    {"TRIALOG_KAFKA_CONFIG_FILE", TL_CFG_STR, "", 0, 4000, false,                              \
     "librdkafka settings for a real cluster: key=value lines, mode 0600 (docs/KAFKA.md)", dst}
void tl_kafka_client_cleanup(void);
/* True once the cluster refused a client of this process (SASL credentials,
 * TLS handshake); logged once as kafka_authentication_failed. A producer or
 * consumer created after that fails with TL_ERR_CONFIG. */
bool tl_kafka_auth_failed(void);
/* True for a setting the config file may not touch: enable.idempotence,
 * acks, enable.auto.commit, auto.offset.reset, isolation.level, … */
bool tl_kafka_config_key_protected(const char *key);

/* ---- admin ---- */

typedef struct {
    const char *name, *value;
} tl_kafka_kv_t;

typedef struct {
    const char *name;
    int partitions;
    int replication;
    const tl_kafka_kv_t *configs; /* borrowed */
    size_t nconfigs;
} tl_kafka_topic_spec_t;

/* Waits (at most timeout_ms) until the cluster lists at least want brokers;
 * *count is how many it listed last. TL_ERR_UNAVAILABLE on timeout,
 * TL_ERR_CONFIG at once when the cluster refuses this client. */
tl_err_t tl_kafka_cluster_wait(const char *brokers, int want, int timeout_ms, int *count);
/* Topics as code: creates every topic of specs the cluster lacks, with its
 * partitions, replication factor and configs, and checks every one it has:
 * partition count, replicas of each partition, and each config of the spec
 * (DescribeConfigs). A line per topic goes to report ("created", "ok",
 * "MISMATCH <topic>: <setting> is X, expected Y", "FAILED ..."). Nothing
 * existing is changed. TL_ERR_CONFLICT when an existing topic differs,
 * TL_ERR_CONFIG when the cluster cannot hold a replication factor,
 * TL_ERR_UNAVAILABLE when it does not answer. */
tl_err_t tl_kafka_topics_ensure(const char *brokers, const tl_kafka_topic_spec_t *specs, size_t n,
                                int timeout_ms, FILE *report);
/* n configs of a topic (names[i] into values[i], each size bytes) as the
 * cluster reports them (the topic's own or the broker's default), in one
 * request. TL_ERR_NOT_FOUND when it has no such setting. */
tl_err_t tl_kafka_topic_config(const char *brokers, const char *topic, size_t n,
                               const char *const *names, char *const *values, size_t size,
                               int timeout_ms);
/* The id of the broker leading a partition, -1 when none or unknown. */
int tl_kafka_partition_leader(const char *brokers, const char *topic, int32_t partition,
                              int timeout_ms);
/* True when every partition of topic has a leader and at least want
 * in-sync replicas (a node that came back has caught up). */
bool tl_kafka_topic_in_sync(const char *brokers, const char *topic, int want, int timeout_ms);
/* DeleteRecords: the partition's log start moves to before (operators and
 * the tests of the archive tier). */
tl_err_t tl_kafka_delete_records(const char *brokers, const char *topic, int32_t partition,
                                 int64_t before, int timeout_ms);

#endif
