"""brokerflow: event-driven workflow automation for brokerages.

One import package. Its root holds what every layer may use — the error tree (``errors``),
the settings object (``settings``) and the clock (``clock``); its parts live in the
repository's top-level folders and are installed as subpackages (``pyproject.toml``,
``package-dir``): ``workflow`` (the pure domain), ``storage``, ``bus`` (the wire), ``actors``
and ``api`` (the front doors). The shell that wires them into a program — CLI, engine, demo,
benchmark — is ``brokerflow.app``; nothing below it imports it.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

__all__ = ["__version__"]


def _source_checkout_parts() -> None:
    """Run from a source checkout (tests, ``python -m brokerflow``), the parts sit beside this
    folder, not inside it: let ``brokerflow.actors`` & co. be found there. Installed, they are
    inside the package and this does nothing."""
    here = _Path(__file__).resolve().parent
    root = here.parent
    if not (here / "workflow").is_dir() and (root / "workflow" / "__init__.py").is_file() \
            and (root / "pyproject.toml").is_file():
        __path__.append(str(root))  # noqa: F821 - a package's __path__


_source_checkout_parts()
