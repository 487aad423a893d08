"""How edge learns what a degraded network looks like, online.

- ``model``: the rules, the River model and the champion/challenger that decides which one serves;
- ``evaluation``: rolling ROC-AUC and log-loss, bootstrap intervals;
- ``prior``: a River-model prior shipped with the package (``priors/``);
- ``feedback``: signed tokens, the beacon and the app's report → labels;
- ``trust``: who sent a label, and how much any one sender may teach.

Imports :mod:`edge.pipeline` (features, signals, towers, labels) and :mod:`edge.core`.
"""
