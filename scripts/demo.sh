#!/usr/bin/env bash
# make demo: installs what is missing, builds, starts the stack and loads a
# small demo study (idempotent: run it again and it reuses what exists).
source "$(dirname "$0")/lib.sh"
tl_deps
tl_build
"$TL_ROOT/scripts/stack.sh" start
PORT="${TRIALOG_HTTP_PORT:-8080}"
API="http://127.0.0.1:$PORT"

read -r study stl p1 < <("$TL_ROOT/scripts/demo-seed.sh" "$API" "$TL_VAR/demo/admin.token")
[ -n "${p1:-}" ] || die "loading the demo study failed"
echo "$study" >"$TL_VAR/demo/study.id"
cat <<TXT

Trialog is running (gateway http://127.0.0.1:$PORT, logs in var/log, stop with 'make stop').
Demo study: $study (7 participants at 2 sites, 4 visit types, visits in every status,
forms for visual acuity, IOP, OCT, adverse events and medication changes, some amended and signed)

  TOKEN=\$(cat var/demo/admin.token)   # admin token, mode 0600
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/studies/$study
  curl -s -H "Authorization: Bearer \$TOKEN" "$API/v1/studies/$study/participants?site=$stl"
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/participants/$p1/schedule
  curl -s -H "Authorization: Bearer \$TOKEN" "$API/v1/studies/$study/visits?status=overdue"
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/studies/$study/metrics
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/participants/$p1/forms
  curl -s -H "Authorization: Bearer \$TOKEN" $API/v1/studies/$study/data-quality

The README walks through the rest of the API.
TXT
