"""``python -m central`` runs the ``central-server`` command."""

import sys

from central.cli import main

sys.exit(main())
