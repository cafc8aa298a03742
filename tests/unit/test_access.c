/* Unit tests for access: roles and grants, the principal and token folds,
 * and the secrets (tokens, their hashes, signing credential hashes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "tl_secret.h"

#define P1 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01"
#define P2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02"
#define S1 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b01"
#define S2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b02"
#define T1 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4c01"
#define EV "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4d01"
#define T0 1767225600000000LL /* 2026-01-01T00:00:00Z */
#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DAY_US 86400000000LL

/* An access event: metadata and the given members (a JSON object text). */
static json_t *event(const char *fields)
{
    json_t *ev = json_loads(fields, 0, NULL);
    assert_non_null(ev);
    json_t *meta = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "event_id", EV, "occurred_at",
                             (json_int_t)T0, "recorded_at", (json_int_t)T0, "actor_id", "x",
                             "actor_role", "admin", "correlation_id", EV, "source", "gateway");
    json_object_update_missing(ev, meta);
    json_decref(meta);
    return ev;
}

static const char *apply_p(tl_principal_t *p, const char *type, const char *fields)
{
    json_t *ev = event(fields);
    const char *why = tl_principal_apply(p, type, ev);
    json_decref(ev);
    return why;
}

static const char *apply_t(tl_token_t *t, const tl_principal_t *p, const char *type,
                           const char *fields)
{
    json_t *ev = event(fields);
    const char *why = tl_token_apply(t, p, type, ev);
    json_decref(ev);
    return why;
}

static void created(tl_principal_t *p, const char *role, const char *sites)
{
    char f[600];
    snprintf(f, sizeof f,
             "{\"principal_id\":\"%s\",\"name\":\"j.doe@stl\",\"role\":\"%s\","
             "\"site_ids\":%s}",
             P1, role, sites);
    memset(p, 0, sizeof *p);
    assert_null(apply_p(p, "PrincipalCreated", f));
}

static void test_roles(void **state)
{
    (void)state;
    for (int r = 0; r < TL_ROLE_COUNT; r++)
        assert_int_equal(tl_role_parse(tl_role_name(r)), r);
    assert_int_equal(tl_role_parse("Admin"), -1);
    assert_int_equal(tl_role_parse(""), -1);
    assert_int_equal(tl_role_parse(NULL), -1);
    assert_null(tl_role_name(TL_ROLE_COUNT));
    assert_null(tl_role_name(-1));
    assert_true(tl_role_site_scoped(TL_ROLE_COORDINATOR));
    assert_true(tl_role_site_scoped(TL_ROLE_CLINICIAN));
    assert_true(tl_role_site_scoped(TL_ROLE_MONITOR));
    assert_false(tl_role_site_scoped(TL_ROLE_ADMIN));
    assert_false(tl_role_site_scoped(TL_ROLE_ANALYST));
    assert_false(tl_role_site_scoped(TL_ROLE_CONNECTOR));
}

