"""``python -m harness.lazyfs``: see :mod:`harness.lazyfs.server`."""

import sys

from harness.lazyfs.server import main

sys.exit(main())
