"""diff.html in a real browser (Chromium, offline): every grid of both plans drawn with its change
class, the moved households drawn, nothing fetched from the network, no script error."""
from __future__ import annotations

import pytest

from tests.test_browser import browser, page  # noqa: F401 — the shared Chromium fixtures
from tests.test_diff import _planted

pytestmark = pytest.mark.browser


def test_diff_page_offline_draws_every_change(page, tmp_path):  # noqa: F811
    from gridplan.optimize.diff import diff_plans

    old, new = _planted()
    d = diff_plans(old, new, "v1", "v2")
    d.to_dir(tmp_path)
    leaked: list[str] = []

    def guard(route):
        u = route.request.url
        if u.startswith(("file:", "data:", "blob:")):
            return route.continue_()
        leaked.append(u)
        return route.abort()

    page.route("**/*", guard)
    page.goto((tmp_path / "diff.html").as_uri())
    page.wait_for_function("() => window.gridplanDiff && window.gridplanDiff.map")
    counts = d.counts()
    for change in ("kept", "reshaped", "created", "retired"):
        assert page.locator(f"path.gp-{change}").count() == counts[change], change
    assert page.locator("path.leaflet-interactive").count() >= len(d.grids) + d.points_moved
    assert "grids retired" in page.inner_text("aside")
    assert leaked == [] and page.errors == [], (leaked, page.errors)
