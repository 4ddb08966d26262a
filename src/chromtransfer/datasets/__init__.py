"""Building, storing and reading training sets (see :mod:`chromtransfer.datasets.store`)."""
from .store import Store, StoreWriter, open_store, write_store

__all__ = ["Store", "StoreWriter", "open_store", "write_store"]
