#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tl_buf.h"
#include "tl_kafka.h"

void tl_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs cmd through the shell; its output (at most max bytes kept) goes to
 * *out (caller frees); returns the raw pclose status. */
static int read_command(const char *cmd, size_t max, char **out, size_t *len)
{
    tl_buf_t o;
    char chunk[4096];
    size_t n;
    tl_buf_init(&o, max);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        tl_buf_append(&o, chunk, n);
    int st = pclose(p);
    if (len)
        *len = o.len;
    *out = o.data ? tl_buf_steal(&o, NULL) : strdup("");
    return st;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static const char *pg_dsn(void)
{
    const char *dsn = getenv("TRIALOG_TEST_PG_DSN");
    if (!dsn || !*dsn)
        fail_msg("TRIALOG_TEST_PG_DSN is not set: run the tests with `make test`");
    return dsn;
}

static const char *pg_super_dsn(void)
{
    const char *dsn = getenv("TRIALOG_TEST_PG_SUPER_DSN");
    if (!dsn || !*dsn)
        fail_msg("TRIALOG_TEST_PG_SUPER_DSN is not set: run the tests with `make test`");
    return dsn;
}

/* In a child: standard output and error appended to logpath. */
static void redirect_output(const char *logpath)
{
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
}

/* fork + exec with extra environment; output appended to dir/log. */
static pid_t spawn(tl_stack_t *s, const char *log, const char *prog, const char *arg,
                   const char *const *env)
{
    char path[1024], logpath[1024];
    snprintf(path, sizeof path, "%s/%s", TL_BIN_DIR, prog);
    snprintf(logpath, sizeof logpath, "%s/%s.log", s->dir, log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redirect_output(logpath);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        if (s->kafka_config[0])
            setenv("TRIALOG_KAFKA_CONFIG_FILE", s->kafka_config, 1);
        execl(path, prog, arg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void set_env(char *buf, size_t size, const char *name, const char *value)
{
    snprintf(buf, size, "%s=%s", name, value);
}

static int nodes_of(const tl_stack_t *s)
{
    return s->nodes > 1 ? s->nodes : 1;
}

/* Node i: scripts/kafka.sh execs the JVM, so pid is the node's. */
static pid_t spawn_node(tl_stack_t *s, int i)
{
    char script[700], data[600], id[16], port[16], cport[16], logpath[1024], cluster[64];
    char voters[TL_STACK_NODES_MAX * 32] = "";
    int n = nodes_of(s);
    snprintf(script, sizeof script, "%s/scripts/kafka.sh", TL_SOURCE_DIR);
    snprintf(data, sizeof data, "%s/kafka-%d", s->dir, i + 1);
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(port, sizeof port, "%d", s->kafka_port[i]);
    snprintf(cport, sizeof cport, "%d", s->kafka_controller_port[i]);
    for (int k = 0; k < n; k++)
        snprintf(voters + strlen(voters), sizeof voters - strlen(voters), "%s%d@127.0.0.1:%d",
                 k ? "," : "", k + 1, s->kafka_controller_port[k]);
    snprintf(logpath, sizeof logpath, "%s/broker-%d.log", s->dir, i + 1);
    snprintf(cluster, sizeof cluster, "TRIALOG_KAFKA_CLUSTER_ID=%s", s->cluster_id);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redirect_output(logpath);
        /* a test broker holds little: a smaller heap than the demo's */
        setenv("TRIALOG_KAFKA_HEAP", "384m", 0);
        putenv(cluster);
        if (s->broker_env[0])
            putenv(s->broker_env);
        const char *argv[32] = {"bash", script, "run", data, id, port, cport, voters};
        int a = 8;
        if (n >= 3) { /* every write on two replicas at least, the groups' too */
            static const char *const replicated[] = {
                "offsets.topic.replication.factor=3", "transaction.state.log.replication.factor=3",
                "transaction.state.log.min.isr=2", "default.replication.factor=3",
                "min.insync.replicas=2"};
            for (size_t k = 0; k < sizeof replicated / sizeof replicated[0]; k++)
                argv[a++] = replicated[k];
        }
        for (int k = 0; k < 12 && s->broker_args[k]; k++)
            argv[a++] = s->broker_args[k];
        execv("/bin/bash", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Until the cluster lists want brokers (60 s), failing when a node exits. */
static void await_nodes(tl_stack_t *s, int want)
{
    int count = 0;
    for (int t = 0; t < 120 && count < want; t++) {
        for (int i = 0; i < nodes_of(s); i++) {
            int st;
            if (s->broker[i] && waitpid(s->broker[i], &st, WNOHANG) == s->broker[i])
                fail_msg("Kafka node %d exited (status %d), see %s/broker-%d.log", i + 1, st,
                         s->dir, i + 1);
        }
        tl_kafka_cluster_wait(s->brokers, want, 500, &count);
    }
    if (count < want)
        fail_msg("the cluster lists %d of %d brokers after 60 s, see %s/broker-*.log", count,
                 want, s->dir);
}

void tl_stack_start_broker(tl_stack_t *s)
{
    int n = nodes_of(s);
    assert_true(n == 1 || n == TL_STACK_NODES_MAX);
    if (!s->cluster_id[0]) {
        char cmd[700], *id = NULL;
        size_t len = 0;
        snprintf(cmd, sizeof cmd, "%s/scripts/kafka.sh cluster-id", TL_SOURCE_DIR);
        id = tl_run(cmd, &len);
        snprintf(s->cluster_id, sizeof s->cluster_id, "%.*s", (int)strcspn(id, "\n"), id);
        free(id);
    }
    s->brokers[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (!s->kafka_port[i]) {
            s->kafka_port[i] = free_port();
            s->kafka_controller_port[i] = free_port();
        }
        snprintf(s->brokers + strlen(s->brokers), sizeof s->brokers - strlen(s->brokers),
                 "%s127.0.0.1:%d", i ? "," : "",
                 n == 1 && s->client_port ? s->client_port : s->kafka_port[i]);
    }
    for (int i = 0; i < n; i++)
        if (!s->broker[i])
            s->broker[i] = spawn_node(s, i);
    await_nodes(s, n);
    char *out = NULL, args[64];
    snprintf(args, sizeof args, "topics ensure --wait-brokers %d", n);
    if (tl_stack_cli(s, args, &out))
        fail_msg("trialog %s: %s", args, out);
    free(out);
}

void tl_stack_start_node(tl_stack_t *s, int i)
{
    assert_true(i >= 0 && i < nodes_of(s) && !s->broker[i]);
    s->broker[i] = spawn_node(s, i);
    await_nodes(s, nodes_of(s));
}

void tl_stack_wipe_broker(tl_stack_t *s)
{
    char cmd[700];
    size_t len = 0;
    for (int i = 0; i < nodes_of(s); i++)
        tl_stack_kill(&s->broker[i], SIGKILL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/kafka-*", s->dir);
    free(tl_run(cmd, &len));
    s->cluster_id[0] = '\0'; /* a new cluster */
}

static void common_env(tl_stack_t *s, char env[3][1200])
{
    set_env(env[0], sizeof env[0], "TRIALOG_KAFKA_BROKERS", s->brokers);
    set_env(env[1], sizeof env[1], "TRIALOG_PG_DSN", pg_dsn());
    set_env(env[2], sizeof env[2], "TRIALOG_PG_SCHEMA", s->schema);
}

static bool log_contains(tl_stack_t *s, const char *log, const char *needle, long *count)
{
    char path[1024], line[4096];
    snprintf(path, sizeof path, "%s/%s.log", s->dir, log);
    FILE *f = fopen(path, "r");
    long n = 0;
    if (!f)
        return false;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    if (count)
        *count = n;
    return n > 0;
}

/* Spawns projection's consumer, output in dir/<log>.log; *before is how
 * often that log said it got partitions. */
static pid_t spawn_consumer_as(tl_stack_t *s, const char *projection, const char *log,
                               long *before)
{
    static char env[3][1200], key[800];
    common_env(s, env);
    /* the archive signs its chain heads within a second of archiving */
    snprintf(key, sizeof key, "TRIALOG_AUDIT_SIGNING_KEY=%s/audit.key", s->dir);
    const char *e[] = {env[0], env[1], env[2], "TRIALOG_DEBUG=false", key,
                       "TRIALOG_AUDIT_CHECKPOINT_SECONDS=1", NULL};
    *before = 0;
    log_contains(s, log, "partitions_assigned", before);
    return spawn(s, log, "trialog-projector", projection, e);
}

static pid_t spawn_consumer(tl_stack_t *s, const char *name, long *before)
{
    return spawn_consumer_as(s, name, name, before);
}

/* Waits until the consumer holds its partitions. */
static void await_consumer(tl_stack_t *s, const char *name, pid_t pid, long before)
{
    long after = 0;
    /* a group join, a rebalance when another member joins (30 s at most) */
    for (int i = 0; i < 600; i++) {
        if (log_contains(s, name, "partitions_assigned", &after) && after > before)
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("%s exited (status %d), see %s/%s.log", name, st, s->dir, name);
        tl_sleep_ms(50);
    }
    fail_msg("%s got no partitions in 30 s", name);
}

pid_t tl_stack_start_consumer(tl_stack_t *s, const char *projection, const char *log)
{
    long before;
    pid_t pid = spawn_consumer_as(s, projection, log, &before);
    await_consumer(s, log, pid, before);
    return pid;
}

static pid_t start_consumer(tl_stack_t *s, const char *name)
{
    long before;
    pid_t pid = spawn_consumer(s, name, &before);
    await_consumer(s, name, pid, before);
    return pid;
}

void tl_stack_start_projector(tl_stack_t *s)
{
    /* they join their groups at the same time */
    long before_p, before_s = 0, before_a = 0, before_f = 0;
    s->projector = spawn_consumer(s, "participants", &before_p);
    bool sched = !s->schedules, access = !s->access, forms = !s->forms;
    if (sched)
        s->schedules = spawn_consumer(s, "schedules", &before_s);
    if (access)
        s->access = spawn_consumer(s, "access", &before_a);
    if (forms)
        s->forms = spawn_consumer(s, "forms", &before_f);
    await_consumer(s, "participants", s->projector, before_p);
    if (sched)
        await_consumer(s, "schedules", s->schedules, before_s);
    if (access)
        await_consumer(s, "access", s->access, before_a);
    if (forms)
        await_consumer(s, "forms", s->forms, before_f);
}

/* The pseudonym key both exports use, made once per stack (mode 0600). */
static void research_key(tl_stack_t *s, char env[700])
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "test -s %s/research.key || (umask 077 && head -c 32 /dev/urandom | od -An -tx1"
             " | tr -d ' \\n' > %s/research.key)",
             s->dir, s->dir);
    size_t len = 0;
    free(tl_run(cmd, &len));
    snprintf(env, 700, "TRIALOG_RESEARCH_KEY_FILE=%s/research.key", s->dir);
}

void tl_stack_start_research(tl_stack_t *s, const char *dates)
{
    char keyenv[700], datesenv[64];
    static char env[3][1200];
    research_key(s, keyenv);
    common_env(s, env);
    snprintf(datesenv, sizeof datesenv, "TRIALOG_RESEARCH_DATES=%s", dates);
    const char *e[] = {env[0], env[1], env[2], keyenv, datesenv, NULL};
    long before = 0;
    log_contains(s, "research", "partitions_assigned", &before);
    s->research = spawn(s, "research", "trialog-projector", "research", e);
    await_consumer(s, "research", s->research, before);
}

void tl_stack_start_releases(tl_stack_t *s)
{
    char keyenv[700], direnv[700];
    static char env[3][1200];
    research_key(s, keyenv);
    common_env(s, env);
    snprintf(direnv, sizeof direnv, "TRIALOG_RELEASE_DIR=%s/releases", s->dir);
    const char *e[] = {env[0], env[1], env[2], keyenv, direnv, NULL};
    long before = 0;
    log_contains(s, "release-export", "partitions_assigned", &before);
    s->releases = spawn(s, "release-export", "trialog-projector", "release-export", e);
    await_consumer(s, "release-export", s->releases, before);
}

void tl_stack_start_ingest(tl_stack_t *s, const char *sources)
{
    char srcenv[300];
    static char env[3][1200];
    common_env(s, env);
    snprintf(srcenv, sizeof srcenv, "TRIALOG_INGEST_SOURCES=%s", sources);
    const char *e[] = {env[0], env[1], env[2], srcenv, NULL};
    long before = 0;
    log_contains(s, "ingest", "partitions_assigned", &before);
    s->ingest = spawn(s, "ingest", "trialog-projector", "ingest", e);
    await_consumer(s, "ingest", s->ingest, before);
}

void tl_stack_start_audit(tl_stack_t *s)
{
    s->audit = start_consumer(s, "audit");
}

int tl_stack_cli(tl_stack_t *s, const char *args, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "TRIALOG_PG_DSN=\"%s\" TRIALOG_PG_SCHEMA=%s TRIALOG_KAFKA_BROKERS='%s'"
             " TRIALOG_INGEST_SOURCES=oct TRIALOG_KAFKA_CONFIG_FILE='%s' %s"
             " TRIALOG_RESEARCH_KEY_FILE='%s/research.key' TRIALOG_PG_SUPER_DSN=\"%s\""
             " TRIALOG_AUDIT_PUBLIC_KEY='%s/audit.pub' %s/trialog %s 2>&1",
             pg_dsn(), s->schema, s->brokers, s->kafka_config, s->topics_env, s->dir,
             pg_super_dsn(), s->dir, TL_BIN_DIR, args);
    int st = read_command(cmd, 1024 * 1024, out, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tl_stack_program_exit(tl_stack_t *s, const char *prog, const char *arg, const char *log,
                          int timeout_ms)
{
    static char env[3][1200], port[64];
    common_env(s, env);
    snprintf(port, sizeof port, "TRIALOG_HTTP_PORT=%d", free_port());
    const char *e[] = {env[0], env[1], env[2], port, NULL};
    pid_t pid = spawn(s, log, prog, arg, e);
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        tl_sleep_ms(50);
    }
    tl_stack_kill(&pid, SIGKILL);
    fail_msg("%s kept running", prog);
    return -1;
}

int tl_stack_projector_exit(tl_stack_t *s, int timeout_ms)
{
    return tl_stack_program_exit(s, "trialog-projector", "participants", "participants",
                                 timeout_ms);
}

bool tl_stack_log_contains(tl_stack_t *s, const char *log, const char *needle)
{
    return log_contains(s, log, needle, NULL);
}

int tl_free_port(void)
{
    return free_port();
}

void tl_stack_start_gateway(tl_stack_t *s)
{
    static char env[3][1200], port[64], releases[700];
    common_env(s, env);
    snprintf(port, sizeof port, "TRIALOG_HTTP_PORT=%d", s->port);
    snprintf(releases, sizeof releases, "TRIALOG_RELEASE_DIR=%s/releases", s->dir);
    const char *e[6 + TL_STACK_GATEWAY_ENV] = {env[0], env[1], env[2], port, releases};
    size_t n = 5;
    for (int i = 0; i < TL_STACK_GATEWAY_ENV; i++)
        if (s->gateway_env[i][0])
            e[n++] = s->gateway_env[i];
    s->gateway = spawn(s, "gateway", "trialog-gateway", NULL, e);
    for (int i = 0; i < 300; i++) {
        tl_http_resp_t r = tl_http(s, "GET", "/readyz", NULL, NULL, false);
        long st = r.status;
        tl_http_free(&r);
        if (st == 200)
            return;
        int ws;
        if (waitpid(s->gateway, &ws, WNOHANG) == s->gateway)
            fail_msg("the gateway exited (status %d), see %s/gateway.log", ws, s->dir);
        tl_sleep_ms(50);
    }
    fail_msg("the gateway did not become ready");
}

/* The archive's signing key pair (once) and its owner role: what every
 * deployment does before its audit consumer runs (docs/SECURITY.md). */
static void secure_archive(tl_stack_t *s)
{
    char path[700], args[1600], *out = NULL;
    snprintf(path, sizeof path, "%s/audit.key", s->dir);
    if (access(path, R_OK)) {
        snprintf(args, sizeof args, "audit keygen %s/audit.key %s/audit.pub", s->dir, s->dir);
        if (tl_stack_cli(s, args, &out))
            fail_msg("trialog %s: %s", args, out);
        free(out);
    }
    if (tl_stack_cli(s, "db secure", &out))
        fail_msg("trialog db secure: %s", out);
    free(out);
}

void tl_stack_start(tl_stack_t *s, const char *name)
{
    static tl_stack_t before; /* the options set before the start */
    before = *s;
    memset(s, 0, sizeof *s);
    memcpy(s->topics_env, before.topics_env, sizeof s->topics_env);
    memcpy(s->broker_args, before.broker_args, sizeof s->broker_args);
    memcpy(s->broker_env, before.broker_env, sizeof s->broker_env);
    memcpy(s->kafka_config, before.kafka_config, sizeof s->kafka_config);
    memcpy(s->kafka_port, before.kafka_port, sizeof s->kafka_port);
    memcpy(s->kafka_controller_port, before.kafka_controller_port,
           sizeof s->kafka_controller_port);
    s->client_port = before.client_port;
    s->nodes = before.nodes;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->schema, sizeof s->schema, "it_%s_%d", name, (int)getpid());
    snprintf(s->dir, sizeof s->dir, "%s/tests/logs/%s", TL_BIN_DIR, s->schema);
    char mk[700];
    snprintf(mk, sizeof mk, "%s/tests/logs", TL_BIN_DIR);
    mkdir(mk, 0755);
    mkdir(s->dir, 0755);
    s->port = free_port();
    assert_int_equal(tl_pg_connect(pg_dsn(), s->schema, "test", &s->pg), TL_OK);
    secure_archive(s);
    tl_stack_start_broker(s);
    tl_stack_start_projector(s);
    tl_stack_start_audit(s);
    tl_stack_start_gateway(s);
    tl_stack_token(s, "admin", NULL, s->token);
}

/* The first line of path into token (80 bytes). */
static void read_token(const char *path, char token[80])
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(token, 80, f));
    fclose(f);
    token[strcspn(token, "\n")] = '\0';
}

/* A principal name (role, site) made by the CLI, a token of its own
 * written to path and read into token. */
static void make_principal(tl_stack_t *s, const char *name, const char *role, const char *site,
                           const char *path, char token[80])
{
    char args[1400], *out = NULL;
    snprintf(args, sizeof args, "admin create-principal %s %s %s", name, role, site ? site : "");
    if (tl_stack_cli(s, args, &out))
        fail_msg("trialog %s: %s", args, out);
    free(out);
    snprintf(args, sizeof args, "admin issue-token %s --out %s", name, path);
    if (tl_stack_cli(s, args, &out))
        fail_msg("trialog %s: %s", args, out);
    free(out);
    read_token(path, token);
}

void tl_stack_named_token(tl_stack_t *s, const char *name, const char *role, const char *site,
                          char token[80])
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.token", s->dir, name);
    make_principal(s, name, role, site, path, token);
}

void tl_stack_token(tl_stack_t *s, const char *role, const char *site, char token[80])
{
    char args[1400], path[700], name[200], *out = NULL;
    snprintf(path, sizeof path, "%s/%s.token", s->dir, role);
    if (strcmp(role, "admin")) {
        snprintf(name, sizeof name, "test-%s%s%s", role, site ? "-" : "", site ? site : "");
        make_principal(s, name, role, site, path, token);
        return;
    }
    snprintf(args, sizeof args, "admin bootstrap test-admin --out %s", path);
    if (tl_stack_cli(s, args, &out))
        fail_msg("trialog %s: %s", args, out);
    free(out);
    read_token(path, token);
}

/* POSTs body to path as token, asserting the status; the answer's member
 * key into out (size bytes) unless out is NULL. */
static void post_as(tl_stack_t *s, const char *token, const char *path, const char *body,
                    long want, const char *key, char *out, size_t size)
{
    tl_http_resp_t r = tl_http_as(s, token, "POST", path, body, NULL);
    if (r.status != want)
        fail_msg("POST %s: %ld, wanted %ld", path, r.status, want);
    if (out)
        snprintf(out, size, "%s", json_string_value(json_object_get(r.body, key)));
    tl_http_free(&r);
}

void tl_stack_admin2(tl_stack_t *s, char token[80])
{
    char path[700];
    snprintf(path, sizeof path, "%s/test-admin-2.token", s->dir);
    if (access(path, R_OK))
        tl_stack_named_token(s, "test-admin-2", "admin", NULL, token);
    else
        read_token(path, token);
}

void tl_stack_signing_credential(tl_stack_t *s, const char *token, const char *password)
{
    char id[40], enrolment[40], code[80], admin2[80], path[300], body[600];
    tl_http_resp_t me = tl_http_as(s, token, "GET", "/v1/me", NULL, NULL);
    assert_int_equal(me.status, 200);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(me.body, "id")));
    tl_http_free(&me);
    tl_stack_admin2(s, admin2);
    snprintf(path, sizeof path, "/v1/principals/%s/signing-enrolments", id);
    post_as(s, s->token, path, "{\"reason\":\"new investigator\"}", 201, "id", enrolment,
            sizeof enrolment);
    snprintf(path, sizeof path, "/v1/principals/%s/signing-enrolments/%s/approve", id, enrolment);
    post_as(s, admin2, path, "{\"reason\":\"identity checked\"}", 200, "code", code,
            sizeof code);
    snprintf(path, sizeof path, "/v1/principals/%s/signing-credential", id);
    snprintf(body, sizeof body, "{\"password\":\"%s\",\"enrolment_code\":\"%s\"}", password,
             code);
    post_as(s, token, path, body, 200, NULL, NULL, 0);
}

