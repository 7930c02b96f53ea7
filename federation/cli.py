"""The CLI forms the SPEC fixes, and a few more. Every error is one line on stderr and a non-zero exit."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo

from federation.config import ConfigError

CLI_ACTOR = "operator:cli"


class CLIError(click.ClickException):
    """A failure the operator can act on; main() prints it as one line."""


def _create_app() -> Flask:
    from federation import create_app

    return create_app()


def _app() -> Flask:
    """The app of this command, made once by Flask's ScriptInfo (for commands that run it rather than work inside
    its context: serve, worker, scheduler)."""
    try:
        return click.get_current_context().ensure_object(ScriptInfo).load_app()
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


def current_settings():  # type: ignore[no-untyped-def]
    from flask import current_app

    return current_app.config["MUSUBI"]


def with_app(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure the operator can act on into one line. The app context itself is Flask's: every command
    of the group runs inside it (AppGroup's with_appcontext) unless declared with `with_appcontext=False`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from federation.errors import APIError

        try:
            return fn(*args, **kwargs)
        except APIError as exc:
            raise CLIError(exc.message) from None
        except ConfigError as exc:
            raise CLIError(str(exc)) from None
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            hint = " (run 'python cli.py init-db' first?)" if "no such table" in first or "does not exist" in first \
                else ""
            raise CLIError(f"database error: {first}{hint}") from None

    return wrapper


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False,
             load_dotenv=False, set_debug_flag=False, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """musubi: federation notices that reach union members directly, behind a Casbin firewall."""


@cli.command("init-db")
@with_app
def init_db() -> None:
    """Create or migrate the schema, and the platform tenant."""
    from federation.database import upgrade

    upgrade()
    click.echo("database ready")


@cli.command("demo")
@click.option("--members", type=click.IntRange(30, 200_000), default=3000, show_default=True,
              help="members across the 30 unions")
@with_app
def demo(members: int) -> None:
    """Build the demo federation (9 blocks, 47 councils, 30 unions) and print sign-in lines."""
    from federation.database import upgrade
    from federation.demo import build_demo

    upgrade()
    for line in build_demo(members=members, progress=True):
        click.echo(line)
    from federation.push import vapid

    settings = current_settings()
    if not settings.vapid_file.exists():
        vapid.generate(settings.vapid_file)
        click.echo(f"a VAPID key for Web Push was written to {settings.vapid_file}")


@cli.command("serve", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def serve(host: str, port: int) -> None:
    """The web service; jobs and the scheduler run inside it unless REDIS_URL is set."""
    from werkzeug.serving import make_server

    app = _app()
    from federation import runtime

    # Bound before anything is printed: the address shown is the one the socket really has (a port in use fails
    # here, with nothing claimed).
    server = make_server(host, port, app, threaded=True)
    runtime.start_embedded(app)
    for line in serve_banner(host, server.server_port, app.config["MUSUBI"].public_url):
        click.echo(line, err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_banner(host: str, port: int, public_url: str | None) -> list[str]:
    """What `serve` prints once it listens: the address to open, and a warning while MUSUBI_PUBLIC_URL is unset."""
    every = host in ("0.0.0.0", "::", "")
    shown = "127.0.0.1" if every else f"[{host}]" if ":" in host else host
    lines = [f"musubi on http://{shown}:{port}/" + (" (listening on every interface)" if every else "")]
    if public_url is None:
        lines.append("warning: MUSUBI_PUBLIC_URL is not set: invitation QR codes and account links carry the address "
                     "the officer's browser used (127.0.0.1 on this computer), which members' phones cannot open")
    return lines


@cli.command("worker", with_appcontext=False)
@click.option("--burst", is_flag=True, help="stop when the queue is empty")
@click.option("--fork", is_flag=True, help="run each job in a forked child (slower; isolates memory leaks)")
def worker(burst: bool, fork: bool) -> None:
    """An RQ worker for the cascade and push jobs (needs REDIS_URL)."""
    from redis import Redis
    from rq import Queue

    from federation import jobs
    from federation.workers import MusubiSimpleWorker, MusubiWorker, stop_scheduler_child

    app = _app()
    url = app.config.get("REDIS_URL")
    if not url:
        raise CLIError("worker needs REDIS_URL; without it jobs run inside 'serve'")
    jobs.set_worker_app(app)
    conn = Redis.from_url(url)
    cls = MusubiWorker if fork else MusubiSimpleWorker
    w = cls([Queue(jobs.QUEUE_NAME, connection=conn)], connection=conn)
    # RQ's own SIGTERM handling is a warm shutdown: the job in flight finishes, then the worker exits.
    try:
        w.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop_scheduler_child(w)
        from federation.push.sender import close_sender

        close_sender()  # the pooled push-service connections, closed rather than dropped


@cli.command("scheduler", with_appcontext=False)
def scheduler() -> None:
    """The one scheduler process: publishes due notices and sends reminders (needs REDIS_URL)."""
    from federation.scheduler import runner as scheduling

    app = _app()
    if not app.config.get("REDIS_URL"):
        raise CLIError("scheduler needs REDIS_URL; without it the scheduler runs inside 'serve'")
    click.echo("musubi scheduler running", err=True)
    scheduling.run_forever(app)


@cli.group("push")
def push_group() -> None:
    """Web Push."""


@push_group.command("init-vapid", with_appcontext=False)
@click.option("--force", is_flag=True, help="replace an existing key (every browser must subscribe again)")
@click.option("--if-missing", is_flag=True, help="keep an existing key and succeed (for deploy scripts)")
def push_init_vapid(force: bool, if_missing: bool) -> None:
    """Generate the VAPID key pair, kept outside the code (instance folder or MUSUBI_VAPID_FILE)."""
    from federation.config import load_settings
    from federation.push import vapid

    try:
        settings = load_settings()
        if if_missing and not force and settings.vapid_file.exists():
            click.echo(f"VAPID key kept: {settings.vapid_file}")
            return
        public = vapid.generate(settings.vapid_file, force=force)
    except (ConfigError, FileExistsError) as exc:
        raise CLIError(str(exc)) from None
    click.echo(f"VAPID key written to {settings.vapid_file}")
    click.echo(f"public key: {public}")


# --- tenants, users, roles ----------------------------------------------------------------------------------------

@cli.group("tenant")
def tenant_group() -> None:
    """Tenants."""


@tenant_group.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(["federation", "union"]), required=True)
@click.option("--kana", default=None, help="the name's reading in hiragana or katakana (unions are listed by it)")
@with_app
def tenant_create(slug: str, name: str, kind: str, kana: str | None) -> None:
    """Create a federation or union tenant."""
    from tenants.service import create_tenant

    tenant = create_tenant(slug, name, kind, actor=CLI_ACTOR, name_kana=kana)
    click.echo(f"created {tenant.kind} {tenant.slug}")


def _tenant(slug: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.extensions import db
    from tenants.models import Tenant

    tenant = db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise CLIError(f"no tenant {slug}")
    return tenant


@cli.group("user")
def user_group() -> None:
    """Users."""


@user_group.command("create")
@click.argument("tenant")
@click.argument("login_id")
@click.option("--name", required=True, help="display name")
@click.option("--kana", required=True, help="reading, in hiragana or katakana")
@click.option("--password", required=True)
@click.option("--role", "roles", multiple=True, help="a role to grant (repeatable)")
@click.option("--unit", "unit_id", type=int, default=None, help="the org unit the user belongs to")
@with_app
def user_create(tenant: str, login_id: str, name: str, kana: str, password: str, roles: tuple[str, ...],
                unit_id: int | None) -> None:
    """Create an active user, optionally with roles."""
    from tenants.service import create_user, grant_role

    t = _tenant(tenant)
    user = create_user(t, login_id=login_id, display_name=name, name_kana=kana, password=password, unit_id=unit_id,
                       actor=CLI_ACTOR)
    for role in roles:
        grant_role(t, user, role, None, actor=CLI_ACTOR)
    click.echo(f"created user:{t.slug}/{user.login_id}" + (f" with {', '.join(roles)}" if roles else ""))


@user_group.command("suspend")
@click.argument("tenant")
@click.argument("login_id")
@with_app
def user_suspend(tenant: str, login_id: str) -> None:
    """Suspend a user: every session and token ends at once."""
    from tenants.service import set_user_status, user_in

    t = _tenant(tenant)
    set_user_status(t, user_in(t, login_id), "suspended", actor=CLI_ACTOR)
    click.echo(f"suspended user:{tenant}/{login_id}")


@cli.group("role")
def role_group() -> None:
    """Role grants."""


@role_group.command("grant")
@click.argument("tenant")
@click.argument("login_id")
@click.argument("role")
@click.option("--unit", "unit_id", type=int, default=None)
@with_app
def role_grant(tenant: str, login_id: str, role: str, unit_id: int | None) -> None:
    """Grant ROLE in TENANT to LOGIN_ID."""
    from tenants.service import grant_role, user_in

    t = _tenant(tenant)
    grant_role(t, user_in(t, login_id), role, unit_id, actor=CLI_ACTOR)
    click.echo(f"granted {role} to user:{tenant}/{login_id}")


@role_group.command("revoke")
@click.argument("tenant")
@click.argument("login_id")
@click.argument("role")
@click.option("--unit", "unit_id", type=int, default=None)
@with_app
def role_revoke(tenant: str, login_id: str, role: str, unit_id: int | None) -> None:
    """Revoke ROLE in TENANT from LOGIN_ID; effective on the next request in every process."""
    from tenants.service import revoke_role, user_in

    t = _tenant(tenant)
    if not revoke_role(t, user_in(t, login_id), role, unit_id, actor=CLI_ACTOR):
        raise CLIError(f"user:{tenant}/{login_id} does not hold {role}")
    click.echo(f"revoked {role} from user:{tenant}/{login_id}")


@cli.group("members")
def members_group() -> None:
    """Members in bulk."""


@members_group.command("import")
@click.argument("tenant")
@click.argument("path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="check every row and change nothing")
@with_app
def members_import(tenant: str, path: str, dry_run: bool) -> None:
    """Import members from CSV (社員番号, 氏名, よみ, 所属, 役割; UTF-8 or Shift_JIS): all rows or none."""
    from tenants import members_csv

    t = _tenant(tenant)
    with open(path, "rb") as fh:
        report = members_csv.check(t, fh.read())
    for problem in report.problems:
        click.echo(problem)
    if not report.ok:
        raise CLIError(f"{len(report.problems)} problems in {path} ({report.encoding}); nothing imported")
    if dry_run:
        click.echo(f"{len(report.rows)} rows ({report.encoding}) would be imported; nothing changed (dry run)")
        return
    count = members_csv.commit(t, report, actor=CLI_ACTOR)
    click.echo(f"imported {count} members into {tenant} as invited")


@members_group.command("export")
@click.argument("tenant")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False, writable=True))
@click.option("--encoding", type=click.Choice(["utf-8", "shift_jis"]), default="utf-8", show_default=True,
              help="utf-8 is written with a BOM so Excel opens it; shift_jis for older spreadsheets")
@with_app
def members_export(tenant: str, path: str, encoding: str) -> None:
    """Write every member (社員番号, 氏名, よみ, 所属, 役割, 状態) in 50-on order."""
    from tenants import members_csv

    text = members_csv.export_csv(_tenant(tenant))
    try:
        data = text.encode("utf-8-sig" if encoding == "utf-8" else "cp932")
    except UnicodeEncodeError as exc:
        raise CLIError(f"a name cannot be written in Shift_JIS ({exc.object[exc.start:exc.end]!r}); use utf-8") \
            from None
    with open(path, "wb") as fh:
        fh.write(data)
    click.echo(f"{text.count(chr(10)) - 1} members written to {path} ({encoding})")


# --- policy and audit ---------------------------------------------------------------------------------------------

@cli.group("policy")
def policy_group() -> None:
    """The firewall policy."""


@policy_group.command("test", with_appcontext=False)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="assertions file (default: policies/assertions.txt)")
@click.option("--quiet", is_flag=True, help="print failures and the summary only")
def policy_test(path: str | None, quiet: bool) -> None:
    """Check every allow/deny assertion against the firewall and against Casbin itself."""
    from federation.firewall.assertions import run_assertions

    try:
        report = run_assertions(path)
    except (ValueError, ConfigError) as exc:
        raise CLIError(str(exc)) from None
    for case in report.cases:
        if quiet and case.ok:
            continue
        click.echo(case.line())
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@policy_group.command("show")
@click.option("--json", "as_json", is_flag=True)
@with_app
def policy_show(as_json: bool) -> None:
    """Print the model, the role templates and the live tenant links."""
    from federation.firewall import firewall

    snap = firewall.current()
    links = {union: sorted(v) for union, v in sorted(snap.links.items())}
    if as_json:
        click.echo(json.dumps({"version": snap.version, "rules": [r.as_line() for r in snap.templates.rules],
                               "inherits": [list(p) for p in snap.templates.inherits], "links": links},
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"# policy version {snap.version}")
    click.echo(firewall.model_path.read_text(encoding="utf-8").rstrip())
    click.echo("\n# role templates")
    for child, parent in snap.templates.inherits:
        click.echo(f"g, {child}, {parent}")
    for rule in snap.templates.rules:
        click.echo(rule.as_line())
    click.echo("\n# tenant links (g2)")
    for union, union_links in links.items():
        for link in union_links:
            click.echo(f"g2, {union}, {link}")


@cli.group("audit")
def audit_group() -> None:
    """Audit: explain permissions and verify the log."""


@audit_group.command("verify-log")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="verify an export (JSON lines) instead of the database")
@click.option("--anchor", "anchor_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="an anchor file ('audit anchor'): the chain must reach and match every line (repeatable)")
@click.option("--expect-head", "expect_heads", metavar="SEQ:HASH", multiple=True,
              help="an entry the chain must reach and match, e.g. a head noted down earlier (repeatable)")
@click.option("--no-key", is_flag=True, help="check the hashes only (a verifier without the audit key)")
@with_app
def audit_verify(path: str | None, anchor_files: tuple[str, ...], expect_heads: tuple[str, ...],
                 no_key: bool) -> None:
    """Walk the hash chain end to end, check every MAC and anchor; name the first broken entry."""
    from federation.audit.chain import AnchorError, current_key, verify, verify_records

    key = None if no_key else current_key()
    anchors = _anchors(anchor_files, expect_heads, key)
    if path:
        with open(path, encoding="utf-8") as fh:
            try:
                result = verify_records((json.loads(line) for line in fh if line.strip()), key=key,
                                        anchors=anchors)
            except (ValueError, KeyError, TypeError) as exc:
                if isinstance(exc, AnchorError):
                    raise CLIError(str(exc)) from None
                raise CLIError(f"{path} is not an audit export: {exc}") from None
    else:
        result = verify(anchors, use_key=not no_key)
    if result.ok:
        keyed = (f", keyed from entry {result.keyed_from}" if result.keyed_from else ", no entry keyed") \
            if result.macs_checked else ", MACs not checked (hashes only)"
        unkeyed = f", {result.unkeyed} unkeyed" if result.unkeyed and result.macs_checked else ""
        anchored = f", {result.anchors} anchors matched" if result.anchors else ""
        click.echo(f"ok: {result.entries} entries, head {result.head}{keyed}{unkeyed}{anchored}")
        return
    raise CLIError(f"audit log broken at entry {result.broken_at}: {result.reason} "
                   f"({result.entries} entries verified before it)")


def _anchors(anchor_files: tuple[str, ...], expect_heads: tuple[str, ...], key: bytes | None) -> list:
    from federation.audit.chain import AnchorError, parse_expected_head, read_anchors

    anchors = []
    try:
        for name in anchor_files:
            with open(name, encoding="utf-8") as fh:
                anchors += read_anchors(fh, key, os.path.basename(name))
        anchors += [parse_expected_head(text) for text in expect_heads]
    except AnchorError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot read an anchor file: {exc.strerror}") from None
    return anchors


@audit_group.command("anchor")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="the anchor file to append to (default: MUSUBI_AUDIT_ANCHOR_FILE; '-' prints the line)")
@with_app
def audit_anchor(out: str | None) -> None:
    """Verify the chain, then append a keyed anchor {seq, hash, at, mac} of its head to an anchor file. Ship the
    file where the database's administrators cannot write: later `verify-log --anchor FILE` fails if the chain no
    longer reaches or matches any line of it."""
    from federation.audit.chain import current_key, make_anchor, verify

    target = out or (str(current_settings().audit_anchor_file) if current_settings().audit_anchor_file else None)
    if target is None:
        raise CLIError("give --out FILE, or set MUSUBI_AUDIT_ANCHOR_FILE")
    key = current_key()
    if key is None:
        raise CLIError("no audit key: set MUSUBI_AUDIT_KEY or MUSUBI_AUDIT_KEY_FILE")
    # Never anchor a chain that is already broken, or that no longer matches the anchors already in the file.
    earlier = _anchors((target,), (), key) if target != "-" and os.path.exists(target) else []
    result = verify(earlier)
    if not result.ok:
        raise CLIError(f"not anchoring: audit log broken at entry {result.broken_at}: {result.reason}")
    line = json.dumps(make_anchor(key, result.entries, result.head), sort_keys=True)
    if target == "-":
        click.echo(line)
        return
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as exc:
        raise CLIError(f"cannot append to {target}: {exc.strerror}") from None
    click.echo(f"anchored entry {result.entries} ({result.head}) in {target}")


@audit_group.command("check")
@click.argument("subject")
@click.argument("tenant")
@click.argument("obj", metavar="OBJECT")
@click.argument("action")
@click.option("--json", "as_json", is_flag=True)
@with_app
def audit_check(subject: str, tenant: str, obj: str, action: str, as_json: bool) -> None:
    """May SUBJECT (user:TENANT/LOGIN or role:ROLE[@TENANT]) do ACTION on OBJECT in TENANT, and why."""
    from federation.audit.queries import check

    result = check(subject, tenant, obj, action)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(("ALLOW " if result["allowed"] else "DENY  ") + result["reason"])
    for role in result["roles"]:
        click.echo(f"  role {role['role']} in {role['tenant']} ({role['source']})")
    for match in result["explain"]:
        extra = ""
        if match.get("affiliation"):
            a = match["affiliation"]
            extra = f" via affiliation {a['id']} ({a['status']}, cascade {a['cascade']})"
        click.echo(f"  matched {match['rule']} through {' → '.join(match['via'])}{extra}")
    for near in result.get("nearest", []):
        click.echo(f"  nearest {near['rule']}: missing {'; '.join(near['missing'])}")


@audit_group.command("who-can")
@click.argument("tenant")
@click.argument("obj", metavar="OBJECT")
@click.argument("action")
@click.option("--json", "as_json", is_flag=True)
@with_app
def audit_who_can(tenant: str, obj: str, action: str, as_json: bool) -> None:
    """Every role and user that may do ACTION on OBJECT in TENANT."""
    from federation.audit.queries import who_can

    result = who_can(tenant, obj, action)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    for role in result["roles"]:
        click.echo(f"role {role['role']} from {role['acting_from']}: {role['rule']}")
    for user in result["users"]:
        click.echo(f"  {user['subject']} ({user['role']})")
    for group in result["groups"]:
        click.echo(f"  {group['count']} users: {group['description']}")


@audit_group.command("exposure")
@click.option("--at", "at", type=str, default=None, help="ISO 8601 time: as it was then (replayed from the log)")
@click.option("--json", "as_json", is_flag=True)
@with_app
def audit_exposure(at: str | None, as_json: bool) -> None:
    """Every permission that crosses a tenant boundary, and every union's cascade state."""
    from federation.audit.queries import exposure

    result = exposure(_when(at, "--at") if at else None)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    for pair in result["crossings"]:
        click.echo(f"{pair['from']} → {pair['to']}: {', '.join(pair['permissions'])}")
    for union in result["unions"]:
        click.echo(f"{union['union']}: {union['statement']}")


