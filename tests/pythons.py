"""Local interpreters of a given Python version (pyenv installs included), for builds that must match one:
the Lambda layers and the inference image are Python 3.12 while the project venv may be another."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def find_python(version: str) -> str | None:
    """A working ``python{version}`` (``"3.12"``): on PATH, under pyenv, or in the usual prefixes."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"))]
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in filter(None, candidates):
        if not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.startswith(f"Python {version}"):
            return candidate
    return None


def pyc_flags(pyc: Path) -> int:
    """The flags word of a ``.pyc`` header (PEP 552): 0 timestamp-based, 1 unchecked hash, 3 checked hash."""
    return int.from_bytes(pyc.read_bytes()[4:8], "little")
