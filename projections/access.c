#include "access.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "reasons.h"
#include "tl_json.h"

static const char *const role_names[TL_ROLE_COUNT] = {
    "admin", "coordinator", "clinician", "monitor", "analyst", "connector",
};

const char *tl_role_name(int role)
{
    return role >= 0 && role < TL_ROLE_COUNT ? role_names[role] : NULL;
}

int tl_role_parse(const char *s)
{
    for (int r = 0; s && r < TL_ROLE_COUNT; r++)
        if (!strcmp(s, role_names[r]))
            return r;
    return -1;
}

bool tl_role_site_scoped(int role)
{
    return role == TL_ROLE_COORDINATOR || role == TL_ROLE_CLINICIAN || role == TL_ROLE_MONITOR;
}

bool tl_principal_name_ok(const char *s)
{
    size_t n = 0;
    for (const char *p = s; p && *p; p++, n++) {
        bool alnum =
            (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!alnum && (p == s || !strchr("._@-", *p)))
            return false;
    }
    return n >= 1 && n <= TL_PRINCIPAL_NAME_MAX;
}

bool tl_display_name_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0, n = len ? tl_text_chars(s) : 0;
    return n >= 1 && n <= TL_DISPLAY_NAME_MAX && tl_text_ok(s, len) && s[0] != ' ' &&
           s[len - 1] != ' ';
}

const char *tl_access_grant_check(const char *role, size_t nsites, size_t nstudies)
{
    int r = tl_role_parse(role);
    if (r < 0)
        return TL_RN(unknown_role);
    if (r != TL_ROLE_ANALYST && nstudies)
        return TL_RN(studies_not_allowed);
    if (nstudies > TL_PRINCIPAL_STUDIES_MAX)
        return TL_RN(too_many_studies);
    if (!tl_role_site_scoped(r))
        return nsites ? TL_RN(sites_not_allowed) : NULL;
    if (!nsites)
        return TL_RN(sites_required);
    return nsites > TL_PRINCIPAL_SITES_MAX ? TL_RN(too_many_sites) : NULL;
}

const char *tl_access_grant_new_check(const char *role, size_t nsites, size_t nstudies)
{
    const char *why = tl_access_grant_check(role, nsites, nstudies);
    if (!why && tl_role_parse(role) == TL_ROLE_ANALYST && !nstudies)
        why = TL_RN(studies_required);
    return why;
}

bool tl_role_signs(int role)
{
    return role >= 0 && role < TL_ROLE_COUNT && (TL_SIGNER_ROLES & TL_ROLE_BIT(role));
}

static const char *const enrolment_states[] = {"none", "opened", "approved"};

const char *tl_enrolment_state_name(int state)
{
    return state >= TL_ENROLMENT_NONE && state <= TL_ENROLMENT_APPROVED ? enrolment_states[state]
                                                                        : NULL;
}

int tl_enrolment_state_parse(const char *s)
{
    for (int i = TL_ENROLMENT_NONE; s && i <= TL_ENROLMENT_APPROVED; i++)
        if (!strcmp(s, enrolment_states[i]))
            return i;
    return TL_ENROLMENT_NONE;
}

const char *tl_access_aggregate(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "principal_id"));
}

static bool has_reason(const json_t *ev)
{
    const char *r = json_string_value(json_object_get(ev, "reason"));
    return r && *r && strlen(r) < TL_BYTES(TL_REASON_MAX);
}

/* ids (a JSON array of UUIDs, at most max) into out, canonical; NULL
 * when they are, else why not. */
static const char *read_ids(const json_t *ids, char (*out)[TL_UUID_STRLEN], size_t *n,
                            const char *dup)
{
    *n = json_array_size(ids);
    for (size_t i = 0; i < *n; i++) {
        tl_uuid_t u;
        if (tl_uuid_parse(json_string_value(json_array_get(ids, i)), &u))
            return TL_RN(invalid_event);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out[j], u.s))
                return dup;
        memcpy(out[i], u.s, TL_UUID_STRLEN);
    }
    return NULL;
}

/* role, site_ids and study_ids of a grant, checked together, into n.
 * study_ids came with per-study analyst grants: an event from before
 * has none. */
