"""Page forms and query strings with numbers too large for any column and text no encoder takes: the page answers
with a 4xx or its ordinary answer, never a server error."""
from __future__ import annotations

import pytest
from conftest import World
from web_support import Browser

HUGE = ["9" * 5000, str(2**63), str(2**31), "-" + str(2**63 + 1)]


@pytest.mark.parametrize("number", HUGE)
def test_page_forms_and_queries_with_huge_numbers_are_not_server_errors(world: World, app, number: str) -> None:
    admin = Browser(app, "union-a", "aadmin")
    answers = {
        "units": admin.post("/t/union-a/units", {"name": "支部", "kind": "branch", "parent_id": number}),
        "roles": admin.post("/t/union-a/roles", {"login_id": "a1", "role": "union_editor", "unit_id": number}),
        "roster": admin.post("/t/union-a/kpi/roster", {"roster_size": number}),
    }
    auditor = Browser(app, "platform", "aud")
    answers["audit log"] = auditor.client.get("/audit/log", query_string={"before": number})
    bad = {k: r.status_code for k, r in answers.items() if r.status_code >= 500}
    assert not bad, bad
