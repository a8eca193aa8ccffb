"""``python -m vae_course ...`` runs the command-line interface (see ``cli.py``)."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: nothing to save yet
    print("Interrupted before training started; nothing was written.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
