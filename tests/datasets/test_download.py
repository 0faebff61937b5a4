import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench.core.errors import DataCorruptError, DataMissingError, UsageError
from bench.datasets.download import (
    Archive,
    ExtractLimits,
    check_file,
    download,
    extract,
    url_filename,
)
from tests.datasets.loopback import serve


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    with serve(folder) as url:
        yield folder, url


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_verifies_checksum_and_streams(site, tmp_path):
    folder, url = site
    payload = b"x" * 3_000_000  # several chunks
    (folder / "a.bin").write_bytes(payload)
    seen = []
    dest = tmp_path / "out" / "a.bin"
    download(f"{url}/a.bin", dest, Archive("a.bin", sha256=_sha(payload)),
             progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload)) and len(seen) >= 3
    assert _leftovers(dest.parent) == ["a.bin"]


def test_corrupted_download_is_rejected_and_leaves_nothing(site, tmp_path):
    folder, url = site
    good = b"the real archive"
    (folder / "a.tar.gz").write_bytes(b"the real archivX")  # one byte flipped on the server
    dest = tmp_path / "out" / "a.tar.gz"
    with pytest.raises(DataCorruptError, match="sha256"):
        download(f"{url}/a.tar.gz", dest, Archive("a.tar.gz", sha256=_sha(good)))
    assert _leftovers(dest.parent) == []
    with pytest.raises(DataCorruptError, match="md5"):
        download(f"{url}/a.tar.gz", dest, Archive("a.tar.gz", md5=hashlib.md5(good).hexdigest()))
    assert _leftovers(dest.parent) == []


def test_failed_download_leaves_nothing(site, tmp_path):
    _, url = site
    dest = tmp_path / "out" / "missing.zip"
    with pytest.raises(DataMissingError, match="404"):
        download(f"{url}/missing.zip", dest, Archive("missing.zip", sha256="0" * 64))
    assert _leftovers(dest.parent) == []


def test_wrong_size_is_rejected(site, tmp_path):
    folder, url = site
    (folder / "b.bin").write_bytes(b"12345")
    with pytest.raises(DataCorruptError, match="bytes"):
        download(f"{url}/b.bin", tmp_path / "b.bin", Archive("b.bin", size=6))
    assert not (tmp_path / "b.bin").exists()


def test_check_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert check_file(path, Archive("f", sha256=_sha(b"abc"))) == "sha256 ok"
    assert "unknown" in check_file(path, Archive("f"))
    with pytest.raises(DataCorruptError, match="corrupted"):
        check_file(path, Archive("f", sha256=_sha(b"abd")))


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:xz", ".tar.xz"),
                                         ("w", ".tar")])
def test_extract_tar(tmp_path, mode, suffix):
    archive = tmp_path / f"a{suffix}"
    archive.write_bytes(_tar_bytes({"top/x.txt": b"1", "top/sub/y.txt": b"2"}, mode))
    added = extract(archive, tmp_path / "target")
    assert [p.name for p in added] == ["top"]
    assert (tmp_path / "target/top/sub/y.txt").read_bytes() == b"2"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


def test_extract_zip(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("OCT2017 /train/NORMAL/a.jpeg", b"j")
    extract(archive, tmp_path / "t")
    assert (tmp_path / "t/OCT2017 /train/NORMAL/a.jpeg").is_file()


def _tar_with(tmp_path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data) if data else None)
    return archive


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("member,why", [
    (tarfile.TarInfo("../escape.txt"), "leaves the target"),
    (tarfile.TarInfo("a/../../escape.txt"), "leaves the target"),
    (tarfile.TarInfo("/tmp/bench-abs-escape.txt"), "absolute"),
    (_link("link", "/etc/passwd", tarfile.SYMTYPE), "link"),
    (_link("hard", "../outside", tarfile.LNKTYPE), "link"),
])
def test_tar_path_traversal_is_refused_before_writing(tmp_path, member, why):
    archive = _tar_with(tmp_path, member, b"evil" if member.isfile() else b"")
    target = tmp_path / "deep" / "target"
    with pytest.raises(DataCorruptError, match=why):
        extract(archive, target)
    assert _leftovers(target) == []  # not even the harmless member
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not Path("/tmp/bench-abs-escape.txt").exists()


