/* The whole stack against a broker listener with TLS and SASL/SCRAM, as a
 * real cluster would ask: a CA and the broker's certificate made here with
 * OpenSSL, a SCRAM-SHA-512 user made when the broker's storage is formatted,
 * every program (projectors, archive, gateway, the CLI) configured through
 * TRIALOG_KAFKA_CONFIG_FILE. It works; with a wrong password, or without
 * the CA, each program fails at start and says why, and no log holds the
 * password. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tl_kafka.h"

#define PASSWORD "Right-Horse-Battery-42"

static tl_stack_t stack;
static char dir[500], good[560], bad[560], nocacfg[560];
static char listeners[160], advertised[160], keystore[700], scram[128];

static void write_config(const char *path, const char *password, bool with_ca)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "# a cluster with TLS and SASL/SCRAM\n"
            "security.protocol=SASL_SSL\n"
            "%s%s%s"
            "sasl.mechanisms=SCRAM-SHA-512\n"
            "sasl.username=trialog\n"
            "sasl.password=%s\n",
            with_ca ? "ssl.ca.location=" : "", with_ca ? dir : "", with_ca ? "/ca.pem\n" : "",
            password);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
}

static int setup(void **state)
{
    (void)state;
    char cmd[4096];
    size_t len = 0;
    snprintf(dir, sizeof dir, "%s/tests/logs/kafka_tls_%d", TL_BIN_DIR, (int)getpid());
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/tests/logs '%s' && cd '%s' &&"
             " openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2"
             "   -subj /CN=trialog-test-ca 2>/dev/null &&"
             " openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr"
             "   -subj /CN=localhost 2>/dev/null &&"
             " printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.cnf &&"
             " openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             "   -out broker.pem -days 2 -extfile san.cnf 2>/dev/null &&"
             " openssl pkcs12 -export -in broker.pem -inkey broker.key -name broker"
             "   -out broker.p12 -passout pass:test-keystore",
             TL_BIN_DIR, dir, dir);
    free(tl_run(cmd, &len));

    /* a PLAINTEXT listener for the brokers among themselves, SASL_SSL for
     * every client */
    stack.kafka_port[0] = tl_free_port();
    stack.kafka_controller_port[0] = tl_free_port();
    stack.client_port = tl_free_port();
    snprintf(listeners, sizeof listeners,
             "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d,"
             "SASL_SSL://127.0.0.1:%d",
             stack.kafka_port[0], stack.kafka_controller_port[0], stack.client_port);
    snprintf(advertised, sizeof advertised,
             "advertised.listeners=PLAINTEXT://127.0.0.1:%d,SASL_SSL://127.0.0.1:%d",
             stack.kafka_port[0], stack.client_port);
    snprintf(keystore, sizeof keystore, "ssl.keystore.location=%s/broker.p12", dir);
    const char *args[] = {
        listeners, advertised,
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type=PKCS12", keystore, "ssl.keystore.password=test-keystore",
        "ssl.key.password=test-keystore", NULL};
    memcpy(stack.broker_args, args, sizeof args);
    snprintf(scram, sizeof scram, "TRIALOG_KAFKA_SCRAM=SCRAM-SHA-512=[name=trialog,password=%s]",
             PASSWORD);
    snprintf(stack.broker_env, sizeof stack.broker_env, "%s", scram);

    snprintf(good, sizeof good, "%s/kafka-good.conf", dir);
    snprintf(bad, sizeof bad, "%s/kafka-bad.conf", dir);
    snprintf(nocacfg, sizeof nocacfg, "%s/kafka-noca.conf", dir);
    write_config(good, PASSWORD, true);
    write_config(bad, "Wrong-Horse-Battery-42", true);
    write_config(nocacfg, PASSWORD, false);
    snprintf(stack.kafka_config, sizeof stack.kafka_config, "%s", good);
    /* this process's own clients (the harness's readiness check) too */
    assert_int_equal(tl_kafka_client_init("test", good, stderr), TL_OK);
    tl_stack_start(&stack, "kafka_tls");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    tl_kafka_client_cleanup();
    return 0;
}

static void test_stack_runs_over_sasl_ssl(void **state)
{
    (void)state;
    char study[40], site[40], *out = NULL, sasl[64];
    snprintf(sasl, sizeof sasl, "127.0.0.1:%d", stack.client_port);
    assert_string_equal(stack.brokers, sasl); /* every client on the SASL_SSL listener */
    tl_stack_study(&stack, "TLS-1", study, site);
    assert_int_equal(tl_stack_enrol(&stack, study, site, "TLS-0001", false), 201);
    assert_int_equal(tl_stack_enrol(&stack, study, site, "TLS-0002", true), 202);
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS, 4 + TL_STACK_BOOT_EVENTS,
                              30000));
    assert_int_equal(tl_stack_cli(&stack, "audit verify", &out), 0);
    free(out);
    assert_int_equal(tl_stack_cli(&stack, "topics ensure", &out), 0);
    assert_non_null(strstr(out, "topics ok"));
    free(out);
}

/* A program given cfg must not start: exit non-zero, and its log (or the
 * CLI's output) says the cluster refused it. */
static void refused_at_start(const char *cfg)
{
    char *out = NULL;
    snprintf(stack.kafka_config, sizeof stack.kafka_config, "%s", cfg);
    int rc = tl_stack_cli(&stack, "topics ensure", &out);
    if (rc != 2 || !strstr(out, "refused this client"))
        fail_msg("topics ensure exited %d:\n%s", rc, out);
    assert_null(strstr(out, PASSWORD));
    free(out);
    assert_int_not_equal(tl_stack_program_exit(&stack, "trialog-projector", "schedules",
                                               "refused-projector", 60000),
                         0);
    assert_true(tl_stack_log_contains(&stack, "refused-projector", "kafka_authentication_failed"));
    assert_int_not_equal(
        tl_stack_program_exit(&stack, "trialog-gateway", NULL, "refused-gateway", 60000), 0);
    assert_true(tl_stack_log_contains(&stack, "refused-gateway", "kafka_authentication_failed"));
    snprintf(stack.kafka_config, sizeof stack.kafka_config, "%s", good);
}

static void test_wrong_password_fails_at_start(void **state)
{
    (void)state;
    refused_at_start(bad);
    assert_true(tl_stack_log_contains(&stack, "refused-gateway", "SASL authentication error"));
}

static void forget_log(const char *name)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s.log", stack.dir, name);
    unlink(path);
}

static void test_unknown_ca_fails_at_start(void **state)
{
    (void)state;
    forget_log("refused-gateway");
    forget_log("refused-projector");
    refused_at_start(nocacfg);
}

/* nothing any program logged holds the password */
static void test_no_log_holds_the_password(void **state)
{
    (void)state;
    char cmd[1400];
    size_t len = 0;
    snprintf(cmd, sizeof cmd, "grep -rl --include='*.log' -e '%s' '%s' || true", PASSWORD,
             stack.dir);
    char *out = tl_run(cmd, &len);
    if (len)
        fail_msg("the password is in %s", out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_runs_over_sasl_ssl),
        cmocka_unit_test(test_wrong_password_fails_at_start),
        cmocka_unit_test(test_unknown_ca_fails_at_start),
        cmocka_unit_test(test_no_log_holds_the_password),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
