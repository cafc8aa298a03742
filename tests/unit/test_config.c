/* Unit tests for tl_config: TRIALOG_* variables read through a fake getenv,
 * defaults, every kind of error (all reported in one call), and printing with
 * secrets masked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_config.h"

/* ---- fake environment ---- */

typedef struct {
    const char *name, *value;
} env_t;

static const env_t *fake_env;

static const char *fake_getenv(const char *name)
{
    for (const env_t *e = fake_env; e && e->name; e++)
        if (!strcmp(e->name, name))
            return e->value;
    return NULL;
}

/* ---- the configuration under test ---- */

static const char *c_brokers;
static const char *c_dsn;
static const char *c_token;
static long c_port;
static long c_threads;
static bool c_debug;
static bool c_async;

#define I_BROKERS 0
#define I_DSN 1
#define I_TOKEN 2
#define I_PORT 3
#define I_THREADS 4
#define I_DEBUG 5
#define I_ASYNC 6

static const tl_config_var_t vars[] = {
    {"TRIALOG_BROKERS", TL_CFG_STR, "localhost:9092", 0, 64, false, "Kafka bootstrap servers",
     &c_brokers},
    {"TRIALOG_PG_DSN", TL_CFG_STR, NULL, 0, 0, true, "PostgreSQL connection string", &c_dsn},
    {"TRIALOG_ADMIN_TOKEN", TL_CFG_STR, NULL, 0, 8, true, "bootstrap admin token", &c_token},
    {"TRIALOG_HTTP_PORT", TL_CFG_INT, "8080", 1, 65535, false, "HTTP port", &c_port},
    {"TRIALOG_THREADS", TL_CFG_INT, "4", 1, 64, false, "worker threads", &c_threads},
    {"TRIALOG_DEBUG", TL_CFG_BOOL, "false", 0, 0, false, "debug logging", &c_debug},
    {"TRIALOG_ASYNC", TL_CFG_BOOL, "true", 0, 0, false, "answer early", &c_async},
};
#define NVARS (sizeof vars / sizeof vars[0])

static int reset(void **state)
{
    (void)state;
    c_brokers = c_dsn = c_token = NULL;
    c_port = c_threads = -7;
    c_debug = c_async = false;
    fake_env = NULL;
    return 0;
}

/* An error stream in memory. */
typedef struct {
    char *text;
    size_t len;
    FILE *f;
} sink_t;

static void sink_open(sink_t *s)
{
    s->text = NULL;
    s->len = 0;
    s->f = open_memstream(&s->text, &s->len);
    assert_non_null(s->f);
}

