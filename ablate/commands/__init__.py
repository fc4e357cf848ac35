"""Sub-commands of the ``ablate`` CLI, one module each, each with ``register(subparsers)``."""