static void test_grants_and_names(void **state)
{
    (void)state;
    assert_null(tl_access_grant_check("admin", 0, 0));
    assert_string_equal(tl_access_grant_check("admin", 1, 0), "sites_not_allowed");
    assert_string_equal(tl_access_grant_check("analyst", 2, 0), "sites_not_allowed");
    assert_string_equal(tl_access_grant_check("coordinator", 0, 0), "sites_required");
    assert_null(tl_access_grant_check("clinician", 1, 0));
    assert_null(tl_access_grant_check("monitor", TL_PRINCIPAL_SITES_MAX, 0));
    assert_string_equal(tl_access_grant_check("monitor", TL_PRINCIPAL_SITES_MAX + 1, 0),
                        "too_many_sites");
    assert_string_equal(tl_access_grant_check("root", 0, 0), "unknown_role");
    /* analysts are granted studies; none is a grant of nothing, which
     * events from before per-study grants carry, but no new grant */
    assert_null(tl_access_grant_check("analyst", 0, 0));
    assert_null(tl_access_grant_check("analyst", 0, TL_PRINCIPAL_STUDIES_MAX));
    assert_string_equal(tl_access_grant_check("analyst", 0, TL_PRINCIPAL_STUDIES_MAX + 1),
                        "too_many_studies");
    assert_string_equal(tl_access_grant_check("coordinator", 1, 1), "studies_not_allowed");
    assert_string_equal(tl_access_grant_check("admin", 0, 1), "studies_not_allowed");
    assert_string_equal(tl_access_grant_new_check("analyst", 0, 0), "studies_required");
    assert_null(tl_access_grant_new_check("analyst", 0, 1));
    assert_null(tl_access_grant_new_check("admin", 0, 0));
    assert_string_equal(tl_access_grant_new_check("analyst", 1, 1), "sites_not_allowed");
    assert_true(tl_principal_name_ok("j.doe@stl-eye_1"));
    assert_true(tl_principal_name_ok("a"));
    assert_false(tl_principal_name_ok(""));
    assert_false(tl_principal_name_ok(NULL));
    assert_false(tl_principal_name_ok(".hidden"));
    assert_false(tl_principal_name_ok("a b"));
    assert_false(tl_principal_name_ok("j\xc3\xa9"));
    char long_name[TL_PRINCIPAL_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(tl_principal_name_ok(long_name));
    long_name[TL_PRINCIPAL_NAME_MAX] = '\0';
    assert_true(tl_principal_name_ok(long_name));
}

static void test_principal_lifecycle(void **state)
{
    (void)state;
    tl_principal_t p;
    created(&p, "coordinator", "[\"" S1 "\",\"" S2 "\"]");
    assert_true(p.exists && p.active);
    assert_int_equal(p.role, TL_ROLE_COORDINATOR);
    assert_int_equal(p.nsites, 2);
    assert_string_equal(p.sites[1], S2);
    assert_string_equal(p.id, P1);
    assert_int_equal(p.created_at_us, T0);
    /* a second creation of the same id is refused and changes nothing */
    tl_principal_t before = p;
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"x\",\"role\":\"admin\","
                                "\"site_ids\":[]}"),
                        "duplicate_principal");
    assert_memory_equal(&p, &before, sizeof p);
    /* a grant needs a reason, and role and sites that fit */
    assert_string_equal(apply_p(&p, "PrincipalRoleChanged",
                                "{\"principal_id\":\"" P1 "\",\"role\":\"monitor\","
                                "\"site_ids\":[\"" S1 "\"]}"),
                        "reason_required");
    assert_string_equal(apply_p(&p, "PrincipalRoleChanged",
                                "{\"principal_id\":\"" P1 "\",\"role\":\"monitor\","
                                "\"site_ids\":[],\"reason\":\"moved\"}"),
                        "sites_required");
    assert_string_equal(apply_p(&p, "PrincipalRoleChanged",
                                "{\"principal_id\":\"" P1 "\",\"role\":\"monitor\","
                                "\"site_ids\":[\"" S1 "\",\"" S1 "\"],\"reason\":\"moved\"}"),
                        "duplicate_site");
    assert_memory_equal(&p, &before, sizeof p);
    assert_null(apply_p(&p, "PrincipalRoleChanged",
                        "{\"principal_id\":\"" P1 "\",\"role\":\"monitor\","
                        "\"site_ids\":[\"" S2 "\"],\"reason\":\"moved to monitoring\"}"));
    assert_int_equal(p.role, TL_ROLE_MONITOR);
    assert_int_equal(p.nsites, 1);
    assert_string_equal(p.sites[0], S2);
    assert_null(apply_p(&p, "SigningCredentialSet",
                        "{\"principal_id\":\"" P1 "\",\"credential_id\":\"" T1 "\"}"));
    assert_string_equal(p.signing_credential_id, T1);
    assert_string_equal(apply_p(&p, "PrincipalDisabled", "{\"principal_id\":\"" P1 "\"}"),
                        "reason_required");
    assert_null(apply_p(&p, "PrincipalDisabled",
                        "{\"principal_id\":\"" P1 "\",\"reason\":\"left the study\"}"));
    assert_false(p.active);
    /* a disabled principal changes no more */
    assert_string_equal(apply_p(&p, "PrincipalRoleChanged",
                                "{\"principal_id\":\"" P1 "\",\"role\":\"admin\","
                                "\"site_ids\":[],\"reason\":\"back\"}"),
                        "principal_disabled");
    /* events of other types leave it alone; changes need an existing one */
    before = p;
    assert_null(apply_p(&p, "SomethingNew", "{\"principal_id\":\"" P1 "\"}"));
    assert_memory_equal(&p, &before, sizeof p);
    tl_principal_t none = {0};
    assert_string_equal(
        apply_p(&none, "PrincipalDisabled", "{\"principal_id\":\"" P2 "\",\"reason\":\"x\"}"),
        "unknown_principal");
}

