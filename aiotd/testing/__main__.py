"""``python -m aiotd.testing``: the same as ``aiotd emulator``."""

import sys

from aiotd.testing._serve import main

sys.exit(main())
