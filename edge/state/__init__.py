"""Where shared state lives: in this process (the default, nothing to install) or, for a fleet of
sidecars, in Redis (``--state redis://…``, docs/operations.md "A fleet on Redis").

- ``keys``: the names edge gives its Redis keys, under one prefix per shop;
- ``link``: the connection to Redis, its health and the reconnect backoff;
- ``metrics``: the ``edge_state_*`` and ``edge_learner_*`` metrics (registered only when a fleet runs);
- ``snapshot``: a signed, versioned model snapshot as it travels through Redis;
- ``fleet``: :class:`~edge.state.fleet.FleetSync`, a sidecar's side: the outbox of labels, the fleet's
  replay guard, the cell statistics of every sidecar, the model swap;
- ``learner``: :class:`~edge.state.learner.Learner`, ``edge learner``: one model for the fleet.

No request waits on Redis: a sidecar's request path reads only its own memory; everything shared
flows in and out in background tasks.
"""
