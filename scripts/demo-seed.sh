#!/usr/bin/env bash
# Loads the demo study through the API: scripts/demo-seed.sh API TOKEN-FILE
# [ADMIN2-TOKEN-FILE] (default: admin2.token next to TOKEN-FILE, a second
# administrator the operator's CLI made: it approves signing enrolments).
# Used by `make demo`, by the log-scan test (the demo's values must never
# reach a log) and by the data-quality test (tests/integration/test_demo.c
# holds the report this data must give, computed by hand: change both
# together). Idempotent: run it again and it reuses what exists. Prints
# "STUDY SITE PARTICIPANT" (the study, its first site and first participant).
# Writes a clinician's token next to TOKEN-FILE (clinician.token, mode 0600).
source "$(dirname "$0")/lib.sh"
API=${1:?usage: demo-seed.sh API TOKEN-FILE}
TOKEN=$(cat "${2:?usage: demo-seed.sh API TOKEN-FILE [ADMIN2-TOKEN-FILE]}")
# where the tokens live (the loops below reuse $1, $2 ...)
TOKEN_DIR=$(dirname "$2")
# a second administrator, who approves what the first opens (two-person rule)
TOKEN2=$(cat "${3:-$TOKEN_DIR/admin2.token}")

# call METHOD PATH IDEMPOTENCY-KEY JSON: prints the answer body; on >= 400
# says which problem it was and fails.
call() {
    local answer code
    answer=$(curl -sS -w '\n%{http_code}' -X "$1" "$API$2" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$3" -d "$4") || exit 1
    code=${answer##*$'\n'}
    [ "$code" -lt 400 ] ||
        die "demo: $1 $2 answered $code $(grep -o '"type":"[^"]*"' <<<"$answer" | head -n 1)"
    printf '%s\n' "${answer%$'\n'*}"
}
post() { call POST "$@"; }
# The id of a created resource: the first member of every 201/202 answer.
json_id() { grep -o '"id":"[^"]*"' | head -n 1 | cut -d'"' -f4; }

say "loading the demo study"
study=$(post /v1/studies study '{"protocol_id":"AMD-P2-2024","name":"AMD Progression",
  "description":"Longitudinal study of age-related macular degeneration progression"}' | json_id)
stl=$(post "/v1/studies/$study/sites" site-stl '{"code":"STL","name":"St. Louis Eye Center"}' | json_id)
bos=$(post "/v1/studies/$study/sites" site-bos '{"code":"BOS","name":"Boston Retina Institute"}' | json_id)
# ---- case report forms (docs/FORMS.md): the templates, before the visit
# types that list them (a visit takes forms of the templates its type lists)
tpl() { post "/v1/studies/$study/form-templates" "tpl-$1" "$2" >/dev/null; }
tpl demographics '{"name":"demographics","title":"Demographics and history","fields":[
  {"name":"smoking","label":"Smoking status","type":"choice","required":true,
   "options":["never","former","current"]},
  {"name":"family_history_amd","label":"Family history of AMD","type":"choice","required":true,
   "options":["yes","no","not_known"]},
  {"name":"study_eye","label":"Study eye","type":"choice","required":true,"options":["OD","OS"]}]}'
# acuity in ETDRS letters, pressure in mmHg, per eye (OD right, OS left)
va_fields='{"name":"va_od_letters","label":"Visual acuity OD","type":"integer","required":true,
   "min":0,"max":100,"unit":"letters"},
  {"name":"va_os_letters","label":"Visual acuity OS","type":"integer","required":true,
   "min":0,"max":100,"unit":"letters"},
  {"name":"iop_od_mmhg","label":"Intraocular pressure OD","type":"number","required":true,
   "min":IOP_MIN,"max":IOP_MAX,"decimals":0,"unit":"mmHg"},
  {"name":"iop_os_mmhg","label":"Intraocular pressure OS","type":"number","required":true,
   "min":IOP_MIN,"max":IOP_MAX,"decimals":0,"unit":"mmHg"},
  {"name":"iop_method","label":"Pressure measured by","type":"choice","required":METHOD_REQUIRED,
   "options":["goldmann","rebound","non_contact"]},
  {"name":"comments","type":"text","max_length":500}'
va_v1=${va_fields//IOP_MIN/0}; va_v1=${va_v1//IOP_MAX/80}; va_v1=${va_v1//METHOD_REQUIRED/false}
tpl visual-acuity-v1 '{"name":"visual_acuity","title":"Visual acuity and IOP","fields":['"$va_v1"']}'
tpl oct '{"name":"oct","title":"Optical coherence tomography","fields":[
  {"name":"cst_um","label":"Central subfield thickness","type":"integer","required":true,
   "min":100,"max":900,"unit":"µm"},
  {"name":"fluid","label":"Fluid","type":"checkbox","required":true,
   "options":["none","intraretinal","subretinal","sub_rpe"]},
  {"name":"drusen","label":"Largest drusen","type":"choice","options":["none","small","medium","large"]},
  {"name":"scan_date","type":"date","required":true,"min":"2020-01-01"}]}'