int tl_stack_kill(pid_t *pid, int sig)
{
    int st = 0;
    if (*pid <= 0)
        return 0;
    kill(*pid, sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        tl_sleep_ms(50);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
    return 128 + SIGKILL;
}

void tl_stack_stop_programs(tl_stack_t *s)
{
    /* Each program ends cleanly on SIGTERM: exit 0, and under the sanitizers
     * no leak or error report (those make the exit code non-zero). */
    int gw = tl_stack_kill(&s->gateway, SIGTERM);
    int pr = tl_stack_kill(&s->projector, SIGTERM);
    int sc = tl_stack_kill(&s->schedules, SIGTERM);
    int ac = tl_stack_kill(&s->access, SIGTERM);
    int fo = tl_stack_kill(&s->forms, SIGTERM);
    int re = tl_stack_kill(&s->research, SIGTERM);
    int rl = tl_stack_kill(&s->releases, SIGTERM);
    int in = tl_stack_kill(&s->ingest, SIGTERM);
    int au = tl_stack_kill(&s->audit, SIGTERM);
    if (gw || pr || sc || ac || fo || re || rl || in || au)
        fail_msg("unclean exit: gateway %d, projector %d, schedules %d, access %d, forms %d,"
                 " research %d, release-export %d, ingest %d, audit %d (see %s)",
                 gw, pr, sc, ac, fo, re, rl, in, au, s->dir);
}

void tl_stack_stop(tl_stack_t *s)
{
    tl_stack_stop_programs(s);
    /* the JVM ends a SIGTERM with 143 after its orderly shutdown */
    int br = 0;
    for (int i = nodes_of(s) - 1; i >= 0; i--) {
        int st = tl_stack_kill(&s->broker[i], SIGTERM);
        if (st && st != 128 + SIGTERM)
            br = st;
    }
    if (s->pg) {
        char sql[300];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", s->schema);
        tl_pg_exec(s->pg, sql, 0, NULL, NULL);
        tl_pg_destroy(s->pg);
        s->pg = NULL;
        tl_pg_t *su = NULL; /* the archive's schema is not the application's to drop */
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s_archive CASCADE", s->schema);
        if (!tl_pg_connect(pg_super_dsn(), NULL, "test-teardown", &su))
            tl_pg_exec(su, sql, 0, NULL, NULL);
        tl_pg_destroy(su);
    }
    if (br)
        fail_msg("unclean exit: broker %d (see %s)", br, s->dir);
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    return tl_buf_append(user, data, size * n) ? 0 : size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    tl_http_resp_t *r = user;
    size_t len = size * n;
    if (len > 14 && !strncasecmp(data, "Content-Type: ", 14))
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(len - 16), data + 14);
    if (len > 10 && !strncasecmp(data, "Location: ", 10))
        snprintf(r->location, sizeof r->location, "%.*s", (int)(len - 12), data + 10);
    return len;
}

