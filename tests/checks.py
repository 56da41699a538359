"""Checks shared by the test modules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cascade.validators import check

unchecked_on_purpose = pytest.mark.filterwarnings("ignore:rungs .* have no checks:UserWarning")
"""For a test whose lower rung has no check on purpose (it reaches the rung above through errors only):
silences the construction warning the Cascade gives such a ladder (asserted in test_seams)."""


@check(name="is_json")
def is_json(c: Any) -> bool:
    """Passes when the answer parses as JSON; fails with reason ``custom:is_json``."""
    try:
        json.loads(c.text)
    except ValueError:
        return False
    return True
