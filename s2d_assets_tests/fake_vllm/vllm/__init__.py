"""A stand-in for vLLM 0.29.0's offline API (see ../README.md); not vLLM."""

from vllm.entrypoints.llm import LLM
from vllm.sampling_params import SamplingParams

__version__ = "0.29.0"

__all__ = ["LLM", "SamplingParams", "__version__"]
