/* Logs never hold payloads, tokens or PHI. This test runs last (a ctest
 * fixture cleanup of every integration test): it loads the demo study through
 * the API with the demo's own script, sends hostile requests carrying
 * sentinel values, then scans the logs of every integration test of the run
 * — and its own — for the demo's field values, the sentinels, the passwords
 * the tests set and every token any test was given. */
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tl_buf.h"
#include "tl_schemas.h"

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "log_scan");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

#define SENTINEL_NAME "Jane Sentinel-Doe"
#define SENTINEL_TOKEN "tlk_5555555555555555555555555555555555555555555555555555555555555555"
#define SENTINEL_PASSWORD "sentinel signing words"

typedef struct {
    char *items[512];
    size_t n;
} needles_t;

/* A whole file, NUL-terminated. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    tl_buf_t b;
    tl_buf_init(&b, (size_t)1 << 30);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(tl_buf_append(&b, chunk, n), TL_OK);
    fclose(f);
    assert_int_equal(tl_buf_append(&b, "", 1), TL_OK);
    *len = b.len - 1;
    return b.data; /* the caller frees */
}

static void add(needles_t *nd, const char *s, size_t len)
{
    if (nd->n < sizeof nd->items / sizeof nd->items[0])
        nd->items[nd->n++] = strndup(s, len);
}

/* The values the demo sends: every literal JSON string value in its script
 * of at least 5 characters (shorter ones, like site codes, are not
 * distinctive) that is not part of an event type's name (which logs name by
 * design), and its participant codes' prefix. */
static void demo_values(needles_t *nd)
{
    size_t len = 0;
    char *script = slurp(TL_SOURCE_DIR "/scripts/demo-seed.sh", &len);
    regex_t re;
    assert_int_equal(regcomp(&re, "\"[a-z_]+\":\"([^\"$\\\\]{5,})\"", REG_EXTENDED), 0);
    regmatch_t m[2];
    size_t before = nd->n;
    for (const char *p = script; !regexec(&re, p, 2, m, 0); p += m[0].rm_eo) {
        char *v = strndup(p + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
        bool vocabulary = false; /* "Baseline" is in the event type BaselineChanged */
        for (size_t i = 0; i < tl_schema_source_count; i++)
            vocabulary |= strstr(tl_schema_sources[i].name, v) != NULL;
        if (!vocabulary)
            add(nd, v, strlen(v));
        free(v);
    }
    regfree(&re);
    free(script);
    assert_true(nd->n - before >= 10); /* names, descriptions, reasons */
    add(nd, "AMD-000", 7);
}

/* Calls fn on every file root/<test>/<name><suffix>; returns how many. */
static size_t each_file(const char *root, const char *suffix,
                        void (*fn)(const char *path, needles_t *nd), needles_t *nd)
{
    size_t files = 0, slen = strlen(suffix);
    DIR *d = opendir(root);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        DIR *sub = e->d_name[0] == '.' ? NULL : opendir(dir);
        if (!sub)
            continue;
        struct dirent *f;
        while ((f = readdir(sub))) {
            size_t n = strlen(f->d_name);
            if (n <= slen || strcmp(f->d_name + n - slen, suffix))
                continue;
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
            fn(path, nd);
            files++;
        }
        closedir(sub);
    }
    closedir(d);
    return files;
}

/* A token a test was given (its <role>.token file) becomes a needle. */
static void add_token(const char *path, needles_t *nd)
{
    char tok[128];
    FILE *fp = fopen(path, "r");
    if (fp && fgets(tok, sizeof tok, fp))
        add(nd, tok, strcspn(tok, "\n"));
    if (fp)
        fclose(fp);
}

/* One plain lowercase word ("current", a demo answer): Kafka's own English
 * uses such words, so in a broker's log only distinctive values count. */
static bool plain_word(const char *v)
{
    for (; *v; v++)
        if (*v < 'a' || *v > 'z')
            return false;
    return true;
}

