"""``python -m w2s_lens.cli``: the ``w2s-lens`` command line."""

import sys

from w2s_lens.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
