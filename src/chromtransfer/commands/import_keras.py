"""``chromtransfer import-keras``: convert the authors' Keras 2 ``.h5`` model into a model directory."""
from __future__ import annotations

import click

from ._options import overwrite_option


@click.command("import-keras")
@click.argument("h5_file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (model.json + model.safetensors).")
@click.option("--head", default="auto", show_default=True,
              type=click.Choice(["auto", "pretrain", "finetune", "finetune-bn", "multiclass", "multiclass-1024"]),
              help="Head of the model; 'auto' detects it from the Dense layers.")
@click.option("--classes", default=None,
              help="Comma-separated class names of a multi-class model, in output order.")
@overwrite_option("a model imported earlier")
def import_keras_command(h5_file: str, out_dir: str, head: str, classes: str | None, overwrite: bool) -> None:
    """Import a legacy Keras 2 HDF5 model (H5_FILE) of the ChromTransfer network.

    Reads the file with h5py (no TensorFlow needed), maps every layer onto the PyTorch network by
    following the Keras graph, and writes a model directory that `predict`, `evaluate` and
    `attribute` accept. model.json records the source file, its SHA-256 and the Keras version.
    """
    from ..keras_import import import_keras
    from ..models import count_parameters

    names = [c.strip() for c in classes.split(",")] if classes else None
    result = import_keras(h5_file, out_dir, head=head, classes=names, overwrite=overwrite)
    counts = count_parameters(result.model)
    keras_counts = result.graph.parameter_counts()
    click.echo(f"imported {h5_file} (Keras {result.graph.keras_version}, "
               f"{'nested' if result.graph.nested else 'flat'} layout) -> {out_dir}")
    click.echo(f"head: {result.head}  outputs: {result.model.config.n_outputs}  "
               f"parameters: {counts['total']} (Keras file: {keras_counts['total']})")


def register(app: click.Group) -> None:
    app.add_command(import_keras_command)
