/* libFuzzer target: a message off the wire, as every consumer sees it — the
 * Confluent frame, then the Avro datum decoded against a built-in event
 * schema. Whatever the bytes, decoding must either refuse them cleanly or
 * give a value that encodes again and decodes to the same value.
 *
 * The schema is the built-in one at index (schema id - 1) mod the number of
 * built-ins, so the seeds (real events, ids rewritten to that numbering: see
 * tests/fuzz/README.md) reach every schema. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "tl_avro.h"
#include "tl_schemas.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tl_avro_schema_t **schemas;

static void load_schemas(void)
{
    schemas = calloc(tl_schema_source_count, sizeof *schemas);
    if (!schemas)
        abort();
    for (size_t i = 0; i < tl_schema_source_count; i++)
        if (tl_avro_schema_parse(tl_schema_sources[i].avsc, tl_schema_sources[i].len, &schemas[i]))
            abort(); /* a built-in schema that does not parse is a bug of its own */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schemas)
        load_schemas();
    uint32_t id;
    const void *datum;
    size_t datum_len;
    if (tl_frame_parse(data, size, &id, &datum, &datum_len))
        return 0;
    const tl_avro_schema_t *s = schemas[(id - 1u) % tl_schema_source_count];
    json_t *value = NULL;
    if (tl_avro_decode(s, datum, datum_len, &value)) {
        if (value)
            abort(); /* a refusal leaves nothing behind */
        return 0;
    }
    /* what decodes, encodes, and comes back the same */
    tl_buf_t again;
    tl_buf_init(&again, 1u << 24);
    json_t *back = NULL;
    if (tl_avro_encode(s, value, &again) ||
        tl_avro_decode(s, again.data ? again.data : "", again.len, &back) ||
        !json_equal(value, back))
        abort();
    json_decref(back);
    json_decref(value);
    tl_buf_cleanup(&again);
    return 0;
}
