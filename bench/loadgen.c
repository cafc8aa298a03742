/* trialog-loadgen: many concurrent keep-alive HTTP connections against the
 * gateway, bounded in count and time, loopback only.
 *
 *   trialog-loadgen --url http://127.0.0.1:8080 --token T --study S --site X
 *                   [--conns 64] [--seconds 10] [--max N] [--rate R] [--async]
 *                   [--mix enrol|read|visit|schedule|me|history|token|form|ceiling]
 *                   [--ids FILE]
 *
 * enrol:   POST /v1/studies/S/participants with unique codes (201, or 202 with
 *          --async: Prefer: respond-async)
 * read:    GET /v1/participants/{id} over participants it enrols first (or
 *          those of --ids FILE: one participant id a line, already enrolled;
 *          so do schedule and history)
 * visit:   POST /v1/participants/{id}/visits/{v}/complete, in window, over
 *          participants it enrols first (the study needs the visit types
 *          Baseline, Month 1, Month 3 and Month 6 at days 0, 30, 90, 180):
 *          each participant's visits in order, at most 4 per participant;
 *          with --async only the baseline visits: a follow-up sent before its
 *          baseline is projected is refused (422), as it would be for a client
 * schedule: GET /v1/participants/{id}/schedule over participants it enrols
 * me:      GET /v1/me: an authenticated request and nothing else
 * history: GET /v1/participants/{id}/history over participants it enrols
 *          (folded from the audit archive)
 * token:   POST /v1/principals/{id}/tokens over principals it creates first
 *          (an admin issuing tokens: TokenIssued on trialog.access.v1, 201
 *          once the access projection has it; one principal's commands are
 *          serialised like one participant's, so they are spread over many)
 * form:    POST /v1/participants/{id}/visits/Baseline/forms, one form of the
 *          template bench_form (the study must have it: six typed fields)
 *          per participant, over participants it enrols and whose baselines
 *          it completes first
 * ceiling: the enrol request's body POSTed to --url itself, for
 *          trialog-bench-http (study and site are then any text)
 * --rate R paces the measured load to R requests/s over all connections (0,
 * the default: each connection sends its next request as soon as it has an
 * answer); latencies are still from each request's own send.
 * Prints one JSON line: requests, ok, errors, rate, p50/p99/p999 in ms. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_CONNS 1024
#define MAX_SECONDS 600
#define MAX_LATENCIES 5000000

typedef struct {
    CURL *h;
    struct curl_slist *headers;
    char url[512];
    char body[512];
    tl_bench_body_t resp;
    double started;
} conn_t;

typedef enum { MIX_ENROL, MIX_READ, MIX_VISIT, MIX_SCHEDULE, MIX_ME, MIX_HISTORY, MIX_TOKEN,
               MIX_FORM, MIX_CEILING, MIX_PRINCIPAL, MIX_BASELINE, MIX_COUNT } mix_t;
/* MIX_PRINCIPAL: creating the principals of the token mix; MIX_BASELINE:
 * completing the baselines of the form mix (neither is a mix of its own) */
static const char *const mix_names[MIX_COUNT] = {
    "enrol", "read", "visit", "schedule", "me", "history", "token", "form", "ceiling", "", ""};

static struct {
    const char *base, *token, *study, *site;
    int conns, seconds;
    long max;
    double rate; /* requests/s over all connections; 0: as fast as they answer */
    bool async;
    mix_t mix;
    const char *ids_file; /* participants to read instead of enrolling them */
    char run[16];
} opt = {.conns = 64, .seconds = 10, .max = 1000000};

/* Mixes that act on participants: enrolled first, not measured. */
static bool over_participants(mix_t m)
{
    return m == MIX_READ || m == MIX_VISIT || m == MIX_SCHEDULE || m == MIX_HISTORY ||
           m == MIX_FORM;
}

/* the visits of the bench protocol, completed on their due dates (baseline
 * 2026-01-01) */
static const char *const visit_names[] = {"Baseline", "Month%201", "Month%203", "Month%206"};
static const char *const visit_dates[] = {"2026-01-01", "2026-01-31", "2026-04-01", "2026-06-30"};

