"""Seconds per training step and peak memory of the real SmolLM2 model, per training precision.

LoRA (the project's default: r 16, alpha 32, all linear layers) and full fine-tuning, each in
every precision, through TRL's ``SFTTrainer`` as the pipeline runs it: batch 8 x 128 tokens
(rows cut to exactly 128 tokens), AdamW, a few warm-up steps then timed steps.

Precisions:
  fp32          ``SFTConfig(bf16=False)``, fp32 weights: what ``training.precision: fp32`` does
  bf16          ``SFTConfig(bf16=True)``, fp32 weights: Accelerate runs forward and backward under
                ``torch.autocast("cpu", dtype=torch.bfloat16)``, the path TRL takes by default
  bf16-weights  ``SFTConfig(bf16=False)``, the model loaded in bf16 (no autocast; AdamW on bf16
                weights): for comparison only, not a training option of the project

Side by side: for each mode, one trainer per precision, each in its own child process (so its
peak resident memory, ``ru_maxrss``, is its own: model load, trainer, optimizer state, all
steps), driven in lockstep by this process. Step k of every precision runs before step k+1 of
any (the order rotates each step), and only one of them computes at a time, so a change in the
machine's load falls on all precisions alike. Reported per configuration: the median and the
minimum wall seconds of its timed steps, the median CPU seconds per step (all threads), and its
peak RSS. The CPU's model name and bf16 flags are printed first, and everything is written as
JSON to benchmarks/out/train_step.json.

    .venv/bin/python benchmarks/train_step.py                   # 2 modes x 3 precisions, 1 + 4 steps
    .venv/bin/python benchmarks/train_step.py --modes lora --precisions fp32 bf16 --steps 3
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "smollm2-135m-instruct"
BATCH, SEQ = 8, 128
PRECISIONS = ("fp32", "bf16", "bf16-weights")
MODES = ("lora", "full")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")
# The modules that held the base-model provisioning, newest layout first.
PROVISION_MODULES = ("s2d_assets.core.base_models", "s2d_assets.base_models")


def cpu_info() -> dict[str, Any]:
    model, flags = platform.processor() or "?", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return {
        "model": model,
        "cores": os.cpu_count(),
        "flags": {flag: flag in flags for flag in BF16_FLAGS},
        "native_bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
    }


def default_models_dir() -> Path:
    return Path(os.environ.get("S2D_STATE", ROOT / ".s2d")) / "models"


def provision(models_dir: Path) -> Path:
    """The embedded model as an HF directory, provisioned by the project's own helper if needed."""
    target = models_dir / MODEL_NAME
    if (target / "config.json").exists():
        return target
    for name in PROVISION_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "provision_embedded"):
            return Path(module.provision_embedded(models_dir).path)
    raise SystemExit(f"no {target} and no provision_embedded in {PROVISION_MODULES}: run `s2d run` once, or --model")


def emit(kind: str, payload: object) -> None:
    """A message of the child to the driver: one line on stdout (other output goes to stderr)."""
    print("@@" + json.dumps([kind, payload]), flush=True)


def run_one(model_dir: Path, mode: str, precision: str, warmup: int, steps: int, threads: int) -> None:
    """The child: one configuration; each step waits for the driver's "go" on stdin and reports its time."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Rows longer than SEQ tokens, cut to exactly SEQ by max_length: every batch is BATCH x SEQ.
    sentence = "a coin is heads up . Ann flips the coin . Bob does not flip the coin . is the coin still heads up ? "
    texts = [sentence[i % 7 :] + sentence * 40 for i in range(BATCH * (warmup + steps))]
    dtype = torch.bfloat16 if precision == "bf16-weights" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    output_dir = tempfile.mkdtemp(prefix="s2d-train-step-")  # nothing is saved there; removed at the end
    config = SFTConfig(
        output_dir=output_dir,
        max_steps=warmup + steps,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=2e-4 if mode == "lora" else 2e-5,
        lr_scheduler_type="constant",
        max_length=SEQ,
        packing=False,
        bf16=precision == "bf16",
        fp16=False,
        activation_checkpointing=False,  # as distill/train.py sets it (TRL's default turns it on)
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    peft_config = (
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        if mode == "lora"
        else None
    )
    times: list[float] = []
    cpu_times: list[float] = []

    class Lockstep(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            emit("ready", None)
            sys.stdin.readline()
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            times.append(time.perf_counter() - self.started)
            cpu_times.append(time.process_time() - self.cpu_started)
            emit("step", times[-1])

    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_dict({"text": texts}),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[Lockstep()],
    )
    shape = list(next(iter(trainer.get_train_dataloader()))["input_ids"].shape)
    try:
        trainer.train()
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    emit(
        "result",
        {
            "mode": mode,
            "precision": precision,
            "batch_shape": shape,
            "accelerate_mixed_precision": trainer.accelerator.mixed_precision,
            "weights_dtype": str(dtype).removeprefix("torch."),
            "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "warmup_s": times[:warmup],
            "step_s": times[warmup:],
            "median_step_s": statistics.median(times[warmup:]),
            "min_step_s": min(times[warmup:]),
            "median_cpu_s": statistics.median(cpu_times[warmup:]),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )


class Child:
    """One configuration's process, as the driver sees it."""

    def __init__(self, model_dir: Path, mode: str, precision: str, warmup: int, steps: int, threads: int) -> None:
        self.precision = precision
        self.name = f"{mode} {precision}"
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by run_mode)
        command = [sys.executable, __file__, "--model", str(model_dir), "--one", mode, precision]
        command += ["--warmup", str(warmup), "--steps", str(steps), "--threads", str(threads)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1
        )

    def receive(self, kind: str) -> Any:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("@@"):
                got, payload = json.loads(line[2:])
                if got != kind:
                    raise SystemExit(f"{self.name}: expected {kind}, got {got}")
                return payload
        self.stderr.seek(0)
        raise SystemExit(f"{self.name} exited with {self.process.wait()}:\n{self.stderr.read()[-4000:]}")

    def step(self) -> float:
        """Waits until the child is at the start of a step, lets it run that one step, returns its seconds."""
        assert self.process.stdin is not None
        self.receive("ready")
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self.receive("step"))


