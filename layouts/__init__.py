"""Layouts shipped with the project (``<name>.toml``; see ``digits/layouts.py`` for the format).

This folder is a package only so that ``pip install .`` carries the layouts along.
"""

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
"""Where the shipped layouts live once installed."""
