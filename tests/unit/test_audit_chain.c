/* The archive's pure parts (projections/audit.h): the columns derived from
 * a message, the row hash (version 2 covers every column the audit API
 * shows), the checkpoint text, and Ed25519 signatures (common/tl_secret.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "tl_secret.h"

#define T0 1767225600000000LL /* 2026-01-01T00:00:00Z */

static json_t *event(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "event_id",
                     "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A01", "actor_id", "p-1", "actor_role",
                     "admin", "site_id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b01", "reason",
                     "because", "occurred_at", (json_int_t)T0, "recorded_at", (json_int_t)T0);
}

static void test_columns_from_the_message(void **state)
{
    (void)state;
    json_t *ev = event();
    tl_audit_cols_t c;
    tl_audit_cols("org.trialog.BaselineChanged", ev, 1767225600123, &c);
    assert_string_equal(c.event_type, "org.trialog.BaselineChanged");
    assert_string_equal(c.event_id, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01"); /* canonical */
    assert_string_equal(c.actor_id, "p-1");
    assert_int_equal(c.occurred_at_us, T0);
    assert_int_equal(c.logged_at_us, 1767225600123000LL);
    /* what is not a real time or id is none */
    json_object_set_new(ev, "occurred_at", json_string("yesterday"));
    json_object_set_new(ev, "site_id", json_string("nope"));
    tl_audit_cols_t d;
    tl_audit_cols("org.trialog.BaselineChanged", ev, -1, &d);
    assert_int_equal(d.occurred_at_us, TL_AUDIT_NO_TIME);
    assert_int_equal(d.logged_at_us, TL_AUDIT_NO_TIME);
    assert_string_equal(d.site_id, "");
    assert_false(tl_audit_cols_equal(&c, &d));
    /* undecodable: nothing but the times the broker gave */
    tl_audit_cols_t u;
    tl_audit_cols("org.trialog.X", NULL, -1, &u);
    assert_null(u.event_type);
    assert_null(u.actor_id);
    json_decref(ev);
}

static void hash_of(const tl_audit_cols_t *c, unsigned char out[TL_AUDIT_HASH_LEN])
{
    static const unsigned char zero[TL_AUDIT_HASH_LEN] = {0};
    json_t *headers = json_pack("[{s:s, s:s}]", "name", "ce_type", "value", "x");
    assert_int_equal(tl_audit_hash(zero, "trialog.participant.v1", 3, 41, "k", 1, headers,
                                   "value", 5, c, out),
                     TL_OK);
    json_decref(headers);
}

/* Every column the audit API shows changes the version 2 hash; version 1
 * (no columns) does not see them. */
static void test_hash_covers_every_column(void **state)
{
    (void)state;
    json_t *ev = event();
    tl_audit_cols_t base;
    tl_audit_cols("org.trialog.BaselineChanged", ev, 1767225600123, &base);
    unsigned char h0[TL_AUDIT_HASH_LEN], h[TL_AUDIT_HASH_LEN], v1[TL_AUDIT_HASH_LEN];
    hash_of(&base, h0);
    hash_of(NULL, v1);
    assert_memory_not_equal(h0, v1, TL_AUDIT_HASH_LEN);
    for (int i = 0; i < 9; i++) {
        tl_audit_cols_t c = base;
        switch (i) {
        case 0: c.event_type = "org.trialog.ParticipantWithdrawn"; break;
        case 1: c.event_id[0] = '1'; break;
        case 2: c.actor_id = "someone-else"; break;
        case 3: c.actor_role = "coordinator"; break;
        case 4: c.site_id[0] = '\0'; break;
        case 5: c.reason = "a better story"; break;
        case 6: c.occurred_at_us++; break;
        case 7: c.recorded_at_us = TL_AUDIT_NO_TIME; break;
        case 8: c.logged_at_us--; break;
        }
        hash_of(&c, h);
        if (!memcmp(h, h0, TL_AUDIT_HASH_LEN))
            fail_msg("column %d is not covered by the hash", i);
    }
    json_decref(ev);
}

static void test_checkpoint_text_and_signature(void **state)
{
    (void)state;
    tl_audit_head_t heads[2] = {{.partition = 0, .offset = 9}, {.partition = 5, .offset = 41}};
    snprintf(heads[0].topic, sizeof heads[0].topic, "trialog.access.v1");
    snprintf(heads[1].topic, sizeof heads[1].topic, "trialog.participant.v1");
    heads[1].hash[0] = 0xab;
    tl_buf_t text;
    tl_buf_init(&text, 4096);
    assert_int_equal(tl_audit_checkpoint_text("kid", 7, heads, 2, &text), TL_OK);
    assert_non_null(strstr(text.data, "trialog audit checkpoint v1\nkey kid\nat 7\n"));
    assert_non_null(strstr(text.data, "trialog.participant.v1 5 41 ab00"));
    char priv[64], pub[64];
    snprintf(priv, sizeof priv, "/tmp/tl-audit-test-%d.pem", (int)getpid());
    snprintf(pub, sizeof pub, "/tmp/tl-audit-test-%d.pub.pem", (int)getpid());
    assert_int_equal(tl_ed25519_keygen(priv, pub), TL_OK);
    assert_int_not_equal(tl_ed25519_keygen(priv, pub), TL_OK); /* never replaces a key */
    struct stat st;
    assert_int_equal(stat(priv, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    tl_sign_key_t *sk = NULL, *pk = NULL;
    assert_int_equal(tl_ed25519_load(priv, true, &sk), TL_OK);
    assert_int_equal(tl_ed25519_load(pub, false, &pk), TL_OK);
    char id1[TL_SHA256_STRLEN], id2[TL_SHA256_STRLEN];
    assert_int_equal(tl_ed25519_id(sk, id1), TL_OK);
    assert_int_equal(tl_ed25519_id(pk, id2), TL_OK);
    assert_string_equal(id1, id2);
    unsigned char sig[TL_ED25519_SIG_LEN];
    assert_int_equal(tl_ed25519_sign(sk, text.data, text.len, sig), TL_OK);
    assert_true(tl_ed25519_verify(pk, text.data, text.len, sig, sizeof sig));
    /* another head, another signature */
    heads[1].offset = 40;
    tl_buf_reset(&text);
    assert_int_equal(tl_audit_checkpoint_text("kid", 7, heads, 2, &text), TL_OK);
    assert_false(tl_ed25519_verify(pk, text.data, text.len, sig, sizeof sig));
    /* a private key others can read is refused */
    chmod(priv, 0644);
    tl_sign_key_t *loose = NULL;
    assert_int_equal(tl_ed25519_load(priv, true, &loose), TL_ERR_CONFIG);
    tl_ed25519_free(sk);
    tl_ed25519_free(pk);
    unlink(priv);
    unlink(pub);
    tl_buf_cleanup(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_from_the_message),
        cmocka_unit_test(test_hash_covers_every_column),
        cmocka_unit_test(test_checkpoint_text_and_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
