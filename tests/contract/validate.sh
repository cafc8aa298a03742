#!/usr/bin/env bash
# ctest test_openapi_valid: docs/openapi.yaml passes a standard OpenAPI validator
# (validate.mjs), the one client generators use.
source "$(dirname "$0")/../../scripts/lib.sh"
source "$(dirname "$0")/tools.sh"
tl_contract_node
node "$TL_CONTRACT/validate.mjs" "$TL_ROOT/docs/openapi.yaml"
