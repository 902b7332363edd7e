"""``python -m hcm``: the same as the ``hcm`` command (used by the workflow's rules)."""

import sys

from hcm.cli import main

if __name__ == "__main__":
    sys.exit(main())
