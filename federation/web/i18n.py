"""Japanese first, English on request: the locale of a page, the catalogues, and the words for the service's codes.

Message ids are English; `translations/ja` carries the Japanese and `translations/en` is left empty so English shows
the ids as written. The compiled .mo files are committed beside their .po files so a fresh install works without a
build step; `python -m federation.web.catalogs` recompiles them after the .po files change (a test fails when a .mo
says something other than its .po).
"""
from __future__ import annotations

from flask import request
from flask_babel import Babel, lazy_gettext

LOCALES = ("ja", "en")
DEFAULT_LOCALE = "ja"
LANG_COOKIE = "musubi_lang"

babel = Babel()


def select_locale() -> str:
    # Japanese unless the person chose English on this device: members share no account settings with their browser
    # language, and a phone set to English should not surprise a union office that works in Japanese.
    chosen = request.cookies.get(LANG_COOKIE) if request else None
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


REPORT_TYPE_LABELS = {
    "integer": lazy_gettext("Whole number"),
    "decimal": lazy_gettext("Number (decimals allowed)"),
    "text": lazy_gettext("Text"),
    "choice": lazy_gettext("Choice"),
}

CATEGORY_LABELS = {
    "general": lazy_gettext("General"),
    "seminar": lazy_gettext("Seminar"),
    "meeting": lazy_gettext("Meeting"),
    "urgent": lazy_gettext("Urgent"),
}
STATUS_LABELS = {
    "draft": lazy_gettext("Draft"),
    "scheduled": lazy_gettext("Scheduled"),
    "published": lazy_gettext("Published"),
    "retracted": lazy_gettext("Retracted"),
}
STAMP_LABELS = {
    "attend": lazy_gettext("Attend"),
    "absent": lazy_gettext("Absent"),
    "read": lazy_gettext("Seen"),
}
ROLE_LABELS = {
    "platform_admin": lazy_gettext("Platform administrator"),
    "auditor": lazy_gettext("Auditor"),
    "fed_admin": lazy_gettext("Federation administrator"),
    "fed_editor": lazy_gettext("Federation editor"),
    "unit_editor": lazy_gettext("Block or council officer"),
    "union_admin": lazy_gettext("Union administrator"),
    "union_editor": lazy_gettext("Union editor"),
    "election_officer": lazy_gettext("Election officer"),
    "fed_election_officer": lazy_gettext("Election officer"),
    "member": lazy_gettext("Member"),
}
UNIT_KIND_LABELS = {
    "block": lazy_gettext("Block"),
    "council": lazy_gettext("Prefecture council"),
    "branch": lazy_gettext("Branch"),
    "workplace": lazy_gettext("Workplace"),
}
CASCADE_LABELS = {
    "opted_in": lazy_gettext("Opted in: notices reach every member"),
    "opted_out": lazy_gettext("Opted out: notices reach the officers only"),
}
AFFILIATION_LABELS = {
    "pending": lazy_gettext("Invitation pending"),
    "active": lazy_gettext("Affiliated"),
    "ended": lazy_gettext("Ended"),
}
USER_STATUS_LABELS = {
    "invited": lazy_gettext("Invited"),
    "active": lazy_gettext("Active"),
    "suspended": lazy_gettext("Suspended"),
}
TENANT_KIND_LABELS = {
    "platform": lazy_gettext("Platform"),
    "federation": lazy_gettext("Federation"),
    "union": lazy_gettext("Union"),
}
OBJECT_LABELS = {
    "tenant": lazy_gettext("Tenant details"),
    "units": lazy_gettext("Org units"),
    "members": lazy_gettext("Member list"),
    "roles": lazy_gettext("Roles"),
    "affiliation": lazy_gettext("Affiliation"),
    "cascade": lazy_gettext("Cascade setting"),
    "notices": lazy_gettext("Notices"),
    "receipts": lazy_gettext("Read receipts"),
    "stats": lazy_gettext("Counts"),
    "documents": lazy_gettext("Documents"),
    "surveys": lazy_gettext("Surveys"),
    "applications": lazy_gettext("Applications"),
    "invitations": lazy_gettext("Invitations"),
    "policy": lazy_gettext("Policy"),
    "audit": lazy_gettext("Audit log"),
}
ACTION_LABELS = {
    "read": lazy_gettext("read"),
    "write": lazy_gettext("write"),
    "publish": lazy_gettext("publish"),
    "deliver": lazy_gettext("deliver"),
    "relay": lazy_gettext("relay"),
    "approve": lazy_gettext("approve"),
    "manage": lazy_gettext("manage"),
}
FIELD_LABELS = {
    "title": lazy_gettext("Title"),
    "body": lazy_gettext("Body"),
    "category": lazy_gettext("Category"),
    "audience": lazy_gettext("Audience"),
    "event": lazy_gettext("Event"),
    "publish_at": lazy_gettext("Publish at"),
    "reminder_lead_minutes": lazy_gettext("Reminder"),
    "login_id": lazy_gettext("Employee number or e-mail"),
    "role": lazy_gettext("Role"),
    "unit_id": lazy_gettext("Unit"),
    "name": lazy_gettext("Name"),
    "kind": lazy_gettext("Kind"),
    "parent_id": lazy_gettext("Parent unit"),
    "prefecture": lazy_gettext("Prefecture code"),
    "notice_id": lazy_gettext("Notice"),
    # Two-way: comments, questions and their answers.
    "consent": lazy_gettext("Consent to send your name"),
    "comment_id": lazy_gettext("Comment"),
    "public": lazy_gettext("Publish the answer"),
    "comments": lazy_gettext("Comments"),
    "cascade": lazy_gettext("Cascade"),
    "affiliation": lazy_gettext("Affiliation"),
    "status": lazy_gettext("Status"),
    "subject": lazy_gettext("Subject"),
    "tenant": lazy_gettext("Tenant"),
    "object": lazy_gettext("Object"),
    "action": lazy_gettext("Action"),
    # The union's own space: documents, surveys, applications, invitations and registration.
    "file": lazy_gettext("File"),
    "folder": lazy_gettext("Folder"),
    "tags": lazy_gettext("Tags"),
    "version": lazy_gettext("Version"),
    "description": lazy_gettext("Description"),
    "opens_at": lazy_gettext("Opens"),
    "closes_at": lazy_gettext("Closes"),
    "anonymous": lazy_gettext("Anonymous answers"),
    "questions": lazy_gettext("Questions"),
    "answers": lazy_gettext("Answers"),
    "type_id": lazy_gettext("Form"),
    "values": lazy_gettext("Entries"),
    "form_fields": lazy_gettext("Fields"),
    "approver_role": lazy_gettext("Approver"),
    "second_approver_role": lazy_gettext("Second approver"),
    "comment": lazy_gettext("Comment"),
    "label": lazy_gettext("Label"),
    "expires_at": lazy_gettext("Expires"),
    "valid_days": lazy_gettext("Days valid"),
    "max_uses": lazy_gettext("Use limit"),
    "needs_approval": lazy_gettext("Approval"),
    "registration_id": lazy_gettext("Registration"),
    "display_name": lazy_gettext("Name"),
    "name_kana": lazy_gettext("Reading"),
    "password": lazy_gettext("Password"),
}


def label(table: dict[str, object], key: str | None) -> str:
    """The word for a code; an unknown code is shown as it is rather than hidden."""
    if key is None:
        return ""
    return str(table.get(key, key))


def field_label(field: str) -> str:
    """`event.starts_at` or `audience.units[2]` → the label of the field a person filled in."""
    head = field.split(".", 1)[0].split("[", 1)[0]
    return label(FIELD_LABELS, head)


CSV_COLUMN_LABELS = {
    "login_id": lazy_gettext("employee number (社員番号)"),
    "display_name": lazy_gettext("name (氏名)"),
    "name_kana": lazy_gettext("reading (よみ)"),
}


def csv_column(key: str) -> str:
    """A member CSV column as the import page names it."""
    return str(CSV_COLUMN_LABELS.get(key, key))


# The reader's text size, per device: the root font size every rem follows.
TEXT_SIZE_COOKIE = "musubi_text"
TEXT_SIZES = {"standard": lazy_gettext("Standard"), "large": lazy_gettext("Large"),
              "xlarge": lazy_gettext("Extra large")}


def select_text_size() -> str:
    from flask import request

    size = request.cookies.get(TEXT_SIZE_COOKIE, "standard")
    return size if size in TEXT_SIZES else "standard"
