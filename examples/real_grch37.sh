#!/usr/bin/env bash
# Build the pre-training store and the fine-tuning stores of the six cell lines from the real
# GRCh37 data in ../shared/data/real (see that folder's README).
#
#   examples/real_grch37.sh [OUT]        (default OUT: real-grch37)
#   GC_MATCH=1 examples/real_grch37.sh   (GC-matched fine-tuning sets, OUT/finetune_<CELL>_gc)
#   PUBLISHED=1 examples/real_grch37.sh  (also the published CSVs as given, OUT/published_<CELL>)
#
# The whole study on these data (pre-training, fine-tuning, baselines, interpretation) is
# configs/real_grch37.yaml; this script builds the stores for your own runs.
#
# The genome names chromosomes the Ensembl way (20, 22, X) and the label files the UCSC way
# (chr20, ...): chromtransfer matches them through its chromosome aliases. The paper's test
# chromosomes (chr2, chr3) are not part of this development genome, so chr22 is the test set here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${CHROMTRANSFER_SHARED_DATA:-$ROOT/../shared/data}/real
OUT=${1:-real-grch37}
CT=${CHROMTRANSFER:-chromtransfer}
GENOME=$DATA/genome/GRCh37_dev.fa.gz
CSV=$DATA/labels/chromtransfer_csv_GRCh37
CELLS=$DATA/labels/chromtransfer_cells_GRCh37.tsv.gz
TEST=chr22

if [ ! -d "$DATA" ]; then
    echo "error: real data not found at $DATA (set CHROMTRANSFER_SHARED_DATA)" >&2
    exit 2
fi
mkdir -p "$OUT/inputs"

# 1. Pre-training positives: the rDHS windows labelled only <CELL>_NEG in the cell table
#    (columns 6-11: A549 GM12878 HCT116 HEPG2 K562 MCF7; empty = not in that line's set) ...
zcat "$CELLS" | awk -F'\t' '
    NR > 1 { any = 0; only_neg = 1
             for (i = 6; i <= 11; i++) if ($i != "") { any = 1; if ($i !~ /_NEG$/) only_neg = 0 }
             if (any && only_neg) print $1 "\t" $2 "\t" $3 }' > "$OUT/inputs/rdhs_neg_only.bed"
# ... plus the Ensembl regulatory-build open chromatin regions.
zcat "$DATA/labels/ensembl_open_chromatin_GRCh37.bed.gz" | awk -F'\t' '$4 == "positive"' \
    > "$OUT/inputs/ensembl_open.bed"
# 2. The cell-type positives, removed from pre-training (so fine-tuning sees new regions).
cat "$CSV"/*.csv | awk -F, '$2 !~ /_NEG$/ && $2 != "Negative" {
    split($1, a, /[:-]/); print a[1] "\t" a[2] "\t" a[3] }' > "$OUT/inputs/cell_positives.bed"

# 3. The pre-training store: positives against genome tiles (no gaps, off the ENCODE blacklist,
#    at least 300 bp from any positive); all candidate tiles are kept (add --neg-ratio R to sample).
"$CT" prepare pretrain --genome "$GENOME" \
    --positives "$OUT/inputs/rdhs_neg_only.bed" "$OUT/inputs/ensembl_open.bed" \
    --exclude-positives "$OUT/inputs/cell_positives.bed" \
    --blacklist "$DATA/hg19-blacklist.v2.bed.gz" \
    --length 600 --min-distance 300 --test-chroms "$TEST" --folds 3 --seed 0 \
    --out "$OUT/pretrain"

# 4. One fine-tuning store per cell line by the paper's rule, from the per-window cell table: the
#    line's positives against three times as many of the other lines' positives and rDHSs open in
#    none (per split), plus genomic background windows (a tenth of the set). The published CSVs
#    used as given are uneven on this genome (HepG2: 1,213 positives against 114 negatives); they
#    stay available as OUT/published_<CELL> (prepare and 'info dataset' warn about them).
#    GC_MATCH=1 draws negatives and background with the positives' GC distribution (a control
#    that a model learns more than GC), into OUT/finetune_<CELL>_gc.
suffix=""
gc=()
if [ -n "${GC_MATCH:-}" ]; then suffix=_gc; gc=(--gc-match); fi
for cell in A549 GM12878 HCT116 HepG2 K562 MCF7; do
    "$CT" prepare finetune --genome "$GENOME" --cell "$cell" --cell-table "$CELLS" \
        --blacklist "$DATA/hg19-blacklist.v2.bed.gz" "${gc[@]}" \
        --test-chroms "$TEST" --folds 3 --seed 0 --out "$OUT/finetune_$cell$suffix"
    if [ -n "${PUBLISHED:-}" ]; then
        "$CT" prepare finetune --genome "$GENOME" --cell "$cell" --labels-csv "$CSV" \
            --test-chroms "$TEST" --folds 3 --seed 0 --out "$OUT/published_$cell"
    fi
done

# 5. The multi-class set (six cell lines + background) from the same files.
"$CT" prepare finetune --genome "$GENOME" --task multiclass --labels-csv "$CSV" \
    --test-chroms "$TEST" --folds 3 --seed 0 --out "$OUT/multiclass"

"$CT" info dataset "$OUT/pretrain" > "$OUT/pretrain.info.txt"  # (head would end the pipe early under pipefail)
sed -n 1,8p "$OUT/pretrain.info.txt"
