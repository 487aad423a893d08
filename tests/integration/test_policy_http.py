"""Compression, charsets and policy hot reload through the real sidecar (issue 4, "How it is shown").

Real processes on loopback: ``tests/integration/upstreams.py`` (its own uvicorn process) serves
pages compressed with every coding edge decodes, Latin-1 and Shift_JIS pages, and compression
bombs; ``edge serve`` runs in front of it with this module's policy. Nothing runs in-process.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import brotli
import httpx
import pytest
import zstandard
from selectolax.lexbor import LexborHTMLParser as HTMLParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
import upstreams  # noqa: E402

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
MiB = 1024 * 1024
TWO_G = {"ECT": "2g"}
GOOD_4G = {"ECT": "4g", "RTT": "50", "Downlink": "10"}
SWITCH_LINK = re.compile(rb'<p class="edge-switch"[^>]*>.*?</p>', re.DOTALL)

#: The policy of these tests: lite drops reviews and ads; holdback 0 keeps every decision deterministic.
POLICY = """\
name = "itest"

[tiers]
lite = 0.5
minimal = 0.95

[overrides]
save_data = "lite"
preference_cookie = "edge_tier"
holdback = 0

[[widgets]]
widget = "header"
priority = 100

[[widgets]]
widget = "product-grid"
priority = 90

[[widgets]]
widget = "reviews"
priority = 40
lite = "drop"

[[widgets]]
widget = "ads"
priority = 1
lite = "{ads_lite}"
"""
ADS_WIDGET_INDEX = 3  # widgets[3] in POLICY: what the reload errors must name


def policy_text(ads_lite: str = "drop") -> str:
    return POLICY.replace("{ads_lite}", ads_lite)


# --- processes --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bomb_dir() -> Path:
    """The compression bombs, made once per machine and cached in the temp dir (~4 s the first time)."""
    for coding in upstreams.BOMB_CODINGS:
        path = upstreams.bomb_path(coding)
    return path.parent


@pytest.fixture(scope="session")
def upstream(integration_logs: Path, bomb_dir: Path):
    """``tests/integration/upstreams.py`` as its own uvicorn process; yields its base URL."""
    script = Path(upstreams.__file__)
    for attempt in range(3):
        with socket_free_port() as port:
            pass
        log_path = integration_logs / f"upstream-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(script), "--host", HOST, "--port", str(port), "--bomb-dir", str(bomb_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if client.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
        if proc.poll() is None and time.monotonic() < deadline:
            try:
                yield url
            finally:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            return
        proc.kill()
        proc.wait(5)
        text = log_path.read_text(errors="replace")
        if "address already in use" not in text.lower():
            pytest.fail(f"the test upstream did not start:\n{text}", pytrace=False)
    pytest.fail("the test upstream found no free port", pytrace=False)


class socket_free_port:  # noqa: N801 - a tiny context manager, read like a function
    """``with socket_free_port() as port``: a port nothing listens on right now."""

    def __enter__(self) -> int:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("itest-policies")


@pytest.fixture(scope="session")
def adapt_edge(start_edge, upstream: str, policy_dir: Path):
    """``edge serve`` in front of the test upstream with :data:`POLICY` (never changed)."""
    path = policy_dir / "fixed.toml"
    path.write_text(policy_text())
    return start_edge(upstream, "--policy", str(path), "--read-timeout", "10", "--fail-mode", "open", name="edge-itest")


@pytest.fixture
def reload_edge(request, start_edge, upstream: str, policy_dir: Path):
    """A fresh ``edge serve`` per test whose policy file the test may rewrite; yields (edge, policy path)."""
    path = policy_dir / f"{request.node.name}.toml"
    path.write_text(policy_text())
    edge = start_edge(upstream, "--policy", str(path), "--read-timeout", "10", "--fail-mode", "open", name=f"edge-{request.node.name}")
    try:
        yield edge, path
    finally:
        edge.proc.stop()


# --- helpers ----------------------------------------------------------------------------------


def decode_body(body: bytes, coding: str | None) -> bytes:
    if coding in (None, "identity"):
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if coding == "deflate":
        return zlib.decompress(body)
    raise AssertionError(f"unexpected coding {coding!r}")


def get_raw(raw, edge, path: str, headers: dict[str, str]):
    """One GET over a raw socket: the bytes exactly as edge sent them (no client-side decoding)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{edge.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw(HOST, edge.port, head, timeout=30.0)


def widget_span(page: bytes, name: str) -> bytes:
    start = page.index(f'<section data-edge-widget="{name}"'.encode())
    end = page.index(b"</section>", start) + len(b"</section>")
    return page[start:end]


def without(page: bytes, *names: str) -> bytes:
    for name in names:
        page = page.replace(widget_span(page, name), b"", 1)
    return page


def assert_spliced(body: bytes, expected: bytes, to_tier: str) -> None:
    """``body`` is ``expected`` byte for byte with one snippet (switch link, then beacon) before ``</body>``."""
    cut = expected.rindex(b"</body>")
    assert body.startswith(expected[:cut]), _first_difference(body, expected)
    assert body.endswith(expected[cut:]), body[-200:]
    snippet = body[cut : len(body) - (len(expected) - cut)]
    link = SWITCH_LINK.match(snippet)
    assert link is not None, f"no switch link before </body>: {snippet[:200]!r}"
    assert f'href="/__edge/tier/{to_tier}?next='.encode() in link.group(0)
    rest = snippet[link.end() :]
    assert rest == b"" or (rest.startswith(b"<script>") and rest.endswith(b"</script>")), rest[:200]


def _first_difference(body: bytes, expected: bytes) -> str:
    i = next((i for i, (a, b) in enumerate(zip(body, expected)) if a != b), min(len(body), len(expected)))
    return f"bytes differ at {i}: got {body[max(0, i - 40) : i + 40]!r}, want {expected[max(0, i - 40) : i + 40]!r}"


def widgets(html: bytes) -> set[str]:
    return {n.attributes.get("data-edge-widget") for n in HTMLParser(html).css("[data-edge-widget]")}


def header_tokens(response, name: str) -> set[str]:
    return {v.strip().lower() for value in response.get_list(name) for v in value.split(",") if v.strip()}


def metric(edge, name: str, **labels: str) -> float:
    text = httpx.get(edge.admin_url + "/metrics", timeout=5, trust_env=False).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name}{{{wanted}}} not exported"
    return float(match.group(1))


