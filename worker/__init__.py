"""The recognition side: reading scans, cutting digits, the Keras model, the Celery tasks."""
