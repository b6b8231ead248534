"""Entry script of the PyInstaller bundle: the same `main()` as the installed gui-script."""

import sys

from msquant_desktop.app import main

if __name__ == "__main__":
    sys.exit(main())
