"""Stage one's LLM precision, measured: bf16 against float32 on this CPU, natively and with AVX2 emulated.

Used by benchmarks/bench_neighbors.py (`--sections dtypes`). One child process per dtype
(`python -m benchmarks.stage_one_dtypes DTYPE MODEL_DIR CLASSES`, under the run's supervisor so that nothing
outlives the benchmark), so each engine starts in a fresh interpreter with its own environment, and the
emulation's environment reaches every process vLLM spawns. The children start their engines one after the
other (each start timed alone), then stay up together and take turns: bf16's batch, float32's batch, bf16's,
... `repeats` times, so that both dtypes see the same machine (other work on shared cores comes and goes);
each figure is the best of its repeats, the one least disturbed by other work.

Per child and turn, two timed generations on its engine:
- "fixed": every request of the default prompt's first round (one per class and example set) decoded
  greedily to exactly `FIXED_TOKENS` tokens (ignore_eos): the same work in both dtypes, so tokens/s compare;
- "real": the same requests as generate-neighbors sends them (greedy, frequency penalty, natural stops),
  whose token counts differ between dtypes (their answers do).
Besides wall time, the CPU seconds of the child's whole process tree (engine core included, from /proc) are
read before and after each generation: CPU seconds per token stay comparable when other work shares the
cores, wall time does not.

AVX2 emulation (`--emulate avx2`) on a CPU that has AVX-512: every Python process of the child sees a CPU
without AVX-512, AVX512-BF16 or AMX (torch.cpu's `_is_avx512_supported`, `_is_avx512_bf16_supported`,
`_is_amx_tile_supported` return False: what vLLM's CPU platform reads to load its AVX2 kernel library
`vllm/_C_AVX2.abi3.so` instead of `_C.abi3.so`), torch's own kernels dispatch at AVX2
(ATEN_CPU_CAPABILITY=avx2), oneDNN (linked into each of vLLM's kernel libraries and into torch) and MKL
are capped at AVX2 (ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS). The child reports which
kernel library its engine processes mapped. What it cannot emulate: another microarchitecture (cache
sizes, AVX2 throughput of an older core); the instruction sets are right, the core is this one.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXED_TOKENS = 48

EMULATE_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2",
                    "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SITECUSTOMIZE = '''
# benchmarks/stage_one_dtypes.py: an AVX2-only CPU, as vLLM's CPU platform and torch see it.
import torch.cpu as _cpu
for _name in ("_is_avx512_supported", "_is_avx512_bf16_supported", "_is_amx_tile_supported",
              "_is_amx_fp16_supported", "_is_avx512_vnni_supported"):
    if hasattr(_cpu, _name):
        setattr(_cpu, _name, lambda: False)
'''


def emulation_env(folder: Path) -> dict:
    """The environment of an emulated AVX2-only child (a sitecustomize.py in `folder` patches torch.cpu)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(EMULATE_AVX2_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _tree_cpu_seconds(root: int) -> float:
    """utime + stime of `root` and every live process below it (/proc; reaped children are not counted)."""
    from stages.neighbors import proctree

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [root] + [p.pid for p in proctree.descendants(root)]:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = stat.rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])  # fields 14 and 15 of stat(5)
    return total / tick


def _kernel_libraries(root: int) -> list[str]:
    """Which of vLLM's kernel libraries (_C, _C_AVX2, _C_AVX512) the processes of the tree mapped."""
    from stages.neighbors import proctree

    seen = set()
    for pid in [root] + [p.pid for p in proctree.descendants(root)]:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            name = line.rsplit("/", 1)[-1]
            if name.startswith("_C") and name.endswith(".abi3.so") and "/vllm/" in line:
                seen.add(name)
    return sorted(seen)


def child(dtype: str, model: str, n_classes: int) -> None:
    """Start the engine, say so on stdout, then run each generation ("fixed" or "real") named on stdin."""
    from pipeline.config_loader import load_config
    from stages.data.specs import dataset_classnames
    from stages.neighbors import devices, engines, prompt
    from stages.neighbors.sampling import round_sampling
    from stages.neighbors.worker_launch import sampling_spec

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # vLLM's prints go to stderr; our results up the pipe

    def send(obj):
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    cfg = load_config()
    n = cfg.neighbors
    tpl = prompt.load(n.prompt, ROOT)
    classes = dataset_classnames("esc50")[:n_classes]
    spec = sampling_spec(cfg)
    convs = [tpl.messages(c, n.output_format, n.overgenerate, "", k) for k in range(tpl.sets) for c in classes]
    samps = [engines.Sampling(**round_sampling(spec, 0, c, k)) for k in range(tpl.sets) for c in classes]
    scratch = tempfile.mkdtemp(prefix="dtype-bench-")
    engines.configure_vllm_env(scratch)
    me = os.getpid()
    t = time.perf_counter()
    eng = engines.VLLMEngine(model, seed=0, max_model_len=n.max_model_len, dtype=dtype)
    started = time.perf_counter() - t
    eng.chat(convs[:1], samps[:1])  # first-call costs are not generation
    send({"dtype_asked": dtype, "engine_dtype": eng.dtype, "engine_start_s": started, "requests": len(convs),
          "cpu": devices.cpu_description(), "kernels": _kernel_libraries(me), "load_average": os.getloadavg()})
    from vllm import SamplingParams

    fixed = SamplingParams(temperature=0.0, max_tokens=FIXED_TOKENS, min_tokens=FIXED_TOKENS, ignore_eos=True)
    runs = {"fixed": lambda: eng.llm.chat(convs, fixed, use_tqdm=False), "real": lambda: eng.chat(convs, samps)}
    try:
        for line in iter(sys.stdin.readline, ""):
            name = line.strip()
            if name == "independence":
                send({name: _independence(eng, tpl, n, spec)})
                continue
            c0, t = _tree_cpu_seconds(me), time.perf_counter()
            res = runs[name]()
            wall, cpu = time.perf_counter() - t, _tree_cpu_seconds(me) - c0
            tokens = sum(len(o.outputs[0].token_ids) for o in res) if name == "fixed" else sum(c.tokens for c in res)
            send({name: {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall, "cpu_seconds": cpu,
                         "cpu_ms_per_token": 1000 * cpu / tokens, "load_average": os.getloadavg()}})
    finally:
        eng.close()


