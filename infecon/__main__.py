"""``python -m infecon``: the same command as the installed ``infecon`` script."""

import sys

from infecon.solver.cli import main

sys.exit(main())
