"""The local Web Push service behaves like a browser vendor's: pywebpush's real requests get through it decrypted,
and it refuses what a real service refuses (RFC 8030, RFC 8291, RFC 8292)."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import http_ece
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from py_vapid import Vapid, Vapid01
from pywebpush import WebPusher, WebPushException, webpush

from devtools.local_push import LocalPushService, PushMessage, Rejection

SUB = "mailto:ops@musubi.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims() -> dict[str, str | int]:
    # pywebpush writes aud and exp into the dict it is given, so every send gets a fresh one.
    return {"sub": SUB}


def public_raw(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def es256_jwt(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any]) -> str:
    """A VAPID JWT signed independently of py_vapid, so the service is not only checked against its own peer."""
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
    body = b64url(json.dumps(payload).encode())
    der = key.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def vapid_header(
    key: ec.EllipticCurvePrivateKey,
    payload: dict[str, Any],
    *,
    advertised: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    return f"vapid t={es256_jwt(key, payload)}, k={b64url(public_raw(advertised or key))}"


def good_claims(service: LocalPushService, **overrides: Any) -> dict[str, Any]:
    return {"aud": service.origin, "exp": int(time.time()) + 3600, "sub": SUB, **overrides}


def encrypted(subscription: dict[str, Any], plaintext: bytes) -> bytes:
    return WebPusher(subscription).encode(plaintext)["body"]


def raw_push(
    subscription: dict[str, Any],
    *,
    authorization: str | None,
    body: bytes,
    session: requests.Session | None = None,
    **headers: str | None,
) -> requests.Response:
    sent = {"TTL": "60", "Content-Encoding": "aes128gcm"}
    if authorization is not None:
        sent["Authorization"] = authorization
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    return (session or requests).post(subscription["endpoint"], data=body, headers=sent, timeout=10)


@pytest.fixture(params=["threads", "asyncio"])
def push(request: pytest.FixtureRequest) -> Iterator[LocalPushService]:
    # Every check runs against both servers: the asyncio one the benchmarks use must answer as the tests' one does.
    with LocalPushService(asyncio_server=request.param == "asyncio") as service:
        yield service


@pytest.fixture
def vapid() -> Vapid:
    key = Vapid()
    key.generate_keys()
    return key


@pytest.fixture
def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- what pywebpush sends arrives, byte for byte ---


def test_pywebpush_push_arrives_decrypted_with_its_headers(push: LocalPushService, vapid: Vapid) -> None:
    subscription = push.new_subscription()
    payload = json.dumps({"title": "団体交渉のお知らせ", "body": "Strike vote Friday", "bin": "\u0000\u00ff"}).encode()

    response = webpush(
        subscription,
        payload.decode(),
        vapid_private_key=vapid,
        vapid_claims=claims(),
        ttl=3600,
        headers={"Urgency": "high", "Topic": "federation-notice-42"},
    )

    assert response.status_code == 201
    assert response.headers["Location"].startswith(push.origin + "/message/")
    assert response.request.headers["Authorization"].startswith("vapid t=")
    [message] = push.messages()
    assert isinstance(message, PushMessage)
    assert message.endpoint == subscription["endpoint"]
    assert message.payload == payload
    assert message.ttl == 3600
    assert message.urgency == "high"
    assert message.topic == "federation-notice-42"
    assert message.vapid_sub == SUB
    assert abs(message.received_at - time.time()) < 10
    assert push.rejected() == []


def test_subscription_looks_like_a_browsers(push: LocalPushService) -> None:
    subscription = push.new_subscription()
    assert set(subscription) == {"endpoint", "expirationTime", "keys"}
    assert subscription["endpoint"].startswith(push.origin + "/push/")
    assert subscription["expirationTime"] is None
    p256dh = unb64url(subscription["keys"]["p256dh"])
    assert len(p256dh) == 65 and p256dh[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    assert len(unb64url(subscription["keys"]["auth"])) == 16
    assert push.new_subscription()["endpoint"] != subscription["endpoint"]


def test_key_given_as_string_or_pem_file(push: LocalPushService, vapid: Vapid, tmp_path: Path) -> None:
    subscription = push.new_subscription()
    raw_private = b64url(vapid.private_key.private_numbers().private_value.to_bytes(32, "big"))
    pem_file = tmp_path / "vapid.pem"
    vapid.save_key(str(pem_file))

    webpush(subscription, "raw key", vapid_private_key=raw_private, vapid_claims=claims())
    webpush(subscription, "pem file", vapid_private_key=str(pem_file), vapid_claims=claims())

    assert [m.payload for m in push.messages(subscription["endpoint"])] == [b"raw key", b"pem file"]


def test_legacy_webpush_scheme_with_crypto_key(push: LocalPushService) -> None:
    legacy = Vapid01()
    legacy.generate_keys()
    subscription = push.new_subscription()

    response = webpush(subscription, "draft-01 sender", vapid_private_key=legacy, vapid_claims=claims())

    assert response.request.headers["Authorization"].startswith("WebPush ")
    assert response.request.headers["Crypto-Key"].startswith("p256ecdsa=")
    assert push.messages()[0].payload == b"draft-01 sender"


def test_messages_filter_by_endpoint_in_arrival_order(push: LocalPushService, vapid: Vapid) -> None:
    first, second = push.new_subscription(), push.new_subscription()
    for subscription, text in [(first, "a"), (second, "b"), (first, "c")]:
        webpush(subscription, text, vapid_private_key=vapid, vapid_claims=claims())

    assert [m.payload for m in push.messages()] == [b"a", b"b", b"c"]
    assert [m.payload for m in push.messages(first["endpoint"])] == [b"a", b"c"]
    assert [m.payload for m in push.messages(second["endpoint"])] == [b"b"]


# --- VAPID (RFC 8292) ---


def test_jwt_signed_by_another_key_than_k_is_refused(
    push: LocalPushService, signer: ec.EllipticCurvePrivateKey
) -> None:
    subscription = push.new_subscription()
    impostor = ec.generate_private_key(ec.SECP256R1())

    response = raw_push(
        subscription,
        authorization=vapid_header(impostor, good_claims(push), advertised=signer),
        body=encrypted(subscription, b"x"),
    )

    assert response.status_code == 401
    assert push.messages() == []
    [rejection] = push.rejected()
    assert rejection.status == 401
    assert rejection.endpoint == subscription["endpoint"]
    assert "signature" in rejection.reason


def test_independently_signed_jwt_is_accepted(push: LocalPushService, signer: ec.EllipticCurvePrivateKey) -> None:
    subscription = push.new_subscription()
    response = raw_push(
        subscription,
        authorization=vapid_header(signer, good_claims(push, sub="https://musubi.example/contact")),
        body=encrypted(subscription, b"signed by hand"),
    )
    assert response.status_code == 201
    assert push.messages()[0].vapid_sub == "https://musubi.example/contact"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://fcm.googleapis.com"}, "aud"),
        ({"aud": None}, "aud"),  # filled in with the origin plus a trailing slash below
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"exp": int(time.time()) + 25 * 3600}, "24 hours"),
        ({"exp": "tomorrow"}, "exp"),
        ({"sub": "ops@musubi.example"}, "sub"),
        ({"sub": None}, "sub"),
    ],
)
def test_wrong_claims_are_forbidden(
    push: LocalPushService, signer: ec.EllipticCurvePrivateKey, overrides: dict[str, Any], reason: str
) -> None:
    subscription = push.new_subscription()
    payload = good_claims(push, **overrides)
    if "aud" in overrides and overrides["aud"] is None:
        payload["aud"] = push.origin + "/"
    if "sub" in overrides and overrides["sub"] is None:
        del payload["sub"]

    response = raw_push(subscription, authorization=vapid_header(signer, payload), body=encrypted(subscription, b"x"))

    assert response.status_code == 403
    assert push.messages() == []
    [rejection] = push.rejected()
    assert rejection.status == 403
    assert reason in rejection.reason


def test_pywebpush_with_a_wrong_aud_is_refused(push: LocalPushService, vapid: Vapid) -> None:
    subscription = push.new_subscription()
    with pytest.raises(WebPushException) as raised:
        webpush(
            subscription,
            "x",
            vapid_private_key=vapid,
            vapid_claims={"sub": SUB, "aud": "https://updates.push.services.mozilla.com"},
        )
    assert raised.value.status_code == 403
    assert push.rejected()[0].status == 403


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc.def.ghi",
        "vapid t=only-a-token",
        "vapid t=not.a.jwt, k=BAAA",
        "WebPush eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.e30.AAAA",  # no Crypto-Key with p256ecdsa
    ],
)
def test_missing_or_garbled_authorization_is_unauthorized(push: LocalPushService, authorization: str | None) -> None:
    subscription = push.new_subscription()
    response = raw_push(subscription, authorization=authorization, body=encrypted(subscription, b"x"))
    assert response.status_code == 401
    assert [r.status for r in push.rejected()] == [401]
    assert push.messages() == []


def test_reused_vapid_header_is_accepted_until_it_expires(
    push: LocalPushService, signer: ec.EllipticCurvePrivateKey
) -> None:
    subscription = push.new_subscription()
    exp = int(time.time()) + 2
    header = vapid_header(signer, good_claims(push, exp=exp))
    with requests.Session() as session:
        for _ in range(3):
            response = raw_push(subscription, authorization=header, body=encrypted(subscription, b"x"), session=session)
            assert response.status_code == 201

        time.sleep(max(0.0, exp - time.time()) + 0.05)
        late = raw_push(subscription, authorization=header, body=encrypted(subscription, b"x"), session=session)

    assert late.status_code == 403
    assert len(push.messages()) == 3
    assert "expired" in push.rejected()[0].reason


# --- protocol headers and body (RFC 8030, RFC 8291) ---


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"TTL": None}, 400, "TTL"),
        ({"TTL": "-1"}, 400, "TTL"),
        ({"TTL": "soon"}, 400, "TTL"),
        ({"Content_Encoding": None}, 415, "aes128gcm"),
        ({"Content_Encoding": "aesgcm"}, 415, "aes128gcm"),
        ({"Urgency": "urgent"}, 400, "Urgency"),
        ({"Topic": "x" * 33}, 400, "Topic"),
        ({"Topic": "has space"}, 400, "Topic"),
        ({"Topic": "dots.are.not.base64url"}, 400, "Topic"),
    ],
)
def test_bad_protocol_headers_are_refused(
    push: LocalPushService,
    signer: ec.EllipticCurvePrivateKey,
    headers: dict[str, str | None],
    status: int,
    reason: str,
) -> None:
    subscription = push.new_subscription()
    response = raw_push(
        subscription,
        authorization=vapid_header(signer, good_claims(push)),
        body=encrypted(subscription, b"x"),
        **headers,
    )
    assert response.status_code == status
    assert push.messages() == []
    [rejection] = push.rejected()
    assert (rejection.status, rejection.endpoint) == (status, subscription["endpoint"])
    assert reason in rejection.reason


def test_all_urgencies_and_a_32_character_topic_are_accepted(
    push: LocalPushService, signer: ec.EllipticCurvePrivateKey
) -> None:
    subscription = push.new_subscription()
    header = vapid_header(signer, good_claims(push))
    for urgency in ["very-low", "low", "normal", "high"]:
        response = raw_push(
            subscription, authorization=header, body=encrypted(subscription, b"u"), Urgency=urgency, Topic="A-_9" * 8
        )
        assert response.status_code == 201
    assert [m.urgency for m in push.messages()] == ["very-low", "low", "normal", "high"]
    assert {m.topic for m in push.messages()} == {"A-_9" * 8}


def test_body_over_4096_bytes_is_too_large(push: LocalPushService, vapid: Vapid) -> None:
    subscription = push.new_subscription()
    with requests.Session() as session:
        with pytest.raises(WebPushException) as raised:
            webpush(subscription, "x" * 4096, vapid_private_key=vapid, vapid_claims=claims(), requests_session=session)
        assert raised.value.status_code == 413
        assert push.rejected()[0].status == 413

        # The refused body was read off the connection, so the same kept-alive connection serves the next push.
        largest = "y" * (4096 - 86 - 17)  # aes128gcm header (86) and one record's delimiter and tag (17)
        response = webpush(
            subscription, largest, vapid_private_key=vapid, vapid_claims=claims(), requests_session=session
        )
    assert response.status_code == 201
    assert push.messages()[0].payload == largest.encode()


def test_body_that_does_not_decrypt_is_refused(push: LocalPushService, signer: ec.EllipticCurvePrivateKey) -> None:
    subscription, other = push.new_subscription(), push.new_subscription()
    header = vapid_header(signer, good_claims(push))

    for body in [encrypted(other, b"meant for someone else"), b"", b"\x00" * 100]:
        response = raw_push(subscription, authorization=header, body=body)
        assert response.status_code == 400

    assert push.messages() == []
    assert [r.status for r in push.rejected()] == [400, 400, 400]
    assert all("decrypt" in r.reason for r in push.rejected())


def test_without_decryption_the_other_checks_still_apply(signer: ec.EllipticCurvePrivateKey, vapid: Vapid) -> None:
    with LocalPushService(decrypt=False) as push:
        subscription = push.new_subscription()
        webpush(subscription, "opaque", vapid_private_key=vapid, vapid_claims=claims(), ttl=5)
        wrong_aud = raw_push(
            subscription,
            authorization=vapid_header(signer, good_claims(push, aud="https://example.org")),
            body=b"not even encrypted",
        )
        assert wrong_aud.status_code == 403
        [message] = push.messages()
        assert (message.payload, message.ttl, message.vapid_sub) == (b"", 5, SUB)


def test_unknown_subscription_and_other_resources_are_not_found(
    push: LocalPushService, signer: ec.EllipticCurvePrivateKey
) -> None:
    subscription = push.new_subscription()
    header = vapid_header(signer, good_claims(push))
    unknown = {**subscription, "endpoint": push.origin + "/push/no-such-id"}

    assert raw_push(unknown, authorization=header, body=encrypted(subscription, b"x")).status_code == 404
    assert requests.get(subscription["endpoint"], timeout=10).status_code == 404
    assert requests.post(push.origin + "/", data=b"", timeout=10).status_code == 404
    assert [r.status for r in push.rejected()] == [404, 404, 404]
    assert push.rejected()[0].endpoint == push.origin + "/push/no-such-id"


# --- scripted failures ---


def test_gone_subscription_answers_410(push: LocalPushService, vapid: Vapid) -> None:
    subscription, other = push.new_subscription(), push.new_subscription()
    push.gone(subscription["endpoint"])

    with pytest.raises(WebPushException) as raised:
        webpush(subscription, "x", vapid_private_key=vapid, vapid_claims=claims())

    assert raised.value.status_code == 410
    assert push.rejected() == [Rejection(410, push.rejected()[0].reason, subscription["endpoint"])]
    webpush(other, "still subscribed", vapid_private_key=vapid, vapid_claims=claims())
    push.reset()
    with pytest.raises(WebPushException):
        webpush(subscription, "x", vapid_private_key=vapid, vapid_claims=claims())
    assert push.messages() == []


def test_429_with_retry_after_once_then_accepted(push: LocalPushService, vapid: Vapid) -> None:
    subscription = push.new_subscription()
    push.fail(subscription["endpoint"], 429, retry_after=3)

    with pytest.raises(WebPushException) as raised:
        webpush(subscription, "first try", vapid_private_key=vapid, vapid_claims=claims())
    assert raised.value.status_code == 429
    assert raised.value.retry_after == "3"
    assert raised.value.response.headers["Retry-After"] == "3"
    assert push.messages() == []

    response = webpush(subscription, "second try", vapid_private_key=vapid, vapid_claims=claims())
    assert response.status_code == 201
    assert "Retry-After" not in response.headers
    assert [m.payload for m in push.messages()] == [b"second try"]
    assert [(r.status, r.endpoint) for r in push.rejected()] == [(429, subscription["endpoint"])]


def test_failure_for_any_endpoint_twice(push: LocalPushService, vapid: Vapid) -> None:
    first, second = push.new_subscription(), push.new_subscription()
    push.fail(None, 500, times=2)

    statuses = []
    for subscription in [first, second, first]:
        try:
            statuses.append(webpush(subscription, "x", vapid_private_key=vapid, vapid_claims=claims()).status_code)
        except WebPushException as exc:
            statuses.append(exc.status_code)

    assert statuses == [500, 500, 201]
    assert [r.endpoint for r in push.rejected()] == [first["endpoint"], second["endpoint"]]
    assert "Retry-After" not in push.rejected()[0].reason


def test_failure_for_ever_until_reset(push: LocalPushService, vapid: Vapid) -> None:
    subscription, other = push.new_subscription(), push.new_subscription()
    push.fail(subscription["endpoint"], 503, times=-1)

    for _ in range(3):
        with pytest.raises(WebPushException) as raised:
            webpush(subscription, "x", vapid_private_key=vapid, vapid_claims=claims())
        assert raised.value.status_code == 503
    webpush(other, "unaffected", vapid_private_key=vapid, vapid_claims=claims())

    push.reset()
    assert push.messages() == [] and push.rejected() == []
    webpush(subscription, "after reset", vapid_private_key=vapid, vapid_claims=claims())
    assert [m.payload for m in push.messages()] == [b"after reset"]


def test_scripting_mistakes_are_caught(push: LocalPushService) -> None:
    with pytest.raises(ValueError):
        push.fail(push.origin + "/push/nobody", 500)
    with pytest.raises(ValueError):
        push.fail(None, 201)
    with pytest.raises(ValueError):
        push.fail(None, 500, times=0)
    with pytest.raises(ValueError):
        push.gone(push.origin + "/push/nobody")


# --- concurrency and lifecycle ---


def test_concurrent_senders_and_wait_for(push: LocalPushService, vapid: Vapid) -> None:
    subscriptions = [push.new_subscription() for _ in range(4)]

    def send(subscription: dict[str, Any]) -> None:
        with requests.Session() as session:
            for n in range(10):
                webpush(subscription, str(n), vapid_private_key=vapid, vapid_claims=claims(), requests_session=session)

    threads = [threading.Thread(target=send, args=(s,)) for s in subscriptions]
    for thread in threads:
        thread.start()
    arrived = push.wait_for(40, timeout=30)
    for thread in threads:
        thread.join()

    assert len(arrived) == 40
    for subscription in subscriptions:
        assert [m.payload for m in push.messages(subscription["endpoint"])] == [str(n).encode() for n in range(10)]
    with pytest.raises(TimeoutError):
        push.wait_for(41, timeout=0.1)


def test_stopped_service_refuses_connections(vapid: Vapid) -> None:
    service = LocalPushService().start()
    subscription = service.new_subscription()
    with requests.Session() as session:
        webpush(subscription, "x", vapid_private_key=vapid, vapid_claims=claims(), requests_session=session)
        service.stop()
        with pytest.raises(requests.ConnectionError):
            webpush(subscription, "y", vapid_private_key=vapid, vapid_claims=claims(), requests_session=session)
    with pytest.raises(RuntimeError):
        service.start()


# --- RFC 8291 Appendix A known answer ---

RFC8291_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC8291_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC8291_UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
RFC8291_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC8291_AUTH_SECRET = "BTBZMqHH6r4Tts7J_aSIgg"
RFC8291_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC8291_MESSAGE = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl"
    "7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def test_rfc8291_appendix_a_known_answer() -> None:
    ua_key = ec.derive_private_key(int.from_bytes(unb64url(RFC8291_UA_PRIVATE), "big"), ec.SECP256R1())
    assert b64url(public_raw(ua_key)) == RFC8291_UA_PUBLIC

    plaintext = http_ece.decrypt(
        unb64url(RFC8291_MESSAGE),
        private_key=ua_key,
        auth_secret=unb64url(RFC8291_AUTH_SECRET),
        version="aes128gcm",
    )
    assert plaintext == RFC8291_PLAINTEXT

    # The sending direction pywebpush relies on reproduces the RFC's message exactly from the same inputs.
    as_key = ec.derive_private_key(int.from_bytes(unb64url(RFC8291_AS_PRIVATE), "big"), ec.SECP256R1())
    message = http_ece.encrypt(
        RFC8291_PLAINTEXT,
        salt=unb64url(RFC8291_SALT),
        private_key=as_key,
        dh=unb64url(RFC8291_UA_PUBLIC),
        auth_secret=unb64url(RFC8291_AUTH_SECRET),
        version="aes128gcm",
    )
    assert b64url(message) == RFC8291_MESSAGE