tl_http_resp_t tl_http(tl_stack_t *s, const char *method, const char *path, const char *body,
                       const char *const *headers, bool auth)
{
    return tl_http_as(s, auth ? s->token : NULL, method, path, body, headers);
}

tl_http_resp_t tl_http_as(tl_stack_t *s, const char *token, const char *method, const char *path,
                          const char *body, const char *const *headers)
{
    tl_http_resp_t r = {0};
    char url[1024], authz[200];
    tl_buf_t buf;
    tl_buf_init(&buf, 64 * 1024 * 1024);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    bool own_type = false; /* the caller's Content-Type, if any, instead of JSON's */
    for (const char *const *x = headers; x && *x; x++)
        own_type = own_type || !strncasecmp(*x, "Content-Type:", 13);
    if (token) {
        snprintf(authz, sizeof authz, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, authz);
        if (body && !own_type)
            h = curl_slist_append(h, "Content-Type: application/json");
    }
    for (const char *const *x = headers; x && *x; x++)
        h = curl_slist_append(h, *x);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    if (buf.len)
        r.body = json_loadb(buf.data, buf.len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    tl_buf_cleanup(&buf);
    return r;
}

void tl_http_free(tl_http_resp_t *r)
{
    json_decref(r->body);
    r->body = NULL;
}

long long tl_sql_int(tl_stack_t *s, const char *sql)
{
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(s->pg, sql, 0, NULL, &res), TL_OK);
    const char *v = tl_pg_get(res, 0, 0);
    long long n = v ? strtoll(v, NULL, 10) : 0;
    tl_pg_res_free(res);
    return n;
}

