"""``python -m edgeseg`` = the ``edgeseg`` command."""
import sys

from .cli import main

sys.exit(main())
