"""ctest's entry for the Python tests: skipped (exit 77) with the reason when
pytest or numpy is missing, else pytest on this folder (reasons of skipped
tests printed: -rs)."""
import os
import sys

for name in ("pytest", "numpy"):
    try:
        __import__(name)
    except ImportError:
        print(f"SKIP: the Python tests need {name} (Debian: python3-{name}) for {sys.executable}")
        sys.exit(77)

import pytest

# A private temporary root: pytest prunes old runs under /tmp/pytest-of-USER,
# which other processes running pytest at the same time share.
basetemp = os.path.join(os.environ.get("SNNSIM_BINARY_DIR", "."), "python", "pytest-tmp")
sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
                      os.path.dirname(os.path.abspath(__file__))]))
