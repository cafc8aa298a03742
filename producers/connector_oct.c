/* trialog-connector-oct: an example connector (docs/CONNECTORS.md). It
 * plays an OCT device's export: it registers its schema through the schema
 * registry API with a connector's token, then publishes one scan record per
 * participant and eye per visit day to trialog.ingest.oct.v1, keyed by the
 * participant code, in Confluent's framing. Run the ingest consumer with
 * TRIALOG_INGEST_SOURCES=oct to take them.
 *
 *   TRIALOG_KAFKA_BROKERS=... TRIALOG_SCHEMA_REGISTRY_URL=http://127.0.0.1:8080/registry \
 *   TRIALOG_CONNECTOR_TOKEN_FILE=connector.token \
 *   trialog-connector-oct AMD-P2-2024 AMD-00001 AMD-00002 ...
 *
 * The registry is TRIALOG_SCHEMA_REGISTRY_URL, the name every program reads
 * (TRIALOG_REGISTRY_URL, the name this connector read before, when that is
 * unset; else the local gateway's /registry).
 *
 * With TRIALOG_CONNECTOR_DAYS=n (default 1) it exports the last n days'
 * scans, today's included (a device's backlog; bench/run uses it for load).
 * Records are derived from the codes and the day, so running it twice on
 * the same day publishes the same event ids again: the ingest consumer
 * takes each once. It produces without waiting and flushes at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_avro.h"
#include "tl_config.h"
#include "tl_date.h"
#include "tl_http_client.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_uuid.h"

#define TOPIC "trialog.ingest.oct.v1"
#define SUBJECT TOPIC "-org.example.oct.OctScan"
#define CODES_MAX 1000

static const char schema_text[] =
    "{\"type\":\"record\",\"name\":\"OctScan\",\"namespace\":\"org.example.oct\","
    "\"doc\":\"One OCT scan of one eye, as the device exports it\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\",\"doc\":\"the scan's UUID\"},"
    "{\"name\":\"protocol_id\",\"type\":\"string\"},"
    "{\"name\":\"participant_code\",\"type\":\"string\"},"
    "{\"name\":\"observed_on\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"device\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"laterality\",\"type\":\"string\"},"
    "{\"name\":\"central_subfield_thickness_um\",\"type\":\"int\","
    "\"trialog.min\":100,\"trialog.max\":1200},"
    "{\"name\":\"signal_strength\",\"type\":\"double\",\"trialog.min\":0,\"trialog.max\":40},"
    "{\"name\":\"scan_pattern\",\"type\":\"string\"}]}";

static char *read_token(const char *path)
{
    static char token[128];
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f || !fgets(token, sizeof token, f)) {
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    token[strcspn(token, "\r\n")] = '\0';
    return token;
}

/* Registers the schema (or finds it registered): its id. */
static tl_err_t register_schema(const char *url, const char *token, uint32_t *id)
{
    char endpoint[1200], auth[160];
    snprintf(endpoint, sizeof endpoint, "%s/subjects/%s/versions", url, SUBJECT);
    snprintf(auth, sizeof auth, "Bearer %s", token);
    json_t *body = json_pack("{s:s}", "schema", schema_text), *answer = NULL;
    long status = 0;
    tl_err_t err = body ? tl_http_client_json("POST", endpoint, body, auth, 10000, &status, &answer)
                        : TL_ERR_NOMEM;
    json_t *v = json_object_get(answer, "id");
    if (!err && (status != 200 || !json_is_integer(v))) {
        fprintf(stderr, "registry answered %ld\n", status);
        err = TL_ERR_UNAVAILABLE;
    }
    if (!err)
        *id = (uint32_t)json_integer_value(v);
    json_decref(body);
    json_decref(answer);
    return err;
}