#define INDEXES_SQL                                                                              \
    "SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') AS def"          \
    " FROM pg_indexes WHERE schemaname = current_schema()"

void tl_indexes_snap(tl_stack_t *s, const char *name)
{
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE TABLE %s AS " INDEXES_SQL "; SELECT 1", name);
    tl_sql_int(s, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
    assert_true(tl_sql_int(s, sql) > 0);
}

void tl_indexes_same(tl_stack_t *s, const char *name)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(indexname, ', ') FROM ((SELECT * FROM %s EXCEPT " INDEXES_SQL
             ") UNION ALL (" INDEXES_SQL " EXCEPT SELECT * FROM %s)) d",
             name, name);
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(s->pg, sql, 0, NULL, &res), TL_OK);
    const char *diff = tl_pg_get(res, 0, 0);
    if (diff)
        fail_msg("indexes differ after the rebuild: %s", diff);
    tl_pg_res_free(res);
}

char *tl_run(const char *cmd, size_t *len)
{
    char *out = NULL;
    int st = read_command(cmd, 64 * 1024, &out, len);
    if (st != 0) /* its last words say why */
        fail_msg("command failed (%d): %s\n%.*s", st, cmd,
                 (int)(out && *len > 2000 ? 2000 : out ? *len : 0),
                 out ? out + (*len > 2000 ? *len - 2000 : 0) : "");
    return out;
}

