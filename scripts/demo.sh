#!/usr/bin/env bash
# make demo: installs what is missing, builds, starts the stack and loads a
# small demo study (idempotent: run it again and it reuses what exists).
source "$(dirname "$0")/lib.sh"
tl_deps
tl_build
"$TL_ROOT/scripts/stack.sh" start
PORT="${TRIALOG_HTTP_PORT:-8080}"
API="http://127.0.0.1:$PORT"
TOKEN=$(cat "$TL_VAR/demo/admin.token")

# post PATH IDEMPOTENCY-KEY JSON: prints the answer body; fails on >= 400.
post() {
    curl -fsS -X POST "$API$1" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$2" -d "$3"
}
# The id of a created resource: the first member of every 201/202 answer.
json_id() { grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4; }

say "loading the demo study"
study=$(post /v1/studies study '{"protocol_id":"AMD-P2-2024","name":"AMD Progression",
  "description":"Longitudinal study of age-related macular degeneration progression"}' | json_id)
stl=$(post "/v1/studies/$study/sites" site-stl '{"code":"STL","name":"St. Louis Eye Center"}' | json_id)
bos=$(post "/v1/studies/$study/sites" site-bos '{"code":"BOS","name":"Boston Retina Institute"}' | json_id)
i=0
for row in "STL 1958 F 2026-01-05" "STL 1949 M 2026-01-12" "STL 1962 F 2026-02-02" \
           "BOS 1955 M 2026-01-20" "BOS 1960 F 2026-02-16" "BOS 1951 O 2026-03-02"; do
    set -- $row
    i=$((i + 1))
    site=$stl; [ "$1" = BOS ] && site=$bos
    code=$(printf 'AMD-%05d' $((40 + i)))
    post "/v1/studies/$study/participants" "p$i" "{\"participant_code\":\"$code\",\"site_id\":\"$site\",
      \"birth_year\":$2,\"sex\":\"$3\",\"consent_date\":\"$4\",\"baseline_date\":\"$4\"}" >/dev/null
done
echo "$study" >"$TL_VAR/demo/study.id"
cat <<TXT

Trialog is running (gateway http://127.0.0.1:$PORT, logs in var/log, stop with 'make stop').
Demo study: $study (6 participants at 2 sites)

  TOKEN=\$(cat var/demo/admin.token)   # admin token, mode 0600
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/studies/$study
  curl -s -H "Authorization: Bearer \$TOKEN" "$API/v1/studies/$study/participants?site=$stl"

The README walks through the rest of the API.
TXT