static tl_err_t publish(tl_kafka_producer_t *k, const tl_avro_schema_t *s, uint32_t id,
                        const char *protocol, const char *code, int32_t day, int eye)
{
    static const tl_uuid_t ns = {.s = "2f6c1a9e-0d47-5b3a-9e81-4c7d2b5a6f10"};
    char seed[160];
    tl_uuid_t scan;
    int n = snprintf(seed, sizeof seed, "%s/%s/%d/%d", protocol, code, (int)day, eye);
    tl_err_t err = tl_uuid_v5(&ns, seed, (size_t)n, &scan);
    /* plausible values: a thickness of 220-420 um, strength 20-35 dB */
    unsigned h = 2166136261u;
    for (const char *p = seed; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:f, s:s}", "event_id", scan.s, "protocol_id",
        protocol, "participant_code", code, "observed_on", (int)day, "device", "Spectralis OCT2",
        "laterality", eye ? "OS" : "OD", "central_subfield_thickness_um", (int)(220 + h % 200),
        "signal_strength", 20.0 + (h >> 8) % 150 / 10.0, "scan_pattern", "macular cube 512x128");
    unsigned char hdr[TL_FRAME_HEADER_LEN];
    tl_buf_t b;
    tl_buf_init(&b, 1 << 16);
    tl_frame_header(id, hdr);
    if (!err)
        err = rec ? tl_buf_append(&b, hdr, sizeof hdr) : TL_ERR_NOMEM;
    if (!err)
        err = tl_avro_encode(s, rec, &b);
    if (!err)
        err = tl_kafka_produce_async(k, TOPIC, -1, code, strlen(code), b.data, b.len, NULL, 0,
                                     NULL);
    tl_buf_cleanup(&b);
    json_decref(rec);
    return err;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *url = NULL, *old_url = NULL, *token_file = NULL,
               *kafka_config = NULL;
    long days = 1;
    const tl_config_var_t vars[] = {
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, NULL, 1, 1000, false, "Kafka bootstrap servers",
         &brokers},
        TL_KAFKA_CONFIG_VAR(&kafka_config),
        {"TRIALOG_SCHEMA_REGISTRY_URL", TL_CFG_STR, "", 0, 1000, false,
         "the schema registry API (empty: TRIALOG_REGISTRY_URL)", &url},
        {"TRIALOG_REGISTRY_URL", TL_CFG_STR, "http://127.0.0.1:8080/registry", 1, 1000, false,
         "the earlier name of TRIALOG_SCHEMA_REGISTRY_URL, read when that is empty", &old_url},
        {"TRIALOG_CONNECTOR_TOKEN_FILE", TL_CFG_STR, NULL, 1, 1000, false,
         "a file holding a connector principal's bearer token", &token_file},
        {"TRIALOG_CONNECTOR_DAYS", TL_CFG_INT, "1", 1, 366, false,
         "days of scans to export, back from today", &days},
    };
    if (argc < 3 || argc - 2 > CODES_MAX) {
        fprintf(stderr, "usage: trialog-connector-oct PROTOCOL_ID PARTICIPANT_CODE...\n");
        return 2;
    }
    if (tl_config_load(vars, sizeof vars / sizeof vars[0], NULL, stderr))
        return 2;
    if (!*url)
        url = old_url;
    tl_log_init("connector-oct", TL_LOG_INFO);
    if (tl_kafka_client_init("connector-oct", kafka_config, stderr))
        return 2;
    const char *token = read_token(token_file);
    uint32_t id = 0;
    tl_avro_schema_t *s = NULL;
    tl_kafka_producer_t *k = NULL;
    tl_err_t err = token ? TL_OK : TL_ERR_CONFIG;
    if (!err)
        err = register_schema(url, token, &id);
    if (!err)
        err = tl_avro_schema_parse(schema_text, strlen(schema_text), &s);
    if (!err)
        err = tl_kafka_producer_new(brokers, 10000, &k);
    int sent = 0;
    for (int32_t day = tl_date_today() - (int32_t)days + 1; !err && day <= tl_date_today(); day++)
        for (int i = 2; !err && i < argc; i++)
            for (int eye = 0; !err && eye < 2; eye++, sent++)
                err = publish(k, s, id, argv[1], argv[i], day, eye);
    if (!err)
        err = tl_kafka_producer_flush(k, 60000);
    tl_kafka_producer_destroy(k);
    tl_avro_schema_destroy(s);
    if (err) {
        fprintf(stderr, "trialog-connector-oct: %s after %d records\n", tl_err_name(err), sent);
        return 1;
    }
    printf("published %d scans to %s (schema id %u)\n", sent, TOPIC, id);
    return 0;
}
