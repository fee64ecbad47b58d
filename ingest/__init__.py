"""The queueing side: the inbox watcher and the Python client. No TensorFlow here.

>>> from ingest import submit
>>> job = submit(["a.png", "b.jpg"])
>>> job.wait(timeout=60).rows()
"""

from ingest.client import Job, JobStatus, JobTimeout, submit

__all__ = ["Job", "JobStatus", "JobTimeout", "submit"]
