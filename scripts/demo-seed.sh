#!/usr/bin/env bash
# Loads the demo study through the API: scripts/demo-seed.sh API TOKEN-FILE.
# Used by `make demo` and by the log-scan test (the demo's values must never
# reach a log). Idempotent: run it again and it reuses what exists. Prints
# "STUDY SITE PARTICIPANT" (the study, its first site and first participant).
source "$(dirname "$0")/lib.sh"
API=${1:?usage: demo-seed.sh API TOKEN-FILE}
TOKEN=$(cat "${2:?usage: demo-seed.sh API TOKEN-FILE}")

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
# The protocol: visit types with their windows (days before/after the target day).
vt() {
    post "/v1/studies/$study/visit-types" "vt-$1" "$2" >/dev/null
}
vt baseline '{"name":"Baseline","target_day":0,"window_before_days":0,"window_after_days":0,
  "form_templates":["demographics","visual_acuity"]}'
vt m1 '{"name":"Month 1","target_day":30,"window_before_days":7,"window_after_days":14,
  "form_templates":["visual_acuity"]}'
vt m3 '{"name":"Month 3","target_day":90,"window_before_days":14,"window_after_days":21,
  "form_templates":["visual_acuity","oct"]}'
vt m6 '{"name":"Month 6","target_day":180,"window_before_days":21,"window_after_days":30,
  "required":false,"form_templates":["visual_acuity"]}'

# A cohort whose visits are in every status today: baselines some days ago.
day() { date -u -d "$1 days ago" +%F; }
# act PATH KEY JSON: like post, but a command an earlier run of this script
# applied already is fine (409: the visit is done; 422 participant-not-active:
# the participant was withdrawn).
act() {
    local answer code
    answer=$(curl -sS -w '\n%{http_code}' -X POST "$API$1" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$2" -d "$3")
    code=${answer##*$'\n'}
    case "$code" in
    2??|409) ;;
    422) [[ "$answer" == *participant-not-active* ]] || die "demo: POST $1 answered 422" ;;
    *) die "demo: POST $1 answered $code" ;;
    esac
}
# visit VISIT PARTICIPANT DAYS-AFTER-BASELINE [deviation reason]: completes it
# on that day, unless that day is still to come
visit() {
    local when body
    when=$(date -u -d "${bases[$2]} + $3 days" +%F)
    [[ "$when" > "$(date -u +%F)" ]] && return 0
    body="{\"actual_date\":\"$when\"${4:+,\"deviation_reason\":\"$4\"}}"
    act "/v1/participants/${pids[$2]}/visits/$1/complete" "p$2-$1" "$body"
}
i=0
declare -a pids bases
for row in "STL 1958 F 200" "STL 1949 M 185" "STL 1962 F 120" \
           "BOS 1955 M 95" "BOS 1960 F 45" "BOS 1951 O 10" "BOS 1957 M 60"; do
    set -- $row
    i=$((i + 1))
    site=$stl; [ "$1" = BOS ] && site=$bos
    code=$(printf 'AMD-%05d' $((40 + i)))
    start=$(day "$4")
    answer=$(post "/v1/studies/$study/participants" "p$i" "{\"participant_code\":\"$code\",\"site_id\":\"$site\",
      \"birth_year\":$2,\"sex\":\"$3\",\"consent_date\":\"$start\",\"baseline_date\":\"$start\"}")
    pids[$i]=$(echo "$answer" | json_id)
    # a second run gets the first run's participant (and baseline) back
    bases[$i]=$(echo "$answer" | grep -o '"baseline_date":"[^"]*"' | cut -d'"' -f4)
    visit Baseline "$i" 0
done
visit Month%201 1 30
visit Month%203 1 115 "participant unwell, rescheduled by site"   # out of window
act "/v1/participants/${pids[2]}/visits/Month%201/miss" p2-m1-miss '{"reason":"travelling abroad"}'
visit Month%203 2 92
visit Month%206 2 183
visit Month%201 3 33                                             # Month 3 is now overdue
visit Month%201 4 28                                             # Month 3 is open
act "/v1/participants/${pids[7]}/withdraw" p7-withdraw '{"reason":"moved out of the area"}'
echo "$study $stl ${pids[1]}"
