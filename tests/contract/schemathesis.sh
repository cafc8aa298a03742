#!/usr/bin/env bash
# The property-based API test: schemathesis (tests/contract/requirements.txt)
# generates requests from docs/openapi.yaml, valid and invalid, and sends them to
# a live gateway; every answer must be no 5xx, a status the document lists for
# the operation, the documented content type and a body its schema accepts.
#   tests/contract/schemathesis.sh API TOKEN-FILE OUT-DIR [STUDY SITE PARTICIPANT]
# API: the gateway's base URL; TOKEN-FILE: an administrator's bearer token;
# OUT-DIR: where its JUnit report goes; STUDY SITE PARTICIPANT: ids of an existing
# study (with visit types Baseline and Month 1 and a form template vitals) that
# path parameters take half the time, so the requests reach past the 404s. Bounded: a fixed seed and a fixed
# number of examples per operation (TL_CONTRACT_EXAMPLES, default 50), the run
# cut at TL_CONTRACT_SECONDS (default 240); TL_CONTRACT_CHECKS: other checks
# (schemathesis's names, comma-separated). Run by tests/integration/test_contract.c.
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/tools.sh"
API=${1:?usage: schemathesis.sh API TOKEN-FILE OUT-DIR [STUDY SITE PARTICIPANT]}
TOKEN_FILE=${2:?usage: schemathesis.sh API TOKEN-FILE OUT-DIR}
OUT=${3:?usage: schemathesis.sh API TOKEN-FILE OUT-DIR}
venv=$(tl_contract_venv)
mkdir -p "$OUT"

# The configuration: the token comes from the environment (never a command
# line); the known ids as a dictionary for the path parameters that name them.
conf="$OUT/schemathesis.toml"
{
    printf '%s\n' 'headers = { Authorization = "Bearer ${TL_CONTRACT_TOKEN}" }'
    if [ $# -ge 6 ]; then
        printf '[dictionaries]\n'
        printf 'study = { values = ["%s"] }\n' "$4"
        printf 'site = { values = ["%s"] }\n' "$5"
        printf 'participant = { values = ["%s"] }\n' "$6"
        printf '%s\n' 'visit_type = { values = ["Baseline", "Month 1"] }' \
            'template = { values = ["vitals"] }' '[parameters]'
        for p in path.study path.participant path.visit_type path.template query.site; do
            printf '"%s" = { dictionary = "%s", probability = 0.5 }\n' "$p" "${p#*.}"
        done
    fi
} >"$conf"

# the document with its x-common-responses in every operation (expand.py)
"$venv/bin/python" "$TL_CONTRACT/expand.py" "$TL_ROOT/docs/openapi.yaml" >"$OUT/openapi.json"

TL_CONTRACT_TOKEN=$(cat "$TOKEN_FILE")
export TL_CONTRACT_TOKEN
cd "$OUT" # whatever it leaves behind (.hypothesis) stays there
timeout -k 10 "${TL_CONTRACT_SECONDS:-240}" "$venv/bin/schemathesis" --config-file "$conf" \
    run "$OUT/openapi.json" --url "$API" \
    --checks "${TL_CONTRACT_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
    --phases examples,coverage,fuzzing --seed 26 --max-examples "${TL_CONTRACT_EXAMPLES:-50}" \
    --generation-deterministic --workers 2 --request-timeout 20 --no-color \
    --report junit --report-junit-path "$OUT/schemathesis-junit.xml"