static void test_principal_invalid_events(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"principal_id\":\"" P1 "\",\"name\":\"bad name\",\"role\":\"admin\",\"site_ids\":[]}",
        "{\"principal_id\":\"nope\",\"name\":\"a\",\"role\":\"admin\",\"site_ids\":[]}",
        "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"admin\"}",
        "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"coordinator\","
        "\"site_ids\":[\"not-a-uuid\"]}",
    };
    static const char *const why[] = {"invalid_event", "invalid_event", "invalid_event",
                                      "invalid_event"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_principal_t p = {0};
        assert_string_equal(apply_p(&p, "PrincipalCreated", bad[i]), why[i]);
        assert_false(p.exists);
    }
    tl_principal_t p = {0};
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"admin\","
                                "\"site_ids\":[\"" S1 "\"]}"),
                        "sites_not_allowed");
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"root\","
                                "\"site_ids\":[]}"),
                        "unknown_role");
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"admin\","
                                "\"site_ids\":[],\"study_ids\":[\"" S1 "\"]}"),
                        "studies_not_allowed");
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"analyst\","
                                "\"site_ids\":[],\"study_ids\":[\"" S1 "\",\"" S1 "\"]}"),
                        "duplicate_study");
    assert_string_equal(apply_p(&p, "PrincipalCreated",
                                "{\"principal_id\":\"" P1 "\",\"name\":\"a\",\"role\":\"analyst\","
                                "\"site_ids\":[],\"study_ids\":[\"x\"]}"),
                        "invalid_event");
    assert_false(p.exists);
}

/* An analyst's grant names its studies; one from before grants named
 * studies (no study_ids) is an analyst of no study. */
static void test_analyst_studies(void **state)
{
    (void)state;
    tl_principal_t p = {0};
    assert_null(apply_p(&p, "PrincipalCreated",
                        "{\"principal_id\":\"" P1 "\",\"name\":\"old\",\"role\":\"analyst\","
                        "\"site_ids\":[]}"));
    assert_int_equal(p.role, TL_ROLE_ANALYST);
    assert_int_equal(p.nstudies, 0);
    assert_null(apply_p(&p, "PrincipalRoleChanged",
                        "{\"principal_id\":\"" P1 "\",\"role\":\"analyst\",\"site_ids\":[],"
                        "\"study_ids\":[\"" S1 "\",\"" S2 "\"],\"reason\":\"analyses AMD\"}"));
    assert_int_equal(p.nstudies, 2);
    assert_string_equal(p.studies[1], S2);
    /* a new role takes the studies away */
    assert_null(apply_p(&p, "PrincipalRoleChanged",
                        "{\"principal_id\":\"" P1 "\",\"role\":\"admin\",\"site_ids\":[],"
                        "\"reason\":\"now administers\"}"));
    assert_int_equal(p.nstudies, 0);
}

#define ISSUE(exp)                                                                                 \
    "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1 "\",\"token_sha256\":\"" SHA                 \
    "\",\"label\":\"laptop\",\"expires_at\":" exp "}"

