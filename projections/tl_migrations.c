#include "tl_migrations.h"

#include <stdio.h>
#include <stdlib.h>

#include "tl_log.h"

/* Append only: a released migration is never edited. */
static const char *const migrations[] = {
    /* 1: schema store */
    "CREATE TABLE registry_schemas ("
    "  id serial PRIMARY KEY,"
    "  schema text NOT NULL,"
    "  fingerprint text NOT NULL UNIQUE,"
    "  created_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE registry_subjects ("
    "  subject text NOT NULL,"
    "  version int NOT NULL,"
    "  schema_id int NOT NULL REFERENCES registry_schemas(id),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (subject, version),"
    "  UNIQUE (subject, schema_id));",

    /* 2: consumer bookkeeping: offsets stored with the projection rows, and
     * events a fold refused (with why), so nothing is dropped silently */
    "CREATE TABLE projection_offsets ("
    "  projection text NOT NULL,"
    "  topic text NOT NULL,"
    "  partition int NOT NULL,"
    "  next_offset bigint NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (projection, topic, partition));"
    "CREATE TABLE projection_rejections ("
    "  projection text NOT NULL,"
    "  topic text NOT NULL,"
    "  partition int NOT NULL,"
    "  \"offset\" bigint NOT NULL,"
    "  event_id uuid,"
    "  event_type text,"
    "  aggregate_id uuid,"
    "  reason text NOT NULL,"
    "  recorded_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (projection, topic, partition, \"offset\"));",

    /* 3: participants projection (studies, sites, participants) */
    "CREATE TABLE studies ("
    "  id uuid PRIMARY KEY,"
    "  protocol_id text NOT NULL UNIQUE,"
    "  name text NOT NULL,"
    "  description text,"
    "  registered_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE TABLE sites ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  code text NOT NULL,"
    "  name text NOT NULL,"
    "  added_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL,"
    "  UNIQUE (study_id, code));"
    "CREATE TABLE participants ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  participant_code text NOT NULL,"
    "  status text NOT NULL,"
    "  birth_year int,"
    "  sex text,"
    "  consent_date date,"
    "  baseline_date date,"
    "  enrolled_at timestamptz NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  version bigint NOT NULL,"
    "  last_event_id uuid NOT NULL,"
    "  UNIQUE (study_id, participant_code));"
    "CREATE INDEX participants_by_site ON participants (study_id, site_id, participant_code);"
    "CREATE INDEX participants_by_status ON participants (study_id, status, participant_code);",

    /* 4: the archive of the log: every message once, exactly as it was,
     * chained per partition (projections/audit.h); append-only */
    "CREATE TABLE audit_log ("
    "  topic text NOT NULL,"
    "  partition int NOT NULL,"
    "  \"offset\" bigint NOT NULL,"
    "  key bytea,"
    "  headers jsonb NOT NULL,"
    "  value bytea,"
    "  event_type text,"
    "  event_id uuid,"
    "  actor_id text,"
    "  actor_role text,"
    "  site_id uuid,"
    "  reason text,"
    "  occurred_at timestamptz,"
    "  recorded_at timestamptz,"
    "  logged_at timestamptz,"
    "  archived_at timestamptz NOT NULL DEFAULT now(),"
    "  prev_hash bytea NOT NULL,"
    "  hash bytea NOT NULL,"
    "  PRIMARY KEY (topic, partition, \"offset\"));"
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = '42501'; END $$;"
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log"
    "  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();"
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
    "  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();"
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER;",

    /* 5: participants projection: study lock, visit types of the protocol.
     * Names are unique per study by the fold; the index is not UNIQUE, so a
     * batch that swaps two names in one upsert cannot fail on it. */
    "ALTER TABLE studies ADD COLUMN locked boolean NOT NULL DEFAULT false,"
    "  ADD COLUMN lock_reason text, ADD COLUMN lock_changed_at timestamptz;"
    "CREATE TABLE visit_types ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  name text NOT NULL,"
    "  target_day int NOT NULL,"
    "  window_before_days int NOT NULL,"
    "  window_after_days int NOT NULL,"
    "  required boolean NOT NULL,"
    "  form_templates jsonb NOT NULL,"
    "  revision int NOT NULL,"
    "  defined_at timestamptz NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE INDEX visit_types_by_study ON visit_types (study_id, lower(name));",

    /* 6: schedules projection: each participant's visits with their dates,
     * state and version; indexes for the study-wide visit lists */
    "CREATE TABLE schedule_participants ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  participant_code text NOT NULL,"
    "  status text NOT NULL,"
    "  baseline_date date NOT NULL,"
    "  version bigint NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE INDEX schedule_participants_by_study ON schedule_participants (study_id, status);"
    "CREATE TABLE participant_visits ("
    "  participant_id uuid NOT NULL,"
    "  visit_type_id uuid NOT NULL,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  name text NOT NULL,"
    "  target_day int NOT NULL,"
    "  required boolean NOT NULL,"
    "  due_date date NOT NULL,"
    "  window_start date NOT NULL,"
    "  window_end date NOT NULL,"
    "  state text NOT NULL,"
    "  actual_date date,"
    "  in_window boolean,"
    "  deviation_reason text,"
    "  missed_reason text,"
    "  notes text,"
    "  version bigint NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL,"
    "  PRIMARY KEY (participant_id, visit_type_id));"
    "CREATE INDEX participant_visits_by_due ON participant_visits (study_id, due_date);"
    "CREATE INDEX participant_visits_by_window ON participant_visits (study_id, state, "
    "window_end);",

    /* 7: access projection (principals and their bearer tokens; only a
     * token's SHA-256 is kept, never the token) */
    "CREATE TABLE principals ("
    "  id uuid PRIMARY KEY,"
    "  name text NOT NULL UNIQUE,"
    "  role text NOT NULL,"
    "  site_ids uuid[] NOT NULL,"
    "  active boolean NOT NULL,"
    "  signing_credential_id uuid,"
    "  created_at timestamptz NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE TABLE access_tokens ("
    "  id uuid PRIMARY KEY,"
    "  principal_id uuid NOT NULL,"
    "  token_sha256 text NOT NULL UNIQUE,"
    "  label text,"
    "  issued_at timestamptz NOT NULL,"
    "  expires_at timestamptz NOT NULL,"
    "  revoked_at timestamptz,"
    "  revoke_reason text,"
    "  last_event_id uuid NOT NULL);"
    "CREATE INDEX access_tokens_by_principal ON access_tokens (principal_id);",

    /* 8: signing credentials' slow hashes, written by whoever sets one (the
     * gateway, the CLI) before its SigningCredentialSet event: a password
     * hash never enters the immutable log. A row counts only once the
     * principal's projected signing_credential_id names it. */
    "CREATE TABLE signing_credentials ("
    "  credential_id uuid PRIMARY KEY,"
    "  principal_id uuid NOT NULL,"
    "  hash text NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now());",

    /* 9: the history API's reads of the archive: a participant's stream, an
     * actor's deeds, everything in a period */
    "CREATE INDEX audit_log_by_key ON audit_log (topic, key);"
    "CREATE INDEX audit_log_by_actor ON audit_log (actor_id, recorded_at);"
    "CREATE INDEX audit_log_by_time ON audit_log (recorded_at, topic, partition, \"offset\");",

    /* 10: forms projection: template versions, each participant's stream
     * state, forms with their current answers and signature, and every value
     * a field ever had (who, when, why) */
    "CREATE TABLE form_templates ("
    "  id uuid NOT NULL,"
    "  study_id uuid NOT NULL,"
    "  name text NOT NULL,"
    "  version int NOT NULL,"
    "  title text,"
    "  fields jsonb NOT NULL,"
    "  published_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL,"
    "  PRIMARY KEY (id, version),"
    "  UNIQUE (study_id, name, version));"
    "CREATE TABLE form_participants ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  status text NOT NULL,"
    "  version bigint NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE TABLE forms ("
    "  id uuid PRIMARY KEY,"
    "  participant_id uuid NOT NULL,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  visit_type_id uuid NOT NULL,"
    "  template_id uuid NOT NULL,"
    "  template_name text NOT NULL,"
    "  template_version int NOT NULL,"
    "  answers jsonb NOT NULL,"
    "  status text NOT NULL,"
    "  revision int NOT NULL,"
    "  signed_by uuid,"
    "  signer_name text,"
    "  signature_meaning text,"
    "  signed_at timestamptz,"
    "  submitted_by uuid NOT NULL,"
    "  submitted_at timestamptz NOT NULL,"
    "  updated_at timestamptz NOT NULL,"
    "  version bigint NOT NULL,"
    "  last_event_id uuid NOT NULL);"
    "CREATE INDEX forms_by_participant ON forms (participant_id, visit_type_id, template_name);"
    "CREATE INDEX forms_by_study ON forms (study_id, status, submitted_at);"
    "CREATE TABLE form_field_history ("
    "  form_id uuid NOT NULL,"
    "  revision int NOT NULL,"
    "  field text NOT NULL,"
    "  before jsonb,"
    "  after jsonb,"
    "  event_type text NOT NULL,"
    "  actor_id text NOT NULL,"
    "  actor_role text NOT NULL,"
    "  reason text,"
    "  recorded_at timestamptz NOT NULL,"
    "  event_id uuid NOT NULL,"
    "  PRIMARY KEY (form_id, revision, field));",

    /* 11: a form's submitter is the event's actor, which a connector names
     * in its own words, not always a principal's uuid */
    "ALTER TABLE forms ALTER COLUMN submitted_by TYPE text;",

    /* 12: the schema registry API's compatibility levels: '' is the
     * registry's own, any other subject its own */
    "CREATE TABLE registry_config ("
    "  subject text PRIMARY KEY,"
    "  compatibility text NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now());",

    /* 13: the research export's own state (research_store.c): what it
     * needs to make full rows, as the fold's structs in JSON; the template
     * versions it has read; forms it holds back until their template
     * version arrives (pending) */
    "CREATE TABLE research_participants ("
    "  participant_id uuid PRIMARY KEY,"
    "  state jsonb NOT NULL);"
    "CREATE TABLE research_forms ("
    "  form_id uuid PRIMARY KEY,"
    "  participant_id uuid NOT NULL,"
    "  template_id uuid NOT NULL,"
    "  pending boolean NOT NULL,"
    "  state jsonb NOT NULL);"
    "CREATE INDEX research_forms_participant ON research_forms (participant_id);"
    "CREATE INDEX research_forms_pending ON research_forms (template_id) WHERE pending;"
    "CREATE TABLE research_templates ("
    "  template_id uuid NOT NULL,"
    "  version int NOT NULL,"
    "  fields jsonb NOT NULL,"
    "  PRIMARY KEY (template_id, version));",

    /* 14: dataset releases (releases_store.c, part of the participants
     * projection): one row per release with its status; the manifest is
     * kept as the text of manifest.json */
    "CREATE TABLE releases ("
    "  id uuid PRIMARY KEY,"
    "  study_id uuid NOT NULL,"
    "  name text NOT NULL,"
    "  status text NOT NULL,"
    "  cut jsonb NOT NULL,"
    "  requested_by text NOT NULL,"
    "  requested_at timestamptz NOT NULL,"
    "  started_at timestamptz,"
    "  finished_at timestamptz,"
    "  manifest text,"
    "  error text);"
    "CREATE INDEX releases_by_study ON releases (study_id, requested_at, id);",

    /* 15: the ingest consumer's choices (ingest_consumer.h): the stream
     * version it gave each connector event, written before it produces */
    "CREATE TABLE ingest_events ("
    "  event_id uuid PRIMARY KEY,"
    "  source text NOT NULL,"
    "  topic text NOT NULL,"
    "  partition int NOT NULL,"
    "  \"offset\" bigint NOT NULL,"
    "  participant_id uuid NOT NULL,"
    "  stream_version bigint NOT NULL,"
    "  status text NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now());",

    /* 16: the gateway's Idempotency-Key bindings (gateway/idempotency.h):
     * the first request of each key, the ids it got, where the log put its
     * event and its final answer; kept TRIALOG_IDEMPOTENCY_KEY_HOURS */
    "CREATE TABLE idempotency_keys ("
    "  key text PRIMARY KEY,"
    "  principal_id text NOT NULL,"
    "  method text NOT NULL,"
    "  path text NOT NULL,"
    "  body_sha256 text NOT NULL,"
    "  event_id uuid NOT NULL,"
    "  resource_id uuid NOT NULL,"
    "  topic text,"
    "  partition int,"
    "  \"offset\" bigint,"
    "  status int,"
    "  answer text,"
    "  location text,"
    "  lease_until timestamptz NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);",

    /* 17: signatures one person cannot forge (docs/SECURITY.md): the
     * principal's printed name, who granted its role, its signing
     * credential's expiry, failures and lock, the enrolment in progress;
     * who issued each token */
    "ALTER TABLE principals ADD COLUMN display_name text, ADD COLUMN granted_by text,"
    "  ADD COLUMN signing_expires_at timestamptz,"
    "  ADD COLUMN signing_failures int NOT NULL DEFAULT 0,"
    "  ADD COLUMN signing_locked boolean NOT NULL DEFAULT false,"
    "  ADD COLUMN enrolment_state text NOT NULL DEFAULT 'none', ADD COLUMN enrolment_id uuid,"
    "  ADD COLUMN enrolment_opened_by text, ADD COLUMN enrolment_approved_by text,"
    "  ADD COLUMN enrolment_code_sha256 text, ADD COLUMN enrolment_code_expires_at timestamptz;"
    "ALTER TABLE access_tokens ADD COLUMN issued_by text;",

    /* 18: what each form's signature signed and the signer's printed name */
    ("ALTER TABLE forms ADD COLUMN signer_printed_name text,"
     "  ADD COLUMN signature_content_sha256 text;"),
    /* 19: connectors' observations as the participants projection took
     * them (ObservationRecorded, docs/CONNECTORS.md), for
     * GET /v1/participants/{p}/observations; site_id is the participant's,
     * which the route's site scope checks */
    "CREATE TABLE observations ("
    "  event_id uuid PRIMARY KEY,"
    "  participant_id uuid NOT NULL,"
    "  study_id uuid NOT NULL,"
    "  site_id uuid NOT NULL,"
    "  stream_version bigint NOT NULL,"
    "  source text NOT NULL,"
    "  kind text NOT NULL,"
    "  observed_on date NOT NULL,"
    "  device text,"
    "  laterality text,"
    "  observed_values jsonb NOT NULL,"
    "  connector_event_id text,"
    "  recorded_at timestamptz NOT NULL);"
    "CREATE UNIQUE INDEX observations_by_participant ON observations (participant_id, stream_version);",
    /* 20: when a participant was withdrawn or completed (rules.h); rows
     * of participants who left before it get theirs on a rebuild */
    "ALTER TABLE participants ADD COLUMN end_date date;",
    /* 21: analysts are granted studies (docs/SECURITY.md); one granted
     * before has none and sees no study until granted some */
    "ALTER TABLE principals ADD COLUMN study_ids uuid[] NOT NULL DEFAULT '{}';",
    /* 22: the dates the protocol's rules bound visits with (rules.h), kept
     * with the schedule the rules judge, so that both come from one
     * projection at one version; consent is copied from the participants
     * projection where it is (in a rebuild's shadow schema nothing is) */
    "ALTER TABLE schedule_participants ADD COLUMN consent_date date,"
    "  ADD COLUMN end_date date;"
    "UPDATE schedule_participants sp SET consent_date = p.consent_date, end_date = p.end_date"
    "  FROM participants p WHERE p.id = sp.id;",
};

