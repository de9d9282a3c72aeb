"""Entry point of ``lossctl`` and ``python -m lossctl``.

The CLI is imported inside :func:`main` so that a Ctrl-C while it loads still ends
in one line and exit code 130, never a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from lossctl.cli.process import main as run
    except KeyboardInterrupt:
        sys.stderr.write("lossctl: interrupted\n")
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
