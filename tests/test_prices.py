"""Rungs without prices look them up in genai-prices; explicit prices win; the source is logged."""

from __future__ import annotations

import pytest

from cascade import Cascade, Completion, ConfigError, FunctionProvider, MemorySink, Rung

genai_prices = pytest.importorskip("genai_prices", reason="genai-prices (the [prices] extra) is not installed")
MSG = [{"role": "user", "content": "hi"}]
PROVIDER = FunctionProvider(lambda r: Completion("ok", tokens_in=1000, tokens_out=500))


def test_a_rung_without_prices_gets_the_packages_and_logs_their_source() -> None:
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o-mini", provider_id="openai"
    )
    rung = Rung(name="mini", provider=PROVIDER, model="gpt-4o-mini", price_provider="openai")
    assert (rung.price_in, rung.price_out) == (float(expected.input_price), float(expected.output_price))
    assert rung.price_in > 0 and rung.price_source is not None
    assert rung.price_source.startswith(f"genai-prices {genai_prices.__version__}: openai/gpt-4o-mini, looked up ")
    sink = MemorySink()
    result = Cascade([rung], log=sink).run_sync(MSG)
    assert result.cost_usd == pytest.approx((1000 * rung.price_in + 500 * rung.price_out) / 1e6)
    assert sink.of("attempt")[0]["price_source"] == rung.price_source


def test_explicit_prices_win_and_carry_no_source() -> None:
    rung = Rung(name="mini", provider=PROVIDER, model="gpt-4o-mini", price_in=9, price_out=9)
    assert (rung.price_in, rung.price_out, rung.price_source) == (9, 9, None)
    sink = MemorySink()
    Cascade([rung], log=sink).run_sync(MSG)
    assert "price_source" not in sink.of("attempt")[0]


def test_an_unknown_model_or_half_given_prices_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="no price for model 'surely-not-a-model'"):
        Rung(name="x", provider=PROVIDER, model="surely-not-a-model")
    with pytest.raises(ConfigError, match=r"Rung\.price_out: give both prices"):
        Rung(name="x", provider=PROVIDER, model="gpt-4o-mini", price_in=1)
