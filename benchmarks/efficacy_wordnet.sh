#!/usr/bin/env bash
# The WordNet-Sounds efficacy benchmark (docs/efficacy.md), all of it, offline on the CPU, in the order of its
# pre-registered plan; every choice is made on the validation view (data.eval_split = "val") by
# benchmarks/efficacy_select.py, and the final sweep files must already hold the winners (checked, exit 1 if not):
#   0. datasets prepare wordnet-sounds (rule version 2) and gcide-sounds
#   1. stage one: three named generations over all 49 classes (wn-v1: prompt v1, frequency penalty 0; wn-v3:
#      the default; wn-v3-task: prompt v3 with the dataset's task), neighbors quality for each
#   2a. epochs E (CoOp without SEPT)               -> configs/sweeps/efficacy-wordnet-val-epochs.toml
#   2b. stage one's prompt G (CoOp+SEPT at E)      -> efficacy-wordnet-val-generation.toml
#       then the controls of G: wn-random (random words), wn-classname (the class name under templates)
#   2c. lambda per method, KgCoOp's (w, lambda)    -> efficacy-wordnet-val-lambda.toml, -val-kgcoop*.toml
#   3. the final runs on the test split, seeds 1-8 -> efficacy-wordnet.toml, efficacy-wordnet-{coop,kgcoop,dept}.toml
#      and their -nofilter.toml; then efficacy-wordnet-cross.toml (WordNet-Sounds -> gcide-sounds, the budget allowed it)
#   4. report --paired (SEPT and each control against the baseline, then SEPT against each control),
#      --diagnostic; the archive benchmarks/results/efficacy-v2/ (benchmarks/efficacy_archive.py)
# Everything goes under $EFFICACY_OUT (default efficacy-out/, which the sweep files name); reruns skip what is
# done. Each step's UTC start and end, wall time and load average go to efficacy-out/steps.jsonl (the archive's
# manifest reads them). Stage one's phrases are an artifact of this machine and vLLM version (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${EFFICACY_OUT:-efficacy-out}"
if [ "$OUT" != "efficacy-out" ]; then mkdir -p "$OUT"; ln -sfn "$(cd "$OUT" && pwd)" efficacy-out; fi
mkdir -p efficacy-out/quality efficacy-out/neighbors efficacy-out/reports
SP="${SP:-.venv/bin/sept-pipeline}"
PY="${PY:-.venv/bin/python}"
CACHE=efficacy-out/cache
SWEEPS=configs/sweeps
SEL=("$PY" -m benchmarks.efficacy_select --tie-margin 0.1)   # the plan's rule: ties within 0.1 HM
BASELINES=$SWEEPS/efficacy-wordnet.toml
SEPT_FILES=()
for m in coop kgcoop dept; do SEPT_FILES+=("$SWEEPS/efficacy-wordnet-$m.toml" "$SWEEPS/efficacy-wordnet-$m-nofilter.toml"); done
CROSS=$SWEEPS/efficacy-wordnet-cross.toml
checks() { local f; for f in "$@"; do printf -- '--check\n%s\n' "$f"; done; }

# timed NAME CMD...: run CMD, print and record its wall time and the load average before and after it.
timed() {
  local name=$1; shift
  local t0 l0 rc=0
  t0=$(date -u +%Y-%m-%dT%H:%M:%SZ); l0=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '\n== %s  (%s UTC, load %s)\n' "$name" "$t0" "$l0"
  local s0=$SECONDS
  "$@" || rc=$?
  local t1 l1; t1=$(date -u +%Y-%m-%dT%H:%M:%SZ); l1=$(cut -d' ' -f1-3 /proc/loadavg)
  printf -- '-- %s: %d s, rc %d (load %s)\n' "$name" $((SECONDS - s0)) "$rc" "$l1"
  "$PY" -c 'import json, sys
a = sys.argv[1:]
keys = ("step", "started_at", "finished_at", "seconds", "rc", "load_before", "load_after", "command")
print(json.dumps(dict(zip(keys, [a[0], a[1], a[2], int(a[3]), int(a[4]), a[5], a[6], a[7]]))))' \
    "$name" "$t0" "$t1" $((SECONDS - s0)) "$rc" "$l0" "$l1" "$*" >> efficacy-out/steps.jsonl
  return "$rc"
}

# 0. data
timed data-wordnet-sounds $SP datasets prepare wordnet-sounds --root efficacy-out/data
timed data-gcide-sounds $SP datasets prepare gcide-sounds --root efficacy-out/data

# 1. stage one: three named generations over all 49 classes, each scored by the judge (all-MiniLM-L6-v2)
GEN=(--dataset wordnet-sounds --backbone packaged:minilm-dual --cache-dir "$CACHE")
timed stage-one-wn-v1 $SP generate-neighbors "${GEN[@]}" --name wn-v1 \
  --set 'neighbors.prompt="configs/prompts/neighbors_v1.txt"' --set neighbors.frequency_penalty=0
