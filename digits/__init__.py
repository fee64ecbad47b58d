"""The digits service: handwritten digits from scanned cheques and forms, read in batches.

The modules here are the core every part shares, light and without TensorFlow:
the contracts (``contracts``: the task message and the result row), settings,
the Celery app, the CSV writer, layouts, the model store's naming and roll-outs.
Below them:

- ``digits.recognition``: from a file's bytes to rows (the Keras models live here);
- ``digits.training``: training and measuring the models;
- ``digits.cli``: the ``digits`` command and ``digits up``, the one place that wires
  the serving side (``ingest``, ``worker``) to all of this.
"""
