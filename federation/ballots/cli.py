"""`python cli.py ballot ...`: the trustees' key files, their decryption shares, the tally and `ballot verify`.

A trustee's secret never enters the database: `ballot trustee` writes it to a file (optionally sealed with a
passphrase read from an environment variable) and registers only the public key with its proof.
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any

import click

from federation.ballots import crypto

FORMAT = "musubi-ballot-trustee-1"


def _seal(secret_hex: str, passphrase: str) -> dict[str, str]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    salt, nonce = os.urandom(16), os.urandom(12)
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    sealed = AESGCM(key).encrypt(nonce, bytes.fromhex(secret_hex), FORMAT.encode())
    return {"kdf": "scrypt-n15-r8-p1", "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(nonce).decode(), "sealed": base64.b64encode(sealed).decode()}


def _unseal(data: dict[str, str], passphrase: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    key = Scrypt(salt=base64.b64decode(data["salt"]), length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    try:
        return AESGCM(key).decrypt(base64.b64decode(data["nonce"]), base64.b64decode(data["sealed"]),
                                   FORMAT.encode()).hex()
    except InvalidTag:
        raise ValueError("wrong passphrase, or the key file was altered") from None


def write_key_file(path: str, tenant: str, ballot_id: int, name: str, key: crypto.TrusteeKey,
                   passphrase: str | None) -> None:
    secret = crypto.sx(key.secret)
    data: dict[str, Any] = {"format": FORMAT, "tenant": tenant, "ballot": ballot_id, "name": name,
                            "public_key": crypto.hx(key.public)}
    data.update({"secret": _seal(secret, passphrase)} if passphrase else {"secret": secret})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)


def read_key_file(path: str, passphrase: str | None) -> tuple[dict[str, Any], crypto.TrusteeKey]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not a trustee key file") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a trustee key file")
    secret = data["secret"]
    if isinstance(secret, dict):
        if passphrase is None:
            raise ValueError(f"{path} is sealed: give --passphrase-env VAR")
        secret = _unseal(secret, passphrase)
    x = crypto.scalar(secret, "secret")
    key = crypto.TrusteeKey(x, crypto.base(x))
    if crypto.hx(key.public) != data.get("public_key"):
        raise ValueError(f"{path}: the secret does not match its public key")
    return data, key


def _passphrase(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise click.ClickException(f"the environment variable {var} is empty or unset")
    return value


def register(cli: click.Group, with_app, CLIError) -> None:  # type: ignore[no-untyped-def]  # noqa: N803
    @cli.group("ballot")
    def ballot_group() -> None:
        """Secret ballots: trustees' keys, decryption shares, tally and verification."""

    def _load(tenant_slug: str, ballot_id: int):  # type: ignore[no-untyped-def]
        from federation.ballots import service

        found = service.by_slug(tenant_slug, ballot_id)
        if found is None:
            raise CLIError(f"no ballot {ballot_id} in tenant {tenant_slug}")
        return found

    @ballot_group.command("trustee")
    @click.argument("tenant")
    @click.argument("ballot_id", type=int)
    @click.argument("name")
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
                  help="the key file to write (refused if it exists); keep it off the server")
    @click.option("--passphrase-env", default=None, help="seal the key file with the passphrase in this variable")
    @with_app
    def trustee(tenant: str, ballot_id: int, name: str, out: str, passphrase_env: str | None) -> None:
        """Make a trustee's key share: the secret goes to FILE, the public key and its proof to the ballot."""
        from federation.ballots import service

        t, ballot = _load(tenant, ballot_id)
        if os.path.exists(out):
            raise CLIError(f"{out} exists: a key file is never overwritten")
        key = crypto.new_trustee_key()
        proof = crypto.prove_key(key, service.key_context(ballot, t))
        passphrase = _passphrase(passphrase_env)
        service.add_trustee(ballot, t, f"trustee:{name}", name, crypto.hx(key.public), proof)
        try:
            write_key_file(out, t.slug, ballot.id, name, key, passphrase)
        except OSError as exc:
            raise CLIError(f"cannot write {out}: {exc.strerror}") from None
        click.echo(f"trustee {name} registered for ballot {ballot.id}; key share written to {out}")

    def _decrypt(t, ballot, path: str, passphrase: str | None) -> str:  # type: ignore[no-untyped-def]
        from federation.ballots import service

        try:
            data, key = read_key_file(path, passphrase)
        except (ValueError, crypto.ProofError) as exc:
            raise CLIError(str(exc)) from None
        if data.get("tenant") != t.slug or data.get("ballot") != ballot.id:
            raise CLIError(f"{path} is a key share of ballot {data.get('tenant')}/{data.get('ballot')}, not this one")
        factors = crypto.partial_decryption(key, service.sums_of(ballot), ballot.fingerprint or "")
        service.add_decryption(ballot, t, f"trustee:{data['name']}", data["name"], factors)
        return str(data["name"])

    @ballot_group.command("decrypt")
    @click.argument("tenant")
    @click.argument("ballot_id", type=int)
    @click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), help="this trustee's key file")
    @click.option("--passphrase-env", default=None, help="the variable holding the key file's passphrase")
    @with_app
    def decrypt(tenant: str, ballot_id: int, key_file: str, passphrase_env: str | None) -> None:
        """A trustee's share of the decryption of the closed ballot's tally, with its proof."""
        t, ballot = _load(tenant, ballot_id)
        name = _decrypt(t, ballot, key_file, _passphrase(passphrase_env))
        click.echo(f"decryption share of {name} recorded for ballot {ballot.id}")

    @ballot_group.command("tally")
    @click.argument("tenant")
    @click.argument("ballot_id", type=int)
    @click.option("--key", "key_files", multiple=True, type=click.Path(dir_okay=False),
                  help="trustees' key files to decrypt with first (each trustee may run `ballot decrypt` instead)")
    @click.option("--passphrase-env", default=None, help="the variable holding the key files' passphrase")
    @with_app
    def tally(tenant: str, ballot_id: int, key_files: tuple[str, ...], passphrase_env: str | None) -> None:
        """Tally a closed ballot once every trustee's decryption share is in; prints the result."""
        from federation.ballots import service

        t, ballot = _load(tenant, ballot_id)
        for path in key_files:
            _decrypt(t, ballot, path, _passphrase(passphrase_env))
        result = service.result(service.tally(ballot, t, "operator:cli"))
        click.echo(f"eligible {result['eligible']}, voted {result['voted']}, quorum "
                   f"{'met' if result['quorum_met'] else 'NOT met'}")
        for option in result["options"]:
            click.echo(f"{option['votes']:>8}  {option['label']}")

    @ballot_group.command("verify")
    @click.argument("tenant")
    @click.argument("ballot_id", type=int)
    @click.option("--board", "board_file", default=None, type=click.Path(dir_okay=False),
                  help="verify this board (the JSON of GET .../board) instead of the database's")
    @with_app
    def verify(tenant: str, ballot_id: int, board_file: str | None) -> None:
        """Recompute the tally from the public board and check every proof; non-zero exit on any mismatch."""
        from federation.ballots import service
        from federation.ballots.verify import verify_board

        if board_file:
            try:
                with open(board_file, encoding="utf-8") as fh:
                    board = json.load(fh)
            except (OSError, json.JSONDecodeError) as exc:
                raise CLIError(f"cannot read the board {board_file}: {exc}") from None
        else:
            t, ballot = _load(tenant, ballot_id)
            if ballot.status == "draft":
                raise CLIError(f"ballot {ballot_id} is a draft: nothing to verify")
            board = service.board(ballot, t)
        report = verify_board(board)
        if not report.ok:
            for problem in report.problems[:20]:
                click.echo(f"FAIL {problem}", err=True)
            raise CLIError(f"ballot {ballot_id} does not verify: {len(report.problems)} problem(s)")
        what = f"counts {report.counts}" if report.counts is not None else "no tally yet"
        click.echo(f"ok: {report.ballots} ballots, every proof checks, {what}")
