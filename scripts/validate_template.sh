#!/usr/bin/env bash
# Offline validation of the deploy stack (template.yaml, infra/samconfig.toml, the layers):
#
#   setup         the tool venvs: .venv-sam (SAM CLI + cfn-lint) and .venv-sam/checkov (checkov pins
#                 dependencies that clash with the SAM CLI's); created when missing, fast when present
#   cfn-lint      cfn-lint on template.yaml, warnings included
#   sam-validate  `sam validate` (SAM transform) and `sam validate --lint`, both through
#                 infra/samconfig.toml for every environment in it
#   checkov       checkov on template.yaml: no failed check; skips live in the template with a reason
#   build         `sam build` of the functions and layers for python3.12 with a local python3.12 (no
#                 container); SKIPPED, with the reason printed, only where no python3.12 exists
#   sizes         scripts/layer_sizes.py: each function's code + layers within Lambda's 250 MiB unzipped
#   imports       each built handler imports with the built shoprec layer (project .venv for the
#                 third-party packages, since the built runtime layer is arm64): no torch, no typer
#
# Usage: scripts/validate_template.sh [STEP...]   (no step: all of them, in this order)
# Exit status: 0 every step passed (a SKIPPED step is reported, not failed), 1 a step failed,
# 3 a requested step was skipped for a missing prerequisite (only when steps are named), 64 bad usage.
# Nothing here talks to AWS; the network is used only by `setup` (PyPI) and `build` (PyPI, for the
# runtime layer's wheels).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Pinned so that CI and every developer lint with the same rules. Bump deliberately.
SAM_CLI_VERSION="1.170.0"
CHECKOV_VERSION="3.3.30"

SAM_VENV="$ROOT/.venv-sam"
CHECKOV_VENV="$SAM_VENV/checkov"
STAMP="$SAM_VENV/.installed-sam-$SAM_CLI_VERSION-checkov-$CHECKOV_VERSION"
BUILD_DIR="$ROOT/.aws-sam/build"
CACHE_DIR="$ROOT/.aws-sam/cache"
TEMPLATE="$ROOT/template.yaml"
SAMCONFIG="$ROOT/infra/samconfig.toml"
PROJECT_PY="${SHOPREC_PROJECT_PYTHON:-$ROOT/.venv/bin/python}"
ALL_STEPS=(setup cfn-lint sam-validate checkov build sizes imports)

export SAM_CLI_TELEMETRY=0
export SAM_CLI_BETA_FEATURES=0
# Linting needs a region, never credentials; keep a developer's profile from being read at all.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
unset AWS_PROFILE AWS_ENDPOINT_URL

SKIPPED=()
BUILD_SKIP_REASON=""

say() { printf '\n==> [%s] %s\n' "$1" "$2"; }
pass() { printf '    PASS %s\n' "$1"; }
skip() { printf '    SKIPPED %s: %s\n' "$1" "$2"; SKIPPED+=("$1: $2"); }
fail() { printf '    FAIL %s: %s\n' "$1" "$2" >&2; exit 1; }