/* Fails naming the log and the kind of value found in it (not the value).
 * The Kafka nodes' logs (broker-*.log) are Kafka's, which logs no records;
 * they are scanned all the same, for every token and distinctive value. */
static void scan_log(const char *path, needles_t *nd)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    const char *base = strrchr(path, '/');
    bool kafka = !strncmp(base ? base + 1 : path, "broker-", 7);
    if (memmem(text, len, "tlk_", 4) || memmem(text, len, "Bearer", 6))
        fail_msg("%s holds a bearer token", path);
    for (size_t i = 0; i < nd->n; i++)
        if (!(kafka && plain_word(nd->items[i])) &&
            memmem(text, len, nd->items[i], strlen(nd->items[i])))
            fail_msg("%s holds needle %zu (%zu characters)", path, i, strlen(nd->items[i]));
    free(text);
}

static long post(const char *path, const char *body, const char *const *headers)
{
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, headers, true);
    long st = r.status;
    tl_http_free(&r);
    return st;
}

static void test_logs_hold_no_payloads_tokens_or_phi(void **state)
{
    (void)state;
    /* the demo, through its own script */
    char study[40], site[40];
    tl_stack_demo_seed(&stack, study, site);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM participants", 7, 30000));

    /* hostile requests carrying sentinels: refused, and never logged */
    assert_int_equal(post("/v1/studies",
                          "{\"protocol_id\":\"S-1\",\"name\":\"" SENTINEL_NAME "\",\"x\":1}", NULL),
                     400);
    assert_int_equal(post("/v1/studies", "{\"name\":\"" SENTINEL_NAME "\",", NULL), 400);
    char path[200];
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    assert_int_equal(post(path,
                          "{\"participant_code\":\"" SENTINEL_NAME "\",\"site_id\":\"nope\","
                          "\"consent_date\":\"2026-02-30\",\"baseline_date\":\"x\"}",
                          NULL),
                     400);
    tl_http_resp_t r =
        tl_http(&stack, "GET", "/v1/audit?type=Jane%20Sentinel-Doe", NULL, NULL, true);
    assert_int_equal(r.status, 400);
    tl_http_free(&r);
    r = tl_http_as(&stack, SENTINEL_TOKEN, "GET", "/v1/me", NULL, NULL);
    assert_int_equal(r.status, 401);
    tl_http_free(&r);
    /* a signing credential set the two-person way (enrolment, approval
     * with a one-time code, then the clinician's own request), then a
     * wrong signing password: none of it in any log */
    char clin[80], form[200];
    tl_stack_token(&stack, "clinician", site, clin);
    tl_stack_signing_credential(&stack, clin, SENTINEL_PASSWORD);
    snprintf(form, sizeof form, "/v1/forms/%s/sign", site); /* no such form */
    r = tl_http_as(&stack, clin, "POST", form,
                   "{\"meaning\":\"approved\",\"password\":\"" SENTINEL_NAME "\",\"revision\":1}",
                   NULL);
    tl_http_free(&r);
    /* everything settled in every consumer */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM audit_log"
                              " WHERE event_type = 'org.trialog.SigningCredentialSet'",
                              2, 20000));

    needles_t nd = {0};
    demo_values(&nd);
    add(&nd, SENTINEL_NAME, strlen(SENTINEL_NAME));
    add(&nd, SENTINEL_PASSWORD, strlen(SENTINEL_PASSWORD));
    add(&nd, "correct horse battery staple", 28); /* test_authz's credentials */
    add(&nd, "my own secret words", 19);
    char root[700];
    snprintf(root, sizeof root, "%s/tests/logs", TL_BIN_DIR);
    each_file(root, ".token", add_token, &nd);
    size_t logs = each_file(root, ".log", scan_log, &nd);
    assert_true(logs >= 6); /* at least this stack's broker, consumers and gateway */
    print_message("scanned %zu logs for %zu values\n", logs, nd.n);
    for (size_t i = 0; i < nd.n; i++)
        free(nd.items[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logs_hold_no_payloads_tokens_or_phi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
