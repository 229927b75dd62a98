"""A tree of realistic projects for the browser tests of issue 12: long READMEs with code
blocks, footnotes, tables and remote images; classifiers; markers and extras; a numpy-like
release with many long wheel names; a yanked release; enough projects to page through.
All archives are real (tests/distbuilder.py); nothing here reaches the network.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from distbuilder import make_sdist, make_wheel

RICH_README = """# Rich-Like

[![Supported Python Versions](https://img.shields.io/pypi/pyversions/rich)](https://pypi.example/rich)
[![codecov](https://codecov.example/gh/rich/badge.svg)](https://codecov.example/gh/rich)

Rich-Like is a library for *rich* text and beautiful formatting in the terminal.[^1]

![Features](https://raw.githubusercontent.example/rich/imgs/features.png)

<p align="center"><img src="https://example.org/logo.svg" alt="https://example.org/logo.svg" width="300"></p>

## Installing

```bash
python -m pip install rich-like
```

## Quick start

```python
from rich_like import print

def greet(name: str) -> None:
    # say hello, in colour
    print(f"Hello, [bold magenta]{name}[/bold magenta]!", ":vampire:", locals())
```

| Feature | Notes |
|---|---|
| Tables | with unicode boxes |
| Progress bars | many at once |

<a id="live-region" name="querySelector">a README trying to clobber the page</a>

""" + "\n".join(f"Paragraph {i}: the terminal renders markup, emoji, tables and syntax highlighting.\n" for i in range(40)) + """

[^1]: Terminal support varies; see the docs.
"""

RST_README = """Pyg-Like
========

A syntax highlighter.

.. code-block:: python

   import os
   print(os.getcwd())

.. image:: https://img.example.com/logo.png
   :alt: Pyg-Like logo
"""

CLASSIFIERS = [
    "Development Status :: 5 - Production/Stable",
    "Environment :: Console",
    "Framework :: IPython",
    "Intended Audience :: Developers",
    "License :: OSI Approved :: MIT License",
    "Operating System :: OS Independent",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Terminals",
]

NUMPY_TAGS = [
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64",
    "cp312-cp312-musllinux_1_2_x86_64",
    "cp312-cp312-macosx_14_0_arm64",
    "cp312-cp312-macosx_10_13_x86_64",
    "cp312-cp312-win_amd64",
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp311-cp311-win32",
]


def _tagged_wheel(out_dir: Path, name: str, version: str, tag: str, **meta) -> Path:
    """A real wheel renamed to platform tags (the metadata is what the UI reads)."""
    built = make_wheel(out_dir / ".build", name, version, **meta)
    target = out_dir / built.name.replace("py3-none-any", tag)
    shutil.move(built, target)
    return target


def build_tree(pkgs: Path) -> None:
    rich = pkgs / "rich-like"
    rich_meta = dict(
        summary="Render rich text, tables and syntax highlighting in the terminal",
        description=RICH_README, description_content_type="text/markdown", requires_python=">=3.8",
        requires_dist=['colorama>=0.4; sys_platform == "win32"', "pyg-like>=2.13",
                       'typing-extensions>=4; python_version < "3.11"', 'ipywidgets>=7; extra == "jupyter"',
                       "markdown-it-py>=2.2"],
        extra_headers=["Author: Will McGugan", "Author-email: willmcgugan@gmail.com", "License-Expression: MIT",
                       "Project-URL: Documentation, https://rich.example/docs", "Provides-Extra: jupyter",
                       "Keywords: terminal,ansi,tables"] + [f"Classifier: {c}" for c in CLASSIFIERS],
    )
    for version in ("12.0.0", "13.8.0", "13.9.2", "13.9.3", "13.9.4"):
        make_wheel(rich, "Rich-Like", version, **rich_meta)
    make_sdist(rich, "Rich-Like", "13.9.4", **rich_meta)
    (rich / "rich_like-13.9.2-py3-none-any.whl.yanked").write_text("Broken import on Python 3.8")

    make_wheel(pkgs / "pyg-like", "Pyg-Like", "2.18.0", summary="Syntax highlighting",
               description=RST_README, description_content_type="text/x-rst",
               requires_dist=['colorama>=0.4; extra == "windows-terminal"'],
               extra_headers=["Classifier: Topic :: Text Processing :: Filters", "Classifier: Environment :: Console"])

    numpy = pkgs / "numpy-like"
    for tag in NUMPY_TAGS:
        _tagged_wheel(numpy, "numpy-like", "2.1.0", tag, summary="Arrays", requires_python=">=3.10")
    shutil.rmtree(numpy / ".build")
    make_sdist(numpy, "numpy-like", "2.1.0", summary="Arrays", requires_python=">=3.10")

    make_wheel(pkgs / "markdown-it-py", "markdown-it-py", "3.0.0", summary="Markdown parser")
    for i in range(30):
        make_wheel(pkgs / f"filler-{i:02d}", f"filler-{i:02d}", "1.0", summary=f"Filler project {i}")