static void test_token_lifecycle(void **state)
{
    (void)state;
    tl_principal_t p;
    created(&p, "admin", "[]");
    tl_token_t t = {0};
    assert_null(apply_t(&t, &p, "TokenIssued", ISSUE("1769904000000000")));
    assert_true(t.exists);
    assert_string_equal(t.principal_id, P1);
    assert_string_equal(t.sha256, SHA);
    assert_string_equal(t.label, "laptop");
    assert_int_equal(t.issued_at_us, T0);
    assert_int_equal(t.expires_at_us, 1769904000000000LL);
    assert_int_equal(t.revoked_at_us, 0);
    assert_string_equal(apply_t(&t, &p, "TokenIssued", ISSUE("1769904000000000")),
                        "duplicate_token");
    assert_string_equal(
        apply_t(&t, &p, "TokenRevoked", "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1 "\"}"),
        "reason_required");
    tl_principal_t other = p;
    memcpy(other.id, P2, sizeof other.id);
    assert_string_equal(apply_t(&t, &other, "TokenRevoked",
                                "{\"principal_id\":\"" P2 "\",\"token_id\":\"" T1
                                "\",\"reason\":\"lost\"}"),
                        "wrong_principal");
    assert_null(apply_t(&t, &p, "TokenRevoked",
                        "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1
                        "\",\"reason\":\"laptop stolen\"}"));
    assert_int_equal(t.revoked_at_us, T0);
    assert_string_equal(t.revoke_reason, "laptop stolen");
    assert_string_equal(apply_t(&t, &p, "TokenRevoked",
                                "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1
                                "\",\"reason\":\"again\"}"),
                        "token_revoked");
    tl_token_t none = {0};
    assert_string_equal(apply_t(&none, &p, "TokenRevoked",
                                "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1
                                "\",\"reason\":\"x\"}"),
                        "unknown_token");
}

static void test_token_invalid_events(void **state)
{
    (void)state;
    tl_principal_t p;
    created(&p, "admin", "[]");
    tl_token_t t = {0};
    /* expiring when (or before) it is issued */
    assert_string_equal(apply_t(&t, &p, "TokenIssued", ISSUE("1767225600000000")), "invalid_event");
    /* a hash that is not 64 lowercase hex digits */
    assert_string_equal(apply_t(&t, &p, "TokenIssued",
                                "{\"principal_id\":\"" P1 "\",\"token_id\":\"" T1
                                "\",\"token_sha256\":\"ABC\",\"expires_at\":1769904000000000}"),
                        "invalid_event");
    assert_false(t.exists);
    /* for nobody, or for a disabled principal */
    tl_principal_t none = {0};
    assert_string_equal(apply_t(&t, &none, "TokenIssued", ISSUE("1769904000000000")),
                        "unknown_principal");
    assert_null(
        apply_p(&p, "PrincipalDisabled", "{\"principal_id\":\"" P1 "\",\"reason\":\"left\"}"));
    assert_string_equal(apply_t(&t, &p, "TokenIssued", ISSUE("1769904000000000")),
                        "principal_disabled");
    assert_false(t.exists);
}