tl_err_t tl_migrations_replay(tl_pg_t *pg, const int *versions, size_t n)
{
    const int known = (int)(sizeof migrations / sizeof migrations[0]);
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < n && !err; i++)
        err = versions[i] >= 1 && versions[i] <= known
                  ? tl_pg_exec(pg, migrations[versions[i] - 1], 0, NULL, NULL)
                  : TL_ERR_INVALID;
    return err;
}

tl_err_t tl_migrate(tl_pg_t *pg)
{
    const int n = (int)(sizeof migrations / sizeof migrations[0]);
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(pg,
                              "BEGIN; SELECT pg_advisory_xact_lock(7201000);"
                              "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              "  version int PRIMARY KEY,"
                              "  applied_at timestamptz NOT NULL DEFAULT now());"
                              "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                              0, NULL, &res);
    if (err)
        goto out;
    const char *cur = tl_pg_get(res, 0, 0);
    int have = cur ? (int)strtol(cur, NULL, 10) : 0;
    if (have > n) {
        tl_log_error("schema_newer_than_program", json_pack("{s:i, s:i}", "have", have, "know", n));
        err = TL_ERR_CONFIG;
        goto out;
    }
    for (int v = have + 1; v <= n && !err; v++) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", v);
        const char *params[] = {ver};
        err = tl_pg_exec(pg, migrations[v - 1], 0, NULL, NULL);
        if (!err)
            err = tl_pg_exec(pg, "INSERT INTO schema_migrations(version) VALUES ($1)", 1, params,
                             NULL);
        if (!err)
            tl_log_info("migration_applied", json_pack("{s:i}", "version", v));
    }
    if (!err)
        err = tl_pg_exec(pg, "COMMIT", 0, NULL, NULL);
out:
    if (err)
        tl_pg_exec(pg, "ROLLBACK", 0, NULL, NULL);
    tl_pg_res_free(res);
    return err;
}
