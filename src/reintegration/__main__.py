"""``python -m reintegration``: the command line (:mod:`reintegration.pipeline.cli`)."""

import sys

from .pipeline.cli import main

sys.exit(main())
