"""A Ray generation job's files: requests and results as rows, the job folder, resuming a killed job.

Every processor (``ray_processors.py``) reads request rows and writes result rows of one schema;
the executor (``ray_executor.py``) stages the requests as Parquet and reads the committed results
back. The layout of one job folder, ``<staging>/<stage>-<hash>/``:

- ``requests/``: one Parquet file per in-process batch, rewritten on every call. Each row is a
  sample id (the generation cache key) and the request as JSON.
- ``results/``: result rows, written by Ray Data with checkpointing on the sample id.
- ``checkpoint/``: Ray Data's checkpoint files; a result file counts only once its checkpoint is
  committed, so a job killed half way is resumed from its committed results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.engines.base import Completion, GenerationRequest, Message, SamplingParams

if TYPE_CHECKING:
    import pyarrow.fs

SAMPLE_ID = "sample_id"  # the id column: the generation cache key
RESULT_COLUMNS = ("sample_id", "output", "prompt_tokens", "completion_tokens", "seconds", "finish_reason", "error")


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
    answer_set = AnswerSet.from_json(data["answer_set"]) if "answer_set" in data else None
    return GenerationRequest(
        messages=messages,
        params=params,
        sample_idx=int(data["sample_idx"]),
        seed=int(data["seed"]),
        answer_set=answer_set,
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


def result_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Result rows as one batch of columns (the result schema, in order)."""
    return {name: [row[name] for row in rows] for name in RESULT_COLUMNS}


# -- the job folder ------------------------------------------------------------------------------------


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


def pyarrow_not_found() -> Any:
    import pyarrow.fs

    return pyarrow.fs.FileType.NotFound


def job_dirs(root: str) -> tuple[str, str, str]:
    """The ``requests``, ``results`` and ``checkpoint`` folders of the job folder ``root``."""
    requests_dir, results_dir, checkpoint_dir = (_join(root, name) for name in ("requests", "results", "checkpoint"))
    return requests_dir, results_dir, checkpoint_dir


def write_requests(
    fs: pyarrow.fs.FileSystem, requests_dir: str, requests: Sequence[tuple[str, GenerationRequest]], size: int
) -> int:
    """The requests as Parquet, one file per batch of ``size``; returns the number of files.

    Requests are rewritten on every call; results and checkpoints stay.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fs.get_file_info(requests_dir).type != pyarrow_not_found():
        fs.delete_dir(requests_dir)
    fs.create_dir(requests_dir, recursive=True)
    for number, start in enumerate(range(0, len(requests), size)):
        rows = [request_row(key, request) for key, request in requests[start : start + size]]
        table = pa.Table.from_pylist(rows, schema=pa.schema([(SAMPLE_ID, pa.string()), ("request", pa.string())]))
        pq.write_table(table, _join(requests_dir, f"part-{number:06d}.parquet"), filesystem=fs)
    return -(-len(requests) // size)


# -- results back, and resuming a killed job ------------------------------------------------------------


def read_results(
    fs: pyarrow.fs.FileSystem, results_dir: str, checkpoint_dir: str, wanted: set[str]
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
