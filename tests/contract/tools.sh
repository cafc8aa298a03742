# The contract tests' tools, installed on first use (sourced by validate.sh and
# schemathesis.sh; needs scripts/lib.sh sourced first): the npm packages of
# package.json (exact versions in package-lock.json) into tests/contract/node_modules,
# and the PyPI packages of requirements.txt into a venv under var/tools. Each is
# installed again when its pinned list changes. Test tooling only: no program
# of Trialog needs any of it.
TL_CONTRACT="$TL_ROOT/tests/contract"

# tl_contract_node: node_modules matches package-lock.json.
tl_contract_node() {
    command -v npm >/dev/null || die "npm is missing: scripts/test.sh installs it (tl_deps)"
    local stamp="$TL_CONTRACT/node_modules/.trialog-lock.sha256" want
    want=$(sha256sum "$TL_CONTRACT/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    say "installing the OpenAPI validator (npm ci in tests/contract)"
    (cd "$TL_CONTRACT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        die "npm ci failed in tests/contract"
    printf '%s\n' "$want" >"$stamp"
}

# tl_contract_venv: prints the venv's directory, made (or remade) from requirements.txt.
tl_contract_venv() {
    local want venv
    want=$(sha256sum "$TL_CONTRACT/requirements.txt" | cut -d' ' -f1)
    venv="$TL_VAR/tools/contract-venv"
    if [ "$(cat "$venv/.trialog-requirements.sha256" 2>/dev/null)" != "$want" ]; then
        say "installing the API tester into $venv (pip, tests/contract/requirements.txt)"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed: is python3-venv installed?"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$TL_CONTRACT/requirements.txt" \
            >&2 || die "pip could not install tests/contract/requirements.txt"
        printf '%s\n' "$want" >"$venv/.trialog-requirements.sha256"
    fi
    printf '%s\n' "$venv"
}
