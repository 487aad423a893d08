"""Trace readers (edge/offline/traces/): each format, detection by content, malformed files, and the bootstrap."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from edge.learning import evaluation
from edge.learning.evaluation import bootstrap_roc_auc, bootstrap_roc_aucs, roc_auc
from edge.offline.replay import replay_command
from edge.offline.traces import (
    FORMATS,
    MAHIMAHI_MIN_S,
    TraceFormatError,
    detect_format,
    read_trace,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
NORWAY_JSON = DATA / "norway" / "bus.ljansbakken-oslo.report.2010-09-28_1407CEST.json.gz"
NORWAY_LOG = DATA / "norway" / "raw-log-sample.report.2010-09-28_1407CEST.log.gz"
GNETTRACK = sorted((DATA / "gnettrack").glob("*.csv.gz"))


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def kbps(trace):
    return [(s.t, None if s.kbps is None else round(s.kbps, 3)) for s in trace.seconds]


# --- G-NetTrack -----------------------------------------------------------------------------------


def test_gnettrack_excerpt_reads_cell_radio_and_figures():
    trace = read_trace(GNETTRACK[0])
    assert trace.format == "gnettrack" and not trace.saturated and trace.rows_skipped == 0
    assert len(trace.seconds) > 100
    assert all(b.t > a.t for a, b in zip(trace.seconds, trace.seconds[1:]))
    with_cell = [s for s in trace.seconds if s.cell_id]
    assert with_cell and with_cell[0].cell_id.startswith("B:")
    assert {s.mode for s in trace.seconds} & {"lte", "5g", "hspa+"}
    assert any("rsrp" in s.figures for s in trace.seconds)
    assert any(not s.downloading for s in trace.seconds)  # idle seconds exist in video sessions


# --- Norway: JSON and raw log ---------------------------------------------------------------------


def test_norway_json_spreads_intervals_over_seconds(tmp_path):
    path = write(
        tmp_path / "n.json",
        '[\n {"duration_ms": 1000, "bandwidth_kbps": 800, "latency_ms": 100},\n'
        ' {"duration_ms": 500, "bandwidth_kbps": 2000, "latency_ms": 100},\n'
        ' {"duration_ms": 3500, "bandwidth_kbps": 40, "latency_ms": 100}\n]\n',
    )
    trace = read_trace(path)
    assert trace.format == "norway-json" and trace.saturated and trace.rows == 3
    # second 1: half at 2000, half at 40 → 1020; a 3.5 s interval at 40 kbit/s is 3.5 s of outage
    assert kbps(trace) == [(0, 800.0), (1, 1020.0), (2, 40.0), (3, 40.0), (4, 40.0)]
    assert all(s.cell_id is None and s.mode is None and not s.figures for s in trace.seconds)


def test_norway_json_on_one_line_is_detected_as_json_not_csv(tmp_path):
    # A JSON writer's default (no indentation): one line with commas and words, like a CSV header.
    entries = [{"duration_ms": 1000, "bandwidth_kbps": 800 + i, "latency_ms": 100} for i in range(3)]
    path = write(tmp_path / "compact.json.gz", orjson.dumps(entries).decode(), gz=True)
    assert detect_format(path) == "norway-json"
    assert kbps(read_trace(path)) == [(0, 800.0), (1, 801.0), (2, 802.0)]


def test_norway_json_and_raw_log_of_one_session_agree():
    js, log = read_trace(NORWAY_JSON), read_trace(NORWAY_LOG)
    assert (js.format, log.format) == ("norway-json", "norway-log")
    assert js.rows == log.rows == 457
    assert log.seconds[0].t == 1285675664  # wall clock: 2010-09-28 12:07:44 UTC (14:07 CEST)
    assert js.seconds[0].t == 0  # the JSON form has no clock
    # The first log line's bytes arrived over the 1008 ms before its timestamp (…666): the log
    # starts 8 ms into second …664, one second ahead of the JSON's grid.
    pairs = list(zip(js.seconds, log.seconds[1:]))
    assert len(pairs) > 450
    mean_gap = sum(abs(a.kbps - b.kbps) for a, b in pairs) / len(pairs)
    assert mean_gap < 10  # kbit/s: the JSON rounds down, the phases differ by a few ms
    total_js = sum(s.kbps for s in js.seconds) / len(js.seconds)
    total_log = sum(s.kbps for s in log.seconds) / len(log.seconds)
    assert total_js == pytest.approx(total_log, rel=0.01)


def test_norway_log_columns(tmp_path):
    path = write(
        tmp_path / "raw.log",
        "1000 5000 59.9 10.7 125000 1000\n1001 6000 59.9 10.7 0 1000\n1003 8000 59.9 10.7 50000 2000\n",
    )
    trace = read_trace(path)
    assert trace.format == "norway-log"
    assert kbps(trace) == [(999, 1000.0), (1000, 0.0), (1001, 200.0), (1002, 200.0)]


# --- Mahimahi ------------------------------------------------------------------------------------


def test_mahimahi_counts_delivery_opportunities_and_loops():
    trace = read_trace(DATA / "synthetic" / "two-rates.mahimahi")
    assert trace.format == "mahimahi" and trace.saturated and trace.rows == 120
    assert len(trace.seconds) == MAHIMAHI_MIN_S  # a 2 s trace loops up to the minimum session
    first = [s.kbps for s in trace.seconds[:4]]
    # 100 packets × 1500 B × 8 = 1200 kbit/s; 19 in (1000, 2000); the 20th at 2000 ms opens the
    # next loop together with that loop's packet at 0 ms: 101 in second 2.
    assert first == [1200.0, 228.0, 1212.0, 228.0]


def test_mahimahi_repeated_timestamps_are_several_packets(tmp_path):
    path = write(tmp_path / "burst", "5\n5\n5\n999\n2000\n")
    trace = read_trace(path)
    # second 2: the packet at 2000 ms, then the loop's 5, 5, 5 and 999 shifted by the 2000 ms period
    assert [s.kbps for s in trace.seconds[:3]] == [4 * 12.0, 0.0, 5 * 12.0]


def test_mahimahi_constant_rate_one_line(tmp_path):
    trace = read_trace(write(tmp_path / "12mbps", "1\n"), "mahimahi")  # one packet every ms
    assert trace.seconds[1].kbps == 12_000.0 and len(trace.seconds) == MAHIMAHI_MIN_S


# --- per-second throughput logs --------------------------------------------------------------------


def test_throughput_log_comments_commas_and_gaps():
    trace = read_trace(DATA / "synthetic" / "link.tput")
    assert trace.format == "throughput" and trace.saturated
    assert kbps(trace) == [(0, 1800.0), (1, 1750.5), (2, 400.0), (3, 120.0), (5, 0.0), (6, 2400.0)]


def test_throughput_log_fractional_seconds_average_per_second(tmp_path):
    trace = read_trace(write(tmp_path / "t.csv", "0.0,100\n0.5,300\n1.2,50\n", gz=True))
    assert kbps(trace) == [(0, 200.0), (1, 50.0)]


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("Timestamp,Longitude,CellID,NetworkMode,DL_bitrate,State\n", "gnettrack"),
        ('[{"duration_ms": 1000, "bandwidth_kbps": 5}]', "norway-json"),
        ("  \n[\n", "norway-json"),
        ("1285675666 310761 59.889623 10.763866 288648 1008\n", "norway-log"),
        ("# mahimahi\n0\n0\n7\n", "mahimahi"),
        ("# t kbps\n\n1 200\n", "throughput"),
        ("1.5,200\n", "throughput"),
    ],
)
def test_format_is_detected_from_the_content_not_the_name(tmp_path, text, fmt):
    for name in ("trace.json", "trace.csv", "trace.log", "trace"):  # misleading names on purpose
        path = write(tmp_path / name, text)
        assert detect_format(path) == fmt
        gz = write(tmp_path / (name + ".gz"), text, gz=True)
        assert detect_format(gz) == fmt


def test_every_format_has_a_reader_and_a_cli_choice():
    assert set(FORMATS) == {"gnettrack", "norway-json", "norway-log", "mahimahi", "throughput"}
    result = CliRunner().invoke(replay_command, ["--help"])
    assert all(f in result.output for f in FORMATS)


# --- malformed files: the error names the file and the line -----------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt", "line", "fragment"),
    [
        ("", None, None, "empty file"),
        ("# only a comment\n\n", None, None, "empty file"),
        ("hello world\n", None, 1, "cannot tell the trace format"),
        ("1 2 3\n", None, 1, "3 numbers a line fits no trace format"),
        ("1.5\n", None, 1, "not an integer number of milliseconds"),
        # Norway JSON
        ('[\n{"duration_ms": 1000, "bandwidth_kbps": 5},\n{"duration_ms": 1000, "bandwidth_kbps": \n', None, 4, "not valid JSON"),
        ('[\n{"duration_ms": 1000, "bandwidth_kbps": 5},\n{"duration_ms": 1000}\n]', None, 3, "entry 2"),
        ('[\n{"duration_ms": 1000, "bandwidth_kbps": 5},\n\n  {"duration_ms": -5, "bandwidth_kbps": 1}]', None, 4, "entry 2"),
        ('{"duration_ms": 1000, "bandwidth_kbps": 5}', None, 1, "not a list"),
        # Norway raw log
        ("1000 5000 59.9 10.7 125000 1000\n1001 6000 59.9 10.7 1000\n", None, 2, "cannot read"),
        ("1000 5000 59.9 10.7 125000 1000\n\n1001 6000 59.9 10.7 -8 1000\n", None, 3, "negative"),
        # Mahimahi
        ("10\n20\nabc\n", None, 3, "cannot read 'abc'"),
        ("10\n20\n15\n", None, 3, "backwards"),
        ("0\n0\n", None, 2, "period"),
        # throughput logs
        ("0 100\n1 fast\n", None, 2, "cannot read"),
        ("0 100\n# gap\n1 -3\n", None, 3, "negative throughput"),
        ("0 100\n5 100\n4 100\n", None, 3, "time goes backwards"),
        ("0 100\n1 100 7\n", None, 2, "cannot read"),
        # a format given with --format that the file is not in
        ("0 800\n1 700\n", "mahimahi", 1, "cannot read '0 800'"),
        ("0 800\n1 700\n", "norway-json", 1, "not valid JSON"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, text, fmt, line, fragment):
    path = write(tmp_path / "bad-trace.txt", text)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path, fmt)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "(expected " in message
    if line is not None:
        assert f": line {line}: " in message and info.value.line == line
    args = ([] if fmt is None else ["--format", fmt]) + [str(path)]
    result = CliRunner().invoke(replay_command, args)
    assert result.exit_code == 2
    assert "bad-trace.txt" in result.output and fragment in result.output
    assert "Traceback" not in result.output


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    lines = "".join(f"{t} {1000 + t}\n" for t in range(20000))
    path = write(tmp_path / "long.gz", lines, gz=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    trace = read_trace(path)
    assert trace.truncated and 0 < len(trace.seconds) < 20000


# --- the bootstrap ---------------------------------------------------------------------------------


def noisy(n: int, seed: int = 0):
    rng = random.Random(seed)
    y = [rng.random() < 0.3 for _ in range(n)]
    p = [min(1.0, max(0.0, (0.6 if v else 0.4) + rng.gauss(0, 0.2))) for v in y]
    return y, p


def test_bootstrap_interval_contains_the_estimate_and_is_seeded():
    y, p = noisy(2000)
    auc = roc_auc(y, p)
    lo, hi = bootstrap_roc_auc(y, p, seed=3)
    assert lo < auc < hi and hi - lo < 0.1
    assert bootstrap_roc_auc(y, p, seed=3) == (lo, hi)
    assert bootstrap_roc_auc(y, p, seed=4) != (lo, hi)


def test_bootstrap_narrows_with_n():
    widths = []
    for n in (200, 2000, 20000):
        y, p = noisy(n, seed=n)
        lo, hi = bootstrap_roc_auc(y, p)
        assert lo < roc_auc(y, p) < hi
        widths.append(hi - lo)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]  # ~1/√n


def test_bootstrap_ties_none_and_degenerate_cases():
    assert bootstrap_roc_auc([True, True, True], [0.1, 0.2, 0.3]) is None  # one class: AUC undefined
    assert bootstrap_roc_auc([True, False], [0.9, 0.1], resamples=0) is None
    y = [True, False] * 200
    lo, hi = bootstrap_roc_auc(y, [None] * 400)  # no opinion is 0.5 everywhere: ties count a half
    assert lo == hi == 0.5
    with pytest.raises(ValueError):
        bootstrap_roc_auc([True], [0.1, 0.2])


def test_bootstrap_is_paired_across_predictors():
    y, p = noisy(500)
    both = bootstrap_roc_aucs(y, {"a": p, "b": list(p), "c": [1 - q for q in p]})
    assert both["a"] == both["b"] == bootstrap_roc_auc(y, p)
    assert both["c"][0] == pytest.approx(1 - both["a"][1]) and both["c"][1] == pytest.approx(1 - both["a"][0])


def test_bootstrap_without_numpy_agrees(monkeypatch):
    y, p = noisy(400, seed=9)
    with_numpy = bootstrap_roc_auc(y, p)
    monkeypatch.setattr(evaluation, "_np", None)
    plain = bootstrap_roc_auc(y, p)
    assert plain == bootstrap_roc_auc(y, p)  # seeded too
    auc = roc_auc(y, p)
    assert plain[0] < auc < plain[1]
    assert plain[0] == pytest.approx(with_numpy[0], abs=0.02) and plain[1] == pytest.approx(with_numpy[1], abs=0.02)


def test_bootstrap_counts_match_the_exact_auc():
    # One "resample" that draws every item once is the sample itself: the count formula is roc_auc's.
    y, p = noisy(300, seed=5)
    cats, groups = evaluation._categories(y, p)
    counts = [0] * (2 * groups)
    for c in cats:
        counts[c] += 1
    assert evaluation._auc_from_counts(counts[:groups], counts[groups:]) == pytest.approx(roc_auc(y, p))


# --- the command on every format -------------------------------------------------------------------


def test_replay_reads_every_format_in_one_run(tmp_path):
    files = [GNETTRACK[0], NORWAY_JSON, NORWAY_LOG, DATA / "synthetic" / "two-rates.mahimahi", DATA / "synthetic" / "link.tput"]
    result = CliRunner().invoke(replay_command, ["--json", "--bootstrap", "50", *map(str, files)])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.output)
    assert out["formats"] == {"gnettrack": 1, "mahimahi": 1, "norway-json": 1, "norway-log": 1, "throughput": 1}
    assert out["files"] == 5 and out["requests"] > 50 and out["positives"] > 0
