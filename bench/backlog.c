/* trialog-bench-backlog: appends a backlog of valid ParticipantEnrolled events
 * to the event log, as fast as the durable log allows, for benchmarks that
 * then rebuild projections from offset 0 over it.
 *
 * Usage: trialog-bench-backlog --study UUID --site UUID [--events N]
 *        (default 1,000,000) with TRIALOG_KAFKA_BROKERS, TRIALOG_PG_DSN and
 *        TRIALOG_PG_SCHEMA of a running stack (broker, trialog-projector
 *        audit; migrations already run).
 *
 * "As fast as the durable log allows": the log is made durable twice, by
 * the broker and by the audit archive, and a cluster whose retention is
 * finite keeps only the second. So the events go out in chunks, and each
 * chunk waits until the archive is close enough to the log end, like the
 * gateway's back-pressure. The run ends when the archive holds everything, and the rate
 * is of events made durable, not merely produced. Prints a table line and
 * one JSON line; never a payload. Not a test: it judges nothing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "bench_util.h"
#include "tl_config.h"
#include "tl_consumer.h"
#include "tl_date.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_pg.h"
#include "tl_producer.h"
#include "tl_schemas.h"
#include "tl_uuid.h"

/* The local broker keeps ~5 MiB a partition and silently drops older
 * messages (DESIGN.md §7). These events are ~560 bytes as the broker counts
 * them (267 bytes of value, the key and seven headers): measured, it keeps
 * ~9,400 of them a partition, not the ~13,000 (or 16,000) a smaller event
 * would give. No partition may ever get that far ahead of the archive.
 * A chunk is produced only once the archive is within BL_MAX_LAG of the log
 * end overall and within BL_MAX_LAG / 6 = 3,000 on every partition; the
 * chunk then adds ~BL_CHUNK / 6 = 3,300 a partition (keys spread evenly), so
 * at most ~6,300 a partition are ever unarchived: two thirds of the window,
 * the rest is margin for uneven partitions. 18,000 in flight is still more
 * than three of the audit consumer's batches, so the archive never idles.
 * Both are sized for BL_PARTITIONS partitions and scaled down for fewer. */
#define BL_PARTITIONS 6
#define BL_MAX_LAG 18000
#define BL_CHUNK 20000
/* A wait fails when the archive has not moved for this long. */
#define BL_STALL_S 60
/* How long a produce, a flush and a broker question may take. */
#define BL_PRODUCE_TIMEOUT_MS 30000
#define BL_FLUSH_TIMEOUT_MS 60000
#define BL_BROKER_TIMEOUT_MS 5000
/* Longest sleep between two looks when no archive commit wakes us. */
#define BL_POLL_MS 200
#define BL_EVENTS_MAX 100000000L

typedef struct {
    tl_pg_t *pg;
    tl_kafka_producer_t *kafka;
    const char *topic; /* borrowed from the registry */
    int nparts;
    int64_t *start, *end, *archived; /* per partition */
    bool warned;
} bl_log_t;

typedef struct {
    int64_t end;      /* log end offsets, summed over partitions */
    int64_t archived; /* the audit archive's next offsets, summed */
    int64_t worst;    /* the largest lag of one partition */
    int64_t peak;     /* the largest worst seen while waiting */
} bl_pos_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trialog-bench-backlog --study UUID --site UUID [--events N]\n"
            "  appends N ParticipantEnrolled events (default 1000000, at most %ld),\n"
            "  paced by the audit archive\n"
            "  env: TRIALOG_KAFKA_BROKERS, TRIALOG_PG_DSN, TRIALOG_PG_SCHEMA\n",
            BL_EVENTS_MAX);
}

/* A benchmark has nothing to roll back: say what failed and exit 1. */
static void die(const char *what, tl_err_t err)
{
    fprintf(stderr, "backlog: %s: %s\n", what, tl_err_name(err));
    exit(1);
}

static bool parse_count(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > BL_EVENTS_MAX)
        return false;
    *out = v;
    return true;
}