static const char *read_grant(tl_principal_t *n, const json_t *ev)
{
    const char *role = json_string_value(json_object_get(ev, "role"));
    const json_t *sites = json_object_get(ev, "site_ids");
    const json_t *studies = json_object_get(ev, "study_ids");
    if (!json_is_array(sites) || (studies && !json_is_null(studies) && !json_is_array(studies)))
        return TL_RN(invalid_event);
    const char *why = tl_access_grant_check(role, json_array_size(sites), json_array_size(studies));
    if (!why)
        why = read_ids(studies, n->studies, &n->nstudies, TL_RN(duplicate_study));
    if (why)
        return why;
    n->role = tl_role_parse(role);
    n->nsites = json_array_size(sites);
    for (size_t i = 0; i < n->nsites; i++) {
        tl_uuid_t u;
        if (tl_uuid_parse(json_string_value(json_array_get(sites, i)), &u))
            return TL_RN(invalid_event);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(n->sites[j], u.s))
                return TL_RN(duplicate_site);
        memcpy(n->sites[i], u.s, TL_UUID_STRLEN);
    }
    return NULL;
}

static bool hex64(const char *s);

/* The actor of ev into dst; false when it has none or it is too long. */
static bool copy_actor(char dst[TL_ACTOR_ID_MAX], const json_t *ev)
{
    return tl_ev_copy_str(dst, TL_ACTOR_ID_MAX, ev, "actor_id") && dst[0];
}

static void enrolment_clear(tl_principal_t *n)
{
    n->enrolment_state = TL_ENROLMENT_NONE;
    n->enrolment_id[0] = n->enrolment_opened_by[0] = n->enrolment_approved_by[0] = '\0';
    n->enrolment_code_sha256[0] = '\0';
    n->enrolment_code_expires_at_us = 0;
}

static const char *enrolment_open(tl_principal_t *n, const json_t *ev, const char *actor)
{
    if (!tl_role_signs(n->role))
        return TL_RN(role_does_not_sign);
    if (!strcasecmp(actor, n->id))
        return TL_RN(two_person_rule);
    if (!has_reason(ev))
        return TL_RN(reason_required);
    enrolment_clear(n); /* a new enrolment replaces one in progress */
    if (!tl_ev_copy_uuid(n->enrolment_id, ev, "enrolment_id"))
        return TL_RN(invalid_event);
    snprintf(n->enrolment_opened_by, sizeof n->enrolment_opened_by, "%s", actor);
    n->enrolment_state = TL_ENROLMENT_OPENED;
    return NULL;
}

static bool same_enrolment(const tl_principal_t *n, const json_t *ev)
{
    char id[TL_UUID_STRLEN];
    return tl_ev_copy_uuid(id, ev, "enrolment_id") && !strcmp(id, n->enrolment_id);
}

static const char *enrolment_approve(tl_principal_t *n, const json_t *ev, const char *actor)
{
    if (n->enrolment_state != TL_ENROLMENT_OPENED || !same_enrolment(n, ev))
        return TL_RN(no_open_enrolment);
    if (!strcasecmp(actor, n->id) || !strcasecmp(actor, n->enrolment_opened_by))
        return TL_RN(two_person_rule);
    const json_t *exp = json_object_get(ev, "code_expires_at");
    if (!tl_ev_copy_str(n->enrolment_code_sha256, sizeof n->enrolment_code_sha256, ev,
                        "code_sha256") ||
        !hex64(n->enrolment_code_sha256) || !json_is_integer(exp))
        return TL_RN(invalid_event);
    n->enrolment_code_expires_at_us = json_integer_value(exp);
    snprintf(n->enrolment_approved_by, sizeof n->enrolment_approved_by, "%s", actor);
    n->enrolment_state = TL_ENROLMENT_APPROVED;
    return NULL;
}

/* A credential is the principal's own doing: with an approved enrolment's
 * code (establishing or resetting it) or with the current credential (a
 * change; never when locked). Events written before the two-person rule
 * (no method) are taken as they were. */
static const char *credential_set(tl_principal_t *n, const json_t *ev, const char *actor)
{
    const char *method = json_string_value(json_object_get(ev, "method"));
    if (method) {
        if (strcasecmp(actor, n->id))
            return TL_RN(not_own_credential);
        bool enrolment = !strcmp(method, "enrolment");
        if (!enrolment && strcmp(method, "change"))
            return TL_RN(invalid_event);
        if (enrolment && (n->enrolment_state != TL_ENROLMENT_APPROVED || !same_enrolment(n, ev)))
            return TL_RN(no_approved_enrolment);
        if (enrolment && tl_ev_int(ev, "occurred_at") > n->enrolment_code_expires_at_us)
            return TL_RN(enrolment_expired);
        if (!enrolment && (!n->signing_credential_id[0] || n->signing_locked))
            return n->signing_locked ? "signing_credential_locked" : "no_signing_credential";
        if (enrolment)
            enrolment_clear(n);
    }
    if (!tl_ev_copy_uuid(n->signing_credential_id, ev, "credential_id"))
        return TL_RN(invalid_event);
    const json_t *exp = json_object_get(ev, "expires_at");
    n->signing_expires_at_us = json_is_integer(exp) ? json_integer_value(exp) : 0;
    n->signing_failures = 0;
    n->signing_locked = false;
    return NULL;
}

