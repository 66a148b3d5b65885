#!/bin/sh
# The CLINICAL.md report: every row on the same folds (seed 0, 5 folds x 3 repeats), folds never used in development
# (seeds 1000 and 2000). Usage: sh benchmarks/run_clinical_report.sh TASK DATA_DIR
set -e
task=$1
data=$2
out=benchmarks/results/clinical/report_${task}.jsonl
extra=""
# AF: also the recipe without the rhythm statistics, i.e. what the encoder alone does.
[ "$task" = af ] && extra="--variant cli-default-norhythm"
# ABP: also fine-tuning with the Trainer, the default before the ridge head.
[ "$task" = abp ] && extra="--variant cli-default-trainer"
python benchmarks/clinical_cv.py --task "$task" --data "$data" --model pretrained-base \
    --variant cli-default $extra --variant cli-default-probe --variant old-default --baselines \
    --folds 5 --repeats 3 --seed 0 --output "$out"
python benchmarks/clinical_cv.py --task "$task" --data "$data" --model base --variant cli-default \
    --folds 5 --repeats 3 --seed 0 --output "$out"