tpl adverse-events '{"name":"adverse_events","title":"Adverse event","fields":[
  {"name":"term","label":"Event (MedDRA term)","type":"text","required":true,"max_length":200},
  {"name":"onset_date","type":"date","required":true},
  {"name":"severity","type":"choice","required":true,"options":["mild","moderate","severe"]},
  {"name":"serious","type":"choice","required":true,"options":["yes","no"]},
  {"name":"eye","type":"checkbox","options":["OD","OS"]},
  {"name":"relatedness","type":"choice","options":["not_related","unlikely","possible","probable"]}]}'
tpl medication-changes '{"name":"medication_changes","title":"Concomitant medication change","fields":[
  {"name":"medication","type":"text","required":true,"max_length":200},
  {"name":"change_kind","type":"choice","required":true,"options":["started","stopped","dose_changed"]},
  {"name":"change_date","type":"date","required":true},
  {"name":"indication","type":"text","max_length":200}]}'

# The protocol: visit types with their windows (days before/after the target day).
vt() {
    post "/v1/studies/$study/visit-types" "vt-$1" "$2" >/dev/null
}
vt baseline '{"name":"Baseline","target_day":0,"window_before_days":0,"window_after_days":0,
  "form_templates":["demographics","visual_acuity"]}'
vt m1 '{"name":"Month 1","target_day":30,"window_before_days":7,"window_after_days":14,
  "form_templates":["visual_acuity","adverse_events","medication_changes"]}'
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

say "loading the demo forms"
# form P VISIT KEY JSON: submits a form at a completed visit, prints its id
form() { post "/v1/participants/${pids[$1]}/visits/$2/forms" "form-p$1-$3" "$4" | json_id; }
# visit date of participant P, DAYS after baseline
on() { date -u -d "${bases[$1]} + $2 days" +%F; }
demo() { form "$1" Baseline demo "{\"template\":\"demographics\",\"answers\":$2}"; }
va() {
    form "$1" "$2" "va-$2" "{\"template\":\"visual_acuity\",\"answers\":{\"va_od_letters\":$3,
      \"va_os_letters\":$4,\"iop_od_mmhg\":$5,\"iop_os_mmhg\":$6${7:+,$7}}}"
}
declare -A f
f[p1_demo]=$(demo 1 '{"smoking":"former","family_history_amd":"yes","study_eye":"OD"}')
f[p1_va_b]=$(va 1 Baseline 71 78 16 15 '"iop_method":"goldmann"')
f[p1_va_m1]=$(va 1 Month%201 69 78 17 15 '"iop_method":"goldmann"')
f[p1_va_m3]=$(va 1 Month%203 66 77 16 16 '"iop_method":"goldmann","comments":"patient fatigued, reading slowed"')
f[p1_oct_m3]=$(form 1 Month%203 oct "{\"template\":\"oct\",\"answers\":{\"cst_um\":312,
  \"fluid\":[\"subretinal\"],\"drusen\":\"large\",\"scan_date\":\"$(on 1 115)\"}}")
f[p1_ae]=$(form 1 Month%201 ae "{\"template\":\"adverse_events\",\"answers\":{
  \"term\":\"Conjunctival haemorrhage\",\"onset_date\":\"$(on 1 29)\",\"severity\":\"mild\",
  \"serious\":\"no\",\"eye\":[\"OD\"],\"relatedness\":\"possible\"}}")
f[p2_demo]=$(demo 2 '{"smoking":"never","family_history_amd":"not_known","study_eye":"OS"}')
f[p2_va_b]=$(va 2 Baseline 58 49 14 14)
va 2 Month%203 57 47 15 14 >/dev/null              # its OCT is still to be entered
demo 3 '{"smoking":"current","family_history_amd":"no","study_eye":"OD"}' >/dev/null
f[p3_va_b]=$(va 3 Baseline 80 62 19 18)
va 3 Month%201 79 66 18 18 >/dev/null
form 3 Month%201 med "{\"template\":\"medication_changes\",\"answers\":{
  \"medication\":\"Timolol 0.5% eye drops\",\"change_kind\":\"started\",
  \"change_date\":\"$(on 3 31)\",\"indication\":\"ocular hypertension\"}}" >/dev/null