def wait_for_metric(edge, name: str, value: float, timeout: float = 10.0, **labels: str) -> float:
    deadline = time.monotonic() + timeout
    while True:
        current = metric(edge, name, **labels)
        if current >= value or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


class RssSampler:
    """Samples a process's VmRSS every few milliseconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, vm_rss, pid: int) -> None:
        self.vm_rss, self.pid = vm_rss, pid
        self.peak = vm_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.vm_rss(self.pid))
            time.sleep(0.002)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.vm_rss(self.pid))


# --- compressed pages: decoded, adapted, re-encoded for the client ------------------------------

#: Accept-Encoding sent by the client → the coding edge must answer with (None: identity).
ACCEPTS = {
    "gzip": "gzip",
    "br": "br",
    "zstd": "zstd",
    "deflate": "deflate",
    "gzip, deflate, br, zstd": "br",
    "br;q=0, gzip;q=0.8, zstd;q=0.5": "gzip",
    "identity": None,
    "": None,
}


@pytest.mark.parametrize("accept", list(ACCEPTS), ids=lambda a: a or "no-accept-encoding")
@pytest.mark.parametrize("origin_coding", upstreams.CODINGS)
def test_compressed_page_is_adapted_and_reencoded_for_the_client(adapt_edge, raw, origin_coding, accept):
    headers = dict(TWO_G)
    if accept:
        headers["Accept-Encoding"] = accept
    response = get_raw(raw, adapt_edge, f"/page?coding={origin_coding}", headers)
    assert response.status == 200
    assert response.get("edge-tier") == "lite", response.headers
    want = ACCEPTS[accept]
    assert response.get_list("content-encoding") == ([want] if want else []), response.headers
    assert response.get_list("content-length") == [str(len(response.body))]
    assert response.get("transfer-encoding") is None
    assert "accept-encoding" in header_tokens(response, "vary")
    assert response.get("etag") == 'W/"itest-v1-lite"'

    html = decode_body(response.body, want)
    original, _ = upstreams.page_bytes("page")
    # The storefront's bytes minus the dropped widgets, plus the switch link: nothing else changed.
    assert_spliced(html, without(original, "reviews", "ads"), to_tier="full")
    assert html.startswith(b"<!DOCTYPE html>") and html.endswith(b"</html>\n")
    assert widgets(html) == {"header", "product-grid"}
    assert HTMLParser(html).css_first("p.edge-switch a").attributes["href"].startswith("/__edge/tier/full?next=/page")


@pytest.mark.parametrize("origin_coding", ["gzip", "br", "zstd"])
def test_compressed_full_page_is_the_origin_page_plus_the_link(adapt_edge, raw, origin_coding):
    response = get_raw(raw, adapt_edge, f"/page?coding={origin_coding}", {**GOOD_4G, "Accept-Encoding": "gzip"})
    assert response.status == 200 and response.get("edge-tier") == "full"
    assert response.get("content-encoding") == "gzip"
    assert response.get("content-length") == str(len(response.body))
    assert_spliced(gzip.decompress(response.body), upstreams.page_bytes("page")[0], to_tier="lite")


# --- compression bombs: passed through byte-identical, never expanded --------------------------


@pytest.mark.parametrize("coding", upstreams.BOMB_CODINGS)
def test_compression_bomb_passes_through_without_growing_memory(adapt_edge, raw, vm_rss, bomb_dir, coding):
    bomb = upstreams.bomb_path(coding, bomb_dir).read_bytes()
    # Warm up with an ordinary compressed page: the first rewrite allocates what later ones reuse.
    assert get_raw(raw, adapt_edge, f"/page?coding={coding}", {**TWO_G, "Accept-Encoding": coding}).status == 200
    before = vm_rss(adapt_edge.pid)
    with RssSampler(vm_rss, adapt_edge.pid) as sampler:
        response = get_raw(raw, adapt_edge, f"/bomb/{coding}", {**TWO_G, "Accept-Encoding": "gzip, br, zstd"})
    after = vm_rss(adapt_edge.pid)
    print(
        f"{coding} bomb ({len(bomb):,} B → 1 GiB): edge VmRSS {before} KiB before, peak {sampler.peak} KiB, "
        f"{after} KiB after (+{(sampler.peak - before) / 1024:.1f} MiB at peak)"
    )
    assert response.status == 200
    assert response.get("content-encoding") == coding
    assert response.get("content-length") == str(len(bomb))
    assert response.body == bomb, "the bomb was not passed through byte for byte"
    assert response.get("edge-tier") in (None, "full")
    assert sampler.peak - before <= 20 * 1024, f"edge's RSS grew by {(sampler.peak - before) / 1024:.1f} MiB"
    assert adapt_edge.proc.alive()
    # And edge still adapts ordinary pages afterwards.
    after_page = get_raw(raw, adapt_edge, "/page?coding=gzip", {**TWO_G, "Accept-Encoding": "gzip"})
    assert after_page.get("edge-tier") == "lite"


# --- charsets: legacy encodings are not mangled --------------------------------------------------

CHARSET_PAGES = {
    "latin1": ("iso-8859-1", upstreams.LATIN1_TEXT),
    "latin1-meta": ("iso-8859-1", upstreams.LATIN1_TEXT),
    "sjis": ("shift_jis", upstreams.SJIS_TEXT),
    "sjis-meta": ("shift_jis", upstreams.SJIS_TEXT),
}


@pytest.mark.parametrize("origin_coding", ["identity", "gzip"])
@pytest.mark.parametrize("kind", list(CHARSET_PAGES))
def test_legacy_charset_page_is_adapted_without_mangling(adapt_edge, raw, kind, origin_coding):
    charset, text = CHARSET_PAGES[kind]
    original, content_type = upstreams.page_bytes(kind)
    response = get_raw(raw, adapt_edge, f"/{kind}?coding={origin_coding}", {**TWO_G, "Accept-Encoding": "identity"})
    assert response.status == 200 and response.get("edge-tier") == "lite"
    assert response.get("content-type") == content_type  # the declared charset is kept as it was
    assert response.get("content-encoding") is None
    html = response.body
    # Every byte edge did not mean to touch is the origin's byte.
    assert_spliced(html, without(original, "reviews", "ads"), to_tier="full")
    decoded = html.decode(charset)  # strict: a mangled multi-byte sequence would raise
    assert text in decoded
    assert widgets(html) == {"header", "product-grid"}

    full = get_raw(raw, adapt_edge, f"/{kind}?coding={origin_coding}", {**GOOD_4G, "Accept-Encoding": "identity"})
    assert full.get("edge-tier") == "full"
    assert_spliced(full.body, original, to_tier="lite")


# --- policy hot reload -----------------------------------------------------------------------------


def lite_widgets(raw, edge) -> set[str]:
    response = get_raw(raw, edge, "/page", {**TWO_G, "Accept-Encoding": "identity"})
    assert response.status == 200 and response.get("edge-tier") == "lite"
    return widgets(response.body)


def write_policy(path: Path, text: str, *, keep_mtime: bool = False) -> None:
    """Write ``text``; give the file a fresh mtime (the watcher's cue), or keep the old one (so it is not)."""
    old = path.stat()
    path.write_text(text)
    if keep_mtime:
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    else:
        stamp = max(time.time_ns(), old.st_mtime_ns + 1_000_000)
        os.utime(path, ns=(stamp, stamp))


def test_policy_file_made_invalid_keeps_the_old_policy_and_a_fix_is_picked_up(reload_edge, raw):
    edge, path = reload_edge
    assert lite_widgets(raw, edge) == {"header", "product-grid"}
    failures = metric(edge, "edge_policy_reloads_total", result="failure")
    successes = metric(edge, "edge_policy_reloads_total", result="success")

    # 1. A schema error: the watcher (1 s poll) refuses it and counts a failure.
    write_policy(path, policy_text(ads_lite="hide"))
    assert wait_for_metric(edge, "edge_policy_reloads_total", failures + 1, result="failure") == failures + 1
    assert lite_widgets(raw, edge) == {"header", "product-grid"}, "the old policy must stay in force"
    # 2. A file that is not even TOML: the same.
    write_policy(path, 'name = "itest"\n[tiers\nlite = 0.5\n')
    assert wait_for_metric(edge, "edge_policy_reloads_total", failures + 2, result="failure") == failures + 2
    assert lite_widgets(raw, edge) == {"header", "product-grid"}
    assert metric(edge, "edge_policy_reloads_total", result="success") == successes
    log = edge.proc.logs()
    assert "policy reload failed" in log and f"widgets[{ADS_WIDGET_INDEX}].lite" in log and "not valid TOML" in log, log

    # 3. Fixed, with a visible change (ads now kept on lite): picked up, counted as a success.
    write_policy(path, policy_text(ads_lite="keep"))
    assert wait_for_metric(edge, "edge_policy_reloads_total", successes + 1, result="success") == successes + 1
    assert lite_widgets(raw, edge) == {"header", "product-grid", "ads"}
    assert metric(edge, "edge_policy_reloads_total", result="failure") == failures + 2


def test_policy_reload_endpoint_refuses_an_invalid_file_with_file_key_and_problem(reload_edge, raw):
    edge, path = reload_edge
    reload_url = edge.admin_url + "/admin/policy/reload"
    failures = metric(edge, "edge_policy_reloads_total", result="failure")
    successes = metric(edge, "edge_policy_reloads_total", result="success")

    # The file's mtime is kept, so only the endpoint (not the watcher) reloads it.
    write_policy(path, policy_text(ads_lite="hide"), keep_mtime=True)
    refused = httpx.post(reload_url, timeout=10, trust_env=False)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["result"] == "failure" and body["policy"] == "itest"
    error = body["error"]
    assert str(path) in error, error  # the file
    assert f"widgets[{ADS_WIDGET_INDEX}].lite" in error, error  # the key path
    assert "'hide' is not one of" in error, error  # the problem
    assert metric(edge, "edge_policy_reloads_total", result="failure") == failures + 1
    assert lite_widgets(raw, edge) == {"header", "product-grid"}, "the old policy must stay in force"

    # An invalid CSS selector is caught at reload too, not at request time.
    write_policy(path, policy_text() + '\n[[widgets]]\nselector = "div[["\npriority = 3\nlite = "drop"\n', keep_mtime=True)
    refused = httpx.post(reload_url, timeout=10, trust_env=False)
    assert refused.status_code == 422 and "widgets[4].selector" in refused.json()["error"], refused.text
    assert lite_widgets(raw, edge) == {"header", "product-grid"}

    write_policy(path, policy_text(ads_lite="keep"), keep_mtime=True)
    accepted = httpx.post(reload_url, timeout=10, trust_env=False)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"result": "success", "policy": "itest"}
    assert metric(edge, "edge_policy_reloads_total", result="success") == successes + 1
    assert metric(edge, "edge_policy_reloads_total", result="failure") == failures + 2
    assert lite_widgets(raw, edge) == {"header", "product-grid", "ads"}


# --- streams edge must not misread -------------------------------------------------------------


def test_truncated_gzip_page_is_passed_through_unmodified(adapt_edge, raw):
    body, coding = upstreams.broken_body("gzip-truncated")
    response = get_raw(raw, adapt_edge, "/broken/gzip-truncated", {**TWO_G, "Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.get("content-encoding") == coding
    assert response.body == body


def test_zstd_page_of_two_frames_is_adapted_whole(adapt_edge, raw):
    response = get_raw(raw, adapt_edge, "/broken/zstd-frames", {**TWO_G, "Accept-Encoding": "identity"})
    assert response.status == 200 and response.get("edge-tier") == "lite"
    assert_spliced(response.body, without(upstreams.page_bytes("page")[0], "reviews", "ads"), to_tier="full")


def test_truncated_zstd_page_is_passed_through_unmodified(adapt_edge, raw):
    body, coding = upstreams.broken_body("zstd-truncated")
    response = get_raw(raw, adapt_edge, "/broken/zstd-truncated", {**TWO_G, "Accept-Encoding": "zstd"})
    assert response.status == 200
    assert response.get("content-encoding") == coding
    assert response.body == body
