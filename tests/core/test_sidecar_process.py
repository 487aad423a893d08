"""edge.core.sidecar_process: the process_* metrics of a supervisor and its workers, summed from /proc
(a fake /proc here, so every figure is known; tests/integration/test_workers_process_metrics.py reads
the real one)."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from edge.core.sidecar_process import SidecarProcessCollector, sidecar_pids

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _process(proc: Path, pid: int, utime: int, stime: int, start: int, vsize: int, rss_pages: int, fds: int, children: str = "",
             switches: tuple[tuple[int, int], ...] = ((1, 2),)) -> None:  # fmt: skip
    after = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 6 + [str(start), str(vsize), str(rss_pages)] + ["0"] * 20
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "stat").write_text(f"{pid} (python3 -m edge) " + " ".join(after) + "\n")
    (proc / str(pid) / "fd").mkdir()
    for fd in range(fds):
        (proc / str(pid) / "fd" / str(fd)).write_text("")
    task = proc / str(pid) / "task" / str(pid)
    task.mkdir(parents=True)
    (task / "children").write_text(children)
    for thread, (voluntary, involuntary) in enumerate(switches):  # the main thread, then others
        status = proc / str(pid) / "task" / str(pid + 1000 * thread) / "status"
        status.parent.mkdir(exist_ok=True)
        status.write_text(f"Name:\tpython3\nvoluntary_ctxt_switches:\t{voluntary}\nnonvoluntary_ctxt_switches:\t{involuntary}\n")


def _fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n")
    (proc / "self").mkdir()
    (proc / "self" / "limits").write_text("Limit Soft Hard Units\nMax open files            4096                 524288               files\n")
    _process(proc, 10, utime=1 * TICKS, stime=TICKS, start=50 * TICKS, vsize=1000, rss_pages=100, fds=4, children="11 12 13 ")
    _process(proc, 11, utime=5 * TICKS, stime=2 * TICKS, start=60 * TICKS, vsize=2000, rss_pages=300, fds=7, switches=((10, 20), (100, 200)))
    _process(proc, 12, utime=3 * TICKS, stime=TICKS, start=60 * TICKS, vsize=3000, rss_pages=200, fds=6)
    # 13 is listed as a child but has exited: skipped
    return proc


def _values(proc: Path, root: int, standard: bool = True) -> dict[str, float]:
    registry = CollectorRegistry()
    SidecarProcessCollector(root, proc=str(proc), registry=registry, standard=standard)
    return {sample.name + "".join(f"/{v}" for v in sample.labels.values()): sample.value for family in registry.collect() for sample in family.samples}


def test_the_supervisor_and_its_workers_are_summed(tmp_path):
    proc = _fake_proc(tmp_path)
    assert sidecar_pids(10, str(proc)) == [10, 11, 12, 13]
    values = _values(proc, 10)
    assert values == {
        "process_cpu_seconds_total": 2 + 7 + 4,
        "process_resident_memory_bytes": 600 * PAGE,
        "process_virtual_memory_bytes": 6000,
        "process_open_fds": 17,
        "process_start_time_seconds": 1700000050,  # the supervisor's
        "process_max_fds": 4096,
        # every thread of every process: 1+10+100+1 voluntary, 2+20+200+2 involuntary
        "edge_process_context_switches_total/voluntary": 112,
        "edge_process_context_switches_total/involuntary": 224,
    }


def test_one_process_is_itself(tmp_path):
    proc = _fake_proc(tmp_path)
    values = _values(proc, 12)
    assert values["process_cpu_seconds_total"] == 4 and values["process_open_fds"] == 6
    assert values["process_start_time_seconds"] == 1700000060


def test_one_process_beside_prometheus_clients_collector_gives_only_its_switches(tmp_path):
    proc = _fake_proc(tmp_path)
    assert _values(proc, 11, standard=False) == {
        "edge_process_context_switches_total/voluntary": 110,
        "edge_process_context_switches_total/involuntary": 220,
    }


def test_without_proc_there_is_nothing(tmp_path):
    assert _values(tmp_path / "nowhere", 10) == {}
