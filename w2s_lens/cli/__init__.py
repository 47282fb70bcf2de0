"""The command line: ``w2s-lens`` (:mod:`.commands` parses the arguments and dispatches), its
shared options (:mod:`.options`) and their value parsers and checks (:mod:`.values`), the
settings a command line asks for and the checks run before any model loads
(:mod:`.settings`), the job
each command runs (:mod:`.jobs`: checks, loads the items and the model, calls the library)
and the cross-dataset table's runner (:mod:`.table`, serially or on Ray).

May import every part of the package (it sits at the top of the data flow, beside
:mod:`w2s_lens.demo`); nothing imports it but the console entry point
(``w2s-lens = "w2s_lens.cli:main"``) and ``python -m w2s_lens.cli``.
"""

from w2s_lens.cli.commands import main

__all__ = ["main"]
