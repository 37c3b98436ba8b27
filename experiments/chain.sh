# Shared by the experiments' reproduce.sh scripts (sourced, not run): the glimpse binary, the dry
# run, the paths earlier steps make, and the step counter, with the checks every chain needs.
# A script sets nothing before sourcing it; GLIMPSE and DRY_RUN come from the environment.
G=${GLIMPSE:-./target/release/glimpse}
DRY=${DRY_RUN:-0}
declare -A MADE=()
STEP=0

fail() {
  echo "reproduce.sh: step $STEP: $*" >&2
  exit 1
}

# need PATH...: each a checkpoint a step reads, made by an earlier step of this script (dry run)
# or present on disk (a committed checkpoint, or a real earlier step's output).
need() {
  local p
  for p in "$@"; do
    if [ "$DRY" = 1 ]; then
      [ -n "${MADE[$p]:-}" ] || [ -f "$p/model.safetensors" ] || fail "reads $p, which no earlier step makes"
    else
      [ -f "$p/model.safetensors" ] || fail "reads $p, which is missing"
    fi
  done
}

# step DONE CMD...: prints CMD and, unless dry, runs it; skipped when DONE exists (made before).
step() {
  local done=$1
  shift
  echo "[$STEP] $*"
  [ "$DRY" = 1 ] && return
  [ -e "$done" ] && echo "    made before: skipped" && return
  "$@"
}
