"""``python -m freecg_plugin.cli`` is ``freecg``."""

import sys

from . import main

sys.exit(main())
