"""``python -m randhet`` runs the command line."""

import sys

from randhet.cli import main

sys.exit(main())
