"""The pipeline's ASGI face: :class:`~edge.adapt.middleware.AdaptiveMiddleware` and its ``/__edge/`` endpoints.

The middleware runs the stages of :mod:`edge.pipeline` for each request, asks :mod:`edge.learning`
for p(degraded), rewrites the response, and signs the page's own training example. It wraps the
proxy (:mod:`edge.transport`) in the sidecar, or any ASGI storefront in-process.
"""
