/* Electronic signatures tried as an insider would (21 CFR 11.50, 11.100,
 * 11.200, 11.300; docs/SECURITY.md): one administrator cannot make a
 * signature in a clinician's name, a stolen bearer token cannot set a
 * signing credential, wrong passwords are events and lock the credential,
 * a signature names the revision it signs, and neither a captured request
 * nor its Idempotency-Key signs what the signer did not see. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PASSWORD "correct horse battery staple"
#define TEMPLATE                                                                                   \
    "{\"name\":\"vitals\",\"fields\":[{\"name\":\"sbp\",\"type\":\"integer\",\"min\":50,"     \
    "\"max\":260,\"required\":true}]}"

static tl_stack_t stack;
static char study[40], site[40], form_id[40];
static char admin2[80], clin[80], clin_id[40], coord[80], monitor[80];

static json_t *call(const char *token, const char *method, const char *path, const char *body,
                    const char *const *headers, long want)
{
    tl_http_resp_t r = tl_http_as(&stack, token, method, path, body, headers);
    if (r.status != want) {
        char *dump = r.body ? json_dumps(r.body, 0) : NULL;
        fail_msg("%s %s: %ld, want %ld: %s", method, path, r.status, want, dump ? dump : "");
    }
    json_t *b = r.body;
    r.body = NULL;
    tl_http_free(&r);
    return b;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("no string %s", key);
    return s;
}

static void expect_type(json_t *problem, const char *type)
{
    char want[100];
    snprintf(want, sizeof want, "/problems/%s", type);
    assert_string_equal(str(problem, "type"), want);
    json_decref(problem);
}

static void principal_of(const char *token, char id[40])
{
    json_t *me = call(token, "GET", "/v1/me", NULL, NULL, 200);
    snprintf(id, 40, "%s", str(me, "id"));
    json_decref(me);
}

/* A new clinician of the site, with its own token (from the CLI). */
static void new_clinician(const char *name, char token[80], char id[40])
{
    tl_stack_named_token(&stack, name, "clinician", site, token);
    principal_of(token, id);
}

static json_t *sign(const char *token, const char *form, int revision, const char *password,
                    const char *const *headers, long want)
{
    char path[100], body[300];
    snprintf(path, sizeof path, "/v1/forms/%s/sign", form);
    snprintf(body, sizeof body, "{\"meaning\":\"approved\",\"password\":\"%s\",\"revision\":%d}",
             password, revision);
    return call(token, "POST", path, body, headers, want);
}

/* A new form at Baseline of a new participant; its id into out. */
static void new_form(const char *code, char out[40])
{
    char pid[40], path[200];
    assert_int_equal(tl_stack_enrol_id(&stack, study, site, code, false, pid), 201);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", pid);
    json_decref(call(stack.token, "POST", path, "{\"actual_date\":\"2026-01-01\"}", NULL, 200));
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", pid);
    json_t *f = call(coord, "POST", path, "{\"template\":\"vitals\",\"answers\":{\"sbp\":120}}",
                     NULL, 201);
    snprintf(out, 40, "%s", str(f, "id"));
    json_decref(f);
}

static int setup(void **state)
{
    (void)state;
    char path[200];
    tl_stack_start(&stack, "signatures");
    tl_stack_study(&stack, "SIG-1", study, site);
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    json_decref(call(stack.token, "POST", path, TEMPLATE, NULL, 201));
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    json_decref(call(stack.token, "POST", path,
                     "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                     "\"window_after_days\":0,\"form_templates\":[\"vitals\"]}",
                     NULL, 201));
    tl_stack_admin2(&stack, admin2);
    tl_stack_token(&stack, "clinician", site, clin);
    tl_stack_token(&stack, "coordinator", site, coord);
    tl_stack_token(&stack, "monitor", site, monitor);
    principal_of(clin, clin_id);
    new_form("SIG-001", form_id);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* Opens an enrolment for principal as opener; its id into out. */
static void open_enrolment(const char *opener, const char *principal, char out[40])
{
    char path[200];
    snprintf(path, sizeof path, "/v1/principals/%s/signing-enrolments", principal);
    json_t *e = call(opener, "POST", path, "{\"reason\":\"new investigator\"}", NULL, 201);
    assert_string_equal(str(e, "state"), "opened");
    snprintf(out, 40, "%s", str(e, "id"));
    json_decref(e);
}

static json_t *approve(const char *approver, const char *principal, const char *enrolment,
                       long want)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/principals/%s/signing-enrolments/%s/approve", principal,
             enrolment);
    return call(approver, "POST", path, "{\"reason\":\"identity checked in person\"}", NULL, want);
}

