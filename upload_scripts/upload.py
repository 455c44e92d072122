"""Publish predictors to the Hugging Face Hub from a manifest: `ltr-predictors upload` as a script.

python upload_scripts/upload.py --manifest upload_scripts/manifests/seed-zoo.yaml --dry-run
python upload_scripts/upload.py --manifest my.yaml      # token from HF_TOKEN or the hf login cache

Exit codes (see --help): 0 done, 2 refused (nothing sent), 3 the Hub failed a step (no commit made), 4 committed but
the read-back verification failed (the commit exists).
"""

import sys

from ltr_predictors.cli.upload import main

if __name__ == "__main__":
    sys.exit(main())
