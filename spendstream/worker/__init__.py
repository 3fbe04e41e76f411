"""The worker process's composition root: the one place that builds and wires every part.

Modules are imported where they are used (``spendstream.worker.build`` pulls in Faust):
:mod:`spendstream.worker.schema` is the full, ordered list of migrations; :mod:`.build` builds
and runs the stream worker.
"""
