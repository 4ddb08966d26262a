#!/usr/bin/env bash
# Pre-train on 2 nodes x 4 GPUs with SLURM (8 DDP processes; see docs/scaling.md).
#
#   sbatch examples/slurm_train.sh STORE RUN [extra chromtransfer train options]
#
# srun starts one task per GPU; Lightning reads the ranks and the rendezvous address from SLURM's
# environment (SLURM_PROCID, SLURM_LOCALID, SLURM_NODELIST, SLURM_JOB_ID), so nothing else is
# configured here. --devices must equal --ntasks-per-node and --num-nodes must equal --nodes.
# RUN must be on a file system every node sees: rank 0 writes the checkpoints, every rank reads
# them when the run resumes.
#
# The job is safe to requeue or to submit again: --resume continues an unfinished run from its
# last epoch-end checkpoint, starts a missing one and leaves a finished one alone.
#
#SBATCH --job-name=chromtransfer-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

STORE=${1:?usage: sbatch examples/slurm_train.sh STORE RUN [options]}
RUN=${2:?usage: sbatch examples/slurm_train.sh STORE RUN [options]}
shift 2
CT=${CHROMTRANSFER:-chromtransfer}

# One intra-op thread pool per process, sized to the task's CPUs (the rest feed the data loader).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# --kill-on-bad-exit: if one rank fails (a bad option, a missing store), stop the others at once
# instead of leaving them waiting for it at the rendezvous.
srun --kill-on-bad-exit=1 "$CT" train \
    --preset pretrain --data "$STORE" --out "$RUN" \
    --device cuda --devices "$SLURM_NTASKS_PER_NODE" --num-nodes "$SLURM_JOB_NUM_NODES" \
    --strategy ddp --num-workers 6 --quiet --resume "$@"
