#!/usr/bin/env bash
# npm run setup:python [-- --find-links <folder> ...] [--python <python3>]
# Creates .venv in the repository and installs python/requirements.txt (the PyTorch training engine's
# pinned packages): from the package index, or offline from folders of wheels (--find-links, or
# HACK_TOKENIZER_WHEELS=<folder>[:<folder>...]). Ends by checking the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
links=()
if [[ -n "${HACK_TOKENIZER_WHEELS:-}" ]]; then
  IFS=':' read -r -a envlinks <<< "$HACK_TOKENIZER_WHEELS"
  for l in "${envlinks[@]}"; do [[ -n "$l" ]] && links+=("$l"); done
fi
while [[ $# -gt 0 ]]; do
  case "$1" in
    --find-links) [[ $# -ge 2 ]] || { echo "setup:python: --find-links needs a folder" >&2; exit 2; }; links+=("$2"); shift 2 ;;
    --find-links=*) links+=("${1#*=}"); shift ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup:python: unknown argument $1 (expected --find-links <folder> or --python <interpreter>)" >&2; exit 2 ;;
  esac
done
command -v "$PY" >/dev/null 2>&1 || { echo "setup:python: $PY not found; install Python >= 3.10 or pass --python <interpreter>" >&2; exit 1; }
for l in "${links[@]}"; do [[ -d "$l" ]] || { echo "setup:python: --find-links $l: not a folder" >&2; exit 2; }; done
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pipargs=(install --disable-pip-version-check -r python/requirements.txt)
if [[ ${#links[@]} -gt 0 ]]; then
  pipargs+=(--no-index)
  for l in "${links[@]}"; do pipargs+=(--find-links "$l"); done
fi
.venv/bin/python -m pip "${pipargs[@]}"
PYTHONPATH=python .venv/bin/python -m hack_tokenizer_train --check-versions
echo "setup:python: .venv is ready (the CLI finds it; or set HACK_TOKENIZER_PYTHON=$(pwd)/.venv/bin/python)"