static json_t *set_credential(const char *token, const char *principal, const char *body,
                              long want)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/principals/%s/signing-credential", principal);
    return call(token, "POST", path, body, NULL, want);
}

static void test_one_admin_cannot_sign_for_a_clinician(void **state)
{
    (void)state;
    char body[300], enrolment[40], path[200], code[80];
    /* the old way: an admin sets the clinician's credential */
    snprintf(body, sizeof body, "{\"password\":\"%s\",\"current_password\":\"x\"}", PASSWORD);
    json_decref(set_credential(stack.token, clin_id, body, 403));
    /* an admin signs a clinical form */
    json_decref(sign(stack.token, form_id, 1, PASSWORD, NULL, 403));
    /* an admin opens an enrolment and approves it alone */
    open_enrolment(stack.token, clin_id, enrolment);
    expect_type(approve(stack.token, clin_id, enrolment, 422), "two-person-rule");
    /* ... or through another administrator whose token it holds: an
     * administrator it made, or the second administrator itself (a token
     * issued by A would be A's to use, then a token issued "by B" with it) */
    json_t *puppet = call(stack.token, "POST", "/v1/principals",
                          "{\"name\":\"puppet-admin\",\"role\":\"admin\"}", NULL, 201);
    snprintf(path, sizeof path, "/v1/principals/%s/tokens", str(puppet, "id"));
    json_decref(puppet);
    expect_type(call(stack.token, "POST", path, "{}", NULL, 422), "two-person-rule");
    json_t *a2 = call(admin2, "GET", "/v1/me", NULL, NULL, 200);
    snprintf(path, sizeof path, "/v1/principals/%s/tokens", str(a2, "id"));
    json_decref(a2);
    expect_type(call(stack.token, "POST", path, "{}", NULL, 422), "two-person-rule");
    /* an administrator it made, given a token by the operator: still made
     * by the opener */
    char puppet_token[80];
    tl_stack_named_token(&stack, "puppet-admin-2", "admin", NULL, puppet_token);
    json_t *pp = call(puppet_token, "GET", "/v1/me", NULL, NULL, 200);
    snprintf(path, sizeof path, "/v1/principals/%s", str(pp, "id"));
    json_decref(pp);
    json_decref(call(stack.token, "PATCH", path,
                     "{\"role\":\"admin\",\"reason\":\"re-granted by the opener\"}", NULL, 200));
    expect_type(approve(puppet_token, clin_id, enrolment, 422), "two-person-rule");
    /* admins do not sign, so they have no enrolment either */
    json_t *me = call(stack.token, "GET", "/v1/me", NULL, NULL, 200);
    snprintf(path, sizeof path, "/v1/principals/%s/signing-enrolments", str(me, "id"));
    json_decref(me);
    expect_type(call(stack.token, "POST", path, "{\"reason\":\"x\"}", NULL, 422),
                "role-does-not-sign");

    /* a second administrator approves: the code is shown once, to it */
    json_t *a = approve(admin2, clin_id, enrolment, 200);
    assert_string_equal(str(a, "state"), "approved");
    snprintf(code, sizeof code, "%s", str(a, "code"));
    json_decref(a);
    /* the approver, who saw the code, issues itself a token of the
     * clinician: one person again, refused */
    snprintf(path, sizeof path, "/v1/principals/%s/tokens", clin_id);
    json_t *t = call(admin2, "POST", path, "{\"label\":\"stolen\"}", NULL, 201);
    char approver_token[80];
    snprintf(approver_token, sizeof approver_token, "%s", str(t, "token"));
    json_decref(t);
    snprintf(body, sizeof body, "{\"password\":\"%s\",\"enrolment_code\":\"%s\"}", PASSWORD, code);
    expect_type(set_credential(approver_token, clin_id, body, 422), "two-person-rule");
    /* the clinician with its own token and the code: set */
    json_t *p = set_credential(clin, clin_id, body, 200);
    assert_true(json_is_true(json_object_get(p, "has_signing_credential")));
    assert_non_null(json_object_get(json_object_get(p, "signing"), "expires_at"));
    json_decref(p);
    /* the code is used up */
    expect_type(set_credential(clin, clin_id, body, 409), "no-approved-enrolment");
    /* each step is an event with its actor, in the audit trail */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM audit_log WHERE event_type IN"
                              " ('org.trialog.SigningEnrolmentOpened',"
                              "  'org.trialog.SigningEnrolmentApproved',"
                              "  'org.trialog.SigningCredentialSet')",
                              3, 20000));
    /* the code and the password are nowhere in the log */
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE position(convert_to('%s', 'UTF8') IN value) > 0"
             " OR position(convert_to('%s', 'UTF8') IN value) > 0",
             code, PASSWORD);
    assert_int_equal(tl_sql_int(&stack, sql), 0);
    /* and the clinician signs what it reviewed */
    p = sign(clin, form_id, 1, PASSWORD, NULL, 200);
    json_t *sig = json_object_get(p, "signature");
    assert_string_equal(str(sig, "signed_by"), clin_id);
    assert_int_equal(json_integer_value(json_object_get(sig, "revision")), 1);
    assert_int_equal(strlen(str(sig, "content_sha256")), 64);
    json_decref(p);
}

