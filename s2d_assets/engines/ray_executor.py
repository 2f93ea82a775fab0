"""Generation as a Ray Data pipeline (``engine.executor: ray``): a stage's cache misses in, completions out.

Plain Python, no Dagster. The generation cache (``cache.py``) hands every miss of one engine call
to ``RayExecutor.generate`` and writes what comes back itself, so the methods, the stages and the
cache keys are exactly those of the in-process path. One call is one Ray Data job:

1. **Requests.** The misses, in the order the in-process engine batches them, are written as
   Parquet under ``<staging>/<job>/requests/`` (one file per batch). Each row carries its sample id,
   which is the generation cache key: a hash of model, step prompt, sampling parameters, sample
   index and seed.
2. **A processor** runs over them:
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

import importlib.util
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2d_assets.config.engine import (
    EngineSpec,
    OpenAICompatEngineSpec,
    RayExecutorSpec,
    TransformersEngineSpec,
    VLLMEngineSpec,
)
from s2d_assets.core.errors import UserError
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.progress import report
from s2d_assets.engines.base import Completion, Engine, GenerationRequest, Message, SamplingParams
from s2d_assets.engines.remote import RemoteResult

if TYPE_CHECKING:
    import pyarrow.fs

log = logging.getLogger(__name__)

SAMPLE_ID = "sample_id"  # the id column: the generation cache key
RESULT_COLUMNS = ("sample_id", "output", "prompt_tokens", "completion_tokens", "seconds", "finish_reason", "error")
RAY_EXTRA = "make setup-ray, or pip install -e '.[ray]'"

EngineFactory = Callable[[Path, str, "Path | None"], Engine]


class RayUnavailable(UserError):
    """The Ray path cannot run here; the message says what is missing."""


# -- requests and results as rows --------------------------------------------------------------------


def request_row(key: str, request: GenerationRequest) -> dict[str, str]:
    return {SAMPLE_ID: key, "request": request.request_json()}


def request_from_json(text: str) -> GenerationRequest:
    """The request a row was written from (its cache key is the row's sample id)."""
    data = json.loads(text)
    messages: tuple[Message, ...] = tuple((m["role"], m["content"]) for m in data["messages"])
    params = SamplingParams(
        temperature=float(data["temperature"]), top_p=float(data["top_p"]), max_new_tokens=int(data["max_new_tokens"])
    )
    return GenerationRequest(
        messages=messages, params=params, sample_idx=int(data["sample_idx"]), seed=int(data["seed"])
    )


def result_row(key: str, completion: Completion | None = None, error: str | None = None) -> dict[str, Any]:
    if completion is None:
        return {SAMPLE_ID: key, "output": "", "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                "finish_reason": None, "error": error or "no output"}  # fmt: skip
    return {
        SAMPLE_ID: key,
        "output": completion.text,
        "prompt_tokens": int(completion.prompt_tokens),
        "completion_tokens": int(completion.completion_tokens),
        "seconds": float(completion.seconds),
        "finish_reason": completion.finish_reason,
        "error": None,
    }


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in RESULT_COLUMNS}


# -- processor 1: the project's own engine in a map_batches actor (CPU here, any torch device) --------


class EngineReplica:
    """One engine replica: a Ray Data actor that loads the model once and answers batches of request rows.

    On an error with ``continue_on_error`` the batch is answered row by row, so only the rows that
    fail are reported as failed (with their error), never dropped.
    """

    def __init__(
        self,
        factory: EngineFactory,
        model_dir: str,
        fingerprint: str,
        adapter_dir: str | None,
        threads: int,
        continue_on_error: bool,
    ) -> None:
        import torch

        self.engine = factory(Path(model_dir), fingerprint, Path(adapter_dir) if adapter_dir else None)
        torch.set_num_threads(threads)  # after the engine, which takes every core by default
        self.continue_on_error = continue_on_error

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        keys = [str(key) for key in batch[SAMPLE_ID]]
        requests = [request_from_json(str(text)) for text in batch["request"]]
        try:
            completions = self.engine.generate(requests)
            rows = [result_row(key, completion) for key, completion in zip(keys, completions, strict=True)]
        except Exception as error:
            if not self.continue_on_error:
                raise
            log.warning("a batch of %d row(s) failed (%s); retrying its rows one by one", len(keys), error)
            rows = [self._one(key, request) for key, request in zip(keys, requests, strict=True)]
        return _columns(rows)

    def _one(self, key: str, request: GenerationRequest) -> dict[str, Any]:
        try:
            return result_row(key, self.engine.generate([request])[0])
        except Exception as error:
            return result_row(key, error=f"{type(error).__name__}: {error}")


def default_engine_factory(spec: EngineSpec) -> EngineFactory:
    """The engine the experiment names, built inside the actor (a picklable callable)."""
    return partial(_build_engine, spec)


def _build_engine(spec: EngineSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> Engine:
    from s2d_assets.engines import build_engine

    return build_engine(spec, model_dir, fingerprint, adapter_dir)


# -- processor 2: vLLM through ray.data.llm (GPUs) -----------------------------------------------------


def vllm_processor_kwargs(spec: VLLMEngineSpec, model: str, adapter_dir: Path | None = None) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.vLLMEngineProcessorConfig`` for this experiment (no GPU needed).

    The engine keywords are the in-process engine's (``vllm_engine.engine_args``) with the replica's
    tensor and pipeline parallel sizes; ``concurrency`` is the number of replicas.
    """
    from s2d_assets.engines.vllm_engine import engine_args

    ray = spec.ray
    tensor = ray.tensor_parallel_size or spec.tensor_parallel_size
    pipeline = ray.pipeline_parallel_size
    gpus = ray.gpus_per_replica or tensor * pipeline
    if gpus != tensor * pipeline:
        raise ValueError(
            f"engine.ray.gpus_per_replica is {gpus} but vLLM runs one worker per GPU: tensor_parallel_size "
            f"{tensor} x pipeline_parallel_size {pipeline} = {tensor * pipeline}"
        )
    engine_kwargs = {key: value for key, value in engine_args(spec, model).as_kwargs().items() if key != "model"}
    engine_kwargs |= {"tensor_parallel_size": tensor, "pipeline_parallel_size": pipeline}
    if adapter_dir is not None and spec.lora == "adapter":
        engine_kwargs["enable_lora"] = True
    return {
        "model_source": model,
        "engine_kwargs": engine_kwargs,
        "batch_size": ray.batch_size or spec.batch_size,
        "concurrency": ray.replicas,
        "accelerator_type": ray.accelerator_type,
        "should_continue_on_error": ray.continue_on_error,
        # One bundle per vLLM worker (tensor x pipeline), packed on one node when they fit.
        "placement_group_config": {"bundle_per_worker": {"GPU": 1, "CPU": 1}, "strategy": "PACK"},
    }


def vllm_row(adapter: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A request row -> the vLLM processor's input: chat messages and this sample's sampling parameters."""
    from s2d_assets.engines.vllm_engine import SamplingArgs

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        request = request_from_json(row["request"])
        params = request.params
        sampling = SamplingArgs(
            seed=None if params.greedy else request.seed,  # as the in-process engine: greedy does not draw
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
        )
        out = {
            SAMPLE_ID: row[SAMPLE_ID],
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "sampling_params": asdict(sampling),
        }
        if adapter is not None:
            out["model"] = adapter  # a LoRA request; the path must be readable on every GPU node
        return out

    return preprocess


def from_vllm_row(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("__inference_error__") or None
    if error:
        return result_row(str(row[SAMPLE_ID]), error=str(error))
    seconds = row.get("time_taken_llm")
    return {
        SAMPLE_ID: str(row[SAMPLE_ID]),
        "output": str(row.get("generated_text") or "").strip(),
        "prompt_tokens": int(row.get("num_input_tokens") or 0),
        "completion_tokens": int(row.get("num_generated_tokens") or 0),
        "seconds": float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else 0.0,
        "finish_reason": None,  # not reported by ray.data.llm 2.60
        "error": None,
    }


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require_vllm_and_gpu() -> None:
    """vLLM on Ray needs vLLM (the gpu extra) and a GPU in the cluster: refuse clearly otherwise."""
    if not installed("vllm"):
        raise RayUnavailable(
            "engine.kind 'vllm' with executor: ray needs vLLM (ray[llm] 2.60 pins vllm 0.29.0): "
            "pip install -e '.[gpu]' on the cluster's image; on CPU use engine.kind 'transformers'"
        )
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus < 1:
        raise RayUnavailable(
            "engine.kind 'vllm' with executor: ray needs GPUs and the Ray cluster has none "
            f"({ray.cluster_resources().get('CPU', 0):g} CPUs, 0 GPUs); on CPU use engine.kind 'transformers'"
        )


# -- processor 3: an OpenAI-compatible server through ray.data.llm's HTTP processor --------------------


def http_processor_kwargs(spec: OpenAICompatEngineSpec) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.HttpRequestProcessorConfig`` for this experiment."""
    import os

    headers = None
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise RayUnavailable(f"engine.api_key_env: environment variable {spec.api_key_env} is not set")
        headers = {"Authorization": f"Bearer {key}"}
    return {
        "url": spec.base_url.rstrip("/") + "/chat/completions",
        "headers": headers,
        "batch_size": spec.ray.batch_size or spec.batch_size,
        "concurrency": spec.ray.replicas,
        "max_retries": spec.max_retries,
        "base_retry_wait_time_in_s": spec.backoff_seconds,
    }


def http_body(model: str, request: GenerationRequest) -> dict[str, Any]:
    """The chat-completions body of one sample: the in-process engine's ``n = 1`` request."""
    params = request.params
    return {
        "model": model,
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": request.seed % (2**31),  # servers take 32-bit seeds
        "n": 1,
    }


def http_row(model: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        return {SAMPLE_ID: row[SAMPLE_ID], "payload": http_body(model, request_from_json(row["request"]))}

    return preprocess


def from_http_row(row: dict[str, Any]) -> dict[str, Any]:
    """A response -> a result row; a malformed one is a failed row (the in-process engine would retry it)."""
    from s2d_assets.engines.openai_responses import MalformedResponse, parse_choices

    key = str(row[SAMPLE_ID])
    try:
        choice = parse_choices(json.dumps(row.get("http_response")).encode(), "application/json")[0]
    except MalformedResponse as error:
        return result_row(key, error=f"malformed response: {error}")
    return result_row(
        key, Completion(choice.text, choice.prompt_tokens, choice.completion_tokens, 0.0, choice.finish_reason)
    )


# -- connecting and staging ----------------------------------------------------------------------------


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


def staging_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """A folder or an object-store URI (s3://, gs://) as a pyarrow filesystem and a path in it."""
    import pyarrow.fs

    if "://" in uri:
        return pyarrow.fs.FileSystem.from_uri(uri)
    return pyarrow.fs.LocalFileSystem(), str(Path(uri).absolute())


def job_folder(staging: str, producer: str, label: str) -> str:
    """The same stage and producer always stage in the same folder, so a re-run finds a killed job."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "job"
    return f"{staging.rstrip('/')}/{slug}-{content_hash([producer, label], length=12)}"


def _join(*parts: str) -> str:
    return "/".join(part.rstrip("/") for part in parts)


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
        import pyarrow as pa
        import pyarrow.parquet as pq

        ray = ensure_ray(self.spec.ray)
        self._require()  # before anything is staged
        fs, root = staging_filesystem(job_folder(self.staging, model_fingerprint, label))
        requests_dir, results_dir, checkpoint_dir = (
            _join(root, name) for name in ("requests", "results", "checkpoint")
        )
        fs.create_dir(root, recursive=True)
        # Requests: rewritten each call, one file per in-process batch; results and checkpoints stay.
        if fs.get_file_info(requests_dir).type != pyarrow_not_found():
            fs.delete_dir(requests_dir)
        fs.create_dir(requests_dir, recursive=True)
        size = self.batch_size
        for number, start in enumerate(range(0, len(requests), size)):
            rows = [request_row(key, request) for key, request in requests[start : start + size]]
            table = pa.Table.from_pylist(rows, schema=pa.schema([(SAMPLE_ID, pa.string()), ("request", pa.string())]))
            pq.write_table(table, _join(requests_dir, f"part-{number:06d}.parquet"), filesystem=fs)
        files = -(-len(requests) // size)
        wanted = {key for key, _ in requests}
        done_before = len(self._read_results(fs, results_dir, checkpoint_dir, wanted))
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
        results = self._read_results(fs, results_dir, checkpoint_dir, wanted)
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

    def _require(self) -> None:
        """What this engine kind needs on Ray, refused with what to install."""
        if isinstance(self.spec, VLLMEngineSpec):
            require_vllm_and_gpu()
            _ray_data_llm()
        elif isinstance(self.spec, OpenAICompatEngineSpec):
            _ray_data_llm()

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
            dataset = self._process(dataset, model_fingerprint, files)
            # Readers and writers reserve no CPU: every CPU is left to the replicas (and, on a re-run,
            # to Ray's checkpoint filter actor, which reserves one).
            dataset.write_parquet(results_dir, min_rows_per_file=1, ray_remote_args={"num_cpus": 0})

    def _process(self, dataset: Any, model_fingerprint: str, files: int) -> Any:
        import ray.data

        spec = self.spec
        if isinstance(spec, TransformersEngineSpec):
            factory = self.engine_factory or default_engine_factory(spec)
            return dataset.map_batches(
                EngineReplica,
                fn_constructor_kwargs={
                    "factory": factory,
                    "model_dir": self.model_dir,
                    "fingerprint": model_fingerprint,
                    "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                    "threads": max(1, int(spec.ray.cpus_per_replica)),
                    "continue_on_error": spec.ray.continue_on_error,
                },
                batch_size=self.batch_size,
                # A fixed pool of replicas; none is started without a batch to answer.
                compute=ray.data.ActorPoolStrategy(size=max(1, min(spec.ray.replicas, files))),
                num_cpus=spec.ray.cpus_per_replica,
                batch_format="numpy",
            )
        if isinstance(spec, VLLMEngineSpec):
            return self._vllm(dataset)
        if isinstance(spec, OpenAICompatEngineSpec):
            return self._http(dataset)
        raise ValueError(f"engine.kind {spec.kind!r} cannot run on Ray")

    def _vllm(self, dataset: Any) -> Any:
        assert isinstance(self.spec, VLLMEngineSpec)
        llm = _ray_data_llm()
        model, adapter = self.model_dir, None
        if self.adapter_dir is not None:
            from s2d_assets.engines.vllm_engine import check_adapter, merged_model_dir

            if self.spec.lora == "merged":
                model = str(merged_model_dir(model, self.adapter_dir))
            else:
                check_adapter(self.adapter_dir, self.spec.max_lora_rank)
                adapter = str(self.adapter_dir.resolve())
        config = llm.vLLMEngineProcessorConfig(**vllm_processor_kwargs(self.spec, model, self.adapter_dir))
        processor = llm.build_processor(config, preprocess=vllm_row(adapter))
        return processor(dataset).map(from_vllm_row, num_cpus=0)

    def _http(self, dataset: Any) -> Any:
        assert isinstance(self.spec, OpenAICompatEngineSpec)
        if self.adapter_dir is not None:
            raise ValueError(
                f"engine.kind 'openai_compat' cannot load the LoRA checkpoint {self.adapter_dir}: serve it from the "
                "server and point engine.model at it"
            )
        llm = _ray_data_llm()
        config = llm.HttpRequestProcessorConfig(**http_processor_kwargs(self.spec))
        processor = llm.build_processor(config, preprocess=http_row(self.spec.model))
        return processor(dataset).map(from_http_row, num_cpus=0)

    def _read_results(
        self, fs: pyarrow.fs.FileSystem, results_dir: str, checkpoint_dir: str, wanted: set[str]
    ) -> dict[str, tuple[Completion | None, str | None]]:
        """Rows of the wanted keys in committed result files; a key with a completion anywhere is not a failure."""
        import pyarrow.parquet as pq

        results: dict[str, tuple[Completion | None, str | None]] = {}
        for path in committed_result_files(fs, results_dir, checkpoint_dir):
            for row in pq.read_table(path, filesystem=fs).to_pylist():
                key = row[SAMPLE_ID]
                if key not in wanted or (key in results and results[key][1] is None):
                    continue
                if row.get("error"):
                    results[key] = (None, str(row["error"]))
                    continue
                completion = Completion(
                    text=row["output"],
                    prompt_tokens=int(row["prompt_tokens"]),
                    completion_tokens=int(row["completion_tokens"]),
                    seconds=float(row["seconds"] or 0.0),
                    finish_reason=row.get("finish_reason"),
                )
                results[key] = (completion, None)
        return results


def committed_result_files(fs: pyarrow.fs.FileSystem, results_dir: str, checkpoint_dir: str) -> list[str]:
    """Result files whose Ray Data checkpoint is committed (``<checkpoint id>-<n>.parquet``).

    A file written by a job killed before its checkpoint was committed may be partial; it is skipped
    here, and Ray Data removes it when the job runs again.
    """
    import pyarrow.fs

    def parquet(folder: str) -> list[str]:
        if fs.get_file_info(folder).type == pyarrow.fs.FileType.NotFound:
            return []
        selector = pyarrow.fs.FileSelector(folder, recursive=False)
        return [info.path for info in fs.get_file_info(selector) if info.path.endswith(".parquet")]

    committed = {
        Path(path).name.removesuffix(".parquet")
        for path in parquet(checkpoint_dir)
        if not path.endswith(".pending.parquet")
    }

    def stem(path: str) -> str:  # "<checkpoint id>-<n>.parquet" (or "<checkpoint id>.parquet") -> the id
        name = Path(path).name.removesuffix(".parquet")
        return name if name in committed else name.rsplit("-", 1)[0]

    return sorted(path for path in parquet(results_dir) if stem(path) in committed)


def pyarrow_not_found() -> Any:
    import pyarrow.fs

    return pyarrow.fs.FileType.NotFound


def _ray_data_llm() -> Any:
    try:
        import ray.data.llm as llm
    except ImportError as error:
        raise RayUnavailable(
            f"ray.data.llm cannot be imported ({error}); the vLLM and HTTP processors need Ray's llm extra "
            "(pip install -e '.[gpu]'; the HTTP processor alone needs aiohttp)"
        ) from None
    return llm


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
