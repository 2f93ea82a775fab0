"""Training the distilled System 1 (TRL SFT, LoRA by default)."""
