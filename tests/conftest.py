"""Test set-up shared by every test.

Triton kernels run in the interpreter on CPU-only machines; on a GPU they compile for real. The
variable must be set before Triton is first imported, so it is set here, at collection time.
Tests that need the local data folder skip without it, except in CI (`CI` set), where a missing
folder fails the whole run at once; only tests that need CUDA may skip there.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _data_path() -> str:
    """The local data folder: BYTELM_DATA_DIR, else ../shared/data beside the repository."""
    path = os.environ.get("BYTELM_DATA_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data"
    )
    return os.path.abspath(path)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the data tests must run, so a missing data folder fails the run instead of skipping."""
    if _in_ci() and not os.path.isdir(_data_path()):
        pytest.exit(f"CI: local data folder {_data_path()} not found (set BYTELM_DATA_DIR)", returncode=1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The local data folder; outside CI the tests that need it skip when it is missing."""
    path = _data_path()
    if not os.path.isdir(path):
        pytest.skip(f"local data folder {path} not found (set BYTELM_DATA_DIR)")
    return path
