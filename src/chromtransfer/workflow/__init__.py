"""The study workflow (``chromtransfer run CONFIG.yaml``): the paper's analysis as resumable stages."""
