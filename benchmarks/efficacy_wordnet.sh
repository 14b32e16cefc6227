#!/usr/bin/env bash
# The WordNet-Sounds efficacy benchmark, all of it (docs/efficacy.md), offline on the CPU:
#   1. datasets prepare wordnet-sounds; stage one (packaged SmolLM2 on vLLM) encoded by packaged:minilm-dual;
#      neighbors quality
#   2. validation (data.eval_split = "val", base classes' training items only): epochs of the baselines,
#      then SEPT's lambda x neighbors per step at those epochs; winners printed by benchmarks/efficacy_select.py
#   3. the final sweeps (configs/sweeps/efficacy-wordnet.toml, efficacy-wordnet-cocoop.toml and -dept.toml, whose [set]
#      must hold the winners: checked) and `report --compare --diagnostic`
# Everything goes under $EFFICACY_OUT (default efficacy-out/, which the sweep files name); reruns skip what
# is done. Wall times are printed per step.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${EFFICACY_OUT:-efficacy-out}"
if [ "$OUT" != "efficacy-out" ]; then mkdir -p "$OUT"; ln -sfn "$(cd "$OUT" && pwd)" efficacy-out; fi
SP="${SP:-.venv/bin/sept-pipeline}"
PY="${PY:-.venv/bin/python}"
CACHE=efficacy-out/cache
step() { printf '\n== %s  (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "1/4 dataset and stage one"
$SP datasets prepare wordnet-sounds --root efficacy-out/data
# Stage one as the published figures were measured: prompt v1, no frequency penalty (the defaults before
# neighbors_v3); the sweep files' [set] name the same two settings, so their runs find these neighbors.
V1=(--set 'neighbors.prompt="configs/prompts/neighbors_v1.txt"' --set neighbors.frequency_penalty=0)
time $SP generate-neighbors --dataset wordnet-sounds --backbone packaged:minilm-dual --cache-dir "$CACHE" "${V1[@]}"
$SP neighbors quality --dataset wordnet-sounds --cache-dir "$CACHE" "${V1[@]}"

step "2/4 validation: epochs of the baselines (CoOp, no SEPT)"
time $SP sweep --config configs/sweeps/efficacy-wordnet-val-epochs.toml
$PY -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val-epochs
EPOCHS=$($PY -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val-epochs --json \
  | $PY -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["winner"]["train.epochs"])')

step "3/4 validation: SEPT's lambda x neighbors per step (CoOp+SEPT, $EPOCHS epochs)"
time $SP sweep --config configs/sweeps/efficacy-wordnet-val.toml --set train.epochs="$EPOCHS"
$PY -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val
$PY -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val-epochs --check configs/sweeps/efficacy-wordnet.toml
$PY -m benchmarks.efficacy_select efficacy-out/runs/wordnet-val --check configs/sweeps/efficacy-wordnet.toml

step "4/4 final sweeps and report"
time $SP sweep --config configs/sweeps/efficacy-wordnet.toml
time $SP sweep --config configs/sweeps/efficacy-wordnet-cocoop.toml
time $SP sweep --config configs/sweeps/efficacy-wordnet-dept.toml
$SP report efficacy-out/runs/wordnet --compare --diagnostic --cache-dir "$CACHE"