/* Where the log ends and where the archive is, now. */
static tl_err_t bl_look(bl_log_t *l, bl_pos_t *pos)
{
    const char *params[] = {TL_PROJECTION_AUDIT, l->topic};
    tl_pg_res_t *res = NULL;
    tl_err_t err = TL_OK;
    for (int p = 0; p < l->nparts && !err; p++) {
        err = tl_kafka_producer_watermarks(l->kafka, l->topic, p, &l->start[p], &l->end[p],
                                           BL_BROKER_TIMEOUT_MS);
        l->archived[p] = 0;
    }
    if (!err)
        err = tl_pg_exec(l->pg,
                         "SELECT partition, next_offset FROM projection_offsets"
                         " WHERE projection = $1 AND topic = $2",
                         2, params, &res);
    for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
        long p = strtol(tl_pg_get(res, r, 0), NULL, 10);
        if (p >= 0 && p < l->nparts)
            l->archived[p] = strtoll(tl_pg_get(res, r, 1), NULL, 10);
    }
    *pos = (bl_pos_t){0};
    for (int p = 0; p < l->nparts; p++) {
        pos->end += l->end[p];
        pos->archived += l->archived[p];
        if (l->end[p] - l->archived[p] > pos->worst)
            pos->worst = l->end[p] - l->archived[p];
        /* the audit consumer stops rather than skip (auto.offset.reset=error),
         * so this is not a silent loss, but the pacing is too loose */
        if (!err && l->start[p] > l->archived[p] && !l->warned) {
            fprintf(stderr,
                    "backlog: warning: %s:%d: the broker dropped offsets below %lld before"
                    " the archive stored them (it is at %lld); pace more tightly\n",
                    l->topic, p, (long long)l->start[p], (long long)l->archived[p]);
            l->warned = true;
        }
    }
    tl_pg_res_free(res);
    return err;
}

static void on_notify(void *user, const char *channel, const char *payload)
{
    (void)user, (void)channel, (void)payload; /* only a wake-up: bl_look reads the table */
}

/* Waits until the archive is at most max_lag behind the log end, and at most
 * max_lag / nparts on every partition. Fails when it makes no progress for
 * BL_STALL_S. */
static tl_err_t bl_wait(bl_log_t *l, int64_t max_lag, bl_pos_t *pos)
{
    tl_err_t err = TL_OK;
    int64_t part_max = max_lag / l->nparts, last = -1;
    int64_t peak = 0;
    double since = tl_bench_now_s();
    for (;;) {
        if ((err = bl_look(l, pos)))
            break;
        if (pos->worst > peak)
            peak = pos->worst;
        pos->peak = peak;
        if (pos->end - pos->archived <= max_lag && pos->worst <= part_max)
            break;
        double now = tl_bench_now_s();
        if (pos->archived != last) {
            last = pos->archived;
            since = now;
        } else if (now - since > BL_STALL_S) {
            fprintf(stderr,
                    "backlog: the audit archive made no progress on %s for %d s"
                    " (archived %lld of %lld): is trialog-projector audit running on"
                    " this schema?\n",
                    l->topic, BL_STALL_S, (long long)pos->archived, (long long)pos->end);
            err = TL_ERR_UNAVAILABLE;
            break;
        }
        if ((err = tl_pg_wait_notify(l->pg, BL_POLL_MS, on_notify, NULL)))
            break;
    }
    return err;
}

