"""`python -m bench`: the end-to-end benchmark (see bench/README.md and bench/e2e.py)."""

import sys

from bench.e2e import main

sys.exit(main())