/* Closes the stream; s->text holds everything written. */
static void sink_close(sink_t *s)
{
    assert_int_equal(fclose(s->f), 0);
    s->f = NULL;
    assert_non_null(s->text);
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Loads vars with env; returns the error text (free it) and its line count. */
static char *load(const env_t *env, tl_err_t want, size_t *lines)
{
    sink_t s;
    sink_open(&s);
    fake_env = env;
    assert_int_equal(tl_config_load(vars, NVARS, fake_getenv, s.f), want);
    sink_close(&s);
    *lines = count_lines(s.text);
    return s.text;
}

static const env_t required_only[] = {
    {"TRIALOG_PG_DSN", "host=/tmp dbname=trialog"},
    {"TRIALOG_ADMIN_TOKEN", "s3cret"},
    {NULL, NULL},
};

static void test_defaults_applied(void **state)
{
    (void)state;
    size_t lines;
    char *err = load(required_only, TL_OK, &lines);
    assert_int_equal(lines, 0);
    assert_string_equal(err, "");
    free(err);
    assert_string_equal(c_brokers, "localhost:9092");
    assert_string_equal(c_dsn, "host=/tmp dbname=trialog");
    assert_string_equal(c_token, "s3cret");
    assert_int_equal(c_port, 8080);
    assert_int_equal(c_threads, 4);
    assert_false(c_debug);
    assert_true(c_async);
}

static void test_environment_overrides(void **state)
{
    (void)state;
    static const env_t env[] = {
        {"TRIALOG_BROKERS", "k1:9092,k2:9092"},
        {"TRIALOG_PG_DSN", "dsn"},
        {"TRIALOG_ADMIN_TOKEN", "tok"},
        {"TRIALOG_HTTP_PORT", "9090"},
        {"TRIALOG_THREADS", "64"},
        {"TRIALOG_DEBUG", "yes"},
        {"TRIALOG_ASYNC", "off"},
        {NULL, NULL},
    };
    size_t lines;
    free(load(env, TL_OK, &lines));
    assert_int_equal(lines, 0);
    assert_string_equal(c_brokers, "k1:9092,k2:9092");
    /* strings are borrowed from the environment, not copied */
    assert_ptr_equal(c_brokers, env[0].value);
    assert_int_equal(c_port, 9090);
    assert_int_equal(c_threads, 64);
    assert_true(c_debug);
    assert_false(c_async);
}

static void test_empty_value_takes_default(void **state)
{
    (void)state;
    static const env_t env[] = {
        {"TRIALOG_PG_DSN", "dsn"},
        {"TRIALOG_ADMIN_TOKEN", "tok"},
        {"TRIALOG_HTTP_PORT", ""},
        {"TRIALOG_BROKERS", ""},
        {NULL, NULL},
    };
    size_t lines;
    free(load(env, TL_OK, &lines));
    assert_int_equal(lines, 0);
    assert_int_equal(c_port, 8080);
    assert_string_equal(c_brokers, "localhost:9092");
}

static void test_required_missing(void **state)
{
    (void)state;
    static const env_t env[] = {
        {"TRIALOG_ADMIN_TOKEN", "tok"},
        {"TRIALOG_PG_DSN", ""}, /* empty counts as missing */
        {NULL, NULL},
    };
    size_t lines;
    char *err = load(env, TL_ERR_CONFIG, &lines);
    assert_int_equal(lines, 1);
    assert_non_null(strstr(err, "TRIALOG_PG_DSN"));
    assert_non_null(strstr(err, "required"));
    assert_null(strstr(err, "TRIALOG_ADMIN_TOKEN"));
    free(err);
    assert_null(c_dsn);
    /* the other variables were still read */
    assert_string_equal(c_token, "tok");
    assert_int_equal(c_port, 8080);
}

static void test_int_out_of_bounds(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "65536", "-1", "999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_t env[] = {
            {"TRIALOG_PG_DSN", "dsn"},
            {"TRIALOG_ADMIN_TOKEN", "tok"},
            {"TRIALOG_HTTP_PORT", bad[i]},
            {NULL, NULL},
        };
        c_port = -7;
        size_t lines;
        char *err = load(env, TL_ERR_CONFIG, &lines);
        assert_int_equal(lines, 1);
        assert_non_null(strstr(err, "TRIALOG_HTTP_PORT"));
        assert_non_null(strstr(err, "1 to 65535"));
        free(err);
        assert_int_equal(c_port, -7); /* not written */
    }
    /* both bounds are inclusive */
    static const char *const edge[] = {"1", "65535"};
    static const long edge_v[] = {1, 65535};
    for (size_t i = 0; i < 2; i++) {
        env_t env[] = {
            {"TRIALOG_PG_DSN", "dsn"},
            {"TRIALOG_ADMIN_TOKEN", "tok"},
            {"TRIALOG_HTTP_PORT", edge[i]},
            {NULL, NULL},
        };
        size_t lines;
        free(load(env, TL_OK, &lines));
        assert_int_equal(lines, 0);
        assert_int_equal(c_port, edge_v[i]);
    }
}

