/* access: who may do what. Roles, and the pure fold of principals and their
 * bearer tokens from trialog.access.v1 (DESIGN.md §3, docs/SECURITY.md).
 *
 * apply(state, event) -> state, no I/O: each function either applies the
 * event and returns NULL, or leaves the state unchanged and returns why the
 * event is refused (a stable snake_case word). Uniqueness across principals
 * (names, token hashes) is checked by the caller, which sees them all. */
#ifndef TL_ACCESS_H
#define TL_ACCESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tl_uuid.h"

/* The roles of DESIGN.md §6, plus monitor (reads and audits its sites). The
 * order is part of nothing: events carry role names. */
typedef enum {
    TL_ROLE_ADMIN,
    TL_ROLE_COORDINATOR,
    TL_ROLE_CLINICIAN,
    TL_ROLE_MONITOR,
    TL_ROLE_ANALYST,
    TL_ROLE_CONNECTOR,
    TL_ROLE_COUNT
} tl_role_t;

#define TL_ROLE_BIT(r) (1u << (r))
#define TL_PRINCIPAL_NAME_MAX 64 /* characters */
#define TL_PRINCIPAL_SITES_MAX 32
#define TL_TOKEN_LABEL_MAX 100 /* characters */
#define TL_SHA256_HEX 65       /* 64 hex digits and NUL */

/* "admin", ...; NULL for a value out of range. */
const char *tl_role_name(int role);
/* The role named s, or -1. */
int tl_role_parse(const char *s);
/* Coordinators, clinicians and monitors work at sites and see only those. */
bool tl_role_site_scoped(int role);
/* Names: 1 to 64 of letters, digits and . _ @ -, starting with a letter or
 * digit (login names of staff and systems; never a participant's). */
bool tl_principal_name_ok(const char *s);
/* Role and sites belong together: a site-scoped role needs 1 to
 * TL_PRINCIPAL_SITES_MAX sites, any other role none. NULL when they fit,
 * else unknown_role, sites_required, sites_not_allowed, too_many_sites. */
const char *tl_access_grant_check(const char *role, size_t nsites);

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char name[TL_BYTES(TL_PRINCIPAL_NAME_MAX)];
    int role; /* tl_role_t */
    char sites[TL_PRINCIPAL_SITES_MAX][TL_UUID_STRLEN];
    size_t nsites;
    bool active;
    char signing_credential_id[TL_UUID_STRLEN]; /* "": none set */
    int64_t created_at_us, updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
} tl_principal_t;

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char principal_id[TL_UUID_STRLEN];
    char sha256[TL_SHA256_HEX];
    char label[TL_BYTES(TL_TOKEN_LABEL_MAX)];
    bool has_label;
    int64_t issued_at_us, expires_at_us;
    int64_t revoked_at_us; /* 0: not revoked */
    char revoke_reason[TL_BYTES(TL_REASON_MAX)];
    char last_event_id[TL_UUID_STRLEN];
} tl_token_t;

/* PrincipalCreated, PrincipalRoleChanged, PrincipalDisabled,
 * SigningCredentialSet. Other types leave p alone. */
const char *tl_principal_apply(tl_principal_t *p, const char *type, const json_t *ev);
/* TokenIssued and TokenRevoked, for the token's principal p (borrowed; its
 * state before the event). Other types leave t alone. */
const char *tl_token_apply(tl_token_t *t, const tl_principal_t *p, const char *type,
                           const json_t *ev);
/* The aggregate a fold files a refusal under: the principal, or NULL. */
const char *tl_access_aggregate(const json_t *ev);

#endif
