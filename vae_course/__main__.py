"""``python -m vae_course ...`` runs the command-line interface (see ``cli.py``).

Python imports the package (``vae_course/__init__.py``) before this file, and that
import installs the start-up signal handlers first thing, before torch loads
(:func:`vae_course.signals.install_startup_handlers`): from the first instant, Ctrl-C,
SIGTERM and SIGHUP end the program with one line and exit code 128 + n (130, 143,
129). Installing them again here is a no-op safety net for any other way in.
"""
import sys

from .signals import install_startup_handlers

install_startup_handlers()

from .cli import main  # noqa: E402  (torch loads here)

sys.exit(main())