demo 4 '{"smoking":"former","family_history_amd":"no","study_eye":"OS"}' >/dev/null
va 4 Baseline 64 55 4 12 '"comments":"hypotony after vitrectomy in 2019"' >/dev/null
va 4 Month%201 65 56 9 12 >/dev/null
demo 5 '{"smoking":"never","family_history_amd":"yes","study_eye":"OD"}' >/dev/null
va 5 Baseline 74 70 15 16 >/dev/null
demo 6 '{"smoking":"never","family_history_amd":"no","study_eye":"OS"}' >/dev/null
demo 7 '{"smoking":"current","family_history_amd":"not_known","study_eye":"OD"}' >/dev/null
va 7 Baseline 45 60 21 20 >/dev/null               # participant 6's acuity is still to be entered

# a transcription error, corrected with a reason
patch() { call PATCH "/v1/forms/$1" "$2" "$3" >/dev/null; }
patch "${f[p3_va_b]}" amend-p3-va '{"answers":{"va_os_letters":67},
  "reason":"letters miscounted on the chart, corrected from the source worksheet"}'

# the protocol's amendment 2: pressure by Goldmann applanation only, within
# its range; answers entered before now fall short of it (see the data-quality report)
va_v2=${va_fields//IOP_MIN/5}; va_v2=${va_v2//IOP_MAX/60}; va_v2=${va_v2//METHOD_REQUIRED/true}
tpl visual-acuity-v2 '{"name":"visual_acuity","title":"Visual acuity and IOP","fields":['"$va_v2"']}'
va 2 Month%206 55 45 15 15 '"iop_method":"goldmann"' >/dev/null
# a form entered on version 1, brought to version 2 by an amendment with a
# reason: the answer version 2 asks for is added, the finding clears
patch "${f[p3_va_b]}" upgrade-p3-va '{"template_version":2,"answers":{"iop_method":"goldmann"},
  "reason":"protocol amendment 2: method taken from the source worksheet"}'

# the investigator: signs with a credential of their own, separate from the
# token, set the two-person way (docs/SECURITY.md): the admin opens an
# enrolment, a second admin approves it and is shown a one-time code, the
# clinician sets its password with its own token and that code
clin=$(post /v1/principals clinician "{\"name\":\"dr.okafor\",\"role\":\"clinician\",
  \"display_name\":\"Dr. Adaeze Okafor\",\"site_ids\":[\"$stl\",\"$bos\"]}" | json_id)
ctoken_file="$TOKEN_DIR/clinician.token"
(umask 077 && curl -fsS -X POST "$API/v1/principals/$clin/tokens" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"label":"demo clinician","expires_in_days":30}' |
    grep -o '"token":"[^"]*"' | cut -d'"' -f4 >"$ctoken_file")
chmod 600 "$ctoken_file" # also one an older run left
CTOKEN=$(cat "$ctoken_file")
words=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
enrolment=$(curl -fsS -X POST "$API/v1/principals/$clin/signing-enrolments" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"reason":"demo investigator"}' | json_id) || die "demo: could not open the enrolment"
code=$(curl -fsS -X POST "$API/v1/principals/$clin/signing-enrolments/$enrolment/approve" \
    -H "Authorization: Bearer $TOKEN2" -H 'Content-Type: application/json' \
    -d '{"reason":"identity checked"}' | grep -o '"code":"[^"]*"' | cut -d'"' -f4) ||
    die "demo: the second admin could not approve the enrolment"
curl -fsS -X POST "$API/v1/principals/$clin/signing-credential" -H "Authorization: Bearer $CTOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"password\":\"$words\",\"enrolment_code\":\"$code\"}" >/dev/null ||
    die "demo: the clinician could not set its signing credential"
# sign FORM KEY MEANING REVISION: by the clinician, naming the revision it
# reviewed; a form signed by an earlier run is fine (the key names this
# run's password: a key is bound to its request's body)
sign() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/v1/forms/$1/sign" \
        -H "Authorization: Bearer $CTOKEN" -H 'Content-Type: application/json' \
        -H "Idempotency-Key: demo-$2-${words:0:8}" \
        -d "{\"meaning\":\"$3\",\"password\":\"$words\",\"revision\":$4}")
    case "$code" in 2??|409) ;; *) die "demo: signing answered $code" ;; esac
}
for k in p1_demo p1_va_b p1_va_m1 p1_va_m3 p1_oct_m3 p1_ae p2_demo p2_va_b; do
    sign "${f[$k]}" "sign-$k" approved 1
done
# an amendment after the signature removes it: signed again
patch "${f[p1_va_m1]}" amend-p1-va-m1 '{"answers":{"iop_od_mmhg":18},
  "reason":"pressure re-read from the tonometer printout"}'
sign "${f[p1_va_m1]}" sign-p1_va_m1-again approved 2

echo "$study $stl ${pids[1]}"