def run_mode(
    model_dir: Path, mode: str, precisions: list[str], warmup: int, steps: int, threads: int
) -> list[dict[str, Any]]:
    """Every precision of one mode in lockstep: step k of all of them before step k+1 of any."""
    children = [Child(model_dir, mode, precision, warmup, steps, threads) for precision in precisions]
    try:
        loads = []
        for k in range(warmup + steps):
            order = children[k % len(children) :] + children[: k % len(children)]
            seconds = {child.precision: child.step() for child in order}
            loads.append(os.getloadavg()[0])
            cells = ", ".join(f"{child.precision} {seconds[child.precision]:.2f} s" for child in children)
            kind = "warm-up" if k < warmup else "timed"
            print(f"  {mode} step {k + 1} ({kind}): {cells}; load {loads[-1]:.2f}", flush=True)
        results = [child.receive("result") for child in children]
        for result in results:
            result["load_min"], result["load_max"] = min(loads[warmup:]), max(loads[warmup:])
        return results
    finally:
        for child in children:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            child.stderr.close()


def auto_precision(cpu: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, str]:
    """The project's rule for training.precision: auto, per mode: fp32 without native bf16, else the faster."""
    picks = {}
    for mode in dict.fromkeys(r["mode"] for r in results):
        median = {r["precision"]: r["median_step_s"] for r in results if r["mode"] == mode}
        if not cpu["native_bf16"]:
            picks[mode] = "fp32 (no native bf16 on this CPU)"
        elif "fp32" in median and "bf16" in median:
            faster = "bf16" if median["bf16"] < median["fp32"] else "fp32"
            picks[mode] = f"{faster} (median bf16 {median['bf16']:.2f} s vs fp32 {median['fp32']:.2f} s per step)"
        else:
            picks[mode] = "undecided: measure fp32 and bf16"
    return picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="an HF model directory (default: the provisioned SmolLM2)")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "train_step.json")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    model_dir = args.model or provision(args.models_dir)
    if args.one:
        run_one(model_dir, *args.one, args.warmup, args.steps, args.threads)
        return

    import torch
    import transformers
    import trl

    cpu = cpu_info()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores")
    print("flags: " + ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in cpu["flags"].items()))
    print(f"native bf16: {'yes' if cpu['native_bf16'] else 'no'}; torch {torch.__version__}", end=" ")
    print(
        f"({torch.backends.cpu.get_cpu_capability()}), transformers {transformers.__version__}, trl {trl.__version__}"
    )
    print(f"model: {model_dir}; batch {BATCH} x {SEQ} tokens; {args.warmup} warm-up + {args.steps} timed steps", end="")
    print(f"; {args.threads} torch threads\n")

    started = datetime.now(UTC)
    results = []
    for mode in args.modes:
        results += run_mode(model_dir, mode, args.precisions, args.warmup, args.steps, args.threads)
    print()
    for r in results:
        print(
            f"{r['mode']:5} {r['precision']:12} {r['median_step_s']:7.2f} s/step median, {r['min_step_s']:.2f} min, "
            f"{r['median_cpu_s']:.2f} CPU s (timed {', '.join(f'{s:.2f}' for s in r['step_s'])})  "
            f"peak RSS {r['peak_rss_mib']:6.0f} MiB  "
            f"[batch {r['batch_shape']}, autocast {r['accelerate_mixed_precision']}, weights {r['weights_dtype']}]"
        )
    pick = auto_precision(cpu, results)
    print()
    for mode, choice in pick.items():
        print(f"training.precision auto on this CPU, {mode}: {choice}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "batch": [BATCH, SEQ],
        "warmup": args.warmup,
        "steps": args.steps,
        "threads": args.threads,
        "results": results,
        "auto": pick,
    }
    args.out.write_text(json.dumps(record, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
