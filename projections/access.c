#include "access.h"

#include <stdio.h>
#include <string.h>

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

const char *tl_access_grant_check(const char *role, size_t nsites)
{
    int r = tl_role_parse(role);
    if (r < 0)
        return "unknown_role";
    if (!tl_role_site_scoped(r))
        return nsites ? "sites_not_allowed" : NULL;
    if (!nsites)
        return "sites_required";
    return nsites > TL_PRINCIPAL_SITES_MAX ? "too_many_sites" : NULL;
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

/* role and site_ids of a grant, checked together, into n. */
static const char *read_grant(tl_principal_t *n, const json_t *ev)
{
    const char *role = json_string_value(json_object_get(ev, "role"));
    const json_t *sites = json_object_get(ev, "site_ids");
    if (!json_is_array(sites))
        return "invalid_event";
    const char *why = tl_access_grant_check(role, json_array_size(sites));
    if (why)
        return why;
    n->role = tl_role_parse(role);
    n->nsites = json_array_size(sites);
    for (size_t i = 0; i < n->nsites; i++) {
        tl_uuid_t u;
        if (tl_uuid_parse(json_string_value(json_array_get(sites, i)), &u))
            return "invalid_event";
        for (size_t j = 0; j < i; j++)
            if (!strcmp(n->sites[j], u.s))
                return "duplicate_site";
        memcpy(n->sites[i], u.s, TL_UUID_STRLEN);
    }
    return NULL;
}

const char *tl_principal_apply(tl_principal_t *p, const char *type, const json_t *ev)
{
    bool create = !strcmp(type, "PrincipalCreated");
    bool change = !strcmp(type, "PrincipalRoleChanged");
    bool disable = !strcmp(type, "PrincipalDisabled");
    bool signing = !strcmp(type, "SigningCredentialSet");
    if (!create && !change && !disable && !signing)
        return NULL;
    if (create && p->exists)
        return "duplicate_principal";
    if (!create && !p->exists)
        return "unknown_principal";
    if (!create && !p->active)
        return "principal_disabled";
    if (!tl_ev_times_ok(ev))
        return "invalid_event";
    if ((change || disable) && !has_reason(ev))
        return "reason_required";
    tl_principal_t n = *p;
    if (!tl_ev_copy_uuid(n.last_event_id, ev, "event_id") ||
        (create && !tl_ev_copy_uuid(n.id, ev, "principal_id")))
        return "invalid_event";
    if (create) {
        if (!tl_ev_copy_str(n.name, sizeof n.name, ev, "name") || !tl_principal_name_ok(n.name))
            return "invalid_event";
        n.exists = n.active = true;
        n.signing_credential_id[0] = '\0';
        n.created_at_us = tl_ev_int(ev, "occurred_at");
    }
    const char *why = create || change ? read_grant(&n, ev) : NULL;
    if (why)
        return why;
    if (disable)
        n.active = false;
    if (signing && !tl_ev_copy_uuid(n.signing_credential_id, ev, "credential_id"))
        return "invalid_event";
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
        return "unknown_principal";
    if (!tl_ev_times_ok(ev))
        return "invalid_event";
    tl_token_t n = *t;
    if (!tl_ev_copy_uuid(n.last_event_id, ev, "event_id"))
        return "invalid_event";
    if (!issue) {
        if (!t->exists)
            return "unknown_token";
        if (strcmp(t->principal_id, p->id))
            return "wrong_principal";
        if (t->revoked_at_us)
            return "token_revoked";
        if (!has_reason(ev))
            return "reason_required";
        tl_ev_copy_str(n.revoke_reason, sizeof n.revoke_reason, ev, "reason");
        n.revoked_at_us = tl_ev_int(ev, "occurred_at");
        *t = n;
        return NULL;
    }
    if (t->exists)
        return "duplicate_token";
    if (!p->active)
        return "principal_disabled";
    const json_t *label = json_object_get(ev, "label");
    const json_t *exp = json_object_get(ev, "expires_at");
    if (!tl_ev_copy_uuid(n.id, ev, "token_id") ||
        !tl_ev_copy_str(n.sha256, sizeof n.sha256, ev, "token_sha256") || !hex64(n.sha256) ||
        !json_is_integer(exp) ||
        (json_is_string(label) && !tl_ev_copy_str(n.label, sizeof n.label, ev, "label")))
        return "invalid_event";
    n.exists = true;
    n.has_label = json_is_string(label);
    memcpy(n.principal_id, p->id, TL_UUID_STRLEN);
    n.issued_at_us = tl_ev_int(ev, "occurred_at");
    n.expires_at_us = json_integer_value(exp);
    if (n.expires_at_us <= n.issued_at_us)
        return "invalid_event";
    n.revoked_at_us = 0;
    *t = n;
    return NULL;
}
