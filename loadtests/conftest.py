"""pytest collects the doctests of the load-test helpers (``--doctest-modules``), nothing else here.

The Locust file is never imported (importing it patches the standard library for gevent and
declares the users); the benchmark and report scripts are programs, run from the command line,
whose figures are not tests. Their behaviour is tested in ``tests/loadtests/``.
"""

# conftest.py itself: fixtures, not doctests (collected as a module named "conftest" it clashes with the tests').
collect_ignore_glob = ["locustfile.py", "bench*.py", "report.py", "conftest.py"]