static double *lat;
static long nlat, issued, ok, errors;
static char (*ids)[40];
static long nids;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Mixes that only read participants: they may be given existing ones. */
static bool reads_participants(mix_t m)
{
    return m == MIX_READ || m == MIX_SCHEDULE || m == MIX_HISTORY;
}

/* Reads up to 100,000 participant ids, one a line, into ids. */
static bool load_ids(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[128];
    while (f && nids < 100000 && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        if (n != 36) /* a UUID's text; anything else is not an id */
            continue;
        snprintf(ids[nids++], 40, "%.36s", line);
    }
    if (f)
        fclose(f);
    return f && nids > 0;
}

static long visits_per_participant(void)
{
    return opt.async ? 1 : 4;
}

/* Prepares connection c's next request. */
static void next_request(conn_t *c, long seq)
{
    c->resp.len = 0;
    c->resp.data[0] = '\0';
    static const char *const read_suffix[MIX_COUNT] = {
        [MIX_READ] = "", [MIX_SCHEDULE] = "/schedule", [MIX_HISTORY] = "/history?limit=50"};
    if (read_suffix[opt.mix]) {
        snprintf(c->url, sizeof c->url, "%s/v1/participants/%s%s", opt.base, ids[seq % nids],
                 read_suffix[opt.mix]);
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    } else if (opt.mix == MIX_ME) {
        snprintf(c->url, sizeof c->url, "%s/v1/me", opt.base);
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    } else if (opt.mix == MIX_PRINCIPAL) {
        snprintf(c->url, sizeof c->url, "%s/v1/principals", opt.base);
        /* an analyst is granted the studies it reads (docs/SECURITY.md) */
        snprintf(c->body, sizeof c->body,
                 "{\"name\":\"bench-%s-%ld\",\"role\":\"analyst\",\"study_ids\":[\"%s\"]}",
                 opt.run, seq, opt.study);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    } else if (opt.mix == MIX_TOKEN) {
        snprintf(c->url, sizeof c->url, "%s/v1/principals/%s/tokens", opt.base, ids[seq % nids]);
        snprintf(c->body, sizeof c->body, "{\"expires_in_days\":1,\"label\":\"bench %ld\"}",
                 seq);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    } else if (opt.mix == MIX_FORM) {
        snprintf(c->url, sizeof c->url, "%s/v1/participants/%s/visits/Baseline/forms", opt.base,
                 ids[seq % nids]);
        snprintf(c->body, sizeof c->body,
                 "{\"template\":\"bench_form\",\"answers\":{\"va_od\":%ld,\"va_os\":%ld,"
                 "\"iop_od\":%ld.5,\"lens\":\"phakic\",\"findings\":[\"drusen\"],"
                 "\"exam_date\":\"2026-01-01\"}}",
                 40 + seq % 50, 45 + seq % 50, 10 + seq % 20);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    } else if (opt.mix == MIX_VISIT || opt.mix == MIX_BASELINE) {
        /* participant seq % nids, its visit seq / nids: the one before was
         * sent nids requests earlier, long done with nids >> connections */
        long v = opt.mix == MIX_BASELINE ? 0 : (seq / nids) % visits_per_participant();
        snprintf(c->url, sizeof c->url, "%s/v1/participants/%s/visits/%s/complete", opt.base,
                 ids[seq % nids], visit_names[v]);
        snprintf(c->body, sizeof c->body, "{\"actual_date\":\"%s\"}", visit_dates[v]);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    } else {
        if (opt.mix == MIX_CEILING)
            snprintf(c->url, sizeof c->url, "%s/", opt.base);
        else
            snprintf(c->url, sizeof c->url, "%s/v1/studies/%s/participants", opt.base,
                     opt.study);
        snprintf(c->body, sizeof c->body,
                 "{\"participant_code\":\"L%s-%08ld\",\"site_id\":\"%s\","
                 "\"consent_date\":\"2026-01-01\",\"baseline_date\":\"2026-01-01\"}",
                 opt.run, seq, opt.site);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
    }
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    c->started = now_s();
}

