"""The package version, in one place (pyproject.toml reads it from here), and installed libraries' versions."""

from functools import cache

__version__ = "0.1.0"


@cache
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None; read once per process (cache keys ask it each step)."""
    from importlib import metadata  # not at import: `olive-ext --version` and the CLI's start-up import this module

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