def _when(text: str, name: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CLIError(f"{name}: not an ISO 8601 time: {text}") from None
    if when.tzinfo is None:
        raise CLIError(f"{name}: give a time zone (e.g. 2026-11-24T09:00:00+09:00)")
    return when


@audit_group.command("exposure-diff")
@click.argument("since")
@click.argument("until")
@with_app
def audit_exposure_diff(since: str, until: str) -> None:
    """What crossed a tenant boundary at UNTIL that did not at SINCE, and the other way round."""
    from federation.audit.queries import exposure_diff

    result = exposure_diff(_when(since, "SINCE"), _when(until, "UNTIL"))
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))


@audit_group.command("what-can")
@click.argument("subject")
@with_app
def audit_what_can(subject: str) -> None:
    """Every tenant, object and action SUBJECT may use."""
    from federation.audit.reach import what_can

    result = what_can(subject)
    click.echo(f"{result['subject']} acting from {result['acting_from']} as {', '.join(result['roles']) or 'no role'}")
    for group in result["reach"]:
        click.echo(f"  {group['tenant']}: {', '.join(group['permissions'])}")


@audit_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@with_app
def audit_export(path: str) -> None:
    """Write the whole chain as JSON lines (verify it with 'audit verify-log --file PATH')."""
    from federation.audit.chain import iter_entries

    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for entry in iter_entries():
            fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    click.echo(f"{count} entries written to {path}")


def _add_ballot_commands() -> None:
    from federation.ballots.cli import register

    register(cli, with_app, CLIError)


_add_ballot_commands()


def _add_development_commands() -> None:
    """`bench` and `faults` come from the checkout's devtools/ folder, which is not part of the installed package:
    `python cli.py bench` works in a checkout, and a production install carries no benchmark or fault drill."""
    try:
        from devtools.commands import COMMANDS
    except ImportError:
        return
    for command in COMMANDS:
        cli.add_command(command)


_add_development_commands()


def main() -> None:
    try:
        cli.main(prog_name="musubi", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("musubi: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        # One line, whatever went wrong: usage mistakes included.
        click.echo(f"musubi: {exc.format_message().strip().splitlines()[0]}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except ConfigError as exc:  # a setting that stops the app from being made: before any command ran
        click.echo(f"musubi: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the operator gets one line; MUSUBI_DEBUG=1 shows the traceback
        if os.environ.get("MUSUBI_DEBUG"):
            raise
        click.echo(f"musubi: unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (set MUSUBI_DEBUG=1 for details)", err=True)
        sys.exit(1)
