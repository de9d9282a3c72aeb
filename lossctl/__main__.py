"""``python -m lossctl``."""

from lossctl.cli import main

main()
