"""The LLM worker's own output (vLLM's INFO/WARNING lines, a traceback) goes to CACHE/logs/llm-worker.log,
not to the terminal, unless verbose. Run with a real worker process under the real supervisor; the request
lacks its model so that the worker fails at once with a traceback, output a real engine start would bury
in minutes of loading."""
from __future__ import annotations

import pytest

from stages.neighbors.worker_launch import run_worker as _run_worker
from stages.neighbors.worker_log import last_lines, log_path

BAD_REQUEST = {"backend": "vllm", "classes": ["dog"]}  # no "llm": KeyError in the worker


def test_the_workers_output_goes_to_the_log_file(tmp_path, capfd):
    (tmp_path / "tmp").mkdir()
    for attempt in (1, 2):
        with pytest.raises(RuntimeError) as err:
            _run_worker(dict(BAD_REQUEST), tmp_path)
        log = log_path(tmp_path)
        assert str(log) in str(err.value) and "KeyError: 'llm'" in str(err.value)
    terminal = capfd.readouterr()
    assert "Traceback" not in terminal.err and "KeyError" not in terminal.err and terminal.out == ""
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 2  # appended, one block per worker start
    headers = [ln for ln in text.splitlines() if ln.startswith("==== ")]
    assert len(headers) == 2 and all(h.endswith("vllm worker, 1 classes from round 0") for h in headers)
    assert text.index(headers[0]) < text.index("Traceback") < text.rindex(headers[1])


def test_verbose_shows_it_here_and_writes_no_log(tmp_path, capfd):
    (tmp_path / "tmp").mkdir()
    with pytest.raises(RuntimeError, match="its log is above"):
        _run_worker(dict(BAD_REQUEST), tmp_path, verbose=True)
    terminal = capfd.readouterr()
    assert "Traceback" in terminal.err and "KeyError: 'llm'" in terminal.err
    assert not log_path(tmp_path).exists()


def test_last_lines_reads_the_end_of_a_long_log(tmp_path):
    f = tmp_path / "x.log"
    f.write_text("".join(f"line {i}\n" for i in range(20000)) + "\n  \n")  # ~200 KB, blank lines at the end
    assert last_lines(f, 2) == ["line 19998", "line 19999"]
    assert last_lines(f, 1, max_bytes=30) == ["line 19999"]
    assert last_lines(f, 1, max_bytes=8) == []  # the window holds only part of a line: none rather than half
