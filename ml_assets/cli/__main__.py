"""`python -m ml_assets.cli`: the same as the `ml-assets` console script."""

import sys

from ml_assets.cli import main

sys.exit(main())