timed stage-one-wn-v3 $SP generate-neighbors "${GEN[@]}" --name wn-v3
timed stage-one-wn-v3-task $SP generate-neighbors "${GEN[@]}" --name wn-v3-task \
  --set 'neighbors.prompt="configs/prompts/neighbors_v3_task.txt"'
for g in wn-v1 wn-v3 wn-v3-task; do
  $SP neighbors quality --dataset wordnet-sounds --cache-dir "$CACHE" --key "$g" --json > efficacy-out/quality/$g.json
  $SP neighbors quality --dataset wordnet-sounds --cache-dir "$CACHE" --key "$g" --no-per-class
done

# 2a. epochs, for every method (CoOp without SEPT stands in for all)
timed val-epochs $SP sweep --config $SWEEPS/efficacy-wordnet-val-epochs.toml
EPOCHS=(efficacy-out/runs/val-epochs --keys train.epochs)   # a grid of one value (the budget's cap) still names it
"${SEL[@]}" "${EPOCHS[@]}"
E=$("${SEL[@]}" "${EPOCHS[@]}" --value train.epochs)
mapfile -t ARGS < <(checks "$BASELINES" "${SEPT_FILES[@]}" "$CROSS")
"${SEL[@]}" "${EPOCHS[@]}" --every-method "${ARGS[@]}" > /dev/null

# 2b. stage one's prompt, for every method's SEPT (CoOp+SEPT stands in for all); ties go to the default, wn-v3
timed val-generation $SP sweep --config $SWEEPS/efficacy-wordnet-val-generation.toml --set train.epochs="$E"
"${SEL[@]}" efficacy-out/runs/val-generation --prefer sept.generation=wn-v3
G=$("${SEL[@]}" efficacy-out/runs/val-generation --prefer sept.generation=wn-v3 --value sept.generation)
mapfile -t ARGS < <(checks "${SEPT_FILES[@]}" "$CROSS")
"${SEL[@]}" efficacy-out/runs/val-generation --prefer sept.generation=wn-v3 --every-method "${ARGS[@]}" > /dev/null
for g in wn-v1 wn-v3 wn-v3-task; do printf '%s judge precision ' "$g"; "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["precision"])' efficacy-out/quality/$g.json; done

# The controls, shaped like the chosen generation (its classes, its per-class counts)
timed control-random-words $SP neighbors control random-words --like "$G" --name wn-random \
  --backbone packaged:minilm-dual --cache-dir "$CACHE"
timed control-class-name $SP neighbors control class-name --like "$G" --name wn-classname \
  --backbone packaged:minilm-dual --cache-dir "$CACHE"

# 2c. lambda per method; KgCoOp's (w, lambda), lambda 0 being its baseline arm
AT=(--set train.epochs="$E" --set sept.generation="\"$G\"")
timed val-lambda $SP sweep --config $SWEEPS/efficacy-wordnet-val-lambda.toml "${AT[@]}"
timed val-kgcoop $SP sweep --config $SWEEPS/efficacy-wordnet-val-kgcoop.toml "${AT[@]}"
timed val-kgcoop-nosept $SP sweep --config $SWEEPS/efficacy-wordnet-val-kgcoop-nosept.toml --set train.epochs="$E"
"${SEL[@]}" efficacy-out/runs/val-lambda
"${SEL[@]}" efficacy-out/runs/val-kgcoop
mapfile -t ARGS < <(checks $SWEEPS/efficacy-wordnet-{coop,dept}.toml $SWEEPS/efficacy-wordnet-{coop,dept}-nofilter.toml "$CROSS")
"${SEL[@]}" efficacy-out/runs/val-lambda "${ARGS[@]}" > /dev/null
mapfile -t ARGS < <(checks "$BASELINES" $SWEEPS/efficacy-wordnet-kgcoop.toml $SWEEPS/efficacy-wordnet-kgcoop-nofilter.toml)
"${SEL[@]}" efficacy-out/runs/val-kgcoop "${ARGS[@]}" > /dev/null
echo "validation chose: epochs $E, generation $G; the final sweep files hold every winner (checked)"

# 3. the final runs on the test split (one runs folder: one report pairs them seed by seed)
for f in "$BASELINES" "${SEPT_FILES[@]}"; do timed "final-$(basename "$f" .toml)" $SP sweep --config "$f"; done
timed final-cross $SP sweep --config "$CROSS"

# 4. the reports: SEPT and each control against the baseline; SEPT against each control; the diagnostic
R=efficacy-out/reports
$SP report efficacy-out/runs/test --paired --diagnostic --out $R/test
$SP report efficacy-out/runs/test --paired --by sept.generation --out $R/test-by-generation
$SP report efficacy-out/runs/test --paired --by sept.boundary_filter --out $R/test-by-filter
$SP report efficacy-out/runs/cross --paired --out $R/cross
for g in wn-v1 wn-v3 wn-v3-task wn-random wn-classname; do
  $SP neighbors export --format json --generation "$g" --cache-dir "$CACHE" --out efficacy-out/neighbors/$g.json
done
timed archive "$PY" -m benchmarks.efficacy_archive efficacy-out benchmarks/results/efficacy-v2
$SP report benchmarks/results/efficacy-v2/runs --paired --out $R/archive
