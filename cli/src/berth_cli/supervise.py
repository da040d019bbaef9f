"""Entry point of the detached supervisor: ``python -m berth_cli.supervise --data-dir DIR [--all-in-one]``.

structlog renders exceptions with rich when rich is installed, and binds context to greenlets when greenlet
is; asyncio and urllib load the ssl module when they can. The supervisor has no use for any of them: it
talks plain HTTP to its own components on loopback. Keeping them out of this long-lived process makes it
about 13 MB smaller. (Only here: a process that merely imports ``berth_cli.supervisor``, like the tests or
``berth up --foreground``, is left alone; the components are separate interpreters and unaffected.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from berth_cli.supervisor import run_supervisor  # after the modules above are kept out

    parser = argparse.ArgumentParser(prog="berth-supervisor", description="The local platform's supervisor.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--all-in-one", action="store_true")
    args = parser.parse_args(argv)
    run_supervisor(args.data_dir, args.all_in_one)


if __name__ == "__main__":
    for unused in ("rich", "greenlet", "ssl"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    main()