static void test_tokens_and_hashes(void **state)
{
    (void)state;
    char a[TL_TOKEN_STRLEN], b[TL_TOKEN_STRLEN], ha[TL_SHA256_STRLEN], hb[TL_SHA256_STRLEN];
    assert_int_equal(tl_token_new(a), TL_OK);
    assert_int_equal(tl_token_new(b), TL_OK);
    assert_int_equal(strlen(a), TL_TOKEN_STRLEN - 1);
    assert_memory_equal(a, TL_TOKEN_PREFIX, 4);
    assert_string_not_equal(a, b);
    assert_int_equal(tl_sha256_hex(a, strlen(a), ha), TL_OK);
    assert_int_equal(tl_sha256_hex(b, strlen(b), hb), TL_OK);
    assert_string_not_equal(ha, hb);
    /* the FIPS 180-2 example */
    assert_int_equal(tl_sha256_hex("abc", 3, ha), TL_OK);
    assert_string_equal(ha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_password_hash(void **state)
{
    (void)state;
    char h1[TL_PASSWORD_HASH_STRLEN], h2[TL_PASSWORD_HASH_STRLEN];
    /* few iterations keep the test quick; the format records them */
    assert_int_equal(tl_password_hash("correct horse battery", 1000, h1), TL_OK);
    assert_int_equal(tl_password_hash("correct horse battery", 1000, h2), TL_OK);
    assert_memory_equal(h1, "pbkdf2-sha256$1000$", 19);
    assert_string_not_equal(h1, h2); /* salted */
    assert_true(tl_password_verify("correct horse battery", h1));
    assert_true(tl_password_verify("correct horse battery", h2));
    assert_false(tl_password_verify("correct horse batterY", h1));
    assert_false(tl_password_verify("", h1));
    assert_false(tl_password_verify(NULL, h1));
    assert_false(tl_password_verify("correct horse battery", NULL));
    assert_false(tl_password_verify("correct horse battery", "plain"));
    /* any damage to the stored form fails closed */
    char bad[TL_PASSWORD_HASH_STRLEN];
    snprintf(bad, sizeof bad, "%s", h1);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    assert_false(tl_password_verify("correct horse battery", bad));
    snprintf(bad, sizeof bad, "%.*s", (int)strlen(h1) - 1, h1);
    assert_false(tl_password_verify("correct horse battery", bad));
    assert_false(tl_password_verify("correct horse battery", "pbkdf2-sha256$0$00$00"));
    /* length limits */
    assert_int_equal(tl_password_hash("short", 1000, h1), TL_ERR_INVALID);
    char big[TL_PASSWORD_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(tl_password_hash(big, 1000, h1), TL_ERR_INVALID);
    big[TL_PASSWORD_MAX] = '\0';
    assert_int_equal(tl_password_hash(big, 1000, h1), TL_OK);
    assert_true(tl_password_verify(big, h1));
    /* the default is the full cost */
    assert_int_equal(tl_password_hash("correct horse battery", 0, h1), TL_OK);
    assert_non_null(strstr(h1, "$600000$"));
}

/* An access event by actor. */
static const char *apply_by(tl_principal_t *p, const char *actor, const char *type,
                            const char *fields)
{
    json_t *ev = event(fields);
    json_object_set_new(ev, "actor_id", json_string(actor));
    const char *why = tl_principal_apply(p, type, ev);
    json_decref(ev);
    return why;
}

#define A1 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4e01" /* an administrator */
#define A2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4e02" /* another */
#define E1 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4f01" /* an enrolment */
#define OPEN "{\"principal_id\":\"" P1 "\",\"enrolment_id\":\"" E1 "\",\"reason\":\"new\"}"
#define APPROVE                                                                                    \
    "{\"principal_id\":\"" P1 "\",\"enrolment_id\":\"" E1 "\",\"code_sha256\":\"" SHA "\","      \
    "\"code_expires_at\":1767312000000000}"
#define SET_BY_ENROLMENT                                                                           \
    "{\"principal_id\":\"" P1 "\",\"credential_id\":\"" T1 "\",\"method\":\"enrolment\","        \
    "\"enrolment_id\":\"" E1 "\",\"expires_at\":1798761600000000}"

/* The fold holds the two-person rule too: whatever a gateway decided, the
 * log cannot make a credential one person set for another. */
static void test_enrolment_fold(void **state)
{
    (void)state;
    tl_principal_t p;
    created(&p, "clinician", "[\"" S1 "\"]");
    /* nobody opens their own; a role that does not sign has none */
    assert_string_equal(apply_by(&p, P1, "SigningEnrolmentOpened", OPEN), "two_person_rule");
    assert_string_equal(apply_by(&p, A1, "SigningEnrolmentOpened",
                                 "{\"principal_id\":\"" P1 "\",\"enrolment_id\":\"" E1 "\"}"),
                        "reason_required");
    /* no approval without an open enrolment, no set without an approval */
    assert_string_equal(apply_by(&p, A2, "SigningEnrolmentApproved", APPROVE),
                        "no_open_enrolment");
    assert_null(apply_by(&p, A1, "SigningEnrolmentOpened", OPEN));
    assert_int_equal(p.enrolment_state, TL_ENROLMENT_OPENED);
    assert_string_equal(apply_by(&p, P1, "SigningCredentialSet", SET_BY_ENROLMENT),
                        "no_approved_enrolment");
    /* the opener does not approve, nor the principal */
    assert_string_equal(apply_by(&p, A1, "SigningEnrolmentApproved", APPROVE), "two_person_rule");
    assert_string_equal(apply_by(&p, P1, "SigningEnrolmentApproved", APPROVE), "two_person_rule");
    assert_null(apply_by(&p, A2, "SigningEnrolmentApproved", APPROVE));
    assert_string_equal(p.enrolment_approved_by, A2);
    /* only the principal sets it */
    assert_string_equal(apply_by(&p, A1, "SigningCredentialSet", SET_BY_ENROLMENT),
                        "not_own_credential");
    assert_string_equal(apply_by(&p, A2, "SigningCredentialSet", SET_BY_ENROLMENT),
                        "not_own_credential");
    assert_null(apply_by(&p, P1, "SigningCredentialSet", SET_BY_ENROLMENT));
    assert_string_equal(p.signing_credential_id, T1);
    assert_int_equal(p.enrolment_state, TL_ENROLMENT_NONE);
    assert_true(p.signing_expires_at_us > 0);
    /* used once */
    assert_string_equal(apply_by(&p, P1, "SigningCredentialSet", SET_BY_ENROLMENT),
                        "no_approved_enrolment");
    /* failures count here and lock at the event's maximum; a success
     * clears them; a locked credential is not changed with itself */
    const char *fail = "{\"principal_id\":\"" P1 "\",\"failures\":1,\"max_failures\":3}";
    assert_null(apply_by(&p, P1, "SignatureAttemptFailed", fail));
    assert_null(apply_by(&p, P1, "SignatureAttemptFailed", fail));
    assert_int_equal(p.signing_failures, 2);
    assert_null(apply_by(&p, P1, "SigningFailuresCleared", "{\"principal_id\":\"" P1 "\"}"));
    assert_int_equal(p.signing_failures, 0);
    for (int i = 0; i < 3; i++)
        assert_null(apply_by(&p, P1, "SignatureAttemptFailed", fail));
    assert_true(p.signing_locked);
    assert_string_equal(apply_by(&p, P1, "SigningCredentialSet",
                                 "{\"principal_id\":\"" P1 "\",\"credential_id\":\"" T1 "\","
                                 "\"method\":\"change\"}"),
                        "signing_credential_locked");
    /* a role that stops signing loses its credential */
    assert_null(apply_by(&p, A1, "PrincipalRoleChanged",
                         "{\"principal_id\":\"" P1 "\",\"role\":\"coordinator\","
                         "\"site_ids\":[\"" S1 "\"],\"reason\":\"now coordinates\"}"));
    assert_string_equal(p.signing_credential_id, "");
    assert_string_equal(p.granted_by, A1);
}

static void test_signing_rules(void **state)
{
    (void)state;
    tl_principal_t p;
    created(&p, "clinician", "[\"" S1 "\"]");
    p.enrolment_state = TL_ENROLMENT_OPENED;
    snprintf(p.enrolment_id, sizeof p.enrolment_id, "%s", E1);
    snprintf(p.enrolment_opened_by, sizeof p.enrolment_opened_by, "%s", A1);
    /* opening */
    assert_null(tl_enrolment_open_check(&p, A1));
    assert_string_equal(tl_enrolment_open_check(&p, P1), "two_person_rule");
    tl_principal_t admin;
    memcpy(&admin, &p, sizeof admin);
    admin.role = TL_ROLE_ADMIN;
    assert_string_equal(tl_enrolment_open_check(&admin, A2), "role_does_not_sign");
    /* approving: a second person, not one the opener made or holds */
    assert_null(tl_enrolment_approve_check(&p, E1, A2, "cli", "cli"));
    assert_string_equal(tl_enrolment_approve_check(&p, E1, A1, "cli", "cli"), "two_person_rule");
    assert_string_equal(tl_enrolment_approve_check(&p, E1, P1, "cli", "cli"), "two_person_rule");
    assert_string_equal(tl_enrolment_approve_check(&p, E1, A2, A1, "cli"), "two_person_rule");
    assert_string_equal(tl_enrolment_approve_check(&p, E1, A2, "cli", A1), "two_person_rule");
    assert_string_equal(tl_enrolment_approve_check(&p, T1, A2, "cli", "cli"),
                        "no_open_enrolment");
    /* using the code */
    p.enrolment_state = TL_ENROLMENT_APPROVED;
    snprintf(p.enrolment_approved_by, sizeof p.enrolment_approved_by, "%s", A2);
    snprintf(p.enrolment_code_sha256, sizeof p.enrolment_code_sha256, "%s", SHA);
    p.enrolment_code_expires_at_us = T0 + DAY_US;
    assert_null(tl_enrolment_use_check(&p, P1, A1, SHA, T0));
    assert_string_equal(tl_enrolment_use_check(&p, A1, A1, SHA, T0), "not_own_credential");
    assert_string_equal(tl_enrolment_use_check(&p, P1, A2, SHA, T0), "two_person_rule");
    assert_string_equal(tl_enrolment_use_check(&p, P1, A1, "00" SHA, T0),
                        "invalid_enrolment_code");
    assert_string_equal(tl_enrolment_use_check(&p, P1, A1, SHA, T0 + 2 * DAY_US),
                        "enrolment_expired");
    /* signing */
    assert_string_equal(tl_signing_check(&p, T0), "no_signing_credential");
    snprintf(p.signing_credential_id, sizeof p.signing_credential_id, "%s", T1);
    assert_null(tl_signing_check(&p, T0));
    p.signing_expires_at_us = T0 + DAY_US;
    assert_string_equal(tl_signing_check(&p, T0 + DAY_US), "signing_credential_expired");
    p.signing_locked = true;
    assert_string_equal(tl_signing_check(&p, T0), "signing_credential_locked");
    assert_string_equal(tl_signing_check(&admin, T0), "role_does_not_sign");
    assert_true(tl_role_signs(TL_ROLE_CLINICIAN));
    assert_false(tl_role_signs(TL_ROLE_ADMIN));
    assert_false(tl_role_signs(TL_ROLE_COORDINATOR));
}

static void test_display_names(void **state)
{
    (void)state;
    assert_true(tl_display_name_ok("Dr. Adaeze Okafor"));
    assert_true(tl_display_name_ok("Zoë Ó Briain"));
    assert_false(tl_display_name_ok(""));
    assert_false(tl_display_name_ok(" Dr. X"));
    assert_false(tl_display_name_ok("Dr. X "));
    assert_false(tl_display_name_ok("Dr.\tX"));
    assert_false(tl_display_name_ok("\xff"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_grants_and_names),
        cmocka_unit_test(test_principal_lifecycle),
        cmocka_unit_test(test_principal_invalid_events),
        cmocka_unit_test(test_analyst_studies),
        cmocka_unit_test(test_token_lifecycle),
        cmocka_unit_test(test_token_invalid_events),
        cmocka_unit_test(test_tokens_and_hashes),
        cmocka_unit_test(test_password_hash),
        cmocka_unit_test(test_enrolment_fold),
        cmocka_unit_test(test_signing_rules),
        cmocka_unit_test(test_display_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