static void test_int_not_integer(void **state)
{
    (void)state;
    static const char *const bad[] = {"80a", "abc", "8.5", "0x50", "80 ", " ",
                                      "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_t env[] = {
            {"TRIALOG_PG_DSN", "dsn"},
            {"TRIALOG_ADMIN_TOKEN", "tok"},
            {"TRIALOG_THREADS", bad[i]},
            {NULL, NULL},
        };
        c_threads = -7;
        size_t lines;
        char *err = load(env, TL_ERR_CONFIG, &lines);
        assert_int_equal(lines, 1);
        assert_non_null(strstr(err, "TRIALOG_THREADS"));
        assert_non_null(strstr(err, "integer"));
        free(err);
        assert_int_equal(c_threads, -7);
    }
}

static void test_bool_parsing(void **state)
{
    (void)state;
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        env_t env[] = {
            {"TRIALOG_PG_DSN", "dsn"}, {"TRIALOG_ADMIN_TOKEN", "tok"},
            {"TRIALOG_DEBUG", yes[i]}, {"TRIALOG_ASYNC", no[i]},
            {NULL, NULL},
        };
        c_debug = false;
        c_async = true;
        size_t lines;
        free(load(env, TL_OK, &lines));
        assert_int_equal(lines, 0);
        assert_true(c_debug);
        assert_false(c_async);
    }
    static const char *const bad[] = {"maybe", "2", "y", "truex", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_t env[] = {
            {"TRIALOG_PG_DSN", "dsn"},
            {"TRIALOG_ADMIN_TOKEN", "tok"},
            {"TRIALOG_DEBUG", bad[i]},
            {NULL, NULL},
        };
        size_t lines;
        char *err = load(env, TL_ERR_CONFIG, &lines);
        assert_int_equal(lines, 1);
        assert_non_null(strstr(err, "TRIALOG_DEBUG"));
        assert_non_null(strstr(err, "true or false"));
        free(err);
    }
}

static void test_string_too_long(void **state)
{
    (void)state;
    static const env_t env[] = {
        {"TRIALOG_PG_DSN", "dsn"},
        {"TRIALOG_ADMIN_TOKEN", "123456789"}, /* max 8 */
        {NULL, NULL},
    };
    size_t lines;
    char *err = load(env, TL_ERR_CONFIG, &lines);
    assert_int_equal(lines, 1);
    assert_non_null(strstr(err, "TRIALOG_ADMIN_TOKEN"));
    assert_non_null(strstr(err, "8 characters"));
    /* no value is echoed, least of all a secret */
    assert_null(strstr(err, "123456789"));
    free(err);
    assert_null(c_token);

    static const env_t ok[] = {
        {"TRIALOG_PG_DSN", "dsn"},
        {"TRIALOG_ADMIN_TOKEN", "12345678"},
        {NULL, NULL},
    };
    free(load(ok, TL_OK, &lines));
    assert_int_equal(lines, 0);
    assert_string_equal(c_token, "12345678");
}

static void test_string_without_max(void **state)
{
    (void)state;
    char dsn[4097];
    memset(dsn, 'd', sizeof dsn - 1);
    dsn[sizeof dsn - 1] = '\0';
    env_t env[] = {
        {"TRIALOG_PG_DSN", dsn}, /* max 0: no limit */
        {"TRIALOG_ADMIN_TOKEN", "tok"},
        {NULL, NULL},
    };
    size_t lines;
    free(load(env, TL_OK, &lines));
    assert_int_equal(lines, 0);
    assert_int_equal(strlen(c_dsn), sizeof dsn - 1);
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    static const env_t env[] = {
        /* TRIALOG_PG_DSN missing */
        {"TRIALOG_BROKERS", "0123456789012345678901234567890123456789012345678901234567890123456789"},
        {"TRIALOG_ADMIN_TOKEN", "tok"},
        {"TRIALOG_HTTP_PORT", "http"},
        {"TRIALOG_THREADS", "65"},
        {"TRIALOG_DEBUG", "sometimes"},
        {NULL, NULL},
    };
    size_t lines;
    char *err = load(env, TL_ERR_CONFIG, &lines);
    assert_int_equal(lines, 5);
    static const char *const names[] = {"TRIALOG_BROKERS", "TRIALOG_PG_DSN", "TRIALOG_HTTP_PORT",
                                        "TRIALOG_THREADS", "TRIALOG_DEBUG"};
    for (size_t i = 0; i < 5; i++)
        assert_non_null(strstr(err, names[i]));
    assert_null(strstr(err, "TRIALOG_ADMIN_TOKEN"));
    assert_null(strstr(err, "TRIALOG_ASYNC"));
    free(err);
    /* the valid ones were read all the same */
    assert_string_equal(c_token, "tok");
    assert_true(c_async);
}