/* When the next request may be sent: with opt.rate, request k not before
 * k / rate seconds from start; unpaced, at once (0). */
static double next_slot(double start)
{
    return opt.rate ? start + (double)issued / opt.rate : 0;
}

/* Runs the load; when collect, keeps the ids answered (for reads later).
 * With opt.rate, request k is not sent before k / rate seconds from the
 * start (a paced load: a connection that is free waits for its slot). */
static void run(int conns, int seconds, long max, bool collect)
{
    CURLM *m = curl_multi_init();
    conn_t *cs = calloc((size_t)conns, sizeof *cs);
    conn_t **idle = calloc((size_t)conns, sizeof *idle);
    int nidle = 0, inflight = 0;
    double start = now_s(), deadline = start + seconds;
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", opt.token);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conns);
    for (int i = 0; cs && idle && i < conns; i++) {
        conn_t *c = &cs[i];
        c->h = curl_easy_init();
        c->headers = curl_slist_append(NULL, auth);
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        if (opt.async)
            c->headers = curl_slist_append(c->headers, "Prefer: respond-async");
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, tl_bench_body_write);
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->resp);
        curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 30L);
        idle[nidle++] = c;
    }
    for (;;) {
        double now = now_s();
        while (nidle && issued < max && now < deadline && now >= next_slot(start)) {
            conn_t *c = idle[--nidle];
            next_request(c, issued++);
            curl_multi_add_handle(m, c->h);
            inflight++;
        }
        if (!inflight && (!nidle || issued >= max || now >= deadline))
            break;
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            conn_t *c = NULL;
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status >= 200 && status < 300) {
                ok++;
                if (nlat < MAX_LATENCIES)
                    lat[nlat++] = now_s() - c->started;
                const char *id = strstr(c->resp.data, "\"id\":\"");
                if (collect && id && nids < 100000)
                    snprintf(ids[nids++], 40, "%.36s", id + 6);
            } else {
                errors++;
            }
            curl_multi_remove_handle(m, c->h);
            idle[nidle++] = c;
            inflight--;
        }
        /* wait for a reply, unless a free connection may send now; paced,
         * wake for the next slot */
        int wait_ms = 100;
        if (nidle && issued < max && now_s() < deadline) {
            double until = next_slot(start) - now_s();
            if (until < 0.1)
                wait_ms = until > 0 ? (int)(until * 1000) + 1 : 0;
        }
        if (wait_ms > 0)
            curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    for (int i = 0; cs && i < conns; i++) {
        curl_easy_cleanup(cs[i].h);
        curl_slist_free_all(cs[i].headers);
    }
    free(cs);
    free(idle);
    curl_multi_cleanup(m);
}

