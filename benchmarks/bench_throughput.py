"""Training and inference throughput of the network: chromtransfer against the authors' Keras code.

Every configuration runs in its own worker process (so each has its own thread and OpenMP
settings) and waits idle on a pipe while others are timed; the driver asks the workers for timed
calls in turn, round after round, the order reversed every other round, so that the slow drift
of a shared machine's load reaches every configuration alike. Results are medians over rounds.

Workloads (identical for all; 600 bp by default; inputs are the same random uint8 base codes and
0/1 labels, drawn once by the driver with ``--seed`` and handed to every worker):

* **training step**: forward + backward + Adam step (lr 1e-3) on a batch of 128 (float32,
  training mode: dropout and BatchNorm batch statistics), loss binary cross-entropy plus the L2
  penalty 1e-4 on the conv kernels. Keras: ``train_on_batch``. Ours: one-hot made from the codes
  inside the timed step.
* **inference**: logits (Keras: sigmoid) for a batch of 1024 (float32, eval mode). Keras:
  ``predict_on_batch``. Ours: codes in, one-hot on the device, logits out.

Configurations:

* ``keras``: ``benchmarks/keras_reference.py`` in ``.venv-bench`` (TensorFlow + tf_keras),
  intra-op and inter-op pools of ``--threads`` threads.
* ``pytorch_plain``: the same network in PyTorch with none of the optimisations below (plain
  ``(N, C, L)`` convolutions with F.pad, ``nn.Dropout``, BatchNorm on ``(N, C, L)``, one call for
  the whole inference batch, Adam's default implementation, OpenMP's default wait policy),
  ``torch.set_num_threads(--threads)``.
* ``chromtransfer``: what the package runs: the channels-last CPU path of
  ``chromtransfer.models`` for training (with ``torch.optim.Adam(fused=True)``);
  ``chromtransfer.accel.fast.fuse_for_inference`` + ``forward_in_chunks`` (chunks of 32 on
  ``--threads`` worker threads) for inference; ``OMP_WAIT_POLICY=PASSIVE``.
* with ``--levers``, one configuration per lever: ``chromtransfer`` with that one lever undone (or,
  for trials, added), so the table shows what each contributes.

Ratios: ``train_ratio_vs_keras`` and ``infer_ratio_vs_keras`` are the medians over rounds of
(chromtransfer sequences/s) / (keras sequences/s) measured in the same round; the ratio of the
medians is reported too. CPU seconds per call are recorded (sequences per CPU second is the
steadier measure of work on a loaded machine). Outputs of the optimised inference are checked
against the unoptimised model on 64 sequences: max |difference| of pooled features, probabilities
and logits, next to the plain float32 model's own difference from float64 (reported in the table
and the JSON). The random network is conditioned to behave like a trained one (BatchNorm
statistics from data; output layer scaled to logits of sd 1.5, as the Keras reference models).

Usage::

    .venv/bin/python benchmarks/bench_throughput.py [--rounds 5] [--threads 2] [--levers]
        [--json throughput.json]

Needs ``.venv-bench`` (``benchmarks/setup_bench_env.sh``) for the Keras side; without it (or with
``--no-keras``) only the PyTorch configurations run and no ratios are given.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Sibling scripts (this file runs as a script, with benchmarks/ first on sys.path); neither imports
# TensorFlow or chromtransfer at module level.
from keras_reference import serve  # the timing line protocol both workers speak
from run_all import machine_info

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

# name -> settings of one PyTorch worker. "train"/"infer" keys select the implementation of each
# workload; "env" is set before torch is imported.
OPTIMISED = {
    "train": {"path": "fast", "adam": "fused", "dropout": "fast", "compile": False},
    "infer": {"impl": "fused", "chunk": 32, "workers": None, "fuse": {}},
    "env": {"OMP_WAIT_POLICY": "PASSIVE"},
}
#: The package at --precision bf16: bf16-mixed training (CPU autocast, float32 weights and Adam
#: state) and the fused inference model with a bf16 body.
BF16 = {
    "train": {**OPTIMISED["train"], "precision": "bf16"},
    "infer": {**OPTIMISED["infer"], "precision": "bf16"},
    "env": dict(OPTIMISED["env"]),
}
PLAIN = {
    "train": {"path": "plain", "adam": "default", "dropout": "module", "compile": False},
    "infer": {"impl": "plain", "chunk": None, "workers": 1, "fuse": {}},
    "env": {},
}


def _variant(train: dict | None = None, infer: dict | None = None, env: dict | None = None,
             note: str = "") -> dict:
    config = json.loads(json.dumps(OPTIMISED))
    config["train"].update(train or {})
    config["infer"].update(infer or {})
    if env is not None:
        config["env"] = env
    config["note"] = note
    return config


# Levers: each is the optimised configuration with one change. "workloads" says which workload
# the lever concerns (the other one is not timed for that configuration).
LEVERS = {
    "no_channels_last": (_variant(train={"path": "plain"}, note="training with the plain (N, C, L) "
                                  "convolutions and BatchNorm (F.pad, oneDNN layout reorders)"),
                         ("train",)),
    "no_fast_dropout": (_variant(train={"dropout": "module"}, note="dropout mask drawn as "
                                 "nn.Dropout draws it (bernoulli_)"),
                        ("train",)),
    "adam_foreach": (_variant(train={"adam": "foreach"}, note="Adam foreach (default) instead of fused"),
                     ("train",)),
    "adam_single_tensor": (_variant(train={"adam": "single"}, note="Adam foreach=False"), ("train",)),
    "omp_default_wait": (_variant(env={}, note="OpenMP's default (spinning) wait policy"),
                         ("train", "infer")),
    "compile_train_step": (_variant(train={"compile": True}, note="torch.compile of the model "
                                    "(inductor) in the training step; compile time excluded"),
                           ("train",)),
    "no_fusion": (_variant(infer={"impl": "eager"}, note="model.eval() (channels-last path) "
                           "instead of the fused model, same chunking and threads"), ("infer",)),
    "no_pointwise": (_variant(infer={"fuse": {"pointwise": False}}, note="conv2d then relu_ "
                              "instead of oneDNN's fused conv+ReLU"), ("infer",)),
    "merge_siblings": (_variant(infer={"fuse": {"merge_siblings": True}}, note="projection "
                                "blocks: main-path and shortcut convs as one"), ("infer",)),
    "no_trim_even": (_variant(infer={"fuse": {"trim_even": False}}, note="even kernels as odd ones "
                              "with a zero tap instead of a trimmed one-longer output"), ("infer",)),
    "no_head_fold": (_variant(infer={"fuse": {"fold_head_bn": False}}, note="head BatchNorm kept"),
                     ("infer",)),
    "no_chunking": (_variant(infer={"chunk": None, "workers": 1}, note="the whole 1024 batch in "
                             "one call on an OpenMP team of --threads"), ("infer",)),
    "chunks_no_worker_threads": (_variant(infer={"workers": 1}, note="chunks of 32 run in turn "
                                          "on an OpenMP team of --threads"), ("infer",)),
    "chunk_64": (_variant(infer={"chunk": 64}, note="chunks of 64"), ("infer",)),
    "chunk_16": (_variant(infer={"chunk": 16}, note="chunks of 16"), ("infer",)),
    "compile_inference": (_variant(infer={"impl": "compiled"}, note="torch.compile (inductor, "
                                   "freezing) of the fused model without the private fused-conv "
                                   "op; compile time excluded"), ("infer",)),
}


# --------------------------------------------------------------------------------------------
# worker side (runs in .venv, imports torch)
# --------------------------------------------------------------------------------------------

class TorchBench:
    """One PyTorch configuration: a model, an optimiser and the fixed batches."""

    def __init__(self, config: dict, args):
        import numpy as np
        import torch
        from torch.nn import functional as F

        import chromtransfer.accel.kernels as kernels
        import chromtransfer.models as models
        from chromtransfer.accel.fast import FuseOptions, forward_in_chunks, fuse_for_inference
        from chromtransfer.encoding import one_hot

        self.torch, self.F, self.models, self.one_hot = torch, F, models, one_hot
        self.kernels = kernels
        self.forward_in_chunks = forward_in_chunks
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.config = config
        self.threads = args.threads
        codes = torch.from_numpy(np.load(args.codes))
        labels = torch.from_numpy(np.load(args.labels).astype(np.float32)).view(-1, 1)
        self.train_codes = codes[:args.train_batch].clone()
        self.train_labels = labels[:args.train_batch].clone()
        self.infer_codes = codes[:args.infer_batch].clone()
        self.model = models.build_model("pretrain", width=args.width)
        self._condition(self.model, self.infer_codes[:256])

        tcfg, icfg = config["train"], config["infer"]
        self.plain_train = tcfg["path"] == "plain"
        self.module_dropout = tcfg["dropout"] == "module"
        adam_kwargs = {"default": {}, "fused": {"fused": True}, "foreach": {"foreach": True},
                       "single": {"foreach": False}}[tcfg["adam"]]
        self.train_precision = tcfg.get("precision", "float32")
        self.train_net = self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, **adam_kwargs)
        if tcfg.get("compile"):
            self.train_net = torch.compile(self.model)

        self.infer_impl = icfg["impl"]
        self.chunk = icfg["chunk"] or args.infer_batch
        self.workers = icfg["workers"] if icfg["workers"] is not None else args.threads
        options = FuseOptions(**icfg.get("fuse", {}))
        eval_copy = self._eval_copy()
        self.fused = None
        if self.infer_impl in ("fused", "compiled"):
            if self.infer_impl == "compiled":
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                options = FuseOptions(**{**icfg.get("fuse", {}), "pointwise": False})
            from chromtransfer.precision import compute_dtype

            self.fused = fuse_for_inference(eval_copy, options, body_dtype=compute_dtype(icfg.get("precision")))
        self.eval_model = eval_copy
        self.infer_fn = self._make_infer_fn()
        self.info = self._info()

    # -- set-up helpers -------------------------------------------------------------------------
    def _condition(self, model, codes) -> None:
        """Make the random network behave like a trained one: BatchNorm statistics from data (so
        activations are O(1)) and the output layer scaled to logits of mean 0.3 and sd 1.5 over
        ``codes`` (as the Keras reference models in shared/data are conditioned). Without this a
        random head gives logits of 10-20, where float32 itself rounds at ~1e-5."""
        torch = self.torch
        model.train()
        saved = {}
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                saved[m] = m.momentum
                m.momentum = None  # cumulative average over the calibration batches
                m.reset_running_stats()
        with torch.no_grad():
            for part in codes.split(64):
                model(self.one_hot(part))
        for m, momentum in saved.items():
            m.momentum = momentum
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(self.one_hot(part)) for part in codes.split(64)])
            out = model.head.output
            scale = 1.5 / logits.std().clamp_min(1e-6)
            out.weight.mul_(scale)
            out.bias.mul_(scale).add_(0.3 - logits.mean() * scale)

    def _eval_copy(self):
        import copy

        return copy.deepcopy(self.model).eval()

    def _plain(self):
        """Context: the plain (N, C, L) path of chromtransfer.models (the unoptimised network)."""
        kernels = self.kernels

        class Plain:
            def __enter__(self_inner):
                self_inner.saved = kernels.cpu_fast_path
                kernels.cpu_fast_path = lambda x, module: False

            def __exit__(self_inner, *exc):
                kernels.cpu_fast_path = self_inner.saved

        return Plain()

    def _make_infer_fn(self):
        torch = self.torch
        if self.infer_impl == "plain":
            def run(codes):
                with self._plain():
                    return self.eval_model(self.one_hot(codes))
            return run
        if self.infer_impl == "eager":
            return lambda codes: self.eval_model(self.one_hot(codes))
        if self.infer_impl == "fused":
            return self.fused.forward_codes
        compiled = torch.compile(self.fused.forward_codes)
        chunk = min(self.chunk, self.infer_codes.shape[0])
        with torch.inference_mode():
            compiled(self.infer_codes[:chunk])  # compile now, outside the timings
        return compiled

    def _info(self) -> dict:
        torch = self.torch
        return {
            "library": f"torch {torch.__version__}",
            "threads": {"torch.get_num_threads": torch.get_num_threads(),
                        "inference_workers": self.workers, "inference_chunk": self.chunk,
                        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(default)"),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
            "vs_unoptimised": self.check_exactness(),
        }

    def check_exactness(self) -> dict:
        """This configuration's inference against the unoptimised model on 64 sequences.

        Max absolute differences of the logits, of the probabilities and of the pooled features
        (the fused model's body against the plain body where the configuration has one), next to
        the plain float32 model's own difference from float64 (the rounding level of float32 at
        this logit scale)."""
        import copy

        torch = self.torch
        codes = self.infer_codes[:64]
        x = self.one_hot(codes)
        with torch.inference_mode():
            with self._plain():
                reference = self.eval_model(x)
                features = self.eval_model.body(x)
            got = self.forward_in_chunks(self.infer_fn, codes, chunk=min(self.chunk, 64),
                                         workers=self.workers)
            scale = max(1.0, float(reference.abs().max()))
            result = {"logits": float((got - reference).abs().max()),
                      "logits_relative": float((got - reference).abs().max()) / scale,
                      "probabilities": float((torch.sigmoid(got) - torch.sigmoid(reference)).abs().max()),
                      "max_abs_logit": float(reference.abs().max())}
            if self.fused is not None:
                from chromtransfer.accel.fast import one_hot_nlc

                fused_features = self.fused.body(one_hot_nlc(codes, self.fused.body_dtype))
                result["features"] = float((fused_features - features).abs().max())
        model64 = copy.deepcopy(self.eval_model).double()
        with torch.no_grad():
            result["plain_float32_vs_float64_logits"] = float(
                (model64(x.double()) - reference.double()).abs().max())
        return result

    # -- timed calls ----------------------------------------------------------------------------
    def _train_step(self) -> None:
        from chromtransfer.precision import autocast

        F = self.F
        with autocast("cpu", self.train_precision):  # bf16-mixed as Lightning runs it
            logits = self.train_net(self.one_hot(self.train_codes))
            loss = F.binary_cross_entropy_with_logits(logits, self.train_labels) \
                + self.models.l2_penalty(self.model, 1e-4)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def train(self, steps: int) -> float:
        kernels = self.kernels
        self.model.train()
        saved_fast, saved_dropout = kernels.cpu_fast_path, kernels.dropout_scale
        if self.plain_train:
            kernels.cpu_fast_path = lambda x, module: False
        if self.module_dropout:
            kernels.dropout_scale = _bernoulli_dropout_scale
        try:
            start = time.perf_counter()
            for _ in range(steps):
                self._train_step()
            return time.perf_counter() - start
        finally:
            kernels.cpu_fast_path, kernels.dropout_scale = saved_fast, saved_dropout

    def infer(self, steps: int) -> float:
        torch = self.torch
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(steps):
                self.forward_in_chunks(self.infer_fn, self.infer_codes, chunk=self.chunk,
                                       workers=self.workers)
        return time.perf_counter() - start


def _bernoulli_dropout_scale(x, module):
    """The dropout factor as ``torch.nn.functional.dropout`` draws it (Bernoulli mask, / (1-p))."""
    if not module.training or module.p == 0.0:
        return None
    return x.new_empty(x.shape).bernoulli_(1.0 - module.p).div_(1.0 - module.p)


def worker_main(args) -> int:
    config = json.loads(args.worker_config)
    serve(TorchBench(config, args))
    return 0


# --------------------------------------------------------------------------------------------
# driver side
# --------------------------------------------------------------------------------------------

class Worker:
    """A worker process speaking the JSON-lines protocol."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], workloads: tuple[str, ...]):
        self.name = name
        self.workloads = workloads
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {name} failed to start:\n{self.process.stderr.read()[-3000:]}")
        self.info = json.loads(line)

    def call(self, op: str, steps: int) -> dict:
        self.process.stdin.write(json.dumps({"op": op, "steps": steps}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died:\n{self.process.stderr.read()[-3000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


def _common_args(args, codes: str, labels: str) -> list[str]:
    return ["--codes", codes, "--labels", labels, "--threads", str(args.threads),
            "--train-batch", str(args.train_batch), "--infer-batch", str(args.infer_batch),
            "--seed", str(args.seed)]


def _torch_worker(name: str, config: dict, args, codes: str, labels: str,
                  workloads: tuple[str, ...]) -> Worker:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(config.get("env", {}))
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker-config", json.dumps(config),
               "--width", str(args.width)] + _common_args(args, codes, labels)
    return Worker(name, command, env, workloads)


def _keras_worker(args, codes: str, labels: str) -> Worker:
    command = [str(args.bench_python), str(ROOT / "benchmarks" / "keras_reference.py"), "--serve",
               "--warmup", "2"] + _common_args(args, codes, labels)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return Worker("keras", command, env, ("train", "infer"))


def library_versions() -> dict:
    import numpy
    import torch

    versions = {"torch": torch.__version__, "numpy": numpy.__version__,
                "python": platform.python_version(),
                "onednn_available": bool(torch.backends.mkldnn.is_available())}
    try:
        from importlib.metadata import version

        versions["chromtransfer"] = version("chromtransfer")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        pass
    return versions


def _summary(samples: dict, info: dict) -> dict:
    def med(values):
        return statistics.median(values) if values else None

    return {"info": info,
            "train_seq_per_s": samples["train"], "infer_seq_per_s": samples["infer"],
            "train_seq_per_cpu_s": samples["train_cpu"], "infer_seq_per_cpu_s": samples["infer_cpu"],
            "train_median": med(samples["train"]), "infer_median": med(samples["infer"]),
            "train_median_per_cpu_s": med(samples["train_cpu"]),
            "infer_median_per_cpu_s": med(samples["infer_cpu"])}


def _phase(starters: list, args, label: str, errors: dict[str, str]) -> dict[str, dict]:
    """Start the workers, time them in interleaved rounds, stop them; name -> summary.

    A worker that fails to start or dies is left out of the rest of the phase; its error goes
    into ``errors`` (the benchmark goes on without it).
    """
    workers: list[Worker] = []

    def drop(worker_or_name, exc: Exception) -> None:
        name = worker_or_name if isinstance(worker_or_name, str) else worker_or_name.name
        errors[name] = str(exc)[-2000:]
        print(f"[{label}] {name} left out: {str(exc).splitlines()[-1] if str(exc) else exc!r}",
              file=sys.stderr, flush=True)
        if not isinstance(worker_or_name, str):
            workers.remove(worker_or_name)
            worker_or_name.close()

    try:
        for name, start in starters:
            try:
                workers.append(start())
            except (RuntimeError, OSError, json.JSONDecodeError) as exc:
                drop(name, exc)
        for w in list(workers):  # untimed warm-up call of each kind
            try:
                for op in w.workloads:
                    w.call(op, 1)
            except (RuntimeError, OSError, json.JSONDecodeError) as exc:
                drop(w, exc)
        samples = {w.name: {"train": [], "infer": [], "train_cpu": [], "infer_cpu": []}
                   for w in workers}
        for r in range(args.rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            for op, steps, batch in (("train", args.train_steps, args.train_batch),
                                     ("infer", args.infer_steps, args.infer_batch)):
                for w in list(order):
                    if op not in w.workloads or w not in workers:
                        continue
                    try:
                        reply = w.call(op, steps)
                    except (RuntimeError, OSError, json.JSONDecodeError) as exc:
                        drop(w, exc)
                        continue
                    samples[w.name][op].append(batch * steps / reply["seconds"])
                    samples[w.name][op + "_cpu"].append(batch * steps / max(reply["cpu_seconds"], 1e-9))
            line = "  ".join(
                f"{w.name} " + "/".join(f"{samples[w.name][op][-1]:.1f}" for op in w.workloads)
                for w in workers)
            print(f"[{label}] round {r + 1}/{args.rounds} (seq/s)  {line}", file=sys.stderr, flush=True)
        return {w.name: _summary(samples[w.name], w.info) for w in workers}
    finally:
        for w in workers:
            w.close()


def _paired(a: dict, b: dict, op: str) -> float | None:
    """Median over rounds of a's rate over b's rate in the same round."""
    x, y = a[f"{op}_seq_per_s"], b[f"{op}_seq_per_s"]
    return statistics.median(p / q for p, q in zip(x, y)) if x and y else None


def run(args) -> dict:
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n = max(args.train_batch, args.infer_batch)
    tmp = tempfile.TemporaryDirectory(prefix="ct-bench-")
    codes_path, labels_path = f"{tmp.name}/codes.npy", f"{tmp.name}/labels.npy"
    np.save(codes_path, rng.integers(0, 4, (n, args.length)).astype(np.uint8))
    np.save(labels_path, rng.integers(0, 2, n).astype(np.int8))

    def torch_starter(name: str, config: dict, workloads=("train", "infer")):
        def start() -> Worker:
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            return _torch_worker(name, config, args, codes_path, labels_path, workloads)
        return name, start

    result: dict = {"configs": {}, "levers": {}, "errors": {}}
    errors = result["errors"]
    try:
        starters = []
        if not args.no_keras:
            if Path(args.bench_python).exists():
                def keras_start() -> Worker:
                    print("starting keras ...", file=sys.stderr, flush=True)
                    return _keras_worker(args, codes_path, labels_path)
                starters.append(("keras", keras_start))
            else:
                print(f"note: {args.bench_python} not found (run benchmarks/setup_bench_env.sh); "
                      "Keras is left out", file=sys.stderr)
        starters += [torch_starter("pytorch_plain", PLAIN), torch_starter("chromtransfer", OPTIMISED)]
        if not args.no_bf16:
            starters.append(torch_starter("chromtransfer_bf16", BF16))
        result["configs"] = _phase(starters, args, "main", errors)
        if "chromtransfer" not in result["configs"]:
            raise RuntimeError(f"the chromtransfer worker failed:\n{errors.get('chromtransfer')}")

        names = [name for name in LEVERS if not args.lever or name in args.lever] if args.levers else []
        for first in range(0, len(names), args.group):
            group = names[first:first + args.group]
            starters = [torch_starter("chromtransfer", OPTIMISED)]
            starters += [torch_starter(name, LEVERS[name][0], LEVERS[name][1]) for name in group]
            phase = _phase(starters, args, "levers " + ",".join(group), errors)
            base = phase.get("chromtransfer")
            for name in group:
                if name not in phase or base is None:
                    continue
                for op in LEVERS[name][1]:
                    lever = phase[name]
                    result["levers"][f"{name}/{op}"] = {
                        "note": LEVERS[name][0]["note"],
                        "seq_per_s": lever[f"{op}_median"],
                        "chromtransfer_seq_per_s": base[f"{op}_median"],
                        "ratio_to_chromtransfer": _paired(lever, base, op),
                        "ratio_to_chromtransfer_per_cpu_s": (lever[f"{op}_median_per_cpu_s"]
                                                             / base[f"{op}_median_per_cpu_s"]),
                        "info": lever["info"],
                    }
    finally:
        tmp.cleanup()

    configs = result["configs"]
    ours = configs["chromtransfer"]
    for op in ("train", "infer"):
        if "keras" in configs:
            keras = configs["keras"]
            result[f"{op}_ratio_vs_keras"] = _paired(ours, keras, op)
            result[f"{op}_ratio_vs_keras_of_medians"] = ours[f"{op}_median"] / keras[f"{op}_median"]
            result[f"{op}_ratio_vs_keras_per_cpu_s"] = (ours[f"{op}_median_per_cpu_s"]
                                                        / keras[f"{op}_median_per_cpu_s"])
        if "pytorch_plain" in configs:
            result[f"{op}_ratio_vs_pytorch_plain"] = _paired(ours, configs["pytorch_plain"], op)
        if "chromtransfer_bf16" in configs:
            bf16 = configs["chromtransfer_bf16"]
            result[f"{op}_bf16_ratio_vs_float32"] = _paired(bf16, ours, op)
            if "keras" in configs:
                result[f"{op}_bf16_ratio_vs_keras"] = _paired(bf16, configs["keras"], op)
                result[f"{op}_bf16_ratio_vs_keras_per_cpu_s"] = (bf16[f"{op}_median_per_cpu_s"]
                                                                 / configs["keras"][f"{op}_median_per_cpu_s"])
    if "chromtransfer_bf16" in configs:
        from chromtransfer.precision import cpu_has_native_bf16

        result["bf16_vs_float32_on_random_network"] = configs["chromtransfer_bf16"]["info"]["vs_unoptimised"]
        result["cpu_native_bf16"] = cpu_has_native_bf16()
    result["settings"] = {
        "rounds": args.rounds, "threads": args.threads, "length": args.length,
        "train_batch": args.train_batch, "infer_batch": args.infer_batch,
        "train_steps_per_call": args.train_steps, "infer_batches_per_call": args.infer_steps,
        "width": args.width, "seed": args.seed, "dtype": "float32",
        "thread_settings": ("keras: tf.config.threading intra_op = inter_op = --threads, "
                            "OMP_NUM_THREADS = --threads; pytorch: torch.set_num_threads(--threads); "
                            "chromtransfer inference: --threads worker threads of 1 intra-op thread "
                            "each; chromtransfer: OMP_WAIT_POLICY=PASSIVE"),
    }
    return result


def print_table(result: dict) -> None:
    configs = result["configs"]
    print(f"\nthroughput, sequences per second (median of {result['settings']['rounds']} rounds; "
          f"{result['settings']['threads']} threads, {result['settings']['length']} bp, float32)")
    train_head = f"train b{result['settings']['train_batch']}"
    infer_head = f"infer b{result['settings']['infer_batch']}"
    print(f"{'configuration':28s} {train_head:>11s} {infer_head:>12s} {'train/cpu-s':>12s} {'infer/cpu-s':>12s}")
    for name, c in configs.items():
        def fmt(v, w, d):
            return f"{v:{w}.{d}f}" if v is not None else f"{'-':>{w}s}"
        print(f"{name:28s} {fmt(c['train_median'], 11, 1)} {fmt(c['infer_median'], 12, 1)} "
              f"{fmt(c['train_median_per_cpu_s'], 12, 1)} {fmt(c['infer_median_per_cpu_s'], 12, 1)}")
    for op in ("train", "infer"):
        r = result.get(f"{op}_ratio_vs_keras")
        if r is not None:
            print(f"{op}_ratio_vs_keras = {r:.2f}  (ratio of medians {result[f'{op}_ratio_vs_keras_of_medians']:.2f}, "
                  f"per CPU second {result[f'{op}_ratio_vs_keras_per_cpu_s']:.2f})")
        r = result.get(f"{op}_ratio_vs_pytorch_plain")
        if r is not None:
            print(f"{op}_ratio_vs_pytorch_plain = {r:.2f}")
        r = result.get(f"{op}_bf16_ratio_vs_keras")
        if r is not None:
            print(f"{op}_bf16_ratio_vs_keras = {r:.2f}  (per CPU second "
                  f"{result[f'{op}_bf16_ratio_vs_keras_per_cpu_s']:.2f}; bf16 / float32 chromtransfer "
                  f"{result[f'{op}_bf16_ratio_vs_float32']:.2f}; native bf16 on this CPU: {result['cpu_native_bf16']})")
    diff = configs["chromtransfer"]["info"]["vs_unoptimised"]
    print("chromtransfer inference vs the unoptimised model (64 sequences, max |difference|): "
          f"features {diff.get('features', float('nan')):.1e}, probabilities {diff['probabilities']:.1e}, "
          f"logits {diff['logits']:.1e} = {diff['logits_relative']:.1e} of max |logit| {diff['max_abs_logit']:.1f} (plain float32 vs "
          f"float64: {diff['plain_float32_vs_float64_logits']:.1e})")
    for name, error in result.get("errors", {}).items():
        print(f"{name}: failed ({error.strip().splitlines()[-1] if error.strip() else 'no message'})")
    if result["levers"]:
        print("\nlevers (chromtransfer with one change; ratio < 1 means the change is slower)")
        print(f"{'lever/workload':36s} {'seq/s':>8s} {'ratio':>7s} {'per cpu-s':>10s}  what")
        for name, lever in result["levers"].items():
            ratio = lever["ratio_to_chromtransfer"]
            print(f"{name:36s} {lever['seq_per_s']:8.1f} {ratio:7.2f} "
                  f"{lever['ratio_to_chromtransfer_per_cpu_s']:10.2f}  {lever['note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over these)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=1024)
    parser.add_argument("--train-steps", type=int, default=2, help="training steps per timed call")
    parser.add_argument("--infer-steps", type=int, default=1, help="inference batches per timed call")
    parser.add_argument("--width", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levers", action="store_true", help="also time one configuration per lever")
    parser.add_argument("--lever", action="append", help="only these levers (with --levers)")
    parser.add_argument("--group", type=int, default=4,
                        help="levers timed together with one chromtransfer worker (memory bound)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the --precision bf16 configuration")
    parser.add_argument("--bench-python", default=str(BENCH_PYTHON))
    parser.add_argument("--json", default=None, help="write the results (with machine info) here")
    # worker mode (internal)
    parser.add_argument("--worker-config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--codes", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_config:
        return worker_main(args)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up that stops workers
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = machine_info().get("load_average")
    result = run(args)
    result["machine"] = machine_info()
    result["machine"]["load_average_before"] = load_before
    result["versions"] = library_versions()
    keras = result["configs"].get("keras", {}).get("info", {})
    if keras:
        result["versions"].update({"tensorflow": keras.get("versions", {}).get("tensorflow"),
                                   "keras": keras.get("versions", {}).get("keras")})
    result["date"] = started.isoformat(timespec="seconds")
    result["seconds"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
