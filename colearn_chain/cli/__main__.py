"""`python -m colearn_chain.cli ...`: the same as the `colearn-chain` script."""

import sys

from . import main

sys.exit(main())
