"""From a file's bytes to result rows: decode, align, cut, read with the Keras models, judge.

``pipeline`` is the entry point; ``model`` is the only module that touches
TensorFlow, and imports it only when a model is loaded. Used by the workers,
``digits recognize`` and ``digits evaluate``.
"""
