"""The review station: a small web application where people key what the machine doubts.

It needs Redis and the results folder (the pictures workers saved), never
TensorFlow. ``digits review`` serves it alone; ``digits up`` serves it beside
the worker and the ingester.
"""
