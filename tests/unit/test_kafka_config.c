/* tl_kafka_client_init: the site's librdkafka settings file
 * (TRIALOG_KAFKA_CONFIG_FILE). Good files load; a file others can read,
 * unknown keys, bad values and the settings Trialog's guarantees rest on are
 * refused at start, each reported as file:line and key, never the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tl_kafka.h"

static char path[64];

static void write_file(const char *text, mode_t mode)
{
    snprintf(path, sizeof path, "/tmp/tl-kafka-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* tl_kafka_client_init on the file; what it reported into out */
static tl_err_t load(const char *text, mode_t mode, char *out, size_t size)
{
    write_file(text, mode);
    FILE *err = fmemopen(out, size, "w");
    assert_non_null(err);
    tl_err_t rc = tl_kafka_client_init("test", path, err);
    fclose(err);
    unlink(path);
    return rc;
}

static void test_good_file_loads(void **state)
{
    (void)state;
    char out[1024] = "";
    assert_int_equal(load("# a real cluster\n"
                          "security.protocol = SASL_SSL\n"
                          "sasl.mechanisms=SCRAM-SHA-512\n"
                          "sasl.username=trialog\n"
                          "sasl.password=s3cret=with=equals\n"
                          "\n"
                          "client.rack=eu-1a\n"
                          "socket.timeout.ms=30000\n",
                          0600, out, sizeof out),
                     TL_OK);
    assert_string_equal(out, "");
    tl_kafka_client_cleanup();
}

static void test_no_file_is_fine(void **state)
{
    (void)state;
    assert_int_equal(tl_kafka_client_init("test", "", stderr), TL_OK);
    assert_int_equal(tl_kafka_client_init("test", NULL, stderr), TL_OK);
    tl_kafka_client_cleanup();
}

static void test_readable_by_others_refused(void **state)
{
    (void)state;
    char out[1024] = "";
    assert_int_equal(load("sasl.password=hunter2\n", 0644, out, sizeof out), TL_ERR_CONFIG);
    assert_non_null(strstr(out, "chmod 600"));
    assert_null(strstr(out, "hunter2"));
}

static void test_guarantees_cannot_be_overridden(void **state)
{
    (void)state;
    const char *keys[] = {"enable.idempotence=false", "acks=1", "enable.auto.commit=true",
                          "auto.offset.reset=earliest", "isolation.level=read_uncommitted",
                          "partitioner=random", "allow.auto.create.topics=true",
                          "group.id=other", "bootstrap.servers=elsewhere:9092"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char out[1024] = "", key[64];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(keys[i], "="), keys[i]);
        char text[128];
        snprintf(text, sizeof text, "%s\n", keys[i]);
        assert_int_equal(load(text, 0600, out, sizeof out), TL_ERR_CONFIG);
        assert_non_null(strstr(out, ":1: "));
        assert_non_null(strstr(out, key));
        assert_true(tl_kafka_config_key_protected(key));
    }
    assert_false(tl_kafka_config_key_protected("ssl.ca.location"));
}

static void test_every_bad_line_reported_never_a_value(void **state)
{
    (void)state;
    char out[2048] = "";
    assert_int_equal(load("security.protocol=SASL_SSL\n"
                          "no.such.setting=x\n"
                          "socket.timeout.ms=not-a-number-hunter2\n"
                          "just a line\n"
                          "acks=0\n",
                          0600, out, sizeof out),
                     TL_ERR_CONFIG);
    assert_non_null(strstr(out, ":2: no.such.setting: no such librdkafka setting"));
    assert_non_null(strstr(out, ":3: socket.timeout.ms: invalid value"));
    assert_non_null(strstr(out, ":4: expected key=value"));
    assert_non_null(strstr(out, ":5: acks cannot be set here"));
    assert_null(strstr(out, "hunter2"));
}

static void test_missing_file_refused(void **state)
{
    (void)state;
    char out[512] = "";
    FILE *err = fmemopen(out, sizeof out, "w");
    assert_int_equal(tl_kafka_client_init("test", "/nonexistent/kafka.conf", err), TL_ERR_CONFIG);
    fclose(err);
    assert_non_null(strstr(out, "cannot be read"));
}

static void test_overlong_line_refused(void **state)
{
    (void)state;
    size_t n = TL_KAFKA_CONFIG_LINE_MAX + 64;
    char *text = malloc(n + 1), out[512] = "";
    assert_non_null(text);
    memcpy(text, "sasl.password=", 14);
    memset(text + 14, 'x', n - 15);
    text[n - 1] = '\n';
    text[n] = '\0';
    assert_int_equal(load(text, 0600, out, sizeof out), TL_ERR_CONFIG);
    assert_non_null(strstr(out, "longer than"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_loads),
        cmocka_unit_test(test_no_file_is_fine),
        cmocka_unit_test(test_readable_by_others_refused),
        cmocka_unit_test(test_guarantees_cannot_be_overridden),
        cmocka_unit_test(test_every_bad_line_reported_never_a_value),
        cmocka_unit_test(test_missing_file_refused),
        cmocka_unit_test(test_overlong_line_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
