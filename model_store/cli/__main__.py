"""``python -m model_store.cli``."""

import sys

from model_store.cli import main

sys.exit(main())
