/* reasons: the one table of why a command or an event is refused.
 *
 * Every refusal has one name, used alike by the rules (rules.h), the folds
 * (which record the name of an event they refuse) and the gateway (which
 * answers the name's HTTP status and RFC 9457 problem type and title). The
 * names are stable snake_case words: they are stored in projection_rejections
 * and dead letters. The problem types are documented in docs/openapi.yaml
 * (tests/unit/test_openapi.c checks that each one is), and a type's title is
 * the same on every answer (RFC 9457 §3.1.3): what differs goes in detail.
 *
 * The enum constants keep the names' case (TL_R(consent_required)), so a
 * name in a test, a log line or a table row is found by one grep. */
#ifndef TL_REASONS_H
#define TL_REASONS_H

#include <stdbool.h>

/* X(name, HTTP status, problem type, title) */
#define TL_REASONS(X)                                                                              \
    /* the request itself (400, 401, 403, 404, 405, 413, 415) */                                   \
    X(malformed_json, 400, "malformed-json", "Malformed JSON")                                     \
    X(validation_failed, 400, "validation-failed", "Invalid request body")                         \
    X(invalid_query, 400, "invalid-query", "Invalid query parameters")                             \
    X(invalid_idempotency_key, 400, "invalid-idempotency-key", "Invalid Idempotency-Key")          \
    X(unauthorized, 401, "unauthorized", "Authentication required")                                \
    X(invalid_token, 401, "invalid-token", "Invalid token")                                        \
    X(token_expired, 401, "token-expired", "Token expired")                                        \
    X(forbidden, 403, "forbidden", "Not allowed")                                                  \
    X(not_own_credential, 403, "forbidden", "Not allowed")                                         \
    X(site_not_allowed, 403, "site-not-allowed", "Site not allowed")                               \
    X(study_not_granted, 403, "study-not-granted", "Study not granted")                            \
    X(cors_refused, 403, "cors-refused", "Cross-origin request refused")                           \
    X(not_found, 404, "not-found", "Not found")                                                    \
    X(invalid_framing, 400, "invalid-framing", "Ambiguous message framing")                        \
    X(invalid_url, 400, "invalid-url", "Invalid URL")                                              \
    X(uri_too_long, 414, "uri-too-long", "URI too long")                                           \
    X(headers_too_large, 431, "headers-too-large", "Request headers too large")                    \
    X(method_not_allowed, 405, "method-not-allowed", "Method not allowed")                         \
    X(payload_too_large, 413, "payload-too-large", "Request too large")                            \
    X(unsupported_media_type, 415, "unsupported-media-type", "Unsupported media type")             \
    X(signing_busy, 429, "signing-busy", "Signature check in progress")                            \
    /* conflicts with what exists (409) */                                                         \
    X(conflict, 409, "conflict", "Command refused")                                                \
    X(version_conflict, 409, "concurrent-change", "Changed meanwhile")                             \
    X(revision_mismatch, 409, "revision-mismatch", "Form changed since reviewed")                  \
    X(idempotency_key_in_progress, 409, "idempotency-key-in-progress", "Request in progress")      \
    X(duplicate_protocol_id, 409, "duplicate-protocol-id", "Protocol id already registered")       \
    X(duplicate_site_code, 409, "duplicate-site-code", "Site code already used")                   \
    X(duplicate_participant_code, 409, "duplicate-participant-code",                               \
      "Participant code already used")                                                             \
    X(duplicate_visit_type_name, 409, "duplicate-visit-type-name", "Visit type name already used") \
    X(duplicate_principal_name, 409, "duplicate-principal-name", "Principal name already used")    \
    X(duplicate_release_name, 409, "duplicate-release-name", "Release name already used")          \
    X(duplicate_study, 409, "conflict", "Command refused")                                         \
    X(duplicate_site, 409, "conflict", "Command refused")                                          \
    X(duplicate_visit_type, 409, "conflict", "Command refused")                                    \
    X(duplicate_principal, 409, "conflict", "Command refused")                                     \
    X(duplicate_token, 409, "conflict", "Command refused")                                         \
    X(form_exists, 409, "form-already-submitted", "Form already submitted")                        \
    X(form_already_submitted, 409, "form-already-submitted", "Form already submitted")             \
    X(already_signed, 409, "already-signed", "Form already signed")                                \
    X(already_revoked, 409, "already-revoked", "Token already revoked")                            \
    X(token_revoked, 409, "already-revoked", "Token already revoked")                              \
    X(already_locked, 409, "already-locked", "Study already locked")                               \
    X(not_locked, 409, "not-locked", "Study not locked")                                           \
    X(release_not_ready, 409, "release-not-ready", "Release not ready")                            \
    X(principal_disabled, 409, "principal-disabled", "Principal disabled")                         \
    X(no_open_enrolment, 409, "no-open-enrolment", "No open enrolment")                            \
    X(no_approved_enrolment, 409, "no-approved-enrolment", "No approved enrolment")                \
    X(visit_already_completed, 409, "visit-already-completed", "Visit already completed")          \
    X(visit_not_scheduled, 409, "visit-not-scheduled", "Visit not scheduled")                      \
    X(visit_not_missed, 409, "visit-not-missed", "Visit not missed")                               \
    /* rules of the protocol and the study (422) */                                                \
    X(reason_required, 422, "reason-required", "Reason required")                                  \
    X(idempotency_key_reused, 422, "idempotency-key-reused", "Idempotency-Key reused")             \
    X(study_locked, 422, "study-locked", "Study locked")                                           \
    X(unknown_site, 422, "unknown-site", "Site not in study")                                      \
    X(unknown_grant_study, 422, "unknown-study", "Unknown study")                                  \
    X(consent_required, 422, "consent-required", "Consent required")                               \
    X(date_in_future, 422, "date-in-future", "Date in the future")                                 \
    X(date_before_consent, 422, "date-before-consent", "Date before consent")                      \
    X(date_out_of_order, 422, "date-out-of-order", "Date out of order")                            \
    X(baseline_unchanged, 422, "baseline-unchanged", "Baseline unchanged")                         \
    X(baseline_not_completed, 422, "baseline-not-completed", "Baseline not completed")             \
    X(baseline_fixed, 422, "baseline-fixed", "The baseline visit is fixed")                        \
    X(no_baseline, 422, "no-baseline", "Study has no baseline visit")                              \
    X(second_baseline, 422, "second-baseline", "Study has a baseline visit")                       \
    X(invalid_visit_type, 422, "invalid-visit-type", "Invalid visit type")                         \
    X(too_many_visit_types, 422, "too-many-visit-types", "Too many visit types")                   \
    X(unknown_form_template, 422, "unknown-form-template", "Unknown form template")                \
    X(deviation_reason_required, 422, "deviation-reason-required", "Outside the visit window")     \
    X(deviations_need_reasons, 422, "deviation-reasons-required",                                  \
      "Completed visits would fall outside their windows")                                         \
    X(deviation_reason_unneeded, 422, "deviation-reason-unneeded", "No deviation to explain")     \
    X(participant_not_active, 422, "participant-not-active", "Participant not active")             \
    X(required_visits_open, 422, "required-visits-open", "Required visits still open")             \
    X(visit_not_completed, 422, "visit-not-completed", "Visit not completed")                      \
    X(nothing_to_amend, 422, "nothing-to-amend", "Nothing to amend")                               \
    X(too_many_versions, 422, "too-many-versions", "Too many template versions")                   \
    X(invalid_template, 422, "invalid-template", "Invalid form template")                          \
    X(unknown_template, 422, "unknown-template", "Unknown form template")                          \
    X(invalid_answers, 422, "invalid-answers", "Invalid answers")                                  \
    X(template_not_in_visit, 422, "template-not-in-visit", "Template not listed for this visit")   \
    X(template_version_not_latest, 422, "template-version-not-latest",                             \
      "Not the template's latest version")                                                         \
    X(own_access, 422, "own-access", "Own access")                                                 \
    X(two_person_rule, 422, "two-person-rule", "A second person is required")                      \
    X(role_does_not_sign, 422, "role-does-not-sign", "This role does not sign")                    \
    X(enrolment_expired, 422, "enrolment-expired", "Enrolment code expired")                       \
    X(invalid_enrolment_code, 422, "invalid-enrolment-code", "Enrolment code not accepted")        \
    X(no_signing_credential, 422, "no-signing-credential", "No signing credential")                \
    X(signing_credential_invalid, 422, "signing-credential-invalid",                               \
      "Signing credential not accepted")                                                           \
    X(signing_credential_locked, 422, "signing-credential-locked", "Signing credential locked")    \
    X(signing_credential_expired, 422, "signing-credential-expired", "Signing credential expired") \
    /* a fold's refusals of events no command of the gateway makes */                              \
    X(invalid_event, 500, "invalid-event", "Event refused as malformed")                           \
    X(invalid_record, 500, "invalid-event", "Event refused as malformed")                          \
    X(malformed_avro, 500, "invalid-event", "Event refused as malformed")                          \
    X(invalid_display_name, 500, "invalid-event", "Event refused as malformed")                    \
    X(sites_required, 400, "validation-failed", "Invalid request body")                            \
    X(sites_not_allowed, 400, "validation-failed", "Invalid request body")                         \
    X(too_many_sites, 400, "validation-failed", "Invalid request body")                            \
    X(studies_required, 400, "validation-failed", "Invalid request body")                          \
    X(studies_not_allowed, 400, "validation-failed", "Invalid request body")                       \
    X(too_many_studies, 400, "validation-failed", "Invalid request body")                          \
    X(unknown_release, 404, "not-found", "Not found")                                              \
    X(duplicate_release, 409, "conflict", "Command refused")                                       \
    X(release_finished, 409, "conflict", "Command refused")                                        \
    X(duplicate_event, 409, "conflict", "Command refused")                                         \
    X(unknown_study, 404, "not-found", "Not found")                                                \
    X(unknown_participant, 404, "not-found", "Not found")                                          \
    X(unknown_visit, 404, "not-found", "Not found")                                                \
    X(unknown_visit_type, 404, "not-found", "Not found")                                           \
    X(unknown_form, 404, "not-found", "Not found")                                                 \
    X(unknown_principal, 404, "not-found", "Not found")                                            \
    X(unknown_token, 404, "not-found", "Not found")                                                \
    X(unknown_role, 500, "invalid-event", "Event refused as malformed")                            \
    X(wrong_study, 422, "wrong-study", "Not of this study")                                        \
    X(wrong_participant, 422, "wrong-participant", "Not of this participant")                      \
    X(wrong_principal, 422, "wrong-principal", "Not of this principal")                            \
    X(wrong_template, 422, "wrong-template", "Not of this form template")                          \
    X(stale_signature, 409, "revision-mismatch", "Form changed since reviewed")                    \
    X(out_of_range, 422, "out-of-range", "Value out of range")                                     \
    /* the service (500, 503) */                                                                   \
    X(internal, 500, "internal", "Internal error")                                                 \
    X(out_of_memory, 503, "unavailable", "Service unavailable")                                    \
    X(unavailable, 503, "unavailable", "Service unavailable")                                      \
    X(log_back_pressure, 503, "log-back-pressure", "Busy: the archive is catching up")             \
    X(release_file_unavailable, 503, "release-file-unavailable", "Release file unavailable")

typedef enum {
    TL_REASON_NONE = 0, /* no refusal */
#define TL__REASON_ENUM(name, status, type, title) TL_REASON_##name,
    TL_REASONS(TL__REASON_ENUM)
#undef TL__REASON_ENUM
        TL_REASON_COUNT
} tl_reason_t;

/* The reason called name, checked by the compiler. */
#define TL_R(name) TL_REASON_##name
/* Its name as a fold returns it: a string literal, checked by the compiler. */
#define TL_RN(name) ((void)TL_REASON_##name, #name)

typedef struct {
    const char *name;  /* "consent_required" */
    int status;        /* 422 */
    const char *type;  /* "consent-required": the problem type is /problems/<type> */
    const char *title; /* "Consent required" */
} tl_reason_info_t;

/* The row of r; TL_REASON_NONE and values out of range give the row of
 * conflict (a refusal the table does not know is still one). Static. */
const tl_reason_info_t *tl_reason_info(tl_reason_t r);
const char *tl_reason_name(tl_reason_t r);
/* The reason of a name (a fold's word); TL_REASON_NONE for NULL, "" or a
 * name the table lacks. */
tl_reason_t tl_reason_parse(const char *name);

#endif
