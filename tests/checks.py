"""Checks shared by the test modules."""

from __future__ import annotations

import json
from typing import Any

from cascade.validators import check


@check(name="is_json")
def is_json(c: Any) -> bool:
    """Passes when the answer parses as JSON; fails with reason ``custom:is_json``."""
    try:
        json.loads(c.text)
    except ValueError:
        return False
    return True
