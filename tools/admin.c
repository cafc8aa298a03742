/* trialog admin: principals and tokens from the operator's shell.
 *
 * The first administrator has nobody to ask for a token, so the operator,
 * who can reach the broker and the database anyway, makes it here. Every
 * change is the same event the API produces (source "cli", actor
 * "cli:<login>"), answered once the access projection has applied it. */
#include "admin.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "access_store.h"
#include "tl_migrations.h"
#include "tl_producer.h"
#include "tl_secret.h"
#include "tl_topics.h"

#define APPLY_WAIT_S 30
#define DAYS_DEFAULT 30
#define DAYS_MAX 365

typedef struct {
    tl_pg_t *pg;
    tl_registry_t *registry;
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
    char actor[80];
} admin_t;

static int admin_usage(void)
{
    fprintf(stderr, "usage: trialog admin bootstrap NAME [--days N] [--out FILE]"
                    " [--revoke-others REASON]\n"
                    "       trialog admin create-principal NAME ROLE [SITE_ID ... | STUDY_ID ...]\n"
                    "       trialog admin issue-token NAME [--days N] [--label TEXT] [--out FILE]"
                    " [--revoke-others REASON]\n"
                    "       trialog admin revoke-token NAME TOKEN_ID --reason TEXT\n"
                    "       trialog admin disable NAME --reason TEXT\n"
                    "       trialog admin list\n");
    return 2;
}

/* Produces one access event and waits until the projection applied or
 * refused it. 0: applied; 1: refused (said why); 2: failed. */
static int send_event(admin_t *a, const char *type, const char *principal, json_t *payload,
                      const char *reason, const tl_uuid_t *event_id)
{
    tl_event_meta_t meta = {.event_id = *event_id,
                            .actor_id = a->actor,
                            .actor_role = "operator",
                            .reason = reason,
                            .correlation_id = event_id->s,
                            .source = "cli"};
    tl_kafka_pos_t pos = {0};
    tl_err_t err = tl_producer_send(a->producer, type, principal, payload, &meta, &pos);
    if (err) {
        fprintf(stderr, "trialog admin: could not write %s to the log (%s)\n", type,
                tl_err_name(err));
        return 2;
    }
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", pos.partition);
    snprintf(off, sizeof off, "%lld", (long long)pos.offset);
    const char *params[] = {TL_PROJECTION_ACCESS, TL_TOPIC_ACCESS, part, off};
    for (int i = 0; i < APPLY_WAIT_S * 10; i++) {
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(a->pg,
                         "SELECT (SELECT next_offset > $4::bigint FROM projection_offsets"
                         "  WHERE projection = $1 AND topic = $2 AND partition = $3::int),"
                         " (SELECT reason FROM projection_rejections WHERE projection = $1"
                         "  AND topic = $2 AND partition = $3::int AND \"offset\" = $4::bigint)",
                         4, params, &res);
        const char *done = err ? NULL : tl_pg_get(res, 0, 0);
        int rc = -1;
        if (done && !strcmp(done, "t")) {
            const char *why = tl_pg_get(res, 0, 1);
            if (why)
                fprintf(stderr, "trialog admin: %s refused: %s\n", type, why);
            rc = why ? 1 : 0;
        }
        tl_pg_res_free(res);
        if (rc >= 0)
            return rc;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr,
            "trialog admin: %s is in the log (partition %s, offset %s) but the access "
            "projection did not apply it within %d s; is trialog-projector access running?\n",
            type, part, off, APPLY_WAIT_S);
    return 2;
}

/* The principal named name: id, role, active. false when there is none. */
static bool find_principal(admin_t *a, const char *name, tl_uuid_t *id, int *role, bool *active)
{
    const char *params[] = {name};
    tl_pg_res_t *res = NULL;
    bool found = !tl_pg_exec(a->pg, "SELECT id, role, active FROM principals WHERE name = $1", 1,
                             params, &res) &&
                 tl_pg_nrows(res) == 1;
    if (found) {
        tl_uuid_parse(tl_pg_get(res, 0, 0), id);
        *role = tl_role_parse(tl_pg_get(res, 0, 1));
        *active = !strcmp(tl_pg_get(res, 0, 2), "t");
    }
    tl_pg_res_free(res);
    return found;
}

