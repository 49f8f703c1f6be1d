import sys

from commons.cli import main

sys.exit(main())
