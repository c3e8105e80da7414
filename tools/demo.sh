#!/usr/bin/env bash
# End-to-end demo that needs no downloaded corpus and no internet:
#   Python docstrings -> WordPiece vocabulary -> pretraining TFRecords -> tiny pretraining -> replaced-token scores.
# Usage: bash tools/demo.sh [OUT_DIR]   (`make demo` installs the venv first, then runs this)
set -euo pipefail

OUT_DIR="${1:-demo_out}"
mkdir -p "${OUT_DIR}"
# Absolute before the cd below, so a relative OUT_DIR means relative to the caller.
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"
cd "$(dirname "$0")/.."

PY=".venv/bin/python"
if [[ ! -x "${PY}" ]]; then
  echo "error: ${PY} not found; run 'make install' (or 'make demo') first" >&2
  exit 1
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

CORPUS="${OUT_DIR}/corpus.txt"
HELDOUT="${OUT_DIR}/heldout.txt"
VOCAB="${OUT_DIR}/vocab.txt"
DATA_DIR="${OUT_DIR}/pretraining_data"
MODEL_DIR="${OUT_DIR}/model"
VOCAB_SIZE=8000
MAX_SEQ_LENGTH=128

echo "== 1/4 demo corpus: docstrings of the local Python installation -> ${CORPUS}"
echo "   (every 20th document held out -> ${HELDOUT}: the context probe's text)"
"${PY}" tools/make_demo_corpus.py --output="${CORPUS}" --max_bytes=5000000 \
  --heldout_output="${HELDOUT}" --heldout_every=20

echo "== 2/4 WordPiece vocabulary (${VOCAB_SIZE} tokens) -> ${VOCAB}"
"${PY}" tools/build_vocab.py --input="${CORPUS}" --output="${VOCAB}" \
  --vocab_size="${VOCAB_SIZE}" --lowercase

echo "== 3/4 pretraining data (max_seq_length ${MAX_SEQ_LENGTH}) -> ${DATA_DIR}"
"${PY}" tools/build_pretraining_data.py --input="${CORPUS}" --vocab="${VOCAB}" \
  --output_dir="${DATA_DIR}" --max_seq_length="${MAX_SEQ_LENGTH}" --num_shards=8 \
  --lowercase --overwrite

echo "== 4/4 tiny pretraining -> ${MODEL_DIR} (a fresh one: any previous demo model is removed)"
rm -rf "${MODEL_DIR}"
# The tiny config's recipe for 1,100 of its 1,400 steps, so the whole demo takes about
# 8 minutes on 2 Xeon cores (20 on an AVX2-only EPYC); the learning rate decays to 0 at
# step STEPS. DEMO_STEPS=1400 runs the config's whole schedule.
STEPS="${DEMO_STEPS:-1100}"
"${PY}" tools/pretrain.py --config=configs/electra_tiny.json \
  --data_dir="${DATA_DIR}" --model_dir="${MODEL_DIR}" --progress=none \
  --override=data.vocab_path="${VOCAB}" \
  --override=model.vocab_size="$(wc -l < "${VOCAB}")" \
  --override=data.max_seq_length="${MAX_SEQ_LENGTH}" \
  --override=train.num_train_steps="${STEPS}" \
  --override=train.log_every=50 --probe_text="${HELDOUT}"
echo
echo "== What the discriminator flags as replaced (\"list\" swapped for \"banana\" in the second):"
"${PY}" tools/explain.py --model_dir="${MODEL_DIR}" \
  "Return a new list containing all items from the iterable in ascending order." \
  "Return a new banana containing all items from the iterable in ascending order."
echo "Demo done. Model directory: ${MODEL_DIR}"
