"""payo-cli: the example project of pypi_repo."""

__version__ = "1.0.0"
