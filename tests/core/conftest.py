"""Fixtures of the core tests."""

from __future__ import annotations

import pytest

from indirect_attention.core import native


@pytest.fixture(params=["compiled", "pytorch"])
def path(request):
    """Both CPU paths: the compiled loops of core/native (where a compiler exists) and the plain
    PyTorch operations; the test runs once on each."""
    if request.param == "pytorch":
        with native.native_disabled():
            yield request.param
    else:
        yield request.param


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Records the name of every compiled kernel that ran (a failing one raises instead)."""
    record: list[str] = []
    original = native.call

    def recording(library, name, dtype, *arguments):
        original(library, name, dtype, *arguments)
        record.append(name)

    monkeypatch.setattr(native, "call", recording)
    return record
