"""``python -m tiedae.report``."""

import sys

from tiedae.report.cli import main

sys.exit(main())
