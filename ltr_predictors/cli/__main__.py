"""`python -m ltr_predictors.cli`: the same as the `ltr-predictors` command."""

import sys

from . import main

sys.exit(main())