static void test_stolen_token_cannot_set_a_credential(void **state)
{
    (void)state;
    char thief[80], id[40], body[300];
    new_clinician("sig-thief-victim", thief, id);
    /* a token alone: nothing to prove who holds it */
    snprintf(body, sizeof body, "{\"password\":\"%s\"}", PASSWORD);
    json_decref(set_credential(thief, id, body, 400));
    snprintf(body, sizeof body,
             "{\"password\":\"%s\",\"enrolment_code\":\"tlk_00000000000000000000000000000000000"
             "00000000000000000000000000000\"}",
             PASSWORD);
    expect_type(set_credential(thief, id, body, 409), "no-approved-enrolment");
    /* once the victim has a credential, changing it takes the current one */
    tl_stack_signing_credential(&stack, thief, PASSWORD);
    snprintf(body, sizeof body,
             "{\"password\":\"a brand new passphrase\",\"current_password\":\"guess\"}");
    expect_type(set_credential(thief, id, body, 422), "signing-credential-invalid");
    snprintf(body, sizeof body,
             "{\"password\":\"a brand new passphrase\",\"current_password\":\"%s\"}", PASSWORD);
    json_t *p = set_credential(thief, id, body, 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "signing"), "failures")),
                     0);
    json_decref(p);
    /* somebody else's credential, even with the right current one */
    json_decref(set_credential(clin, id, body, 404));
}

static void test_lockout_and_its_events(void **state)
{
    (void)state;
    char token[80], id[40], form[40], path[300];
    new_clinician("sig-locked", token, id);
    tl_stack_signing_credential(&stack, token, PASSWORD);
    new_form("SIG-002", form);
    for (int i = 1; i <= 4; i++)
        expect_type(sign(token, form, 1, "wrong password", NULL, 422),
                    "signing-credential-invalid");
    expect_type(sign(token, form, 1, "wrong password", NULL, 422), "signing-credential-locked");
    /* locked: the right password signs nothing */
    expect_type(sign(token, form, 1, PASSWORD, NULL, 422), "signing-credential-locked");
    /* every failure is an event: who, which form, when (never the
     * password), for the admin and the site's monitor alike, once the
     * archive has them (the audit list reads the archive, which may lag) */
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.SignatureAttemptFailed'"
             " AND actor_id = '%s'",
             id);
    assert_true(tl_wait_count(&stack, sql, 5, 20000));
    snprintf(path, sizeof path, "/v1/audit?type=SignatureAttemptFailed&actor=%s&limit=50", id);
    json_t *a = call(stack.token, "GET", path, NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(a, "items")), 5);
    json_decref(a);
    a = call(monitor, "GET", path, NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(a, "items")), 5);
    json_decref(a);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM audit_log WHERE position("
                                        "convert_to('wrong password', 'UTF8') IN value) > 0"),
                     0);
    /* a two-person reset unlocks it */
    tl_stack_signing_credential(&stack, token, "another long passphrase");
    json_decref(sign(token, form, 1, "another long passphrase", NULL, 200));
}

