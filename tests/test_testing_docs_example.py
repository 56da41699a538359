"""The example of README.md, "Testing your cascade", kept runnable: the cascade core through TestServer."""

from __future__ import annotations

import json

from cascade import Cascade, Ladder, OpenAICompatible, RetryPolicy, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import Candidate, check


def _parses(candidate: Candidate) -> bool:
    try:
        json.loads(candidate.text)
    except ValueError:
        return False
    return True


is_json = check(_parses, name="is_json")  # the docs use @check(name="is_json") on the function


def test_escalates_on_bad_json() -> None:
    with TestServer() as srv:
        srv.script("small", Reply(content="not json"))
        srv.script("big", Reply(status=429, headers={"Retry-After": "0"}), Reply(content='{"label": "spam"}'))
        provider = OpenAICompatible(srv.base_url)
        fast = RetryPolicy(attempts=3, initial_wait_s=0.01)
        ladder = Ladder(
            [
                Rung(name="small", provider=provider, model="small", price_in=0.1, price_out=0.4, retry=fast),
                Rung(name="big", provider=provider, model="big", price_in=2.0, price_out=8.0, retry=fast),
            ]
        )
        with Cascade(ladder, validators=[is_json]) as cascade:
            result = cascade.run_sync([{"role": "user", "content": "Win a prize!!!"}])
        assert result.answered_by == "big" and result.output is not None
        assert json.loads(result.output) == {"label": "spam"}
        assert [r.model for r in srv.requests] == ["small", "big", "big"]
