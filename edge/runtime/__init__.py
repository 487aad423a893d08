"""The process: wiring, serving, workers and the command line.

- ``app``: build the public app (middleware + proxy) and the admin app, and their lifespan;
- ``protocol``: the HTTP/1.1 server protocol with a front door's limits (uvicorn's, bounded);
- ``server``: several uvicorn servers in one process, one signal handler;
- ``workers``: ``edge serve --workers N`` (a supervisor and N processes on shared sockets);
- ``cli``: the ``edge`` command.

The top layer: it may import every other package; none imports it.
"""
