# shellcheck shell=bash
# Shared by scripts/plan and scripts/rollback, thin front ends of the `quayside` command (quayside_cli/): this
# checkout's quayside on the project in this directory and, unless -s names another stack, the `local` stack.
# Sourced, never run.

QUAYSIDE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# run_quayside VERB ARG...: `quayside -s STACK --cwd DIR VERB ARG...`, with -s/--stack STACK (default local) and
# --cwd DIR (default this directory) taken from among ARGs; the other ARGs stay in order.
run_quayside() {
  local verb=$1 stack=local cwd=$QUAYSIDE_ROOT rest=()
  shift
  while (($#)); do
    case $1 in
      -s | --stack | --cwd)
        (($# >= 2)) || { printf '%s: %s needs a value\n' "${0##*/}" "$1" >&2; exit 2; }
        if [[ $1 == --cwd ]]; then cwd=$2; else stack=$2; fi
        shift ;;
      --stack=*) stack=${1#--stack=} ;;
      --cwd=*) cwd=${1#--cwd=} ;;
      *) rest+=("$1") ;;
    esac
    shift
  done
  local python=$QUAYSIDE_ROOT/.venv/bin/python
  [[ -x $python ]] || { printf '%s: %s is missing: run scripts/setup\n' "${0##*/}" "$python" >&2; exit 1; }
  # This checkout's package first, whatever the virtualenv has installed (nothing, in CI's preview job).
  PYTHONPATH=$QUAYSIDE_ROOT${PYTHONPATH:+:$PYTHONPATH} exec "$python" -m quayside_cli -s "$stack" --cwd "$cwd" \
    "$verb" "${rest[@]}"
}