static void test_signature_names_the_revision(void **state)
{
    (void)state;
    char token[80], id[40], form[40], path[200];
    new_clinician("sig-reviewer", token, id);
    tl_stack_signing_credential(&stack, token, PASSWORD);
    new_form("SIG-003", form);
    /* signed with a key at revision 1 */
    const char *key[] = {"Idempotency-Key: sign-sig-003", NULL};
    json_t *first = sign(token, form, 1, PASSWORD, key, 200);
    /* amended: the signature goes */
    snprintf(path, sizeof path, "/v1/forms/%s", form);
    json_decref(call(coord, "PATCH", path,
                     "{\"answers\":{\"sbp\":135},\"reason\":\"re-measured after rest\"}", NULL,
                     200));
    /* the captured request again: revision 1 is not what the form says */
    expect_type(sign(token, form, 1, PASSWORD, NULL, 409), "revision-mismatch");
    /* with its key: the first answer, and no second signature */
    json_t *again = sign(token, form, 1, PASSWORD, key, 200);
    assert_true(json_equal(first, again));
    json_decref(again);
    json_t *f = call(token, "GET", path, NULL, NULL, 200);
    assert_true(json_is_null(json_object_get(f, "signature")));
    json_decref(f);
    json_decref(first);
    /* no event id twice in the archive */
    assert_true(tl_wait_count(&stack,
                              "SELECT count(*) FROM audit_log WHERE event_type ="
                              " 'org.trialog.FormAmended'",
                              1, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM (SELECT event_id FROM audit_log"
                                        " WHERE event_id IS NOT NULL GROUP BY event_id"
                                        " HAVING count(*) > 1) d"),
                     0);
    /* revision 2, as reviewed: signed */
    json_decref(sign(token, form, 2, PASSWORD, NULL, 200));
}

typedef struct {
    const char *token, *form;
    long status;
} attempt_t;

static void *attempt(void *arg)
{
    attempt_t *a = arg;
    char path[100], body[200];
    snprintf(path, sizeof path, "/v1/forms/%s/sign", a->form);
    snprintf(body, sizeof body,
             "{\"meaning\":\"approved\",\"password\":\"not it at all\",\"revision\":1}");
    tl_http_resp_t r = tl_http_as(&stack, a->token, "POST", path, body, NULL);
    a->status = r.status;
    tl_http_free(&r);
    return NULL;
}

/* Parallel wrong passwords of one signer: one check at a time, the rest
 * are told to retry at once (no slow hash), and the count that locks the
 * credential is never outrun. */
static void test_parallel_wrong_passwords_are_bounded(void **state)
{
    (void)state;
    enum { N = 16 };
    char token[80], id[40], form[40];
    new_clinician("sig-hammered", token, id);
    tl_stack_signing_credential(&stack, token, PASSWORD);
    new_form("SIG-004", form);
    pthread_t th[N];
    attempt_t at[N];
    for (int i = 0; i < N; i++) {
        at[i] = (attempt_t){token, form, 0};
        assert_int_equal(pthread_create(&th[i], NULL, attempt, &at[i]), 0);
    }
    int busy = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        busy += at[i].status == 429;
        refused += at[i].status == 422;
    }
    assert_int_equal(busy + refused, N);
    assert_true(busy > 0);
    assert_true(refused <= 5);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT signing_failures FROM principals WHERE id = '%s'", id);
    assert_int_equal(tl_sql_int(&stack, sql), refused);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_admin_cannot_sign_for_a_clinician),
        cmocka_unit_test(test_stolen_token_cannot_set_a_credential),
        cmocka_unit_test(test_lockout_and_its_events),
        cmocka_unit_test(test_signature_names_the_revision),
        cmocka_unit_test(test_parallel_wrong_passwords_are_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