# A working python3.12 (a pyenv shim that only names other versions does not count).
find_python312() {
  local candidates=() c
  command -v python3.12 >/dev/null 2>&1 && candidates+=("$(command -v python3.12)")
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  for c in "$pyenv_root"/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    [[ -x "$c" ]] && candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    if "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
      "$c" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

# The interpreter for the tool venvs: 3.12 when there is one, else any python3 from 3.9 on.
find_tool_python() {
  local c
  if c="$(find_python312)"; then echo "$c"; return 0; fi
  for c in python3.11 python3.10 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1; then
      "$c" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

step_setup() {
  say setup "tool venvs (aws-sam-cli $SAM_CLI_VERSION, checkov $CHECKOV_VERSION)"
  mkdir -p "$ROOT/.aws-sam"
  # Two runs at once (make and pytest, say) must not install into the same venv together.
  exec 9>"$ROOT/.aws-sam/.tools.lock"
  flock 9
  if [[ -f "$STAMP" && -x "$SAM_VENV/bin/sam" && -x "$CHECKOV_VENV/bin/checkov" ]]; then
    pass "already installed ($SAM_VENV)"
    flock -u 9
    return 0
  fi
  local py log="$ROOT/.aws-sam/tools-install.log"
  py="$(find_tool_python)" || fail setup "no python3 >= 3.9 to create $SAM_VENV with"
  : >"$log"
  echo "    creating $SAM_VENV with $py (pip output: ${log#"$ROOT"/})"
  rm -rf "$SAM_VENV"
  { "$py" -m venv "$SAM_VENV" &&
    "$SAM_VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
    "$SAM_VENV/bin/python" -m pip install --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
  } >>"$log" 2>&1 || { tail -n 30 "$log" >&2; fail setup "installing aws-sam-cli failed"; }
  echo "    creating $CHECKOV_VENV"
  { "$py" -m venv "$CHECKOV_VENV" &&
    "$CHECKOV_VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
    "$CHECKOV_VENV/bin/python" -m pip install --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  } >>"$log" 2>&1 || { tail -n 30 "$log" >&2; fail setup "installing checkov failed"; }
  touch "$STAMP"
  flock -u 9
  pass "installed: $("$SAM_VENV/bin/sam" --version), cfn-lint $("$SAM_VENV/bin/cfn-lint" --version | awk '{print $2}'), checkov $("$CHECKOV_VENV/bin/checkov" --version)"
}

ensure_tools() {
  if [[ ! -f "$STAMP" ]]; then step_setup; fi
}

step_cfn_lint() {
  ensure_tools
  say cfn-lint "$("$SAM_VENV/bin/cfn-lint" --version) on template.yaml (errors and warnings fail)"
  "$SAM_VENV/bin/cfn-lint" --regions us-east-1 eu-west-1 -- "$TEMPLATE" || fail cfn-lint "see the findings above"
  pass "0 errors, 0 warnings"
}

step_sam_validate() {
  ensure_tools
  local env envs
  mapfile -t envs < <(grep -oE '^\[[a-z0-9_-]+\.deploy\.parameters\]' "$SAMCONFIG" | sed -E 's/^\[([^.]+)\..*/\1/')
  [[ ${#envs[@]} -gt 0 ]] || fail sam-validate "no [<env>.deploy.parameters] section in ${SAMCONFIG#"$ROOT"/}"
  for env in "${envs[@]}"; do
    say sam-validate "sam validate (SAM transform), config env '$env'"
    "$SAM_VENV/bin/sam" validate --config-file "$SAMCONFIG" --config-env "$env" --template-file "$TEMPLATE" \
      || fail sam-validate "the SAM transform rejected template.yaml"
    say sam-validate "sam validate --lint, config env '$env'"
    "$SAM_VENV/bin/sam" validate --lint --config-file "$SAMCONFIG" --config-env "$env" --template-file "$TEMPLATE" \
      || fail sam-validate "sam validate --lint found problems"
    pass "config env '$env'"
  done
}

step_checkov() {
  ensure_tools
  say checkov "checkov $("$CHECKOV_VENV/bin/checkov" --version) on template.yaml (cloudformation checks, offline)"
  # --skip-download: no calls to the vendor's platform (also what keeps this offline).
  "$CHECKOV_VENV/bin/checkov" --file "$TEMPLATE" --framework cloudformation --skip-download \
    --compact --quiet || fail checkov "failed checks above; fix them or skip them in the resource's Metadata with a reason"
  pass "no failed checks"
}

step_build() {
  ensure_tools
  say build "sam build (python3.12, arm64, no container) into ${BUILD_DIR#"$ROOT"/}"
  local py312
  if ! py312="$(find_python312)"; then
    BUILD_SKIP_REASON="no python3.12 interpreter found (tried python3.12 on PATH, ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.12*, /usr/local/bin, /usr/bin); sam build needs one for the python3.12 functions and layers"
    skip build "$BUILD_SKIP_REASON"
    return 0
  fi
  echo "    python3.12: $py312"
  # --cached reuses unchanged artifacts: the shoprec layer's ContentUri is src/, so a package change
  # rebuilds it, and the runtime layer is rebuilt when its requirements.txt changes.
  PATH="$(dirname "$py312"):$PATH" "$SAM_VENV/bin/sam" build --cached --parallel \
    --template-file "$TEMPLATE" --build-dir "$BUILD_DIR" --cache-dir "$CACHE_DIR" \
    || fail build "sam build failed"
  pass "built $(find "$BUILD_DIR" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | tr '\n' ' ')"
}

require_build() {
  local step="$1"
  if [[ -n "$BUILD_SKIP_REASON" ]]; then
    skip "$step" "the build was skipped ($BUILD_SKIP_REASON)"
    return 1
  fi
  if [[ ! -f "$BUILD_DIR/template.yaml" ]]; then
    if find_python312 >/dev/null; then
      fail "$step" "no build at ${BUILD_DIR#"$ROOT"/}; run the build step first"
    fi
    skip "$step" "no build at ${BUILD_DIR#"$ROOT"/} and no python3.12 to make one"
    return 1
  fi
}

step_sizes() {
  ensure_tools
  say sizes "unzipped size of each function with its layers (Lambda limit: 250 MiB)"
  require_build sizes || return 0
  "$SAM_VENV/bin/python" "$ROOT/scripts/layer_sizes.py" --build-dir "$BUILD_DIR" \
    || fail sizes "a function with its layers is over the limit (or nothing was built)"
  pass "every function within the limit"
}

step_imports() {
  say imports "built handlers import with the built shoprec layer (no torch, no typer)"
  require_build imports || return 0
  if [[ ! -x "$PROJECT_PY" ]]; then
    skip imports "no project interpreter at $PROJECT_PY (run make venv) for the third-party packages"
    return 0
  fi
  local fn
  for fn in $(find "$BUILD_DIR" -mindepth 2 -maxdepth 2 -name handler.py -printf '%h\n' | xargs -rn1 basename | sort); do
    "$PROJECT_PY" - "$BUILD_DIR" "$fn" <<'PY' || fail imports "$fn does not import with the built layer"
import os
import sys

build, fn = sys.argv[1], sys.argv[2]
layer = os.path.join(build, "ShoprecLayer", "python")
# What Lambda puts first: the function's code, then the layer (before any installed shoprec).
sys.path[:0] = [os.path.join(build, fn), layer]
import handler  # noqa: E402
import shoprec  # noqa: E402

assert shoprec.__file__.startswith(layer + os.sep), f"shoprec came from {shoprec.__file__}, not the layer"
offline = sorted(m for m in ("torch", "typer", "shoprec.training", "shoprec.cli") if m in sys.modules)
assert not offline, f"the serving path imported offline-only modules: {offline}"
assert callable(handler.handler), "handler.handler is not callable"
print(f"    {fn}: handler.handler imports ({sum(m.startswith('shoprec') for m in sys.modules)} shoprec modules)")
PY
  done
  pass "every built handler imports"
}

run_step() {
  case "$1" in
    setup) step_setup ;;
    cfn-lint) step_cfn_lint ;;
    sam-validate) step_sam_validate ;;
    checkov) step_checkov ;;
    build) step_build ;;
    sizes) step_sizes ;;
    imports) step_imports ;;
    *) echo "unknown step '$1'; steps: ${ALL_STEPS[*]}" >&2; exit 64 ;;
  esac
}

main() {
  local steps=("$@")
  [[ ${#steps[@]} -gt 0 ]] || steps=("${ALL_STEPS[@]}")
  local s
  for s in "${steps[@]}"; do run_step "$s"; done
  if [[ ${#SKIPPED[@]} -gt 0 ]]; then
    printf '\n==> summary: no step failed (%s), but some were skipped:\n' "${steps[*]}"
    printf '    SKIPPED %s\n' "${SKIPPED[@]}"
    # Named steps that could not run are reported distinctly, so a caller (the tests) can tell.
    if [[ $# -gt 0 ]]; then exit 3; fi
  else
    printf '\n==> summary: every step passed (%s)\n' "${steps[*]}"
  fi
}

main "$@"
