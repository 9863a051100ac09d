"""``python -m unireplknet`` runs the command line (also under ``torchrun``)."""
import sys

from unireplknet.cli import main

if __name__ == "__main__":
    sys.exit(main())
