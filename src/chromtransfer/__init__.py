"""chromtransfer."""
