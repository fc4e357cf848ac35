"""``python -m ablate``: the ``ablate`` command.

``python -m`` puts the working folder first on ``sys.path``, so a ``yaml.py`` or ``torch.py`` in a
folder someone else wrote (a sweep folder one has ``cd``-ed into) would be imported instead of the
library, and run. The working folder stays on the path only where this package itself lives there
(a checkout); like the ``ablate`` console script, the command then imports nothing from the folder.
"""

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() != Path(__file__).resolve().parents[1]:
    del sys.path[0]

from ablate.cli import command  # after the path is mended

sys.exit(command())