static int need_principal(admin_t *a, const char *name, tl_uuid_t *id)
{
    int role = -1;
    bool active = false;
    if (!find_principal(a, name, id, &role, &active)) {
        fprintf(stderr, "trialog admin: no principal named \"%s\"\n", name);
        return 1;
    }
    if (!active) {
        fprintf(stderr, "trialog admin: principal \"%s\" is disabled\n", name);
        return 1;
    }
    return 0;
}

/* The ids of a grant: an analyst's are studies, any other role's sites. */
static int create_principal(admin_t *a, const char *name, const char *role, char **given,
                            int n, tl_uuid_t *id)
{
    if (!tl_principal_name_ok(name)) {
        fprintf(stderr, "trialog admin: a name is 1 to 64 letters, digits and . _ @ -\n");
        return 2;
    }
    bool studies = tl_role_parse(role) == TL_ROLE_ANALYST;
    const char *what = studies ? "study" : "site";
    const char *why = tl_access_grant_new_check(role, studies ? 0 : (size_t)n,
                                                studies ? (size_t)n : 0);
    if (why) {
        fprintf(stderr, "trialog admin: role \"%s\" with %d %s id(s): %s\n", role, n, what, why);
        return 2;
    }
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) {
        tl_uuid_t s;
        const char *params[] = {given[i]};
        tl_pg_res_t *res = NULL;
        bool known = !tl_uuid_parse(given[i], &s) &&
                     !tl_pg_exec(a->pg,
                                 studies ? "SELECT 1 FROM studies WHERE id = $1"
                                         : "SELECT 1 FROM sites WHERE id = $1",
                                 1, params, &res) &&
                     tl_pg_nrows(res) == 1;
        tl_pg_res_free(res);
        if (!known) {
            fprintf(stderr, "trialog admin: \"%s\" is not a %s\n", given[i], what);
            json_decref(ids);
            return 2;
        }
        json_array_append_new(ids, json_string(s.s));
    }
    tl_uuid_t event_id;
    tl_uuid_v7(id);
    tl_uuid_v7(&event_id);
    json_t *payload = json_pack("{s:s, s:s, s:s, s:o, s:o}", "principal_id", id->s, "name", name,
                                "role", role, "site_ids", studies ? json_array() : ids,
                                "study_ids", studies ? ids : json_array());
    int rc = send_event(a, "PrincipalCreated", id->s, payload, NULL, &event_id);
    json_decref(payload);
    if (!rc)
        printf("principal %s \"%s\" (%s)\n", id->s, name, role);
    return rc;
}

