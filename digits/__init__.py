"""Shared, light pieces of the digits service: settings, the CSV contract, the Celery app, the CLI.

Nothing in this package imports TensorFlow.
"""
