"""Building, storing and reading training sets (see :mod:`chromtransfer.datasets.store`)."""
from .finetune import prepare_finetune
from .pretrain import prepare_pretrain
from .store import Store, StoreWriter, open_store, write_store
from .synthetic import make_synthetic

__all__ = ["Store", "StoreWriter", "make_synthetic", "open_store", "prepare_finetune", "prepare_pretrain",
           "write_store"]
