"""Where cells run: `local` (processes on this machine, one device each) or `ray` (tasks on a Ray cluster).

Both take the same jobs and report each `Outcome` as it arrives (so the sweep can show progress and a
failure never stops the others). Neither knows what a cell does: launch.py starts it.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Sequence

from cache.errors import UserError
from pipeline.sweep.launch import FAILED, Job, Outcome, launch
from pipeline.sweep.spec import RaySettings

OnDone = Callable[[Outcome], None]


def visible_gpus() -> list[str]:
    """CUDA device ids this process may use, as CUDA_VISIBLE_DEVICES would name them to a child."""
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return ids[:count]


def resolve_devices(devices: Sequence[str] | str) -> list[str]:
    """"auto" -> every visible GPU (as "cuda:<id>"), else ["cpu"]; explicit lists are kept."""
    if devices == "auto":
        return [f"cuda:{i}" for i in visible_gpus()] or ["cpu"]
    return [d if d == "cpu" or d.startswith("cuda:") else f"cuda:{d}" for d in devices]


def device_env(device: str, cpu_threads: int) -> dict[str, str]:
    """Pin a child to one device: a GPU through CUDA_VISIBLE_DEVICES; the CPU with no GPU and a thread share."""
    if device == "cpu":
        n = str(max(1, cpu_threads))
        return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    return {"CUDA_VISIBLE_DEVICES": device.split(":", 1)[1]}


class LocalExecutor:
    """`max_parallel` cell processes at once on this machine, each given a device slot in turn."""

    name = "local"

    def __init__(self, devices: Sequence[str] | str = "auto", max_parallel: int = 0, warm: bool = True):
        self.devices = resolve_devices(devices)
        self.max_parallel = max_parallel or len(self.devices)
        self.warm = warm

    def describe(self) -> str:
        return f"local: {self.max_parallel} at once on {', '.join(self.devices)}"

    def run(self, jobs: Sequence[Job], on_done: OnDone) -> list[Outcome]:
        slots: queue.Queue[str] = queue.Queue()
        for i in range(self.max_parallel):
            slots.put(self.devices[i % len(self.devices)])
        threads = (os.cpu_count() or 1) // self.max_parallel
        stop = threading.Event()

        if self.warm and "cpu" in self.devices:
            from pipeline.sweep.warm import context

            context()  # start the warm server once, before the threads that fork from it

        def work(job: Job) -> Outcome | None:
            if stop.is_set():
                return None
            device = slots.get()
            try:
                return launch(job, device_env(device, threads), device=device, warm=self.warm and device == "cpu")
            finally:
                slots.put(device)

        outcomes = []
        pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="sweep")
        try:
            for future in as_completed([pool.submit(work, job) for job in jobs]):
                outcome = future.result()
                on_done(outcome)
                outcomes.append(outcome)
        except BaseException:
            # Ctrl-C: start no further cell (queued ones are cancelled); running ones got the signal too.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes


def _ray_cell(job: Job, cpus: float, warm: bool) -> dict:
    """Body of the Ray task, on a worker: Ray has already set CUDA_VISIBLE_DEVICES for a GPU task.
    CPU cells fork from a warm server that lives in the worker and serves its later tasks too."""
    import ray

    gpus = ray.get_gpu_ids()
    env = {} if gpus else device_env("cpu", int(cpus))
    device = f"cuda:{','.join(map(str, gpus))}" if gpus else "cpu"
    return launch(job, env, device=device, warm=warm and not gpus).to_dict()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address nobody answers at: ray.init itself retries for minutes."""
    host_port = address.split("://", 1)[-1]
    if address == "auto" or ":" not in host_port:
        return  # "auto" finds the local cluster itself (and fails at once when there is none)
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise UserError(f"[ray] address {address!r}: nothing answers at {host}:{port} ({e}); start the cluster "
                        f"(ray start --head) or use \"\" for a local instance") from None


class RayExecutor:
    """Each cell a `ray.remote` task holding `num_cpus_per_run` CPUs and, where the cluster has GPUs,
    `num_gpus_per_run` GPUs. `address` "" starts a local Ray instance sized for `max_parallel` runs."""

    name = "ray"

    def __init__(self, settings: RaySettings, max_parallel: int = 0, warm: bool = True):
        self.settings = settings
        self.max_parallel = max_parallel
        self.warm = warm

    def describe(self) -> str:
        where = self.settings.address or "a local Ray instance"
        return f"ray: {where}, {self.settings.num_cpus_per_run:g} CPU per run"

    def _start(self):
        try:
            import ray
        except ImportError:
            raise UserError("executor ray: the `ray` package is not installed (pip install 'sept-pipeline[ray]'), "
                            "or use executor = \"local\"") from None
        if ray.is_initialized():
            return ray, False
        common = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if self.settings.address:
            _check_reachable(self.settings.address)
            try:
                ray.init(address=self.settings.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"[ray] address {self.settings.address!r}: cannot connect to a Ray cluster there "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                f"use \"\" to start a local instance") from None
        else:
            gpus = len(visible_gpus())
            runs_at_once = self.max_parallel or max(1, gpus)
            ray.init(num_cpus=max(1, int(runs_at_once * self.settings.num_cpus_per_run)), num_gpus=gpus,
                     object_store_memory=100 * 1024 * 1024, **common)
        return ray, True

    def run(self, jobs: Sequence[Job], on_done: OnDone) -> list[Outcome]:
        ray, started_here = self._start()
        try:
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            task = ray.remote(_ray_cell).options(
                num_cpus=self.settings.num_cpus_per_run,
                num_gpus=self.settings.num_gpus_per_run if has_gpus else 0,
                max_retries=0,  # a failed cell is reported; the next sweep run retries it
            )
            pending = {task.remote(job, self.settings.num_cpus_per_run, self.warm): job for job in jobs}
            outcomes = []
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                try:
                    outcome = Outcome(**ray.get(done[0]))
                except Exception as e:  # noqa: BLE001 - a lost worker or node: this cell failed, the rest go on
                    outcome = Outcome(job.name, FAILED, -1, 0.0, job.log, message=f"ray: {type(e).__name__}: {e}")
                on_done(outcome)
                outcomes.append(outcome)
            return outcomes
        finally:
            if started_here:
                ray.shutdown()


def make_executor(kind: str, devices, max_parallel: int, ray_settings: RaySettings, warm: bool = True):
    if kind == "ray":
        return RayExecutor(ray_settings, max_parallel, warm)
    return LocalExecutor(devices, max_parallel, warm)
