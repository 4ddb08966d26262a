"""Subcommand modules of the command line; each defines ``register(app)``."""