def test_zip_traversal_and_symlink_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr("../escape.txt", b"evil")
    with pytest.raises(DataCorruptError, match="leaves the target"):
        extract(archive, tmp_path / "t")
    assert _leftovers(tmp_path / "t") == [] and not (tmp_path / "escape.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataCorruptError, match="link"):
        extract(link, tmp_path / "t2")


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("limits,flag", [
    (ExtractLimits(max_bytes=100_000), "--max-extract-gib"),
    (ExtractLimits(max_members=2), "--max-members"),
    (ExtractLimits(max_ratio=10), "--max-ratio"),
])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_extraction_limits_refuse_before_writing(tmp_path, limits, flag, kind):
    members = {"top/a.bin": bytes(150_000), "top/b.bin": bytes(150_000), "top/c.txt": b"c"}
    archive = tmp_path / f"zeros.{kind}"
    if kind == "zip":
        _zip(archive, members)
    else:
        archive.write_bytes(_tar_bytes(members))
    target = tmp_path / "target"
    with pytest.raises(DataCorruptError, match=flag) as info:
        extract(archive, target, limits)
    message = str(info.value)
    assert "\n" not in message and str(archive) in message and "nothing was extracted" in message
    assert _leftovers(target) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in extract(archive, target)] == ["top"]  # the defaults allow it


@pytest.mark.parametrize("kind", ["zip", "tar.xz"])
def test_compression_bomb_is_refused_by_default(tmp_path, kind):
    zeros = bytes(8 << 20)
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        _zip(archive, {"fine.txt": b"ok", "zeros.bin": zeros}, zipfile.ZIP_BZIP2)
    else:
        archive.write_bytes(_tar_bytes({"fine.txt": b"ok", "zeros.bin": zeros}, "w:xz"))
    assert archive.stat().st_size < len(zeros) // 1000
    with pytest.raises(DataCorruptError, match="--max-ratio"):
        extract(archive, tmp_path / "t")
    assert _leftovers(tmp_path / "t") == []


@pytest.mark.parametrize("url", ["http://h/a/..", "http://h/a/.", "http://h/", "http://h",
                                 "http://h/a/%2e%2E", "http://h/a/%2F", "http://h/a/"])
def test_url_without_a_file_name_is_refused(url):
    with pytest.raises(UsageError, match="file name"):
        url_filename(url)
    assert url_filename("http://h/x/mvtec%20ad.tar.xz?download=1") == "mvtec ad.tar.xz"


def test_not_an_archive(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(DataCorruptError, match="not a valid zip"):
        extract(bad, tmp_path / "t")


def test_reachable_asks_for_headers_only(site):
    from bench.datasets.download import reachable

    folder, base = site
    (folder / "a.tar").write_bytes(b"x" * 1234)
    here = reachable(f"{base}/a.tar")
    assert here.ok and here.status == 200 and here.size == 1234
    gone = reachable(f"{base}/nothing-here.tar")
    assert not gone.ok and gone.status == 404 and "404" in gone.error
    closed = reachable("http://127.0.0.1:9/x.tar", timeout=2)
    assert not closed.ok and closed.status is None and "URLError" in closed.error


def test_reachable_falls_back_to_a_one_byte_get_where_head_is_refused():
    import http.server
    import threading

    from bench.datasets.download import reachable

    class NoHead(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_error(405)

        def do_GET(self):
            assert self.headers["Range"] == "bytes=0-0"
            self.send_response(206)
            self.send_header("Content-Range", "bytes 0-0/5000")
            self.send_header("Content-Length", "1")
            self.end_headers()
            self.wfile.write(b"x")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoHead)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = reachable(f"http://127.0.0.1:{server.server_address[1]}/big.tar")
    finally:
        server.shutdown()
        server.server_close()
    assert r.ok and r.status == 206 and r.size == 5000