/* Writes the token to path, readable by its owner only, or to stdout. */
static int write_token(const char *token, const char *path)
{
    if (!path) {
        printf("%s\n", token);
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && fchmod(fd, 0600) == 0;
    size_t len = strlen(token);
    ok = ok && write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    if (fd >= 0 && close(fd))
        ok = false;
    if (!ok)
        fprintf(stderr, "trialog admin: could not write the token to %s\n", path);
    return ok ? 0 : 2;
}

/* --days N, --label TEXT, --out FILE, --reason TEXT, --revoke-others REASON
 * after the positional arguments. */
typedef struct {
    long days;
    const char *label, *out, *reason, *revoke_others;
} opts_t;

/* Revokes every active token of principal but keep, each with its own
 * TokenRevoked event carrying reason: a script that makes a fresh token
 * (make demo) leaves no older one valid. */
static int revoke_others(admin_t *a, const tl_uuid_t *principal, const tl_uuid_t *keep,
                         const char *reason)
{
    const char *params[] = {principal->s, keep->s};
    tl_pg_res_t *res = NULL;
    int rc = 0;
    if (tl_pg_exec(a->pg,
                   "SELECT id FROM access_tokens WHERE principal_id = $1 AND id <> $2"
                   " AND revoked_at IS NULL AND expires_at > now() ORDER BY issued_at, id",
                   2, params, &res)) {
        fprintf(stderr, "trialog admin: could not read the tokens of principal %s\n",
                principal->s);
        rc = 2;
        goto out;
    }
    for (int r = 0; r < tl_pg_nrows(res) && !rc; r++) {
        tl_uuid_t event_id;
        const char *token = tl_pg_get(res, r, 0);
        json_t *payload =
            json_pack("{s:s, s:s}", "principal_id", principal->s, "token_id", token);
        tl_uuid_v7(&event_id);
        rc = send_event(a, "TokenRevoked", principal->s, payload, reason, &event_id);
        json_decref(payload);
        if (!rc)
            fprintf(stderr, "token %s of principal %s revoked\n", token, principal->s);
    }
out:
    tl_pg_res_free(res);
    return rc;
}

/* A new token for principal (o: its days, output file, and whether the
 * principal's other tokens go); label NULL for none. */
static int issue_token(admin_t *a, const tl_uuid_t *principal, const opts_t *o,
                       const char *label)
{
    char token[TL_TOKEN_STRLEN], sha[TL_SHA256_STRLEN];
    tl_uuid_t token_id, event_id;
    if (tl_token_new(token) || tl_sha256_hex(token, strlen(token), sha))
        return 2;
    tl_uuid_v7(&token_id);
    tl_uuid_v7(&event_id);
    int64_t expires = tl_now_us() + (int64_t)o->days * 86400LL * 1000000LL;
    json_t *payload = json_pack("{s:s, s:s, s:s, s:s?, s:I}", "principal_id", principal->s,
                                "token_id", token_id.s, "token_sha256", sha, "label", label,
                                "expires_at", (json_int_t)expires);
    int rc = send_event(a, "TokenIssued", principal->s, payload, NULL, &event_id);
    json_decref(payload);
    if (!rc) {
        fprintf(stderr, "token %s for principal %s, valid %ld days%s%s\n", token_id.s, principal->s,
                o->days, o->out ? ", written to " : "", o->out ? o->out : "");
        rc = write_token(token, o->out);
    }
    tl_secret_wipe(token, sizeof token);
    /* only once the new token is written: never leaves the operator without one */
    if (!rc && o->revoke_others)
        rc = revoke_others(a, principal, &token_id, o->revoke_others);
    return rc;
}

/* Fills o from the options; false on anything else. */
static bool parse_opts(int argc, char **argv, int first, opts_t *o)
{
    o->days = DAYS_DEFAULT;
    for (int i = first; i < argc; i += 2) {
        if (i + 1 >= argc)
            return false;
        if (!strcmp(argv[i], "--days")) {
            char *end = NULL;
            o->days = strtol(argv[i + 1], &end, 10);
            if (*end || o->days < 1 || o->days > DAYS_MAX)
                return false;
        } else if (!strcmp(argv[i], "--label")) {
            o->label = argv[i + 1];
        } else if (!strcmp(argv[i], "--out")) {
            o->out = argv[i + 1];
        } else if (!strcmp(argv[i], "--reason")) {
            o->reason = argv[i + 1];
        } else if (!strcmp(argv[i], "--revoke-others") && argv[i + 1][0]) {
            o->revoke_others = argv[i + 1];
        } else {
            return false;
        }
    }
    return true;
}

static int bootstrap(admin_t *a, const char *name, const opts_t *o)
{
    tl_uuid_t id;
    int role = -1;
    bool active = false;
    if (find_principal(a, name, &id, &role, &active)) {
        if (role != TL_ROLE_ADMIN || !active) {
            fprintf(stderr, "trialog admin: \"%s\" exists and is not an active admin\n", name);
            return 1;
        }
    } else {
        int rc = create_principal(a, name, "admin", NULL, 0, &id);
        if (rc)
            return rc;
    }
    return issue_token(a, &id, o, o->label ? o->label : "bootstrap");
}

static int simple_change(admin_t *a, const char *type, const char *name, json_t *payload,
                         const char *reason)
{
    tl_uuid_t id, event_id;
    int rc = need_principal(a, name, &id);
    if (!rc && (!reason || !*reason)) {
        fprintf(stderr, "trialog admin: --reason is required\n");
        rc = 2;
    }
    if (!rc) {
        json_object_set_new(payload, "principal_id", json_string(id.s));
        tl_uuid_v7(&event_id);
        rc = send_event(a, type, id.s, payload, reason, &event_id);
    }
    json_decref(payload);
    if (!rc)
        printf("%s: done\n", type);
    return rc;
}

static int list(admin_t *a)
{
    tl_pg_res_t *res = NULL;
    if (tl_pg_exec(a->pg,
                   "SELECT p.id, p.name, p.role, p.active, array_to_string(p.site_ids, ','),"
                   " (SELECT count(*) FROM access_tokens t WHERE t.principal_id = p.id"
                   "   AND t.revoked_at IS NULL AND t.expires_at > now())"
                   " FROM principals p ORDER BY p.name",
                   0, NULL, &res))
        return 2;
    printf("%-36s  %-24s  %-11s  %-8s  %s  %s\n", "id", "name", "role", "state", "tokens", "sites");
    for (int r = 0; r < tl_pg_nrows(res); r++)
        printf("%-36s  %-24s  %-11s  %-8s  %6s  %s\n", tl_pg_get(res, r, 0), tl_pg_get(res, r, 1),
               tl_pg_get(res, r, 2), !strcmp(tl_pg_get(res, r, 3), "t") ? "active" : "disabled",
               tl_pg_get(res, r, 5), tl_pg_get(res, r, 4));
    tl_pg_res_free(res);
    return 0;
}

static int run(admin_t *a, int argc, char **argv)
{
    const char *cmd = argv[0];
    opts_t o = {0};
    tl_uuid_t id;
    if (!strcmp(cmd, "list") && argc == 1)
        return list(a);
    if (argc < 2)
        return admin_usage();
    if (!strcmp(cmd, "create-principal") && argc >= 3)
        return create_principal(a, argv[1], argv[2], argv + 3, argc - 3, &id);
    int first = !strcmp(cmd, "revoke-token") ? 3 : 2;
    if (argc < first || !parse_opts(argc, argv, first, &o))
        return admin_usage();
    /* only the commands that issue a token have others to revoke */
    if (o.revoke_others && strcmp(cmd, "bootstrap") && strcmp(cmd, "issue-token"))
        return admin_usage();
    if (!strcmp(cmd, "bootstrap"))
        return bootstrap(a, argv[1], &o);
    if (!strcmp(cmd, "issue-token")) {
        int rc = need_principal(a, argv[1], &id);
        return rc ? rc : issue_token(a, &id, &o, o.label);
    }
    if (!strcmp(cmd, "disable"))
        return simple_change(a, "PrincipalDisabled", argv[1], json_object(), o.reason);
    if (!strcmp(cmd, "revoke-token")) {
        tl_uuid_t token;
        if (tl_uuid_parse(argv[2], &token))
            return admin_usage();
        return simple_change(a, "TokenRevoked", argv[1], json_pack("{s:s}", "token_id", token.s),
                             o.reason);
    }
    return admin_usage();
}

int tl_admin_main(tl_pg_t *pg, const char *brokers, const tl_registry_cfg_t *registry, int argc,
                  char **argv)
{
    admin_t a = {.pg = pg};
    const char *login = getenv("USER");
    snprintf(a.actor, sizeof a.actor, "cli:%s",
             login && tl_principal_name_ok(login) ? login : "operator");
    if (argc < 1)
        return admin_usage();
    bool writes = strcmp(argv[0], "list") != 0;
    int rc = 0;
    if (tl_migrate(pg)) {
        fprintf(stderr, "trialog admin: could not bring the database schema up to date\n");
        return 2;
    }
    if (writes &&
        (tl_registry_open_with(pg, registry, &a.registry) || tl_kafka_producer_new(brokers, 10000, &a.kafka) ||
         tl_producer_new(a.kafka, a.registry, &a.producer))) {
        fprintf(stderr, "trialog admin: could not reach the event log (TRIALOG_KAFKA_BROKERS)\n");
        rc = 2;
    }
    if (!rc)
        rc = run(&a, argc, argv);
    tl_producer_destroy(a.producer);
    tl_kafka_producer_destroy(a.kafka);
    tl_registry_destroy(a.registry);
    return rc;
}
