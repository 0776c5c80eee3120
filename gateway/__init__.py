"""The gateway: OpenAI-compatible serving through vLLM, feedback capture, live policy management."""
