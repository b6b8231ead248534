"""`python -m msquant_desktop` — same entry point as the installed `msquant-desktop` script."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "_supervise":
    # Fast path: the job supervisor needs none of the app's imports (start-up is on the click path).
    from msquant_desktop.cli.supervise import main as supervise_main

    sys.exit(supervise_main(sys.argv[2:]))

from msquant_desktop.app import main

sys.exit(main())
