/* A dataset release of a 200,000-answer study streams (issue 8): 200
 * participants, each with five forms of 200 integer fields at baseline, go
 * in over HTTP; the release worker's peak resident memory (VmHWM) after
 * cutting them is compared with its peak after cutting an empty release of
 * the same study. Holding the rows, or the study's state, in memory would
 * take hundreds of MiB; streaming one participant at a time takes a few.
 * (Under the sanitizers, whose allocator keeps freed memory in quarantine,
 * the figure is printed and not judged.) */
#include "harness.h"
#include "release.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTICIPANTS 200
#define TEMPLATES 5
#define FIELDS 200
#define GROWTH_MAX_KIB (32 * 1024)

static tl_stack_t stack;
static char study[40], site[40], analyst[80];

static long vm_hwm_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* A release of the study at the log's end, waited for; its manifest's
 * answer rows. */
static long long release_rows(const char *name)
{
    char path[160], body[128];
    snprintf(path, sizeof path, "/v1/studies/%s/releases", study);
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    tl_http_resp_t r = tl_http_as(&stack, analyst, "POST", path, body, NULL);
    assert_int_equal(r.status, 201);
    json_t *rel = tl_stack_release_wait(&stack, analyst,
                                        json_string_value(json_object_get(r.body, "id")), 180000);
    tl_http_free(&r);
    json_t *tables = json_object_get(json_object_get(rel, "manifest"), "tables");
    long long rows =
        json_integer_value(json_object_get(json_array_get(tables, TL_RELEASE_ANSWERS), "rows"));
    json_decref(rel);
    return rows;
}

static void setup_study(void)
{
    char path[160];
    tl_stack_study(&stack, "BIG-2026", study, site);
    tl_stack_token(&stack, "analyst", study, analyst); /* granted this study */
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    tl_buf_t b;
    tl_buf_init(&b, 1 << 20);
    for (int t = 0; t < TEMPLATES; t++) {
        tl_buf_reset(&b);
        tl_buf_printf(&b, "{\"name\":\"panel%d\",\"title\":\"Panel %d\",\"fields\":[", t, t);
        for (int f = 0; f < FIELDS; f++)
            tl_buf_printf(&b, "%s{\"name\":\"m%03d\",\"type\":\"integer\",\"min\":0,\"max\":1000}",
                          f ? "," : "", f);
        tl_buf_puts(&b, "]}");
        tl_stack_post(&stack, path, b.data, 201, NULL);
    }
    /* a baseline that takes every panel */
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    tl_buf_reset(&b);
    tl_buf_puts(&b, "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                    "\"window_after_days\":0,\"required\":true,\"form_templates\":[");
    for (int t = 0; t < TEMPLATES; t++)
        tl_buf_printf(&b, "%s\"panel%d\"", t ? "," : "", t);
    tl_buf_puts(&b, "]}");
    tl_stack_post(&stack, path, b.data, 201, NULL);
    tl_buf_cleanup(&b);
}

static void setup_cohort(void)
{
    char path[160], code[32], pid[40];
    tl_buf_t b;
    tl_buf_init(&b, 1 << 20);
    for (int p = 0; p < PARTICIPANTS; p++) {
        snprintf(code, sizeof code, "BIG-%05d", p);
        assert_int_equal(tl_stack_enrol(&stack, study, site, code, false), 201);
        tl_http_resp_t r;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT id FROM %s.participants WHERE participant_code = '%s'",
                 stack.schema, code);
        tl_pg_res_t *res = NULL;
        assert_int_equal(tl_pg_exec(stack.pg, sql, 0, NULL, &res), TL_OK);
        snprintf(pid, sizeof pid, "%s", tl_pg_get(res, 0, 0));
        tl_pg_res_free(res);
        snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", pid);
        tl_stack_post(&stack, path, "{\"actual_date\":\"2026-01-01\"}", 200, NULL);
        snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", pid);
        for (int t = 0; t < TEMPLATES; t++) {
            tl_buf_reset(&b);
            tl_buf_printf(&b, "{\"template\":\"panel%d\",\"answers\":{", t);
            for (int f = 0; f < FIELDS; f++)
                tl_buf_printf(&b, "%s\"m%03d\":%d", f ? "," : "", f, (p * 7 + t * 13 + f) % 1000);
            tl_buf_puts(&b, "}}");
            r = tl_http(&stack, "POST", path, b.data, NULL, true);
            assert_int_equal(r.status, 201);
            tl_http_free(&r);
        }
    }
    tl_buf_cleanup(&b);
}

static void test_large_release_streams(void **state)
{
    (void)state;
    setup_study();
    assert_int_equal(release_rows("empty"), 0);
    long before = vm_hwm_kib(stack.releases);
    setup_cohort();
    assert_int_equal(release_rows("large"), (long long)PARTICIPANTS * TEMPLATES * FIELDS);
    long after = vm_hwm_kib(stack.releases);
    print_message("release worker peak RSS: %ld KiB after the empty release, %ld KiB after"
                  " %d answers\n",
                  before, after, PARTICIPANTS * TEMPLATES * FIELDS);
    if (!getenv("ASAN_OPTIONS"))
        assert_true(after - before <= GROWTH_MAX_KIB);
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "release_large");
    tl_stack_start_releases(&stack);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_large_release_streams)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
