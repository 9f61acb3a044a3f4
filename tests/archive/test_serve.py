"""The loopback range server answers HEAD and byte ranges the way object stores do."""

from __future__ import annotations

import urllib.request

import pytest

from pipeline.archive.serve import serve_directory


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_ranges_heads_and_counts(tmp_path):
    payload = bytes(range(256)) * 4
    (tmp_path / "a.bin").write_bytes(payload)
    with serve_directory(tmp_path) as server:
        status, headers, body = _get(f"{server.url}/a.bin", {"Range": "bytes=10-19"})
        assert status == 206 and body == payload[10:20]
        assert headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
        _, _, tail = _get(f"{server.url}/a.bin", {"Range": "bytes=-5"})
        assert tail == payload[-5:]
        _, _, rest = _get(f"{server.url}/a.bin", {"Range": "bytes=1020-"})
        assert rest == payload[1020:]
        status, _, whole = _get(f"{server.url}/a.bin")
        assert status == 200 and whole == payload
        head = urllib.request.Request(f"{server.url}/a.bin", method="HEAD")
        with urllib.request.urlopen(head) as resp:
            assert resp.headers["Content-Length"] == str(len(payload))
            assert resp.headers["Accept-Ranges"] == "bytes"
        assert server.stats.range_requests == 3
        assert server.stats.bytes_sent == 10 + 5 + 4 + len(payload)


def test_missing_file_and_unsatisfiable_range(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    with serve_directory(tmp_path) as server:
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(f"{server.url}/nope.bin")
        assert missing.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as beyond:
            _get(f"{server.url}/a.bin", {"Range": "bytes=10-20"})
        assert beyond.value.code == 416


def test_the_stac_api_port_is_bound_before_any_database_work(tmp_path):
    """``serve_archive`` binds the API socket itself and hands it to uvicorn, so a port cannot
    be lost between choosing and binding it; a port in use is refused naming it and the fix,
    before PostgreSQL is touched."""
    import socket

    from pipeline.archive.stac_server import serve_archive
    from pipeline.errors import SourceError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        refused = pytest.raises(SourceError, match=rf"127\.0\.0\.1:{port}.*--port")
        with refused, serve_archive(tmp_path / "no-archive", port=port):
            pass