void tl_stack_demo_seed(tl_stack_t *s, char *study, char *site)
{
    char cmd[2000], admin2[80];
    tl_stack_admin2(s, admin2);
    snprintf(cmd, sizeof cmd,
             "%s/scripts/demo-seed.sh http://127.0.0.1:%d %s/admin.token %s/test-admin-2.token 2>&1",
             TL_SOURCE_DIR, s->port, s->dir, s->dir);
    size_t len = 0;
    char *out = tl_run(cmd, &len);
    while (len && out[len - 1] == '\n')
        out[--len] = '\0';
    const char *last = strrchr(out, '\n'); /* the script's answer: STUDY SITE PARTICIPANT */
    if (sscanf(last ? last + 1 : out, "%39[0-9a-f-] %39[0-9a-f-]", study, site) != 2 ||
        strlen(study) != 36 || strlen(site) != 36)
        fail_msg("demo-seed.sh said no study and site");
    free(out);
}

bool tl_wait_for(bool (*fn)(tl_stack_t *s, void *arg), tl_stack_t *s, void *arg, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        if (fn(s, arg))
            return true;
        if (waited >= timeout_ms)
            return false;
        tl_sleep_ms(50);
    }
}

static void created_id(tl_http_resp_t *r, char *out)
{
    assert_int_equal(r->status, 201);
    snprintf(out, 40, "%s", json_string_value(json_object_get(r->body, "id")));
    tl_http_free(r);
}

