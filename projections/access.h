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
#define TL_PRINCIPAL_STUDIES_MAX 32 /* an analyst's studies */
#define TL_TOKEN_LABEL_MAX 100 /* characters */
#define TL_SHA256_HEX 65       /* 64 hex digits and NUL */
/* Who may sign clinical forms (21 CFR 11.50): clinicians only; admins and
 * coordinators never. The permission table (gateway/routes.c) gives the
 * signing routes these roles, and only they get a signing credential. */
#define TL_SIGNER_ROLES TL_ROLE_BIT(TL_ROLE_CLINICIAN)

/* "admin", ...; NULL for a value out of range. */
const char *tl_role_name(int role);
/* The role named s, or -1. */
int tl_role_parse(const char *s);
/* Coordinators, clinicians and monitors work at sites and see only those. */
bool tl_role_site_scoped(int role);
/* Names: 1 to 64 of letters, digits and . _ @ -, starting with a letter or
 * digit (login names of staff and systems; never a participant's). */
bool tl_principal_name_ok(const char *s);
/* A printed name: 1 to TL_DISPLAY_NAME_MAX characters of valid UTF-8, no
 * control characters, no leading or trailing space. */
bool tl_display_name_ok(const char *s);
/* Role, sites and studies belong together: a site-scoped role needs 1 to
 * TL_PRINCIPAL_SITES_MAX sites, any other role none; an analyst has up to
 * TL_PRINCIPAL_STUDIES_MAX studies (none: it sees no study, as an analyst
 * granted before grants named studies), any other role none. NULL when
 * they fit, else unknown_role, sites_required, sites_not_allowed,
 * too_many_sites, studies_not_allowed, too_many_studies. The fold checks
 * events with it. */
const char *tl_access_grant_check(const char *role, size_t nsites, size_t nstudies);
/* The same for a new grant (a command): an analyst needs a study too
 * (studies_required). */
const char *tl_access_grant_new_check(const char *role, size_t nsites, size_t nstudies);

typedef struct {
    bool exists;
    char id[TL_UUID_STRLEN];
    char name[TL_BYTES(TL_PRINCIPAL_NAME_MAX)];
    int role; /* tl_role_t */
    char sites[TL_PRINCIPAL_SITES_MAX][TL_UUID_STRLEN];
    size_t nsites;
    char studies[TL_PRINCIPAL_STUDIES_MAX][TL_UUID_STRLEN]; /* an analyst's */
    size_t nstudies;
    bool active;
    char signing_credential_id[TL_UUID_STRLEN]; /* "": none set */
    int64_t created_at_us, updated_at_us;
    char last_event_id[TL_UUID_STRLEN];
    char display_name[TL_BYTES(TL_DISPLAY_NAME_MAX)]; /* "": the login name prints */
    char granted_by[TL_ACTOR_ID_MAX];                 /* who created it or last set its role */
    /* the signing credential's state (docs/SECURITY.md "Signing credentials") */
    int64_t signing_expires_at_us; /* 0: no expiry (set before expiry existed) */
    int signing_failures;          /* consecutive failed signatures */
    bool signing_locked;           /* until a new credential through an enrolment */
    /* the enrolment of a signing credential in progress: opened by one
     * administrator, approved by another, used once by the principal */
    int enrolment_state; /* tl_enrolment_state_t */
    char enrolment_id[TL_UUID_STRLEN];
    char enrolment_opened_by[TL_ACTOR_ID_MAX];
    char enrolment_approved_by[TL_ACTOR_ID_MAX];
    char enrolment_code_sha256[TL_SHA256_HEX];
    int64_t enrolment_code_expires_at_us;
} tl_principal_t;

typedef enum {
    TL_ENROLMENT_NONE,
    TL_ENROLMENT_OPENED,
    TL_ENROLMENT_APPROVED,
} tl_enrolment_state_t;

/* Whether role may sign (TL_SIGNER_ROLES). */
bool tl_role_signs(int role);
/* "none", "opened", "approved". */
const char *tl_enrolment_state_name(int state);
int tl_enrolment_state_parse(const char *s);

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
    char issued_by[TL_ACTOR_ID_MAX]; /* the actor of TokenIssued */
} tl_token_t;

/* PrincipalCreated, PrincipalRoleChanged, PrincipalDisabled, and the
 * signing credential's: SigningEnrolmentOpened, SigningEnrolmentApproved,
 * SigningCredentialSet, SignatureAttemptFailed, SigningFailuresCleared.
 * Other types leave p alone. The two-person rule holds here too: an
 * enrolment is opened by someone other than its principal, approved by
 * someone other than both, and used only by the principal itself. */
const char *tl_principal_apply(tl_principal_t *p, const char *type, const json_t *ev);
/* The signing rules (pure; docs/SECURITY.md "Signing credentials"). Each
 * returns NULL when the step is allowed, else why not:
 * - opening an enrolment for p: principal_disabled, role_does_not_sign,
 *   two_person_rule (one's own);
 * - approving p's open enrolment: no_open_enrolment, two_person_rule (the
 *   principal, the opener, someone the opener made what they are
 *   (granted_by) or whose token the opener issued);
 * - setting p's credential with an enrolment code (its SHA-256): only p
 *   itself (not_own_credential), within the code's life
 *   (enrolment_expired), the right code (invalid_enrolment_code), with a
 *   token the approver did not issue (two_person_rule);
 * - signing: role_does_not_sign, no_signing_credential,
 *   signing_credential_locked, signing_credential_expired. */
const char *tl_enrolment_open_check(const tl_principal_t *p, const char *opener_id);
const char *tl_enrolment_approve_check(const tl_principal_t *p, const char *enrolment_id,
                                       const char *approver_id, const char *approver_granted_by,
                                       const char *approver_token_issued_by);
const char *tl_enrolment_use_check(const tl_principal_t *p, const char *actor_id,
                                   const char *token_issued_by, const char *code_sha256,
                                   int64_t now_us);
const char *tl_signing_check(const tl_principal_t *p, int64_t now_us);

/* TokenIssued and TokenRevoked, for the token's principal p (borrowed; its
 * state before the event). Other types leave t alone. */
const char *tl_token_apply(tl_token_t *t, const tl_principal_t *p, const char *type,
                           const json_t *ev);
/* The aggregate a fold files a refusal under: the principal, or NULL. */
const char *tl_access_aggregate(const json_t *ev);

#endif
