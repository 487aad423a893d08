"""Offline tools: replaying real cellular traces through edge's own code.

- ``traces``: readers for G-NetTrack CSV, the Norway HSDPA logs (JSON and raw), Mahimahi and
  per-second throughput logs, detected from the content;
- ``replay``: ``edge replay``, prequential evaluation of the candidates and the deployed decision,
  built from ``simulation`` (the requests, labels and features of each client, in time order),
  ``baselines`` (the simple predictors it scores against) and ``report`` (scores, bootstrap
  intervals, the deployed decision's tiers, the tables);
- ``train_prior``: the command that trains the River-model prior of :mod:`edge.learning.prior`.

Nothing on the request path imports this package.
"""
