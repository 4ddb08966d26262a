"""The ChromTransfer network in TensorFlow / Keras 2 (tf_keras), as the speed reference.

Runs only in the benchmark environment (``.venv-bench``, built by ``setup_bench_env.sh``); it is
not part of the chromtransfer package and imports nothing from it. The network is written from
docs/method.md section 3 in the style of the authors' Keras code (functional API, Conv1D with the ReLU
inside, then BatchNormalization, then Dropout; L2 1e-4 on every conv kernel but the last):

    conv unit 64 k25 -> projection block 32 k20 -> 3 identity blocks 32 k15 (outputs concatenated)
    -> projection block 64 k10 -> 3 identity blocks 64 k5 -> conv unit 64 k10 -> Conv1D 64 k5 ReLU
    -> global average pooling -> Dense 512 ReLU, BN, Dropout -> Dense 128 ReLU, BN, Dropout
    -> Dense 1 sigmoid                                            (655,777 parameters)

Two uses:

* ``python benchmarks/keras_reference.py --summary`` prints the parameter counts (and fails when
  the total is not 655,777);
* ``python benchmarks/keras_reference.py --serve --codes codes.npy --labels labels.npy ...``
  builds and compiles the network (Adam 1e-3, binary cross-entropy plus the L2 penalty), warms it
  up, then answers timing requests read from stdin (see :func:`serve`): a training step is one
  ``train_on_batch`` call (forward, backward, Adam step, ``training=True``), inference one
  ``predict_on_batch`` call (``training=False``), the standard compiled Keras paths. Inputs are
  uint8 base codes ``(N, L)`` (A0 C1 G2 T3), one-hot encoded here, channels-last ``(N, L, 4)`` as
  Keras expects. ``benchmarks/bench_throughput.py`` drives it.

Threads: ``--threads T`` sets TensorFlow's intra-op and inter-op pools to T (and OMP_NUM_THREADS,
before TensorFlow is imported), so the reference uses the same cores as the PyTorch side.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

EXPECTED_PARAMETERS = 655_777
L2 = 1e-4
DROPOUT = 0.1
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


def _keras():
    """The Keras 2 API: tf_keras where installed (TensorFlow >= 2.16), else tf.keras."""
    try:
        import tf_keras as keras
    except ImportError:  # TensorFlow < 2.16 ships Keras 2 as tf.keras
        from tensorflow import keras
    return keras


def build_network(length: int | None = None):
    """The pre-training network (docs/method.md section 3), input ``(N, length, 4)``, output sigmoid."""
    keras = _keras()
    layers = keras.layers
    reg = keras.regularizers.l2(L2)

    def conv_unit(x, filters, kernel):
        x = layers.Conv1D(filters, kernel, padding="same", activation="relu",
                          kernel_initializer="he_normal", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)(x)
        return layers.Dropout(DROPOUT)(x)

    def projection_block(x, filters, kernel):
        main = conv_unit(conv_unit(x, filters, kernel), filters, kernel)
        return layers.Add()([main, conv_unit(x, filters, kernel)])

    def identity_block(x, filters, kernel):
        return layers.Add()([conv_unit(conv_unit(x, filters, kernel), filters, kernel), x])

    inputs = keras.Input(shape=(length, 4))
    x = conv_unit(inputs, 64, 25)
    x = projection_block(x, 32, 20)
    stage2 = []
    for _ in range(3):
        x = identity_block(x, 32, 15)
        stage2.append(x)
    x = layers.Concatenate(axis=-1)(stage2)
    x = projection_block(x, 64, 10)
    for _ in range(3):
        x = identity_block(x, 64, 5)
    x = conv_unit(x, 64, 10)
    x = layers.Conv1D(64, 5, padding="same", activation="relu", kernel_initializer="he_normal",
                      name="last_CNN_layer")(x)
    x = layers.GlobalAveragePooling1D()(x)
    for units in (512, 128):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)(x)
        x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters, as Keras' summary counts them."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}


def _one_hot(codes):
    import numpy as np

    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return eye[np.minimum(codes, 4)]


class Bench:
    """A compiled network plus fixed batches; times training steps and inference calls."""

    def __init__(self, args):
        import numpy as np
        import tensorflow as tf

        keras = _keras()
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads or args.threads)
        keras.utils.set_random_seed(args.seed)
        codes = np.load(args.codes)
        labels = np.load(args.labels).astype(np.float32).reshape(-1, 1)
        self.model = build_network()
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                           loss="binary_crossentropy")
        self.x_train = _one_hot(codes[:args.train_batch])
        self.y_train = labels[:args.train_batch]
        self.x_infer = _one_hot(codes[:args.infer_batch])
        for _ in range(args.warmup):
            self.model.train_on_batch(self.x_train, self.y_train)
            self.model.predict_on_batch(self.x_infer)
        self.info = {
            "library": f"tensorflow {tf.__version__} / tf_keras {keras.__version__}",
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         "numpy": np.__version__, "python": sys.version.split()[0]},
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
            "parameters": parameter_counts(self.model),
        }

    def train(self, steps: int) -> float:
        """Seconds for ``steps`` calls of ``train_on_batch`` (forward, backward, Adam step)."""
        start = time.perf_counter()
        for _ in range(steps):
            self.model.train_on_batch(self.x_train, self.y_train)
        return time.perf_counter() - start

    def infer(self, steps: int) -> float:
        """Seconds for ``steps`` calls of ``predict_on_batch`` on the inference batch."""
        start = time.perf_counter()
        for _ in range(steps):
            self.model.predict_on_batch(self.x_infer)
        return time.perf_counter() - start


def serve(bench: Bench) -> None:
    """Line protocol on stdin/stdout, so that a driver can interleave this with other timings.

    Prints ``{"ready": true, ...info}`` once built and warmed up; then answers each request line
    ``{"op": "train"|"infer", "steps": n}`` with ``{"op": ..., "steps": n, "seconds": s,
    "cpu_seconds": c}`` (wall-clock and process CPU time of the timed calls), and
    stops at ``{"op": "quit"}`` or end of input.
    """
    print(json.dumps({"ready": True, **bench.info}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        cpu = time.process_time()
        seconds = getattr(bench, request["op"])(int(request["steps"]))
        print(json.dumps({"op": request["op"], "steps": request["steps"], "seconds": seconds,
                          "cpu_seconds": time.process_time() - cpu}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true", help="print parameter counts")
    parser.add_argument("--serve", action="store_true",
                        help="build, warm up, then answer timing requests on stdin (JSON lines)")
    parser.add_argument("--codes", help="uint8 (N, L) base codes, .npy")
    parser.add_argument("--labels", help="0/1 labels (N,), .npy")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--inter-op-threads", type=int, default=None,
                        help="inter-op threads (default: the same as --threads)")
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.summary:
        counts = parameter_counts(build_network())
        print(json.dumps(counts))
        if counts["total"] != EXPECTED_PARAMETERS:
            print(f"expected {EXPECTED_PARAMETERS} parameters, built {counts['total']}", file=sys.stderr)
            return 1
    if args.serve:
        if not (args.codes and args.labels):
            parser.error("--serve needs --codes and --labels")
        serve(Bench(args))
    if not (args.summary or args.serve):
        parser.print_help()
    return 0


if __name__ == "__main__":
    # Before TensorFlow is imported: quiet logs, and OpenMP pools no larger than --threads.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    os.environ["OMP_NUM_THREADS"] = _threads
    sys.exit(main())
