/* trialog-bench-lag: end-to-end lag, from a command sent until its event is
 * visible in every projection (participants and the audit archive), while
 * something else loads the gateway.
 *
 *   trialog-bench-lag --url U --token T --study S --site X [--seconds 10]
 *                     [--interval-ms 100]
 *
 * Every interval it enrols one participant with Prefer: respond-async (the
 * 202 names the event's partition and offset), then waits, through the
 * gateway's own read-your-writes waiter (NOTIFY after every committed batch),
 * until both projections are past that offset. Env: TRIALOG_PG_DSN and
 * TRIALOG_PG_SCHEMA of the stack. Loopback only. One JSON line: probes,
 * p50/p99/max in ms, how many timed out (10 s), and where the time went:
 * p50/p99 until the 202 ("accepted") and until the participants projection
 * had it ("participants"), both from the send. Not a test. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "bench_util.h"
#include "participants_store.h"
#include "waiter.h"

#define MAX_PROBES 100000
#define WAIT_MS 10000

static long parse_long(const char *s, long lo, long hi)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return (*s && !*end && v >= lo && v <= hi) ? v : -1;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"url", 1, NULL, 'u'},     {"token", 1, NULL, 't'},       {"study", 1, NULL, 's'},
        {"site", 1, NULL, 'x'},    {"seconds", 1, NULL, 'd'},     {"interval-ms", 1, NULL, 'i'},
        {NULL, 0, NULL, 0}};
    const char *base = NULL, *token = NULL, *study = NULL, *site = NULL;
    long seconds = 10, interval = 100;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'u': base = optarg; break;
        case 't': token = optarg; break;
        case 's': study = optarg; break;
        case 'x': site = optarg; break;
        case 'd': seconds = parse_long(optarg, 1, 600); break;
        case 'i': interval = parse_long(optarg, 10, 10000); break;
        default: return 2;
        }
    }
    const char *dsn = getenv("TRIALOG_PG_DSN"), *schema = getenv("TRIALOG_PG_SCHEMA");
    if (!base || !token || !study || !site || seconds < 0 || interval < 0 || !dsn || !schema) {
        fprintf(stderr, "usage: TRIALOG_PG_DSN=... TRIALOG_PG_SCHEMA=... trialog-bench-lag"
                        " --url U --token T --study S --site X [--seconds 1..600]"
                        " [--interval-ms 10..10000]\n");
        return 2;
    }
    if (strncmp(base, "http://127.", 11) && strncmp(base, "http://localhost", 16)) {
        fprintf(stderr, "bench-lag: only loopback targets\n");
        return 2;
    }
    tl_waiter_t *w = NULL;
    tl_bench_check(tl_waiter_new(dsn, schema, &w), "waiter");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    char url[512], auth[600], body[512], run[16];
    snprintf(url, sizeof url, "%s/v1/studies/%s/participants", base, study);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(run, sizeof run, "%x", (unsigned)(time(NULL) ^ getpid()));
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Prefer: respond-async");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tl_bench_body_write);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    double *lat = calloc(MAX_PROBES, sizeof *lat), *acc = calloc(MAX_PROBES, sizeof *acc),
           *parts = calloc(MAX_PROBES, sizeof *parts);
    long n = 0, timeouts = 0, failed = 0;
    /* the waiter's first read of the projections' progress */
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL);
    double end = tl_bench_now_s() + (double)seconds;
    for (long seq = 0; lat && acc && parts && tl_bench_now_s() < end && n < MAX_PROBES; seq++) {
        double t0 = tl_bench_now_s();
        tl_bench_body_t resp = {.len = 0};
        snprintf(body, sizeof body,
                 "{\"participant_code\":\"LAG%s-%08ld\",\"site_id\":\"%s\","
                 "\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
                 run, seq, site);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        long status = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        double t_acc = tl_bench_now_s() - t0;
        json_t *j = rc == CURLE_OK && status == 202 ? json_loads(resp.data, 0, NULL) : NULL;
        const char *topic = NULL;
        json_int_t part = -1, off = -1;
        if (!j || json_unpack(j, "{s:{s:s, s:I, s:I}}", "log", "topic", &topic, "partition",
                              &part, "offset", &off)) {
            failed++;
        } else if (tl_waiter_wait(w, TL_PROJECTION_PARTICIPANTS, topic, (int32_t)part, off,
                                  WAIT_MS)) {
            timeouts++;
        } else {
            double t_part = tl_bench_now_s() - t0;
            if (tl_waiter_wait(w, TL_PROJECTION_AUDIT, topic, (int32_t)part, off, WAIT_MS)) {
                timeouts++;
            } else {
                acc[n] = t_acc;
                parts[n] = t_part;
                lat[n++] = tl_bench_now_s() - t0;
            }
        }
        json_decref(j);
        double next = t0 + (double)interval / 1000.0, now = tl_bench_now_s();
        if (next > now) {
            struct timespec ts = {(time_t)(next - now), (long)((next - now) * 1e9) % 1000000000L};
            nanosleep(&ts, NULL);
        }
    }
    tl_bench_sort(lat, n);
    double p50 = tl_bench_percentile(lat, n, 0.50, 1000);
    double p99 = tl_bench_percentile(lat, n, 0.99, 1000);
    double max = tl_bench_percentile(lat, n, 1.0, 1000);
    tl_bench_sort(acc, n);
    tl_bench_sort(parts, n);
    printf("{\"probes\":%ld,\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"timeouts\":%ld,"
           "\"failed\":%ld,\"accepted_p50_ms\":%.1f,\"accepted_p99_ms\":%.1f,"
           "\"participants_p50_ms\":%.1f,\"participants_p99_ms\":%.1f}\n",
           n, p50, p99, max, timeouts, failed, tl_bench_percentile(acc, n, 0.50, 1000),
           tl_bench_percentile(acc, n, 0.99, 1000), tl_bench_percentile(parts, n, 0.50, 1000),
           tl_bench_percentile(parts, n, 0.99, 1000));
    free(lat);
    free(acc);
    free(parts);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    tl_waiter_destroy(w);
    return n ? 0 : 1;
}
