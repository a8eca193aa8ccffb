"""The package's version, in one place (``vae_course.__version__`` re-exports it; checkpoints record it)."""
__version__ = "0.1.0"