void tl_stack_study(tl_stack_t *s, const char *protocol_id, char *study, char *site)
{
    char body[256], path[128];
    snprintf(body, sizeof body, "{\"protocol_id\":\"%s\",\"name\":\"Study %s\"}", protocol_id,
             protocol_id);
    tl_http_resp_t r = tl_http(s, "POST", "/v1/studies", body, NULL, true);
    created_id(&r, study);
    snprintf(path, sizeof path, "/v1/studies/%s/sites", study);
    r = tl_http(s, "POST", path, "{\"code\":\"S1\",\"name\":\"Site one\"}", NULL, true);
    created_id(&r, site);
}

long tl_stack_enrol_id(tl_stack_t *s, const char *study, const char *site, const char *code,
                       bool async, char *id_out)
{
    char path[128], body[300];
    const char *h[] = {"Prefer: respond-async", NULL};
    snprintf(path, sizeof path, "/v1/studies/%s/participants", study);
    snprintf(body, sizeof body,
             "{\"participant_code\":\"%s\",\"site_id\":\"%s\",\"consent_date\":\"2026-01-01\","
             "\"baseline_date\":\"2026-01-01\"}",
             code, site);
    tl_http_resp_t r = tl_http(s, "POST", path, body, async ? h : NULL, true);
    long st = r.status;
    const char *id = json_string_value(json_object_get(r.body, "id"));
    if (id_out)
        snprintf(id_out, 40, "%s", id ? id : "");
    tl_http_free(&r);
    return st;
}

