#!/bin/sh
# Every test, as CI runs it: notebooks and package in sync, notebooks clean, README current, notebook tests, pytest.
set -eu
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
snapshot() { git status --porcelain --untracked-files=all -- nexus nbs; git diff -- nexus nbs; }
before=$(snapshot | cksum)
nbdev-export
nbdev-clean
if [ "$(snapshot | cksum)" != "$before" ]; then
  echo "FAIL: nbdev-export or nbdev-clean changed files: the notebooks and nexus/ are out of sync, or a notebook is not clean." >&2
  echo "Run nbdev-export && nbdev-clean, review and commit:" >&2
  git status --short -- nexus nbs >&2
  exit 1
fi
python tools/readme.py --check
nbdev-test --flags slow
python -m pytest -q tests
