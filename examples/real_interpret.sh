#!/usr/bin/env bash
# Interpretation on the real GRCh37 development data: pre-train, fine-tune HepG2 and K562, attribute
# their predicted positives (gradient x input, p > 0.5, training and test rows), scan JASPAR 2022,
# rank TFs by the KS test (fine-tuned model alone, and fine-tuned vs pre-trained), print the top TFs.
#
#   examples/real_interpret.sh [OUT]      (OUT: the folder of examples/real_grch37.sh; default real-grch37)
#
# The stores come from examples/real_grch37.sh (run here first when OUT lacks them). Results go to
# OUT/interpret/: runs/pretrain, runs/<CELL>, <CELL>/{attr_finetuned,attr_pretrained,sites.tsv,
# enrichment,vs_pretrained}.
#
# Settings (environment variables; the defaults are the paper's, for a GPU):
#   PRETRAIN_NEG_RATIO   sample this many genome tiles per positive for pre-training (a smaller,
#                        separate store OUT/pretrain_negR); empty (default) = the whole store of
#                        real_grch37.sh (every candidate tile, ~164k windows)
#   PRETRAIN_FRACTION    train on this share of the pre-training rows (default 1.0)
#   WIDTH                network width (default 1.0, the published network)
#   PRETRAIN_EPOCHS, PRETRAIN_PATIENCE          (default: the preset's 100 / 15)
#   FINETUNE_EPOCHS, FINETUNE_LR, FINETUNE_PATIENCE, FINETUNE_LR_PATIENCE   (default: 100, 5e-6, 10, 5)
#   BATCH_SIZE, BN_MOMENTUM, DROPOUT, EXPORT    (default: the presets'; EXPORT best|last)
#   CELLS                cell lines (default "HepG2 K562")
#   MIN_SITES, FDR       KS test (default 100 sites, FDR 0.001, as the paper)
#   TARGET               gradient of the probability (default, as the paper) or of the logit
#   DEVICE               auto | cpu | cuda
#
# A CPU-sized run (2 cores, about half an hour; see the message printed at the end):
#   PRETRAIN_NEG_RATIO=2 WIDTH=0.5 PRETRAIN_EPOCHS=3 FINETUNE_EPOCHS=4 FINETUNE_LR=1e-4 \
#   BATCH_SIZE=64 BN_MOMENTUM=0.9 EXPORT=last examples/real_interpret.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-real-grch37}
CT=${CHROMTRANSFER:-chromtransfer}
CELLS=${CELLS:-HepG2 K562}
DEVICE=${DEVICE:-auto}
WIDTH=${WIDTH:-1.0}
MIN_SITES=${MIN_SITES:-100}
FDR=${FDR:-0.001}
TARGET=${TARGET:-probability}
WORK=$OUT/interpret
SECONDS=0

for cell in $CELLS; do
    if [ ! -f "$OUT/finetune_$cell/manifest.json" ]; then
        echo "== building the stores (examples/real_grch37.sh $OUT)"
        # (its closing 'info | head' may end with SIGPIPE under pipefail: judge by the stores it wrote)
        "$ROOT/examples/real_grch37.sh" "$OUT" || true
        break
    fi
done
for cell in $CELLS; do
    if [ ! -f "$OUT/finetune_$cell/manifest.json" ]; then
        echo "error: $OUT/finetune_$cell is missing (run examples/real_grch37.sh $OUT and check its messages)" >&2
        exit 2
    fi
done

# Options shared by the training runs (only those set are passed; the presets give the rest).
common=(--device "$DEVICE" --quiet)
[ -n "${BATCH_SIZE:-}" ] && common+=(--batch-size "$BATCH_SIZE")
[ -n "${BN_MOMENTUM:-}" ] && common+=(--bn-momentum "$BN_MOMENTUM")
[ -n "${EXPORT:-}" ] && common+=(--export "$EXPORT")

# 1. The pre-training store: the whole one, or a sample of the genome tiles.
PRETRAIN_STORE=$OUT/pretrain
if [ -n "${PRETRAIN_NEG_RATIO:-}" ]; then
    PRETRAIN_STORE=$OUT/pretrain_neg$PRETRAIN_NEG_RATIO
    if [ ! -f "$PRETRAIN_STORE/manifest.json" ]; then
        DATA=${CHROMTRANSFER_SHARED_DATA:-$ROOT/../shared/data}/real
        echo "== pre-training store with $PRETRAIN_NEG_RATIO genome tiles per positive"
        "$CT" prepare pretrain --genome "$DATA/genome/GRCh37_dev.fa.gz" \
            --positives "$OUT/inputs/rdhs_neg_only.bed" "$OUT/inputs/ensembl_open.bed" \
            --exclude-positives "$OUT/inputs/cell_positives.bed" \
            --blacklist "$DATA/hg19-blacklist.v2.bed.gz" \
            --length 600 --min-distance 300 --neg-ratio "$PRETRAIN_NEG_RATIO" \
            --test-chroms chr22 --folds 3 --seed 0 --out "$PRETRAIN_STORE"
    fi
