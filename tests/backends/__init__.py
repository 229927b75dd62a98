"""Backend contract tests (issue 14). A package, so that its ``conftest.py`` is imported as
``backends.conftest`` and never shadows ``tests/conftest.py``, which other test modules
import as ``conftest``."""
