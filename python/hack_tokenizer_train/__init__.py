"""hack-tokenizer's PyTorch training engine: a JSON job in, JSON-line progress out, a Hugging Face model directory."""

__version__ = "0.1.0"

# The versions the engine was written and tested against (requirements.txt pins the same).
PINNED = {
    "torch": "2.13.0",
    "transformers": "5.17.0",
    "accelerate": "1.15.0",
    "peft": "0.21.0",
    "safetensors": "0.8.0",
}

# Exit codes the launcher maps to messages.
EXIT_OK = 0
EXIT_CRASH = 1
EXIT_JOB = 2  # bad job (a clear message, nothing written)
EXIT_INTERRUPTED = 130  # SIGINT: a checkpoint was written, rerun with resume
