"""docs/async.md and docs/sync.md, on testing: each ```python block quoting a file of this
repository (``# excerpt of path.py``) quotes it verbatim, so the documented fixtures are the
ones the example app's suite and this suite run (tests/e2e/test_async_example.py)."""

from __future__ import annotations

import pytest

from tests.docs import snippets
from tests.docs.snippets import ROOT

DOCS = {"async": ROOT / "docs" / "async.md", "sync": ROOT / "docs" / "sync.md"}
EXPECTED = {
    "async": {"examples/asyncapp/tests/conftest.py", "examples/asyncapp/tests/test_users.py"},
    "sync": {"tests/helpers.py"},
}


@pytest.mark.parametrize("doc", list(DOCS))
def test_the_testing_docs_quote_the_files_they_name_verbatim(doc: str) -> None:
    excerpts = snippets.excerpts(DOCS[doc].read_text())
    assert {excerpt.of for excerpt in excerpts} == EXPECTED[doc]
    for excerpt in excerpts:
        assert excerpt.code in (ROOT / excerpt.of).read_text(), f"{excerpt.of} says otherwise"
