"""brokerflow: event-driven workflow automation for brokerages.

The application shell (CLI, settings, engine wiring) lives here; the domain is in
``workflow``, persistence in ``storage``, ZeroMQ in ``bus``, actors in ``actors`` and the
front doors in ``api``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
