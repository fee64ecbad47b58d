"""Trained models shipped with the project (``<name>@<version>.keras`` plus ``.json`` metadata).

This folder is a package only so that ``pip install .`` carries the models along.
"""

from pathlib import Path

STORE = Path(__file__).resolve().parent
"""Where the shipped models live once installed."""
