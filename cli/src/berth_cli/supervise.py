"""Entry point of the detached supervisor: ``python -m berth_cli.supervise --data-dir DIR [--all-in-one]``.

structlog renders exceptions with rich when rich is installed; the supervisor has no use for that, and
keeping rich out of this long-lived process makes it about 6 MB smaller. (Only here: a process that
merely imports ``berth_cli.supervisor``, like the tests or ``berth up --foreground``, is left alone.)
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

    from berth_cli.supervisor import main

    main()