fi
"$CT" info dataset "$PRETRAIN_STORE" > "$PRETRAIN_STORE.info.txt"
head -4 "$PRETRAIN_STORE.info.txt"

# 2. Pre-training (resumable: a finished run is kept).
pre=(--width "$WIDTH" --train-fraction "${PRETRAIN_FRACTION:-1.0}")
[ -n "${PRETRAIN_EPOCHS:-}" ] && pre+=(--max-epochs "$PRETRAIN_EPOCHS")
[ -n "${PRETRAIN_PATIENCE:-}" ] && pre+=(--patience "$PRETRAIN_PATIENCE")
[ -n "${DROPOUT:-}" ] && pre+=(--dropout "$DROPOUT")
echo "== pre-training ($SECONDS s)"
"$CT" train --preset pretrain --data "$PRETRAIN_STORE" --out "$WORK/runs/pretrain" --resume "${common[@]}" "${pre[@]}"

# 3. Per cell line: fine-tune, attribute, scan, enrich.
ft=()
[ -n "${FINETUNE_EPOCHS:-}" ] && ft+=(--max-epochs "$FINETUNE_EPOCHS")
[ -n "${FINETUNE_LR:-}" ] && ft+=(--lr "$FINETUNE_LR")
[ -n "${FINETUNE_PATIENCE:-}" ] && ft+=(--patience "$FINETUNE_PATIENCE")
[ -n "${FINETUNE_LR_PATIENCE:-}" ] && ft+=(--lr-patience "$FINETUNE_LR_PATIENCE")
for cell in $CELLS; do
    store=$OUT/finetune_$cell
    dir=$WORK/$cell
    echo "== $cell: fine-tuning ($SECONDS s)"
    "$CT" train --preset finetune --data "$store" --init "$WORK/runs/pretrain" --out "$WORK/runs/$cell" --resume \
        "${common[@]}" "${ft[@]}"
    for model in finetuned pretrained; do
        run=$WORK/runs/$cell
        [ "$model" = pretrained ] && run=$WORK/runs/pretrain
        "$CT" evaluate --model "$run" --data "$store" --split test --device "$DEVICE" --out "$dir/evaluation_$model" \
            > /dev/null
        awk -F'\t' -v what="$cell test split, $model model:" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
            NR == 2 { printf "%s AUROC %.3f  AUPRC %.3f  F1(+) %.3f  (%d windows, %d positive)\n", what,
                      $col["auroc"], $col["auprc"], $col["f1_positive"], $col["n"], $col["n_positive"] }' \
            "$dir/evaluation_$model/metrics.tsv"
    done
    echo "== $cell: attributions, motif sites, KS ranking ($SECONDS s)"
    # The fine-tuned model's positive predictions (p > 0.5) among all rows (training and test) ...
    "$CT" attribute --model "$WORK/runs/$cell" --data "$store" --split all --select predicted-positive \
        --method grad_x_input --target "$TARGET" --device "$DEVICE" --no-bigwig --out "$dir/attr_finetuned"
    # ... and the pre-trained model on every row (the comparison keeps the regions both have).
    "$CT" attribute --model "$WORK/runs/pretrain" --data "$store" --split all --select all \
        --method grad_x_input --target "$TARGET" --device "$DEVICE" --no-bigwig --out "$dir/attr_pretrained"
    "$CT" motifs scan --data "$store" --split all --device "$DEVICE" --out "$dir/sites.tsv"
    "$CT" motifs enrich --attributions "$dir/attr_finetuned" --sites "$dir/sites.tsv" \
        --min-sites "$MIN_SITES" --fdr "$FDR" --out "$dir/enrichment"
    "$CT" motifs enrich --attributions "$dir/attr_pretrained" --attributions-b "$dir/attr_finetuned" \
        --sites "$dir/sites.tsv" --min-sites "$MIN_SITES" --fdr "$FDR" --out "$dir/vs_pretrained"
done

# 4. The top TFs: the significant ones (FDR < $FDR) with the largest D (the tables are sorted by D).
echo "== top TFs ($SECONDS s in all)"
for cell in $CELLS; do
    for table in enrichment/enrichment.tsv vs_pretrained/comparison.tsv; do
        echo "-- $cell, $table: significant TFs by D (TF, sites, D, FDR)"
        awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                    $col["significant"] == "True" { n++; if (n <= 10) printf "  %-16s %6d  D %+.3f  FDR %.2g\n",
                      $col["tf"], $col["sites"], $col["D"], $col["fdr"] }
                    END { printf "  (%d significant of %d tested)\n", n, NR - 1 }' "$WORK/$cell/$table"
    done
done
