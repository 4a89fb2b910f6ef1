"""``python -m reintegration``: the command line (:mod:`reintegration.cli`)."""

import sys

from .cli import main

sys.exit(main())
