"""``python -m tcomp.cli``: the same as the ``tcomp`` command."""

import sys

from tcomp.cli import main

sys.exit(main())
