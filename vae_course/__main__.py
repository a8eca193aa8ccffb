"""``python -m vae_course ...`` runs the command-line interface (see ``cli.py``)."""
import sys

from .cli import main

sys.exit(main())