static bool loopback(const char *url)
{
    return !strncmp(url, "http://127.", 11) || !strncmp(url, "http://localhost", 16) ||
           !strncmp(url, "http://[::1]", 12);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"url", 1, NULL, 'u'},   {"token", 1, NULL, 't'}, {"study", 1, NULL, 's'},
        {"site", 1, NULL, 'x'},  {"conns", 1, NULL, 'c'}, {"seconds", 1, NULL, 'd'},
        {"max", 1, NULL, 'm'},   {"async", 0, NULL, 'a'}, {"mix", 1, NULL, 'k'},
        {"rate", 1, NULL, 'r'},  {"ids", 1, NULL, 'i'},   {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'u': opt.base = optarg; break;
        case 't': opt.token = optarg; break;
        case 's': opt.study = optarg; break;
        case 'x': opt.site = optarg; break;
        case 'c': opt.conns = (int)strtol(optarg, NULL, 10); break;
        case 'd': opt.seconds = (int)strtol(optarg, NULL, 10); break;
        case 'm': opt.max = strtol(optarg, NULL, 10); break;
        case 'a': opt.async = true; break;
        case 'r': opt.rate = strtod(optarg, NULL); break;
        case 'i': opt.ids_file = optarg; break;
        case 'k':
            for (opt.mix = 0; opt.mix < MIX_COUNT && strcmp(optarg, mix_names[opt.mix]); opt.mix++)
                ;
            if (opt.mix >= MIX_CEILING + 1)
                return 2;
            break;
        default: return 2;
        }
    }
    if (!opt.base || !opt.token || !opt.study || !opt.site || opt.conns < 1 ||
        opt.conns > MAX_CONNS || opt.seconds < 1 || opt.seconds > MAX_SECONDS || opt.max < 1 ||
        !(opt.rate >= 0 && opt.rate <= 1e6) || (opt.ids_file && !reads_participants(opt.mix))) {
        fprintf(stderr, "usage: trialog-loadgen --url U --token T --study S --site X [--conns 1..%d]"
                        " [--seconds 1..%d] [--max N] [--rate 0..1000000] [--async]"
                        " [--mix enrol|read|visit|schedule|me|history|token|form|ceiling]"
                        " [--ids FILE (read, schedule, history)]\n",
                MAX_CONNS, MAX_SECONDS);
        return 2;
    }
    if (!loopback(opt.base)) {
        fprintf(stderr, "loadgen: only loopback targets (127.0.0.0/8, localhost, [::1])\n");
        return 2;
    }
    snprintf(opt.run, sizeof opt.run, "%x", (unsigned)(time(NULL) ^ getpid()));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    lat = malloc(MAX_LATENCIES * sizeof *lat);
    ids = calloc(100000, sizeof *ids);
    if (!lat || !ids) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    if (opt.ids_file && !load_ids(opt.ids_file)) {
        fprintf(stderr, "loadgen: no participant ids in %s\n", opt.ids_file);
        return 1;
    }
    if ((over_participants(opt.mix) && !opt.ids_file) || opt.mix == MIX_TOKEN) {
        /* participants (principals) to act on: enrolled (created) first, not measured */
        mix_t mix = opt.mix;
        bool a = opt.async;
        double rate = opt.rate; /* the preparation is not paced */
        opt.rate = 0;
        long per = visits_per_participant();
        long n = mix == MIX_VISIT  ? (opt.max + per - 1) / per
                 : mix == MIX_FORM ? opt.max
                 : mix == MIX_TOKEN ? 256
                                    : 2000;
        opt.mix = mix == MIX_TOKEN ? MIX_PRINCIPAL : MIX_ENROL;
        opt.async = false;
        run(opt.conns < 64 ? opt.conns : 64, 120, n < 20000 ? n : 20000, true);
        if (mix == MIX_FORM) { /* forms are entered for completed visits */
            opt.mix = MIX_BASELINE;
            issued = 0;
            run(opt.conns < 64 ? opt.conns : 64, 120, nids, false);
        }
        opt.mix = mix;
        opt.async = a;
        opt.rate = rate;
        nlat = issued = ok = errors = 0;
        if (!nids) {
            fprintf(stderr, "loadgen: could not enrol participants to read\n");
            return 1;
        }
    }
    double t0 = now_s();
    /* each participant's visits once */
    long most = opt.mix == MIX_VISIT  ? visits_per_participant() * nids
                : opt.mix == MIX_FORM ? nids /* one form per participant's baseline */
                                      : opt.max;
    run(opt.conns, opt.seconds, most < opt.max ? most : opt.max, false);
    double secs = now_s() - t0;
    tl_bench_sort(lat, nlat);
    printf("{\"mix\":\"%s\",\"async\":%s,\"conns\":%d,\"seconds\":%.1f,\"requests\":%ld,"
           "\"ok\":%ld,\"errors\":%ld,\"rate\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
           "\"p999_ms\":%.2f}\n",
           mix_names[opt.mix], opt.async ? "true" : "false", opt.conns, secs, issued, ok,
           errors, (double)ok / secs, tl_bench_percentile(lat, nlat, 0.50, 1000),
           tl_bench_percentile(lat, nlat, 0.99, 1000), tl_bench_percentile(lat, nlat, 0.999, 1000));
    free(lat);
    free(ids);
    curl_global_cleanup();
    return errors && !ok ? 1 : 0;
}
