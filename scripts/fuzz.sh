#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets with clang (address and undefined-
# behaviour sanitizers) in build-fuzz/ and runs each for FUZZ_SECONDS
# (default 60) from its seed corpus under tests/fuzz/corpus/. A crash, leak,
# timeout or broken invariant fails the run and leaves the input in
# build-fuzz/artifacts/. New inputs it finds go to build-fuzz/corpus/, not to
# the checked-in seeds.
source "$(dirname "$0")/lib.sh"
tl_deps clang
SECONDS_EACH="${FUZZ_SECONDS:-60}"
FUZZ_BUILD="$TL_ROOT/build-fuzz"
say "building the fuzz targets in $FUZZ_BUILD"
CC=clang cmake -S "$TL_ROOT" -B "$FUZZ_BUILD" -DCMAKE_BUILD_TYPE=Debug -DTL_FUZZ=ON >/dev/null
cmake --build "$FUZZ_BUILD" -j"$(nproc)" --target fuzz_request_body fuzz_request_target fuzz_avro_frame fuzz_form_answers fuzz_schema_compat fuzz_ingest_record >/dev/null
mkdir -p "$FUZZ_BUILD/artifacts"
for target in fuzz_request_body fuzz_request_target fuzz_avro_frame fuzz_form_answers fuzz_schema_compat fuzz_ingest_record; do
    corpus="$FUZZ_BUILD/corpus/$target"
    mkdir -p "$corpus"
    say "fuzzing $target for ${SECONDS_EACH}s"
    # -max_len: past the 1 MiB body the gateway takes nothing; 64 KiB keeps
    # the search where the parsers' branches are
    log="$FUZZ_BUILD/$target.log"
    rc=0
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$FUZZ_BUILD/$target" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$FUZZ_BUILD/artifacts/$target-" \
        "$corpus" "$TL_ROOT/tests/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" "$log" || true
    [ "$rc" -eq 0 ] || { tail -n 40 "$log" >&2; die "$target failed (exit $rc): see $log"; }
done
say "fuzzing passed"