/* One enrolment as the gateway makes it (routes_participants.c, command.c). */
static tl_err_t send_one(tl_producer_t *prod, const char *study, const char *site, const char *tag,
                         long i, int32_t today)
{
    tl_uuid_t pid;
    tl_event_meta_t meta = {.actor_id = "bench",
                            .actor_role = "admin",
                            .site_id = site,
                            .source = "bench",
                            .stream_version = 1};
    char code[48];
    tl_err_t err = tl_uuid_v7(&pid);
    if (!err)
        err = tl_uuid_v7(&meta.event_id);
    if (err)
        return err;
    meta.correlation_id = meta.event_id.s;
    snprintf(code, sizeof code, "BL%s-%08ld", tag, i);
    json_t *payload =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:[]}", "participant_id", pid.s, "study_id", study,
                  "participant_code", code, "birth_year", 1940 + (int)(i % 60), "sex",
                  i % 2 ? "M" : "F", "consent_date", (int)today, "baseline_date", (int)today, "schedule");
    if (!payload)
        return TL_ERR_NOMEM;
    err = tl_producer_send(prod, "ParticipantEnrolled", pid.s, payload, &meta, NULL);
    json_decref(payload);
    return err;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *dsn = NULL, *schema = NULL;
    const tl_config_var_t vars[] = {
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, NULL, 0, 1000, false, "Kafka bootstrap servers",
         &brokers},
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true, "libpq connection string",
         &dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, TL_PG_SCHEMA_MAX, false, "database schema", &schema},
    };
    static const struct option opts[] = {
        {"study", required_argument, NULL, 's'},
        {"site", required_argument, NULL, 'S'},
        {"events", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tl_uuid_t study = {{0}}, site = {{0}};
    bool have_study = false, have_site = false;
    long n = 1000000;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            have_study = !tl_uuid_parse(optarg, &study);
            break;
        case 'S':
            have_site = !tl_uuid_parse(optarg, &site);
            break;
        case 'n':
            if (!parse_count(optarg, &n)) {
                fprintf(stderr, "backlog: --events must be an integer from 1 to %ld\n",
                        BL_EVENTS_MAX);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || !have_study || !have_site) {
        if (optind < argc)
            fprintf(stderr, "backlog: unexpected argument\n");
        else
            fprintf(stderr, "backlog: --study and --site must be UUIDs\n");
        usage(stderr);
        return 2;
    }
    if (tl_config_load(vars, sizeof vars / sizeof vars[0], NULL, stderr))
        return 2;
    tl_log_init("bench-backlog", TL_LOG_INFO);

    bl_log_t l = {0};
    tl_registry_t *reg = NULL;
    tl_producer_t *prod = NULL;
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_connect(dsn, schema, "bench-backlog", &l.pg);
    if (err)
        die("could not connect to PostgreSQL", err);
    /* tl_pg_connect makes a missing schema: say so rather than fail later */
    if ((err = tl_pg_exec(l.pg, "SELECT to_regclass('projection_offsets') IS NOT NULL", 0, NULL,
                          &res)))
        die("could not read the schema", err);
    if (strcmp(tl_pg_get(res, 0, 0) ? tl_pg_get(res, 0, 0) : "f", "t")) {
        fprintf(stderr, "backlog: schema %s has no Trialog tables (TRIALOG_PG_SCHEMA?)\n", schema);
        exit(1);
    }
    tl_pg_res_free(res);
    res = NULL;
    if ((err = tl_registry_open(l.pg, &reg)))
        die("could not open the schema registry", err);
    const tl_event_type_t *t = tl_registry_type(reg, "ParticipantEnrolled");
    if (!t)
        die("ParticipantEnrolled is not a known event type", TL_ERR_INTERNAL);
    l.topic = t->topic;
    if ((err = tl_pg_listen(l.pg, TL_NOTIFY_CHANNEL)))
        die("could not listen for archive commits", err);
    if ((err = tl_kafka_producer_new(brokers, BL_PRODUCE_TIMEOUT_MS, &l.kafka)) ||
        (err = tl_producer_new(l.kafka, reg, &prod)))
        die("could not create the producer", err);
    l.nparts = tl_kafka_producer_partitions(l.kafka, l.topic, BL_BROKER_TIMEOUT_MS);
    if (l.nparts < 1) {
        fprintf(stderr, "backlog: the broker does not answer for topic %s\n", l.topic);
        exit(1);
    }
    l.start = calloc((size_t)l.nparts, sizeof *l.start);
    l.end = calloc((size_t)l.nparts, sizeof *l.end);
    l.archived = calloc((size_t)l.nparts, sizeof *l.archived);
    if (!l.start || !l.end || !l.archived)
        die("out of memory", TL_ERR_NOMEM);
    int scale = l.nparts < BL_PARTITIONS ? l.nparts : BL_PARTITIONS;
    const int64_t max_lag = (int64_t)BL_MAX_LAG * scale / BL_PARTITIONS;
    const long chunk = (long)BL_CHUNK * scale / BL_PARTITIONS;

    /* the participant codes of one run: unique per process and second */
    char tag[32];
    snprintf(tag, sizeof tag, "%lx.%ld", (unsigned long)time(NULL), (long)getpid());
    const int32_t today = tl_date_today();
    bl_pos_t start = {0}, pos = {0};
    if ((err = bl_wait(&l, max_lag, &start)))
        die("the archive is behind the log", err);
    double t0 = tl_bench_now_s();
    for (long done = 0; done < n;) {
        long upto = done + chunk < n ? done + chunk : n;
        for (; done < upto; done++)
            if ((err = send_one(prod, study.s, site.s, tag, done, today)))
                die("produce failed", err);
        if ((err = tl_kafka_producer_flush(l.kafka, BL_FLUSH_TIMEOUT_MS)))
            die("not every event was delivered", err);
        if ((err = bl_wait(&l, done < n ? max_lag : 0, &pos)))
            die("waiting for the archive failed", err);
        tl_log_info("backlog_progress",
                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "produced", (json_int_t)done,
                              "events", (json_int_t)n, "end_offsets", (json_int_t)pos.end,
                              "archived", (json_int_t)pos.archived, "worst_partition_lag",
                              (json_int_t)pos.worst, "peak_partition_lag", (json_int_t)pos.peak));
    }
    double secs = tl_bench_now_s() - t0;
    if (pos.end - start.end != n)
        fprintf(stderr,
                "backlog: note: the log grew by %lld, not %ld: another producer wrote to %s"
                " meanwhile\n",
                (long long)(pos.end - start.end), n, l.topic);
    printf("%-12s %10s %12s %14s %14s\n", "events", "seconds", "events/s", "end offsets",
           "archived");
    printf("%-12ld %10.2f %12.0f %14lld %14lld\n", n, secs, (double)n / secs, (long long)pos.end,
           (long long)pos.archived);
    printf("{\"events\":%ld,\"seconds\":%.2f,\"rate\":%.0f,\"end_offsets\":%lld}\n", n, secs,
           (double)n / secs, (long long)pos.end);
    free(l.start);
    free(l.end);
    free(l.archived);
    tl_producer_destroy(prod);
    tl_kafka_producer_destroy(l.kafka);
    tl_registry_destroy(reg);
    tl_pg_destroy(l.pg);
    return 0;
}
