"""A union's own space (SPEC "Union space", walled off by F1): documents, surveys, applications, invitations.

Each part is a subpackage with its models, service, schemas and `views.blp` (a flask-smorest Blueprint under
/api/v1/tenants/<slug>/...); `blueprints()` returns every part's blueprint so create_app registers them all.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any


def blueprints() -> list[Any]:
    found = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.ispkg:
            views = importlib.import_module(f"{__name__}.{info.name}.views")
            found.append(views.blp)
    return found
