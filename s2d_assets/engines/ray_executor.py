"""Generation as a Ray Data pipeline (``engine.executor: ray``): a stage's cache misses in, completions out.

Plain Python, no Dagster. The generation cache (``cache.py``) hands every miss of one engine call
to ``RayExecutor.generate`` and writes what comes back itself, so the methods, the stages and the
cache keys are exactly those of the in-process path. One call is one Ray Data job:

1. **Requests.** The misses, in the order the in-process engine batches them, are written as
   Parquet under ``<staging>/<job>/requests/`` (one file per batch; ``ray_staging.py``). Each row
   carries its sample id, which is the generation cache key: a hash of model, step prompt, sampling
   parameters, sample index and seed.
2. **A processor** runs over them (``ray_processors.py``):
   - ``transformers``: ``map_batches`` with a class, so each replica is one actor that loads the
     model once. It runs the project's own ``TransformersEngine``, whose text does not depend on
     what shares its batch, so its cache entries are the in-process engine's (same producer).
   - ``vllm``: ``ray.data.llm``'s vLLM processor (``vLLMEngineProcessorConfig``) on GPUs, with
     tensor and pipeline parallelism inside each replica. Needs the ``gpu`` extra.
   - ``openai_compat``: ``ray.data.llm``'s HTTP processor (``HttpRequestProcessorConfig``) against
     the server. Needs ``ray.data.llm``, which imports aiohttp.
3. **Results** are written as Parquet under ``<job>/results/`` with Ray Data checkpointing on the
   sample id (``CheckpointConfig(id_column="sample_id")``, beta in Ray 2.60). A job that was killed
   and is run again skips every row whose results file was committed. Rows that were generated but
   not yet written when the job died are generated again.
4. **One writer step.** The caller puts the completions in ``llm_cache`` and the failed rows in
   ``generation_failures`` in one process, then calls ``finish()``, which removes the job folder.

The job folder is named after the stage and the producer, so the run after a kill finds it. A
failed row (``ray.continue_on_error``, Ray's ``should_continue_on_error``) is a result row with an
``error``: it is never cached, it is logged in ``generation_failures``, and the next run retries it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2d_assets.config.engine import EngineSpec, RayExecutorSpec
from s2d_assets.core.progress import report
from s2d_assets.engines.base import GenerationRequest
from s2d_assets.engines.ray_processors import EngineFactory, RayUnavailable, process, require
from s2d_assets.engines.ray_staging import (
    SAMPLE_ID,
    job_dirs,
    job_folder,
    read_results,
    staging_filesystem,
    write_requests,
)
from s2d_assets.engines.remote import RemoteResult

RAY_EXTRA = "make setup-ray, or pip install -e '.[ray]'"


# -- connecting ----------------------------------------------------------------------------------------


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayUnavailable(f"engine.executor: ray needs the ray extra (Ray Data, dagster-ray): {RAY_EXTRA}") from None
    return ray


def ensure_ray(spec: RayExecutorSpec) -> Any:
    """The process's Ray connection: kept when one exists (Dagster's ray resource, a test), else made."""
    ray = import_ray()
    if not ray.is_initialized():
        if spec.address:
            ray.init(address=spec.address)
        else:
            ray.init(num_cpus=spec.num_cpus, include_dashboard=False)
    return ray


# -- one job -------------------------------------------------------------------------------------------


class RayExecutor:
    """Generates cache misses as Ray Data jobs; one instance per cached engine (model + adapter)."""

    def __init__(
        self,
        spec: EngineSpec,
        model_dir: str,
        adapter_dir: Path | None,
        staging: str,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.spec = spec
        self.model_dir = model_dir
        self.adapter_dir = adapter_dir
        self.staging = spec.ray.staging or staging
        self.engine_factory = engine_factory

    # The RemoteGenerator protocol (engines/remote.py).
    def generate(
        self, model_fingerprint: str, label: str, requests: Sequence[tuple[str, GenerationRequest]]
    ) -> RemoteResult:
        ray = ensure_ray(self.spec.ray)
        require(self.spec)  # before anything is staged
        fs, root = staging_filesystem(job_folder(self.staging, model_fingerprint, label))
        requests_dir, results_dir, checkpoint_dir = job_dirs(root)
        fs.create_dir(root, recursive=True)
        files = write_requests(fs, requests_dir, requests, self.batch_size)
        wanted = {key for key, _ in requests}
        done_before = len(read_results(fs, results_dir, checkpoint_dir, wanted))
        report(
            f"{label}: Ray job of {len(requests)} row(s) in {files} batch(es), "
            f"{min(self.spec.ray.replicas, files)} replica(s), "
            f"processor {self.spec.ray_processor}"
            + (f"; {done_before} already done by a killed job" if done_before else "")
        )
        started = time.perf_counter()
        if done_before < len(requests):
            self._run(ray, model_fingerprint, requests_dir, results_dir, checkpoint_dir, files)
        seconds = time.perf_counter() - started
        results = read_results(fs, results_dir, checkpoint_dir, wanted)
        completions = {key: completion for key, (completion, error) in results.items() if error is None}
        failures = {key: error for key, (completion, error) in results.items() if error is not None}
        generated = len(requests) - done_before
        report(
            f"{label}: Ray job done: {generated} row(s) in {seconds:.1f} s "
            f"({generated / max(seconds, 1e-9):.2f} samples/s), {len(failures)} failed"
        )

        def finish() -> None:
            fs.delete_dir(root)

        return RemoteResult(
            completions=completions,
            failures=failures,
            metadata={"ray_rows": generated, "ray_resumed_rows": done_before, "ray_seconds": seconds},
            finish=finish,
        )

    @property
    def batch_size(self) -> int:
        return self.spec.ray.batch_size or self.spec.batch_size

    def _run(
        self, ray: Any, model_fingerprint: str, requests_dir: str, results_dir: str, checkpoint_dir: str, files: int
    ) -> None:
        from ray.data.checkpoint import CheckpointConfig

        with _data_context(ray) as context:
            context.checkpoint_config = CheckpointConfig(
                id_column=SAMPLE_ID, checkpoint_path=checkpoint_dir, delete_checkpoint_on_success=False
            )
            # One block per request file (one batch), so each batch's results are committed on their own.
            dataset = ray.data.read_parquet(requests_dir, num_cpus=0, override_num_blocks=max(files, 1))
            dataset = process(
                dataset,
                self.spec,
                self.model_dir,
                self.adapter_dir,
                model_fingerprint,
                files,
                self.batch_size,
                self.engine_factory,
            )
            # Readers and writers reserve no CPU: every CPU is left to the replicas (and, on a re-run,
            # to Ray's checkpoint filter actor, which reserves one).
            dataset.write_parquet(results_dir, min_rows_per_file=1, ray_remote_args={"num_cpus": 0})


@contextmanager
def _data_context(ray: Any) -> Iterator[Any]:
    """Ray Data settings of one job, put back afterwards (the context is the driver's, shared)."""
    context = ray.data.DataContext.get_current()
    saved = {
        name: getattr(context, name) for name in ("checkpoint_config", "use_datasource_v2", "enable_progress_bars")
    }
    # The file-based Parquet reader keeps one block per request file; the newer one merges small files.
    context.use_datasource_v2 = False
    context.enable_progress_bars = False
    try:
        yield context
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
