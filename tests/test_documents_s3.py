"""Documents and application attachments in an S3-compatible bucket (MUSUBI_STORAGE=s3): a real S3 protocol server
on a loopback port, the bucket read directly to prove where the bytes went, the firewall unchanged in front of it,
/readyz reporting the store, and a store that stops answering giving 503 in the API's error shape, never a 500."""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import World
from flask import Flask
from moto.server import ThreadedMotoServer
from test_application_attachments import attach, filed
from test_applications import A
from test_documents import BASE, PDF, PNG, new_doc, upload

from federation.config import ConfigError

REGION = "ap-northeast-1"
KEY_ID, SECRET = "musubi-test-key", "musubi-test-secret"
OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("union-b", "badmin"), ("union-b", "b1")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bucket:
    """One S3 protocol server and one bucket in it, read with a client of the test's own (not the app's)."""

    def __init__(self, name: str, prefix: str) -> None:
        self.name, self.prefix = name, prefix
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None
        self.start()
        self.client: Any = boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        try:
            self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        except Exception:
            self.close()
            raise

    def start(self) -> None:
        # The server keeps its buckets in this process, so a restart on the same port finds them again.
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        # start() waits for a ready signal that never comes if the port cannot be bound: wait for it at arm's length.
        starter = threading.Thread(target=server.start, daemon=True)
        starter.start()
        starter.join(10)
        if starter.is_alive():
            raise RuntimeError(f"the S3 test server did not start on port {self.port}")
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def keys(self) -> list[str]:
        """Every object in the bucket, under the prefix or not."""
        return sorted(o["Key"] for o in self.client.list_objects_v2(Bucket=self.name).get("Contents", []))

    def read(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def close(self) -> None:
        self.client.close()
        self.stop()


@pytest.fixture
def bucket(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    from federation.space.documents import s3

    b = Bucket(f"musubi-{uuid.uuid4().hex[:12]}", "union-docs/prod/")
    # Nothing from the machine's own AWS setup may decide which credentials or region the test uses.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    # The local folder is still named: the tests prove nothing is written there.
    monkeypatch.setenv("MUSUBI_STORAGE_DIR", str(tmp_path / "local-documents"))
    monkeypatch.setenv("MUSUBI_STORAGE", "s3")
    monkeypatch.setenv("MUSUBI_S3_BUCKET", b.name)
    monkeypatch.setenv("MUSUBI_S3_ENDPOINT_URL", b.url)
    monkeypatch.setenv("MUSUBI_S3_REGION", REGION)
    # Slashes around the prefix are the operator's habit, not part of the key.
    monkeypatch.setenv("MUSUBI_S3_PREFIX", "/union-docs/prod/")
    monkeypatch.setenv("MUSUBI_S3_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("MUSUBI_S3_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("MUSUBI_S3_SSE", "AES256")
    # Two attempts: the retry path runs, and a test of a stopped server does not wait out three backoffs.
    monkeypatch.setenv("MUSUBI_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("MUSUBI_S3_CONNECT_TIMEOUT_SECONDS", "2")
    yield b
    s3.reset_clients()
    b.close()
    # The server thread is gone with its port: nothing listens there any more.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", b.port)) != 0


def _document_keys(app: Flask, doc_id: int) -> list[str]:
    from federation.extensions import db
    from federation.space.documents.models import DocumentVersion

    with app.app_context():
        return [k for (k,) in db.session.query(DocumentVersion.storage_key).filter_by(document_id=doc_id)
                .order_by(DocumentVersion.version)]


def _attachment_key(app: Flask, attachment_id: int) -> str:
    from federation.extensions import db
    from federation.space.applications.models import ApplicationAttachment

    with app.app_context():
        return db.session.get(ApplicationAttachment, attachment_id).storage_key


def _nothing_on_disk(tmp_path: Path) -> bool:
    folder = tmp_path / "local-documents"
    return not folder.exists() or not any(folder.rglob("*"))


def test_upload_versions_download_and_delete_go_through_the_bucket(world: World, bucket: Bucket,
                                                                  tmp_path: Path) -> None:
    doc_id = new_doc(world)
    (key1,) = _document_keys(world.app, doc_id)
    # Exactly one object, under the prefix, named by the random key and nothing the client sent.
    assert bucket.keys() == [f"union-docs/prod/{key1}"]
    assert bucket.read(f"union-docs/prod/{key1}") == PDF
    head = bucket.client.head_object(Bucket=bucket.name, Key=f"union-docs/prod/{key1}")
    assert head["ServerSideEncryption"] == "AES256"

    r = world.as_("union-a", "a2").get(f"{BASE}/{doc_id}/download")
    assert r.status_code == 200 and r.data == PDF
    assert r.headers["Content-Type"] == "application/pdf"

    r = upload(world.as_("union-a", "aeditor"), PNG, name="v2.png", path=f"{BASE}/{doc_id}/versions")
    assert r.status_code == 201, r.get_json()
    key1_again, key2 = _document_keys(world.app, doc_id)
    assert key1_again == key1 and key2 != key1
    assert bucket.keys() == sorted([f"union-docs/prod/{key1}", f"union-docs/prod/{key2}"])
    assert bucket.read(f"union-docs/prod/{key2}") == PNG
    member = world.as_("union-a", "a1")
    assert member.get(f"{BASE}/{doc_id}/download").data == PNG
    assert member.get(f"{BASE}/{doc_id}/download", query_string={"version": 1}).data == PDF

    assert world.as_("union-a", "aeditor").delete(f"{BASE}/{doc_id}").status_code == 204
    assert bucket.keys() == []
    assert _nothing_on_disk(tmp_path)


def test_missing_object_is_file_not_found_like_the_local_store(world: World, bucket: Bucket) -> None:
    from federation.space.documents.storage import new_key, storage

    with world.app.test_request_context():
        store = storage()
        with pytest.raises(FileNotFoundError):
            store.get(new_key())
        # Deleting what is not there is not an error either, as with the local store.
        store.delete(new_key())
        # The key check stays in front of the bucket: nothing else reaches it as a key.
        with pytest.raises(ValueError):
            store.get("../" + new_key()[3:])
    assert bucket.keys() == []


def test_application_attachments_are_stored_in_the_bucket(world: World, bucket: Bucket, tmp_path: Path) -> None:
    app = filed(world)
    r = attach(world.as_("union-a", "a1"), app["id"])
    assert r.status_code == 201, r.get_json()
    key = _attachment_key(world.app, r.get_json()["id"])
    assert bucket.keys() == [f"union-docs/prod/{key}"]
    assert bucket.read(f"union-docs/prod/{key}") == PDF
    for who in ("a1", "aadmin"):
        d = world.as_("union-a", who).get(f"{A}/applications/{app['id']}/attachments/{r.get_json()['id']}")
        assert d.status_code == 200 and d.data == PDF, who
    assert _nothing_on_disk(tmp_path)


def test_standard_aws_credentials_are_used_when_musubi_ones_are_unset(world: World, bucket: Bucket,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSUBI_S3_ACCESS_KEY_ID")
    monkeypatch.delenv("MUSUBI_S3_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    doc_id = new_doc(world)
    assert world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download").data == PDF
    assert len(bucket.keys()) == 1


def _doc_and_attachment(world: World) -> tuple[int, int, int]:
    doc_id = new_doc(world)
    app = filed(world)
    r = attach(world.as_("union-a", "a1"), app["id"])
    assert r.status_code == 201, r.get_json()
    return doc_id, app["id"], r.get_json()["id"]


def _assert_outsiders_get_404(world: World, doc_id: int, app_id: int, attachment_id: int) -> None:
    for tenant, login_id in OUTSIDERS:
        who = world.as_(tenant, login_id)
        for path in (f"{BASE}/{doc_id}/download", f"{A}/applications/{app_id}/attachments/{attachment_id}",
                     f"/api/v1/tenants/union-b/documents/{doc_id}/download"):
            r = who.get(path)
            assert r.status_code == 404, (tenant, login_id, path, r.status_code)
            assert r.get_json()["error"]["message"] == "not found"


def test_firewall_still_answers_404_to_the_federation_and_union_b(world: World, bucket: Bucket) -> None:
    doc_id, app_id, attachment_id = _doc_and_attachment(world)
    _assert_outsiders_get_404(world, doc_id, app_id, attachment_id)
    assert len(bucket.keys()) == 2


def test_readyz_reports_storage_and_is_not_ready_while_s3_is_down(world: World, bucket: Bucket) -> None:
    r = world.client.get("/readyz")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["ok"] is True
    # The new entry sits beside the existing ones, which keep their names and values.
    assert body["checks"] == {"database": "ok", "jobs": "in-process", "storage": "ok"}

    bucket.stop()
    r = world.client.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["ok"] is False
    assert body["checks"]["database"] == "ok" and body["checks"]["jobs"] == "in-process"
    assert body["checks"]["storage"].startswith("error: ")

    bucket.start()
    r = world.client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["checks"]["storage"] == "ok"


def test_readyz_names_a_missing_bucket(world: World, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_S3_BUCKET", "musubi-no-such-bucket")
    r = world.client.get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["storage"] == "error: ClientError"


def test_s3_down_gives_503_json_and_firewall_answers_first(world: World, bucket: Bucket,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    doc_id, app_id, attachment_id = _doc_and_attachment(world)
    bucket.stop()
    member = world.as_("union-a", "a1")
    for path in (f"{BASE}/{doc_id}/download", f"{A}/applications/{app_id}/attachments/{attachment_id}"):
        r = member.get(path)
        assert r.status_code == 503, (path, r.status_code, r.get_json())
        assert r.get_json() == {"error": {"code": "storage_unavailable",
                                          "message": "the document store cannot be reached; try again later",
                                          "fields": {}}}
    # Outsiders are refused before the store is asked: the same 404 as ever, not a hint that the union has a file.
    _assert_outsiders_get_404(world, doc_id, app_id, attachment_id)

    # An upload that cannot be stored leaves no document row behind.
    r = upload(world.as_("union-a", "aeditor"), title="届かない議案書")
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "storage_unavailable"
    assert [d["id"] for d in member.get(BASE).get_json()["items"]] == [doc_id]

    # A delete succeeds for readers at once; the file it could not remove is logged by key for the operator.
    (key,) = _document_keys(world.app, doc_id)
    with caplog.at_level(logging.WARNING, logger="musubi.storage"):
        assert world.as_("union-a", "aeditor").delete(f"{BASE}/{doc_id}").status_code == 204
    assert any(key in rec.getMessage() for rec in caplog.records)
    assert member.get(f"{BASE}/{doc_id}/download").status_code == 404

    # The store comes back: the same process reads from it again with no restart, and the orphan is still there.
    bucket.start()
    assert member.get(f"{A}/applications/{app_id}/attachments/{attachment_id}").data == PDF
    assert f"union-docs/prod/{key}" in bucket.keys()


# Mis-configuration: one ConfigError naming the setting, at startup and at first use, before the SDK is involved.
BAD_SETTINGS = [
    ({"MUSUBI_STORAGE": "gcs"}, "MUSUBI_STORAGE must be one of local, s3, got 'gcs'"),
    ({"MUSUBI_STORAGE": "s3"}, "MUSUBI_S3_BUCKET must be set when MUSUBI_STORAGE=s3"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "s3://musubi/docs"}, "MUSUBI_S3_BUCKET must be a bare bucket"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "b", "MUSUBI_S3_ENDPOINT_URL": "minio.local:9000"},
     "MUSUBI_S3_ENDPOINT_URL must start with http"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "b", "MUSUBI_S3_ACCESS_KEY_ID": "k"},
     "MUSUBI_S3_ACCESS_KEY_ID and MUSUBI_S3_SECRET_ACCESS_KEY must be set together"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "b", "MUSUBI_S3_SSE": "yes"}, "MUSUBI_S3_SSE must be one of"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "b", "MUSUBI_S3_MAX_ATTEMPTS": "0"},
     "MUSUBI_S3_MAX_ATTEMPTS must be 1 or more"),
    ({"MUSUBI_STORAGE": "s3", "MUSUBI_S3_BUCKET": "b", "MUSUBI_S3_READ_TIMEOUT_SECONDS": "soon"},
     "MUSUBI_S3_READ_TIMEOUT_SECONDS must be a whole number"),
]


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("MUSUBI_S3_BUCKET", "MUSUBI_S3_ENDPOINT_URL", "MUSUBI_S3_ACCESS_KEY_ID",
                 "MUSUBI_S3_SECRET_ACCESS_KEY", "MUSUBI_S3_SSE", "MUSUBI_S3_MAX_ATTEMPTS",
                 "MUSUBI_S3_READ_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("env,message", BAD_SETTINGS)
def test_misconfigured_storage_stops_startup_naming_the_setting(app: Flask, monkeypatch: pytest.MonkeyPatch,
                                                                env: dict[str, str], message: str) -> None:
    from federation import create_app

    _set(monkeypatch, env)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        create_app({"TESTING": True})
    # Raised by the settings code itself, not from inside the SDK.
    assert caught.traceback[-1].path.name in ("config.py", "s3.py")


@pytest.mark.parametrize("env,message", BAD_SETTINGS[:2])
def test_misconfigured_storage_at_first_use_is_named_and_readyz_is_not_ready(
        world: World, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    from federation.space.documents.storage import storage

    _set(monkeypatch, env)
    with world.app.test_request_context(), pytest.raises(ConfigError, match=message):
        storage()
    r = world.client.get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["storage"] == "error: ConfigError"
    assert r.get_json()["checks"]["database"] == "ok"


def _accept_waiting(sock: socket.socket) -> int:
    """How many connections wait on a listening socket (each one an attempt by the client); closes them."""
    sock.settimeout(0.2)
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            return count
        conn.close()
        count += 1


def test_store_that_accepts_but_never_answers_times_out_into_503(world: World, bucket: Bucket,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    doc_id = new_doc(world)
    # A listening socket nobody answers on: the connection opens, the answer never comes.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        monkeypatch.setenv("MUSUBI_S3_ENDPOINT_URL", f"http://127.0.0.1:{hung.getsockname()[1]}")
        monkeypatch.setenv("MUSUBI_S3_READ_TIMEOUT_SECONDS", "1")
        started = time.monotonic()
        r = world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download")
        elapsed = time.monotonic() - started
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "storage_unavailable"
        # MUSUBI_S3_MAX_ATTEMPTS=2 is two connections in all, each given up after the one-second read timeout.
        assert _accept_waiting(hung) == 2
        assert 2 <= elapsed < 6, elapsed
        started = time.monotonic()
        r = world.client.get("/readyz")
        assert r.status_code == 503 and r.get_json()["checks"]["storage"] == "error: ReadTimeoutError"
        # The readiness probe tries once, so a hung store cannot hold it past its own timeout.
        assert _accept_waiting(hung) == 1
        assert time.monotonic() - started < 3
