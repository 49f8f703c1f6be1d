"""`python -m tui`: the `commons` command."""

import sys

from tui.main import main

sys.exit(main())
