"""`python -m msquant_desktop` — same entry point as the installed `msquant-desktop` script."""

import sys

from msquant_desktop.app import main

sys.exit(main())
