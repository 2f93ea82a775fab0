"""vLLM's error classes (vllm/exceptions.py): validation errors are not ValueErrors."""


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    pass
