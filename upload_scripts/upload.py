"""Publish predictors to the Hugging Face Hub from a manifest: a thin wrapper over `ltr_predictors.publish`.

python upload_scripts/upload.py --manifest upload_scripts/manifests/seed-zoo.yaml --dry-run
python upload_scripts/upload.py --manifest my.yaml      # token from HF_TOKEN or the hf login cache
"""

import sys

from ltr_predictors.publish import main

if __name__ == "__main__":
    sys.exit(main())