static const char *attempt_failed(tl_principal_t *n, const json_t *ev)
{
    const json_t *max = json_object_get(ev, "max_failures");
    if (!n->signing_credential_id[0])
        return TL_RN(no_signing_credential);
    if (!json_is_integer(max) || json_integer_value(max) < 1)
        return TL_RN(invalid_event);
    /* counted here, not taken from the event: concurrent gateways each
     * saw the count before them */
    n->signing_failures++;
    if (n->signing_failures >= json_integer_value(max))
        n->signing_locked = true;
    return NULL;
}

const char *tl_principal_apply(tl_principal_t *p, const char *type, const json_t *ev)
{
    static const char *const types[] = {
        "PrincipalCreated",       "PrincipalRoleChanged",   "PrincipalDisabled",
        "SigningCredentialSet",   "SigningEnrolmentOpened", "SigningEnrolmentApproved",
        "SignatureAttemptFailed", "SigningFailuresCleared",
    };
    size_t k = 0;
    while (k < sizeof types / sizeof types[0] && strcmp(type, types[k]))
        k++;
    if (k == sizeof types / sizeof types[0])
        return NULL;
    bool create = k == 0, change = k == 1, disable = k == 2;
    if (create && p->exists)
        return TL_RN(duplicate_principal);
    if (!create && !p->exists)
        return TL_RN(unknown_principal);
    if (!create && !p->active)
        return TL_RN(principal_disabled);
    if (!tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    if ((change || disable) && !has_reason(ev))
        return TL_RN(reason_required);
    tl_principal_t n = *p;
    char actor[TL_ACTOR_ID_MAX];
    if (!tl_ev_copy_uuid(n.last_event_id, ev, "event_id") || !copy_actor(actor, ev) ||
        (create && !tl_ev_copy_uuid(n.id, ev, "principal_id")))
        return TL_RN(invalid_event);
    if (create) {
        if (!tl_ev_copy_str(n.name, sizeof n.name, ev, "name") || !tl_principal_name_ok(n.name))
            return TL_RN(invalid_event);
        n.exists = n.active = true;
        n.signing_credential_id[0] = '\0';
        n.created_at_us = tl_ev_int(ev, "occurred_at");
        const json_t *dn = json_object_get(ev, "display_name");
        if (json_is_string(dn) && !tl_display_name_ok(json_string_value(dn)))
            return TL_RN(invalid_display_name);
        snprintf(n.display_name, sizeof n.display_name, "%s",
                 json_is_string(dn) ? json_string_value(dn) : "");
    }
    const char *why = create || change ? read_grant(&n, ev) : NULL;
    if (create || change)
        snprintf(n.granted_by, sizeof n.granted_by, "%s", actor);
    if (!why && change && !tl_role_signs(n.role)) {
        /* a role that does not sign keeps no way to sign */
        n.signing_credential_id[0] = '\0';
        enrolment_clear(&n);
    }
    if (!why && disable)
        n.active = false;
    if (!why && k == 3)
        why = credential_set(&n, ev, actor);
    if (!why && k == 4)
        why = enrolment_open(&n, ev, actor);
    if (!why && k == 5)
        why = enrolment_approve(&n, ev, actor);
    if (!why && k == 6)
        why = attempt_failed(&n, ev);
    if (!why && k == 7)
        n.signing_failures = 0;
    if (why)
        return why;
    n.updated_at_us = tl_ev_int(ev, "occurred_at");
    *p = n;
    return NULL;
}

static bool hex64(const char *s)
{
    size_t n = 0;
    for (; s && ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')); s++)
        n++;
    return s && !*s && n == 64;
}

const char *tl_token_apply(tl_token_t *t, const tl_principal_t *p, const char *type,
                           const json_t *ev)
{
    bool issue = !strcmp(type, "TokenIssued");
    if (!issue && strcmp(type, "TokenRevoked"))
        return NULL;
    if (!p->exists)
        return TL_RN(unknown_principal);
    if (!tl_ev_times_ok(ev))
        return TL_RN(invalid_event);
    tl_token_t n = *t;
    if (!tl_ev_copy_uuid(n.last_event_id, ev, "event_id"))
        return TL_RN(invalid_event);
    if (!issue) {
        if (!t->exists)
            return TL_RN(unknown_token);
        if (strcmp(t->principal_id, p->id))
            return TL_RN(wrong_principal);
        if (t->revoked_at_us)
            return TL_RN(token_revoked);
        if (!has_reason(ev))
            return TL_RN(reason_required);
        tl_ev_copy_str(n.revoke_reason, sizeof n.revoke_reason, ev, "reason");
        n.revoked_at_us = tl_ev_int(ev, "occurred_at");
        *t = n;
        return NULL;
    }
    if (t->exists)
        return TL_RN(duplicate_token);
    if (!p->active)
        return TL_RN(principal_disabled);
    const json_t *label = json_object_get(ev, "label");
    const json_t *exp = json_object_get(ev, "expires_at");
    if (!tl_ev_copy_uuid(n.id, ev, "token_id") ||
        !tl_ev_copy_str(n.sha256, sizeof n.sha256, ev, "token_sha256") || !hex64(n.sha256) ||
        !json_is_integer(exp) ||
        (json_is_string(label) && !tl_ev_copy_str(n.label, sizeof n.label, ev, "label")))
        return TL_RN(invalid_event);
    n.exists = true;
    n.has_label = json_is_string(label);
    tl_ev_copy_str(n.issued_by, sizeof n.issued_by, ev, "actor_id");
    memcpy(n.principal_id, p->id, TL_UUID_STRLEN);
    n.issued_at_us = tl_ev_int(ev, "occurred_at");
    n.expires_at_us = json_integer_value(exp);
    if (n.expires_at_us <= n.issued_at_us)
        return TL_RN(invalid_event);
    n.revoked_at_us = 0;
    *t = n;
    return NULL;
}

const char *tl_enrolment_open_check(const tl_principal_t *p, const char *opener_id)
{
    if (!p->active)
        return TL_RN(principal_disabled);
    if (!tl_role_signs(p->role))
        return TL_RN(role_does_not_sign);
    return strcasecmp(opener_id, p->id) ? NULL : "two_person_rule";
}

const char *tl_enrolment_approve_check(const tl_principal_t *p, const char *enrolment_id,
                                       const char *approver_id, const char *approver_granted_by,
                                       const char *approver_token_issued_by)
{
    if (!p->active)
        return TL_RN(principal_disabled);
    if (p->enrolment_state != TL_ENROLMENT_OPENED || strcasecmp(p->enrolment_id, enrolment_id))
        return TL_RN(no_open_enrolment);
    const char *opener = p->enrolment_opened_by;
    /* the approver is a second person: not the principal, not the opener,
     * nor an identity the opener made an administrator or holds a token of */
    if (!strcasecmp(approver_id, p->id) || !strcasecmp(approver_id, opener) ||
        (approver_granted_by && !strcasecmp(approver_granted_by, opener)) ||
        (approver_token_issued_by && !strcasecmp(approver_token_issued_by, opener)))
        return TL_RN(two_person_rule);
    return NULL;
}

const char *tl_enrolment_use_check(const tl_principal_t *p, const char *actor_id,
                                   const char *token_issued_by, const char *code_sha256,
                                   int64_t now_us)
{
    if (strcasecmp(actor_id, p->id))
        return TL_RN(not_own_credential);
    if (!p->active)
        return TL_RN(principal_disabled);
    if (p->enrolment_state != TL_ENROLMENT_APPROVED)
        return TL_RN(no_approved_enrolment);
    if (now_us > p->enrolment_code_expires_at_us)
        return TL_RN(enrolment_expired);
    if (!code_sha256 || strcmp(code_sha256, p->enrolment_code_sha256))
        return TL_RN(invalid_enrolment_code);
    /* the approver, who saw the code, must not also hold the principal's
     * token: that would be one person */
    if (token_issued_by && !strcasecmp(token_issued_by, p->enrolment_approved_by))
        return TL_RN(two_person_rule);
    return NULL;
}

const char *tl_signing_check(const tl_principal_t *p, int64_t now_us)
{
    if (!p->active)
        return TL_RN(principal_disabled);
    if (!tl_role_signs(p->role))
        return TL_RN(role_does_not_sign);
    if (!p->signing_credential_id[0])
        return TL_RN(no_signing_credential);
    if (p->signing_locked)
        return TL_RN(signing_credential_locked);
    if (p->signing_expires_at_us && now_us >= p->signing_expires_at_us)
        return TL_RN(signing_credential_expired);
    return NULL;
}