def _independence(eng, tpl, n, spec) -> dict:
    """Does a class's greedy answer depend on the batch it runs in? Every ESC-50 class's first-round requests
    (one per example set) once inside ONE batch of all 50 classes (what generate-neighbors sends), then
    class by class (its own requests alone); the classes and requests whose answers differ are counted."""
    from stages.data.specs import dataset_classnames
    from stages.neighbors import engines
    from stages.neighbors.sampling import round_sampling

    classes = list(dataset_classnames("esc50"))
    sets = range(tpl.sets)

    def requests(names):
        return ([tpl.messages(c, n.output_format, n.overgenerate, "", k) for k in sets for c in names],
                [engines.Sampling(**round_sampling(spec, 0, c, k)) for k in sets for c in names])

    t = time.perf_counter()
    convs, samps = requests(classes)
    batch = [o.text for o in eng.chat(convs, samps)]
    by_class = {c: [batch[k * len(classes) + i] for k in sets] for i, c in enumerate(classes)}
    alone = {}
    for c in classes:
        convs, samps = requests([c])
        alone[c] = [o.text for o in eng.chat(convs, samps)]
    differ = {c: [k for k in sets if alone[c][k] != by_class[c][k]] for c in classes}
    differ = {c: ks for c, ks in differ.items() if ks}
    return {"classes": len(classes), "requests": len(classes) * tpl.sets, "classes_differing": len(differ),
            "requests_differing": sum(len(v) for v in differ.values()), "which": differ,
            "seconds": time.perf_counter() - t, "load_average": os.getloadavg()}


def independence(dtypes: list[str], model: str, work: Path, repeats: int = 1) -> list[dict]:
    """Per dtype (one child each, the engine core in its own process as generate-neighbors runs it): the
    batch-dependence count of _independence, `repeats` times."""
    import subprocess

    from stages.neighbors import supervisor

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    records = work / "supervised"
    records.mkdir(parents=True, exist_ok=True)
    out = []
    for d in dtypes:
        with open(work / f"independence-{d}.log", "w") as log, supervisor.started(
                [sys.executable, "-m", "benchmarks.stage_one_dtypes", d, model, "1"], records=records, env=env,
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True) as p:
            head = json.loads(p.stdout.readline() or "null") or {}
            if not head:
                raise RuntimeError(f"independence child {d} failed; its log: {log.name}")
            for _ in range(repeats):
                p.stdin.write("independence\n")
                p.stdin.flush()
                r = json.loads(p.stdout.readline())["independence"]
                r["dtype"] = head["engine_dtype"]
                out.append(r)
    return out


def compare(dtypes: list[str], model: str, n_classes: int, emulate: bool, work: Path, repeats: int = 3) -> list[dict]:
    """One child per dtype, started one after the other, then generating in turns; per dtype: its start and,
    for "fixed" and "real", the best of `repeats` turns (and every turn's figures)."""
    import subprocess
    from contextlib import ExitStack

    from stages.neighbors import supervisor

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if emulate:
        env.update(emulation_env(work / "emulate-avx2"))
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    records = work / "supervised"
    records.mkdir(parents=True, exist_ok=True)
    results = []
    with ExitStack() as stack:
        procs = []
        for d in dtypes:
            log = stack.enter_context(open(work / f"dtype-{d}{'-avx2' if emulate else ''}.log", "w"))
            p = stack.enter_context(supervisor.started(
                [sys.executable, "-m", "benchmarks.stage_one_dtypes", d, model, str(n_classes)], records=records,
                env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True))
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"dtype child {d} (emulate={emulate}) failed; its log: {log.name}")
            res = json.loads(line)
            res.update(emulated="avx2" if emulate else None, turns={"fixed": [], "real": []})
            procs.append(p)
            results.append(res)
        for _ in range(repeats):
            for name in ("fixed", "real"):
                for p, res in zip(procs, results):
                    p.stdin.write(name + "\n")
                    p.stdin.flush()
                    line = p.stdout.readline()
                    if not line:
                        raise RuntimeError(f"dtype child {res['dtype_asked']} stopped answering")
                    res["turns"][name].append(json.loads(line)[name])
        for p in procs:
            p.stdin.close()
    for res in results:
        for name in ("fixed", "real"):
            res[name] = min(res["turns"][name], key=lambda x: x["seconds"] / x["tokens"])
    return results


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
