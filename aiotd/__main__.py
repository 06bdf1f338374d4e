"""``python -m aiotd``: the same as the ``aiotd`` command."""

import sys

from aiotd.cli import main

sys.exit(main())
