#!/usr/bin/env bash
# `make demo`: the whole two-stage pipeline on the embedded defaults, offline, on the CPU:
#   1. a small real dataset from Debian-packaged CC0/CC-BY recordings, in PALM's layout
#   2. a small random CLAP written locally (no hub) and loaded through the same from_pretrained path as a hub id
#   3. zero-shot evaluation
#   4. stage one: semantic neighbors from the packaged SmolLM2-135M-Instruct on vLLM (CPU build) into the store,
#      for the demo's classes and WordNet-Sounds' base classes in one run (one engine start)
#   5. stage two: CoOp and CoOp+SEPT, base-to-new
# A random backbone makes every accuracy here meaningless: the demo shows the machinery, not results.
#   6. the same on WordNet-Sounds (rule version 2: no word of an item's own class in its text), a text proxy of
#      the audio task with real pretrained semantics (the packaged all-MiniLM-L6-v2 as both towers): CoOp vs
#      CoOp+SEPT with the settings validated in docs/efficacy.md, fewer epochs, one seed: a smoke figure that
#      shows the pipeline runs on real semantics, not a result (docs/efficacy.md has the benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${DEMO_OUT:-demo-out}"
SP=".venv/bin/sept-pipeline"
export SEPT_CACHE_DIR="$OUT/cache"
EPOCHS="${DEMO_EPOCHS:-5}"
WN_EPOCHS="${DEMO_WORDNET_EPOCHS:-5}"
step() { printf '\n== %s\n' "$*"; }

step "1/6 demo dataset (Debian sonic-pi-samples + openttd-opensfx) -> $OUT/data/demo"
$SP datasets prepare demo --root "$OUT/data"

step "2/6 random tiny CLAP with a locally trained tokenizer -> $OUT/models/tiny-clap"
[ -f "$OUT/models/tiny-clap/config.json" ] || $SP backbones make-random --size tiny --seed 0 --out "$OUT/models/tiny-clap"

step "3/6 zero-shot evaluation"
$SP evaluate --method zeroshot --dataset demo --data-root "$OUT/data" --backbone "$OUT/models/tiny-clap" \
  --out "$OUT/runs/zeroshot" --force

step "4/6 stage one: generate-neighbors, one LLM engine for the demo's classes and WordNet-Sounds' base classes"
# SEPT trains on the base classes only, so the LLM writes neighbors for WordNet-Sounds' 25 base classes
# (benchmarks/efficacy_wordnet.sh generates all 49: the diagnostic looks at the new classes too). Both lists
# share one generation key (same LLM, prompt, N; the default prompt has no {task}), so one run writes the
# phrases of both, filtered with the pretrained all-MiniLM-L6-v2 (the random tiny CLAP cannot tell texts
# apart, so it could not drop near-duplicates); the second command finds the demo's phrases stored and only
# encodes them with the tiny CLAP (no LLM).
.venv/bin/python -c 'from stages.data.specs import dataset_classnames as c; from stages.data.splits import base_new_split as s
print("\n".join(list(c("demo")) + s(c("wordnet-sounds"))[0]))' > "$OUT/stage-one-classes.txt"
$SP generate-neighbors --classes-file "$OUT/stage-one-classes.txt" --backbone packaged:minilm-dual \
  --cache-dir "$SEPT_CACHE_DIR"
$SP generate-neighbors --dataset demo --backbone "$OUT/models/tiny-clap" --cache-dir "$SEPT_CACHE_DIR"

step "5/6 stage two: CoOp and CoOp+SEPT, base-to-new ($EPOCHS epochs)"
for sept in no-sept sept; do
  $SP tune --dataset demo --data-root "$OUT/data" --method coop --"$sept" --protocol base2new \
    --backbone "$OUT/models/tiny-clap" --cache-dir "$SEPT_CACHE_DIR" --seed 1 --shots 4 \
    --out "$OUT/runs/coop-$sept" --set train.epochs="$EPOCHS"
done

step "6/6 text proxy: WordNet-Sounds with the pretrained all-MiniLM-L6-v2 (packaged:minilm-dual), CoOp vs CoOp+SEPT"
$SP datasets prepare wordnet-sounds --root "$OUT/data"
# SEPT's settings are the validated ones of docs/efficacy.md (configs/sweeps/efficacy-wordnet.toml); fewer epochs.
for sept in no-sept sept; do
  $SP tune --dataset wordnet-sounds --data-root "$OUT/data" --method coop --"$sept" --protocol base2new \
    --backbone packaged:minilm-dual --cache-dir "$SEPT_CACHE_DIR" --seed 1 --shots 16 \
    --out "$OUT/runs/wordnet-coop-$sept" --set train.epochs="$WN_EPOCHS" \
    --set sept.lam=0.5 --set sept.neighbors_per_step=2
done

.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
zs = json.loads((out / "runs/zeroshot/metrics.json").read_text())
print(f"\n{'run':<16}{'base':>8}{'new':>8}{'HM':>8}")
print(f"{'zero-shot (all)':<16}{zs['acc']:>8.2f}{'':>8}{'':>8}")
for name in ("coop-no-sept", "coop-sept"):
    m = json.loads((out / "runs" / name / "metrics.json").read_text())
    print(f"{name:<16}{m['base_acc']:>8.2f}{m['new_acc']:>8.2f}{m['hm']:>8.2f}")
print("\nThe backbone is a RANDOM tiny CLAP: these accuracies are meaningless; the demo shows the pipeline works")
print("end to end offline. Real numbers come from --backbone laion/clap-htsat-unfused on a machine with the hub.")
print("\nText proxy of the audio task: WordNet-Sounds (49 classes, items are WordNet glosses without their class's")
print("words), pretrained all-MiniLM-L6-v2 as both towers, base-to-new, 16 shots, ONE seed (seed 1)")
print(f"{'run':<22}{'base':>8}{'new':>8}{'HM':>8}")
for name, label in (("wordnet-coop-no-sept", "CoOp"), ("wordnet-coop-sept", "CoOp+SEPT")):
    m = json.loads((out / "runs" / name / "metrics.json").read_text())
    print(f"{label:<22}{m['base_acc']:>8.2f}{m['new_acc']:>8.2f}{m['hm']:>8.2f}")
print("One seed and few epochs: a smoke figure, not a result. A difference between these two rows can be seed")
print("noise; docs/efficacy.md reports paired differences over many seeds.")
print(f"\nresults: {out.resolve()}/runs   neighbor store: {out.resolve()}/cache/neighbors")
PY
