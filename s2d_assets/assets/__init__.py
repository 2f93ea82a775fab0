"""Asset factories: one asset per (task, method) stage, generated from the experiment file."""
