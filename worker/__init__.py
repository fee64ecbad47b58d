"""The serving side that reads: the Celery tasks a worker runs, how it batches them, and its metrics.

Recognition itself is ``digits.recognition``; this package takes files off the
queue, hands them to it in batches, and writes their rows once.
"""
