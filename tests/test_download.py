"""Downloads are kept only when verified; without TomoBank the stand-in takes over, labelled."""

import functools
import hashlib
import logging
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simulate import download
from simulate.io import read_attrs

CLOSED = "http://127.0.0.1:9/tomo_00001.h5"   # the discard port: nothing listens, refused at once
SHALE = ["--size", "48", "--slices", "8", "--n-angles", "60", "--detector", "48"]
PAYLOAD = b"DXchange stand-in bytes " * 4096


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve ``tmp_path/served`` on 127.0.0.1 (a free port) for the test's duration."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    (root / "tomo.h5").write_bytes(PAYLOAD)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _sha(blob):
    return hashlib.sha256(blob).hexdigest()


def test_fetch_with_the_right_checksum_keeps_the_file(server, tmp_path):
    base, _ = server
    target = tmp_path / "data" / "tomo_00001.h5"
    got = download.fetch(f"{base}/tomo.h5", target, sha256=_sha(PAYLOAD), size=len(PAYLOAD), progressbar=False)
    assert got == target and target.read_bytes() == PAYLOAD
    # a second call finds the verified file and keeps it
    download.fetch(f"{base}/tomo.h5", target, sha256=_sha(PAYLOAD), progressbar=False)
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["tomo_00001.h5"]


def test_fetch_with_a_wrong_checksum_leaves_no_file(server, tmp_path):
    base, _ = server
    target = tmp_path / "data" / "tomo_00001.h5"
    with pytest.raises(download.DownloadError, match="checksum mismatch"):
        download.fetch(f"{base}/tomo.h5", target, sha256=_sha(b"something else"), progressbar=False)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []   # pooch removed its temporary file too


def test_fetch_failure_removes_a_stale_file_at_the_target(server, tmp_path):
    """Pooch keeps an existing target when its re-download fails: ours must not."""
    base, _ = server
    target = tmp_path / "tomo_00001.h5"
    target.write_bytes(b"stale partial download")
    with pytest.raises(download.DownloadError):
        download.fetch(f"{base}/tomo.h5", target, sha256=_sha(b"something else"), progressbar=False)
    assert not target.exists()


def test_fetch_refuses_without_checksum(server, tmp_path):
    base, _ = server
    target = tmp_path / "tomo_00001.h5"
    with pytest.raises(download.DownloadError, match="unverified"):
        download.fetch(f"{base}/tomo.h5", target, sha256=None, progressbar=False)
    assert not target.exists()
    with pytest.raises(download.DownloadError, match="64 hex"):
        download.fetch(f"{base}/tomo.h5", target, sha256="abc", progressbar=False)
    download.fetch(f"{base}/tomo.h5", target, sha256=None, allow_unverified=True, progressbar=False)
    assert target.read_bytes() == PAYLOAD


def test_fetch_wrong_size_or_missing_url_leaves_no_file(server, tmp_path):
    base, _ = server
    target = tmp_path / "tomo_00001.h5"
    with pytest.raises(download.DownloadError, match="size"):
        download.fetch(f"{base}/tomo.h5", target, sha256=_sha(PAYLOAD), size=len(PAYLOAD) + 1, progressbar=False)
    assert not target.exists()
    with pytest.raises(download.DownloadError, match="download failed"):   # HTTP 404
        download.fetch(f"{base}/absent.h5", target, sha256=_sha(PAYLOAD), progressbar=False)
    assert not target.exists()


def test_network_available(server):
    base, _ = server
    assert download.network_available(base + "/tomo.h5", timeout=2)
    assert not download.network_available(CLOSED, timeout=2)
    assert not download.network_available("not a url", timeout=2)


def test_auto_falls_back_to_the_stand_in(tmp_path, caplog):
    out = tmp_path / "raw" / "tomo_00001.h5"
    with caplog.at_level(logging.WARNING, logger="simulate.download"):
        got = download.obtain_raw("tomo_00001", out, mode="auto",
                                  tomobank_entry={"url": CLOSED, "sha256": "0" * 64}, synthetic_args=SHALE)
    assert got == "synthetic-shale"
    attrs = read_attrs(out)
    assert attrs["source"] == "synthetic-shale" and attrs["dataset"] == "tomo_00001"
    assert download.FALLBACK_WARNING in caplog.text
    assert download.FALLBACK_WARNING == ("TomoBank unreachable: using the synthetic stand-in "
                                         "(source: synthetic-shale)")


def test_auto_downloads_when_reachable_and_verified(server, tmp_path):
    base, _ = server
    out = tmp_path / "tomo_00001.h5"
    entry = {"url": f"{base}/tomo.h5", "sha256": _sha(PAYLOAD), "size": len(PAYLOAD)}
    assert download.obtain_raw("tomo_00001", out, mode="auto", tomobank_entry=entry, synthetic_args=SHALE) == "tomobank"
    assert out.read_bytes() == PAYLOAD
    # reachable but no checksum: never keep it unverified -> the stand-in
    out2 = tmp_path / "tomo_00002.h5"
    got = download.obtain_raw("tomo_00002", out2, mode="auto", tomobank_entry={"url": f"{base}/tomo.h5"},
                              synthetic_args=SHALE)
    assert got == "synthetic-shale" and read_attrs(out2)["source"] == "synthetic-shale"


def test_download_mode_never_falls_back(server, tmp_path):
    out = tmp_path / "tomo_00001.h5"
    with pytest.raises(download.DownloadError, match="unreachable"):
        download.obtain_raw("tomo_00001", out, mode="download",
                            tomobank_entry={"url": CLOSED, "sha256": "0" * 64}, synthetic_args=SHALE)
    assert not out.exists()
    base, _ = server
    with pytest.raises(download.DownloadError, match="unverified"):
        download.obtain_raw("tomo_00001", out, mode="download", tomobank_entry={"url": f"{base}/tomo.h5"})
    assert not out.exists()
    with pytest.raises(download.DownloadError, match="checksum mismatch"):  # a failed download is an error in auto too
        download.obtain_raw("tomo_00001", out, mode="auto",
                            tomobank_entry={"url": f"{base}/tomo.h5", "sha256": "1" * 64}, synthetic_args=SHALE)
    assert not out.exists()


def test_synthetic_mode_ignores_the_network(server, tmp_path):
    base, _ = server
    out = tmp_path / "tomo_00003.h5"
    entry = {"url": f"{base}/tomo.h5", "sha256": _sha(PAYLOAD)}
    assert download.obtain_raw("tomo_00003", out, mode="synthetic", tomobank_entry=entry,
                               synthetic_args=[*SHALE, "--facility", "sls"]) == "synthetic-shale"
    attrs = read_attrs(out)
    assert attrs["source"] == "synthetic-shale" and attrs["facility"] == "sls"


def test_cli_one_line(tmp_path, capsys):
    out = tmp_path / "tomo_00001.h5"
    download.main([str(out), "--name", "tomo_00001", "--url", CLOSED, "--sha256", "", "--mode", "auto",
                   "--", *SHALE, "--preset", "hornby"])
    attrs = read_attrs(out)
    assert attrs["source"] == "synthetic-shale" and attrs["sample"] == "hornby"
    bad = tmp_path / "tomo_00002.h5"
    with pytest.raises(SystemExit) as exc:
        download.main([str(bad), "--name", "tomo_00002", "--url", CLOSED, "--sha256", "0" * 64,
                       "--mode", "download", "--", *SHALE])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "127.0.0.1:9" in err[-1]
    assert not bad.exists()