static void test_invalid_default_reported(void **state)
{
    (void)state;
    static long v;
    static const tl_config_var_t bad[] = {
        {"TRIALOG_X", TL_CFG_INT, "ten", 0, 100, false, "x", &v},
    };
    sink_t s;
    sink_open(&s);
    assert_int_equal(tl_config_load(bad, 1, fake_getenv, s.f), TL_ERR_CONFIG);
    sink_close(&s);
    assert_int_equal(count_lines(s.text), 1);
    assert_non_null(strstr(s.text, "TRIALOG_X"));
    free(s.text);
}

static char *print_all(void)
{
    sink_t s;
    sink_open(&s);
    tl_config_print(vars, NVARS, s.f);
    sink_close(&s);
    return s.text;
}

static void test_print_masks_secrets(void **state)
{
    (void)state;
    size_t lines;
    free(load(required_only, TL_OK, &lines));
    c_debug = true;
    char *out = print_all();
    assert_int_equal(count_lines(out), NVARS);
    assert_string_equal(out, "TRIALOG_BROKERS=localhost:9092\n"
                             "TRIALOG_PG_DSN=********\n"
                             "TRIALOG_ADMIN_TOKEN=********\n"
                             "TRIALOG_HTTP_PORT=8080\n"
                             "TRIALOG_THREADS=4\n"
                             "TRIALOG_DEBUG=true\n"
                             "TRIALOG_ASYNC=true\n");
    assert_null(strstr(out, "s3cret"));
    assert_null(strstr(out, "dbname"));
    free(out);
}

static void test_print_unset_values(void **state)
{
    (void)state;
    /* nothing loaded: strings NULL, secrets empty are not masked */
    c_port = 1;
    c_threads = 2;
    c_token = "";
    char *out = print_all();
    assert_non_null(strstr(out, "TRIALOG_BROKERS=\n"));
    assert_non_null(strstr(out, "TRIALOG_PG_DSN=\n"));
    assert_non_null(strstr(out, "TRIALOG_ADMIN_TOKEN=\n"));
    assert_non_null(strstr(out, "TRIALOG_HTTP_PORT=1\n"));
    assert_non_null(strstr(out, "TRIALOG_ASYNC=false\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_applied, reset),
        cmocka_unit_test_setup(test_environment_overrides, reset),
        cmocka_unit_test_setup(test_empty_value_takes_default, reset),
        cmocka_unit_test_setup(test_required_missing, reset),
        cmocka_unit_test_setup(test_int_out_of_bounds, reset),
        cmocka_unit_test_setup(test_int_not_integer, reset),
        cmocka_unit_test_setup(test_bool_parsing, reset),
        cmocka_unit_test_setup(test_string_too_long, reset),
        cmocka_unit_test_setup(test_string_without_max, reset),
        cmocka_unit_test_setup(test_all_errors_reported, reset),
        cmocka_unit_test_setup(test_invalid_default_reported, reset),
        cmocka_unit_test_setup(test_print_masks_secrets, reset),
        cmocka_unit_test_setup(test_print_unset_values, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
