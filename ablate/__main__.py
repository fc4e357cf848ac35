"""``python -m ablate``: the ``ablate`` command."""

import sys

from ablate.cli import command

sys.exit(command())
