import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.pipeline import signals
from edge.pipeline.signals import MAX_HEADER_BYTES, read_signals

LOW_END_ANDROID = (
    "Mozilla/5.0 (Linux; Android 8.1.0; SM-J260F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
OPERA_MINI = "Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16"


@pytest.mark.parametrize(
    ("ua", "device_class", "os", "low_end"),
    [
        (LOW_END_ANDROID, "phone", "android", True),
        (IPHONE, "phone", "ios", False),
        (DESKTOP, "desktop", "windows", False),
        (TABLET, "tablet", "android", False),
        (IPAD, "tablet", "ios", False),
        (BOT, "bot", None, None),
        (OPERA_MINI, "phone", "android", True),
    ],
)
def test_user_agent_gives_device_class_os_and_low_end(ua, device_class, os, low_end):
    s = read_signals({"user-agent": ua})
    assert (s.device_class, s.os, s.low_end) == (device_class, os, low_end)


def test_device_memory_decides_low_end_over_the_user_agent():
    assert read_signals({"user-agent": IPHONE, "device-memory": "1"}).low_end is True
    assert read_signals({"user-agent": LOW_END_ANDROID, "sec-ch-device-memory": "8"}).low_end is False


def test_client_hints():
    s = read_signals(
        {
            "sec-ch-ua-mobile": "?1",
            "sec-ch-ua-model": '"Pixel 3a"',
            "sec-ch-ua-platform": '"Android"',
            "dpr": "2.75",
            "viewport-width": "393",
        }
    )
    assert (s.mobile_hint, s.model_hint, s.platform_hint, s.dpr, s.viewport_width) == (
        True,
        "Pixel 3a",
        "Android",
        2.75,
        393.0,
    )
    assert s.device_class == "phone"  # the mobile hint alone says phone


def test_network_hints():
    s = read_signals({"ect": "3G", "rtt": "450", "downlink": "0.4", "save-data": "on"})
    assert (s.ect, s.rtt_ms, s.downlink_kbps, s.save_data) == ("3g", 450.0, 400.0, True)


def test_edge_cell_structured_field():
    s = read_signals({"edge-cell": 'id="404-45-1207-88123", radio=lte, rsrp=-101, rsrq=-14, sinr=3, cqi=7, speed=22'})
    assert (s.cell_id, s.radio, s.rsrp, s.rsrq, s.sinr, s.cqi, s.speed) == (
        "404-45-1207-88123",
        "lte",
        -101.0,
        -14.0,
        3.0,
        7.0,
        22.0,
    )


@pytest.mark.parametrize(("raw", "radio"), [("hspa+", "hspa"), ("GPRS", "gprs"), ("5g", "nr"), ("umts", "umts"), ("wifi", None)])
def test_radio_names_are_normalised(raw, radio):
    assert read_signals({"edge-cell": f'radio="{raw}"'}).radio == radio


def test_last_request_gives_throughput_and_tower_switch():
    s = read_signals({"edge-cell": 'id="b"', "edge-last-request": 'ms=4000, ttfb=1500, bytes=40000, cell="a"'})
    assert s.last_kbps == 40000 * 8 / 2500 and s.last_rtt_ms == 1500.0
    assert s.tower_switch is True
    # Without a time to first byte, a 40 KB response's time is mostly round trips: no throughput.
    s = read_signals({"edge-last-request": "ms=4000, bytes=40000"})
    assert (s.last_ms, s.last_kbps) == (4000.0, None)
    assert read_signals({"edge-last-request": "ms=4000, bytes=400000"}).last_kbps == 800.0
    assert read_signals({"edge-cell": 'id="a"', "edge-last-request": 'ms=1, bytes=1, cell="a"'}).tower_switch is False
    assert read_signals({"edge-last-request": "ms=100"}).last_kbps is None


BAD_HEADERS = [
    {"ect": "bogus"},
    {"rtt": "-5"},
    {"rtt": "nan"},
    {"rtt": "inf"},
    {"downlink": "1e999"},
    {"downlink": "-1"},
    {"device-memory": "-1"},
    {"dpr": "0"},
    {"viewport-width": "wide"},
    {"sec-ch-ua-mobile": "maybe"},
    {"sec-ch-ua-model": "no quotes"},
    {"edge-cell": "id=(("},
    {"edge-cell": 'radio=lte, rsrp="x"'},
    {"edge-cell": "rsrp=-5000, cqi=99, speed=-1"},
    {"edge-cell": 'id="' + "x" * 200 + '"'},
    {"edge-cell": "x" * 10_000},
    {"edge-cell": "id=\u00e9"},
    {"edge-last-request": "ms=-1, bytes=abc"},
    {"edge-last-request": "ms=0, bytes=100"},
    {"edge-last-request": 'ms="100", bytes="100"'},
    {"user-agent": "x" * 10_000},
    {"user-agent": ""},
    {"ect": "4g" + " " * (MAX_HEADER_BYTES + 1)},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda h: repr(h)[:40])
def test_malformed_or_absurd_values_become_missing_signals(headers):
    s = read_signals(headers)
    assert s.ect is None and s.rtt_ms is None and s.downlink_kbps is None
    assert s.device_memory is None and s.dpr is None and s.viewport_width is None
    assert s.mobile_hint is None and s.model_hint is None
    assert s.rsrp is None and s.cqi is None and s.speed is None and s.cell_id is None
    assert s.last_kbps is None and s.last_ms is None
    assert s.device_class is None


def test_one_bad_member_drops_only_that_member():
    s = read_signals({"edge-cell": 'id="c", radio=edge, rsrp=-5000, sinr=4'})
    assert (s.cell_id, s.radio, s.rsrp, s.sinr) == ("c", "edge", None, 4.0)


HINT_VALUES = {
    "user-agent": [LOW_END_ANDROID, IPHONE, DESKTOP, TABLET, IPAD, BOT, OPERA_MINI, "x" * (MAX_HEADER_BYTES + 1), ""],
    "sec-ch-ua-mobile": ["?1", "?0", "1"],
    "sec-ch-ua-model": ['"SM-J260F"', '""'],
    "sec-ch-ua-platform": ['"Android"', "Android"],
    "device-memory": ["0.5", "8", "-1"],
    "sec-ch-device-memory": ["2"],
    "dpr": ["2.75", "99"],
    "viewport-width": ["412", "abc"],
    "ect": ["2g", "4g", "SLOW-2G", "5g"],
    "rtt": ["150", "nan", "-5"],
    "downlink": ["1.5", "inf"],
    "save-data": ["on", "off"],
    "edge-cell": ['id="c1", radio=lte, rsrp=-101'],
    "cookie": ["a=1"],
}


@given(st.dictionaries(st.sampled_from(sorted(HINT_VALUES)), st.integers(0, 8), max_size=8))
def test_read_signals_memo_gives_what_reading_the_headers_gives(choice):
    """read_signals keeps the device and hint fields by the headers' values: the same Signals as a fresh read, a new one each time."""
    headers = {name: HINT_VALUES[name][i % len(HINT_VALUES[name])] for name, i in choice.items()}
    signals._memo.clear()
    fresh = read_signals(headers)
    fresh.rtt_ms = fresh.tcp_rtt_ms = 12345.0  # a caller's change must not reach the next read
    again = read_signals(dict(headers))
    signals._memo.clear()
    assert again == read_signals(headers) and again is not read_signals(headers)


def test_read_signals_memo_is_bounded():
    signals._memo.clear()
    for i in range(signals._MEMO_ENTRIES + 10):
        read_signals({"rtt": str(i)})
    read_signals({"user-agent": "x" * signals._MEMO_KEY_CHARS, "ect": "2g"})  # too long to keep
    assert len(signals._memo) <= signals._MEMO_ENTRIES
    assert not any(key[0] for key in signals._memo)
