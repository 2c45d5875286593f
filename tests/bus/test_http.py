"""The HTTP/1.1 request writer under the webhook sender: one buffer, no header can split it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from brokerflow.bus._http import ascii_host, host_header, request_bytes, target


def test_a_request_is_its_line_host_headers_length_and_body_in_one_buffer():
    data = request_bytes("POST", "/hook?a=1", "hooks.example:8443", {"X-Run": "7"}, b'{"a": 1}')
    assert data == (b"POST /hook?a=1 HTTP/1.1\r\nHost: hooks.example:8443\r\nX-Run: 7\r\n"
                    b"Content-Length: 8\r\n\r\n{\"a\": 1}")


def test_an_empty_post_says_length_zero_and_a_get_says_nothing():
    assert request_bytes("POST", "/", "h", {}, None).endswith(b"Content-Length: 0\r\n\r\n")
    assert b"Content-Length" not in request_bytes("GET", "/", "h", {}, None)


def test_a_host_given_by_the_caller_is_kept_and_not_sent_twice():
    data = request_bytes("GET", "/", "h", {"host": "other"}, None)
    assert data.count(b"ost:") == 1 and b"host: other\r\n" in data


@pytest.mark.parametrize("framing", [{"Content-Length": "0"}, {"transfer-encoding": "chunked"},
                                     {"Content-Length": "999", "Transfer-Encoding": "chunked"}])
def test_the_framing_is_the_senders_whatever_the_caller_says(framing):
    body = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: "
    data = request_bytes("POST", "/", "h", framing, body)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert rest == body
    assert b"transfer-encoding" not in head.lower()
    assert head.lower().count(b"content-length") == 1 and head.endswith(b"Content-Length: %d" % len(body))


@pytest.mark.parametrize("headers", [{"X-Bad": "a\r\nInjected: 1"}, {"X-Bad": "a\nb"}, {"X-Bad": "a\x00"},
                                     {"Bad Name": "v"}, {"Bad:Name": "v"}, {"": "v"}, {"X-Wide": "日本"}])
def test_a_header_that_could_split_the_request_is_refused(headers):
    with pytest.raises(ValueError):
        request_bytes("POST", "/", "h", headers, None)


def test_latin1_header_values_pass():
    assert b"X-Name: \xd1and\xfa" in request_bytes("POST", "/", "h", {"X-Name": "Ñandú"}, None)


@pytest.mark.parametrize(("scheme", "host", "port", "expected"), [
    ("http", "hooks.example", 80, "hooks.example"),
    ("https", "hooks.example", 443, "hooks.example"),
    ("https", "hooks.example", 80, "hooks.example:80"),
    ("http", "::1", 8080, "[::1]:8080"),
    ("http", "xn--bcher-kva.example", 80, "xn--bcher-kva.example"),
])
def test_the_host_header(scheme, host, port, expected):
    assert host_header(scheme, host, port) == expected


@pytest.mark.parametrize(("host", "expected"), [
    ("hooks.example", "hooks.example"), ("Hooks.Example.", "hooks.example"), ("127.0.0.1", "127.0.0.1"),
    ("::1", "::1"), ("bücher.example", "xn--bcher-kva.example"),
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2008; Python's own codec (2003) says fass.de: another domain
])
def test_hosts_go_out_in_idna_2008(host, expected):
    assert ascii_host(host) == expected


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "a..b", "-lead.example", "under_score.example", ""])
def test_a_host_that_is_no_host_name_is_refused(host):
    with pytest.raises(ValueError):
        ascii_host(host)


@pytest.mark.parametrize(("url", "expected"), [
    ("http://h", "/"),
    ("http://h/a/b?x=1&y=%20", "/a/b?x=1&y=%20"),
    ("http://h/a b/é?q=x y#frag", "/a%20b/%C3%A9?q=x%20y"),
])
def test_the_request_target_is_path_and_query_percent_encoded_without_the_fragment(url, expected):
    assert target(urlsplit(url)) == expected