long tl_stack_enrol(tl_stack_t *s, const char *study, const char *site, const char *code,
                    bool async)
{
    return tl_stack_enrol_id(s, study, site, code, async, NULL);
}

bool tl_wait_count(tl_stack_t *s, const char *sql, long long want, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        if (tl_sql_int(s, sql) >= want)
            return true;
        if (waited >= timeout_ms)
            return false;
        tl_sleep_ms(50);
    }
}

void tl_stack_post(tl_stack_t *s, const char *path, const char *body, long want, char *id_out)
{
    tl_http_resp_t r = tl_http(s, "POST", path, body, NULL, true);
    if (r.status != want)
        fail_msg("POST %s answered %ld, not %ld", path, r.status, want);
    if (id_out)
        snprintf(id_out, 40, "%s", json_string_value(json_object_get(r.body, "id")));
    tl_http_free(&r);
}

json_t *tl_stack_release_wait(tl_stack_t *s, const char *token, const char *id, int timeout_ms)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/releases/%s", id);
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        tl_http_resp_t r = tl_http_as(s, token, "GET", path, NULL, NULL);
        const char *status = json_string_value(json_object_get(r.body, "status"));
        if (r.status == 200 && status && !strcmp(status, "completed")) {
            json_t *j = json_incref(r.body);
            tl_http_free(&r);
            return j;
        }
        if (status && !strcmp(status, "failed"))
            fail_msg("release %s failed: %s", id,
                     json_string_value(json_object_get(r.body, "error")));
        tl_http_free(&r);
        tl_sleep_ms(100);
    }
    fail_msg("release %s did not complete in %d ms", id, timeout_ms);
    return NULL;
}
