"""The demo storefront at ``/`` of ``shoprec serve``, driven in a real browser (Debian's chromium through
Playwright) against the real Scientific bundle: search, shelves, the product view, events and the user
switcher, each checked against what the API itself answers. The server runs an A/B experiment, so every
event the page posts from a list must carry that list's serving context for ``shoprec ab report`` to
attribute it.

The browser is the system's (``/usr/bin/chromium``, or ``$SHOPREC_CHROMIUM``): ``make test`` installs it.
Without it the tests fail under CI (``CI`` set) and are skipped, saying why, elsewhere.
``SHOPREC_STOREFRONT_SCREENSHOT=docs/storefront.png`` saves the README's screenshot as well, and
``SHOPREC_STOREFRONT_ARTIFACTS=artifacts/scientific`` serves that (trained) bundle instead of the test one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.processes import free_port, serve_command, stop

from shoprec.adapters.local.sqlite_state import SqliteUserStateStore
from shoprec.artifacts import load_bundle
from shoprec.evaluation.ab_report import log_records
from shoprec.experiments import Assigner, parse_experiment

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("SHOPREC_CHROMIUM", "/usr/bin/chromium"))
DATASET_USERS = ["0", "1", "2", "3", "4"]  # the page's default switcher entries
STARTUP_TIMEOUT_S = 90.0
WAIT_MS = 20_000  # for the page's API calls on a busy test machine
# Two arms that change nothing (an A/A test): every list stays the process's own, as the other tests compare
# the page's lists with the API's, while each list served to a user is logged as an exposure of their arm.
EXPERIMENT = {"name": "storefront-ab", "variants": [{"name": "control"}, {"name": "treatment"}]}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Shop:
    url: str
    client: httpx.Client
    state_db: Path
    events: Path
    titles: dict[str, str]
    brands: dict[str, str]

    def stored(self, user_id: str) -> list[str]:
        """What the server's sqlite file holds for ``user_id`` (read by a second connection)."""
        store = SqliteUserStateStore(self.state_db)
        try:
            return store.recent_items(user_id)
        finally:
            store.close()

    def recommended(self, user_id: str) -> list[str]:
        response = self.client.get(f"/v1/recommendations/{user_id}", params={"k": 10})
        assert response.status_code == 200, response.text
        return [item["item_id"] for item in response.json()["items"]]

    def logged(self) -> list[dict[str, Any]]:
        """Every record of the server's event log (events and exposures), in the order it logged them."""
        return [record for _, _, record in log_records(self.events)]

    def ab_report(self) -> dict[str, Any]:
        """What ``shoprec ab report --json`` says of the server's event log now."""
        args = [*serve_command(), "ab", "report", "--events", str(self.events), "--json"]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set SHOPREC_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"the storefront's browser test cannot run under CI: {missing}")
        pytest.skip(f"the storefront's browser test needs a browser: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI and developers run the tests as root, where chromium's sandbox refuses to start;
        # --disable-dev-shm-usage: containers often have a /dev/shm too small for its renderer.
        args = ["--no-sandbox", "--disable-dev-shm-usage"]
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def shop(
    request: pytest.FixtureRequest, scientific_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """``shoprec serve`` on the bundle, with the histories of the page's dataset users imported through
    ``POST /v1/events`` as ``make run`` imports every user's."""
    chosen = os.environ.get("SHOPREC_STOREFRONT_ARTIFACTS")
    bundle_dir = Path(chosen) if chosen else request.getfixturevalue("bundle_dir")
    work = tmp_path_factory.mktemp("storefront")
    state_db = work / "state.db"
    events = work / "events"
    log = work / "serve.log"
    port = free_port()
    args = [
        *serve_command(),
        "serve",
        *("--artifacts", str(bundle_dir), "--port", str(port)),
        *("--state", f"sqlite:///{state_db}", "--cache", "memory://", "--ranker", "onnx"),
    ]
    # A budget no ranking call on a busy test machine exceeds: no list falls back (degraded), so the page
    # and the test's own requests get the same lists.
    env = {
        **os.environ,
        "SHOPREC_LATENCY_BUDGET_MS": "10000",
        "SHOPREC_EXPERIMENT": json.dumps(EXPERIMENT),
        "SHOPREC_EVENT_LOG": f"file://{events}",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=work, env=env)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=10.0)
    try:
        _wait_until_ready(client, proc, log)
        _import_histories(client, scientific_dir / "interactions.json", DATASET_USERS)
        bundle = load_bundle(bundle_dir, verify=False)
        catalog = bundle.catalog or {}
        yield Shop(
            url=url,
            client=client,
            state_db=state_db,
            events=events,
            titles={i: str(row.get("title") or "") for i, row in catalog.items()},
            brands={i: str(row.get("brand") or "") for i, row in catalog.items()},
        )
    finally:
        client.close()
        stop(proc)


def _wait_until_ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"shoprec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.get("/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"shoprec serve did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)  # polling for readiness, not timing anything


def _import_histories(client: httpx.Client, interactions: Path, users: list[str]) -> None:
    histories: dict[str, list[int]] = json.loads(interactions.read_text())
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for user in users:
        events = [
            {
                "event_id": f"import-{user}-{n}",
                "user_id": user,
                "item_id": str(item),
                "type": "view",
                "timestamp": (start + timedelta(minutes=n)).isoformat(),
            }
            for n, item in enumerate(histories[user])
        ]
        assert client.post("/v1/events", json={"events": events}).status_code == 200


@pytest.fixture
def page(browser: Browser, shop: Shop) -> Iterator[Page]:
    """A fresh tab (no remembered shopper) on the storefront; fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(shop.url + "/")
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors


# ------------------------------------------------------------------------------------------ helpers
def shelf(page: Page, testid: str) -> list[str]:
    """The item ids of the cards of the section ``testid``, once it has cards and is not loading."""
    section = page.get_by_test_id(testid)
    section.locator("[data-testid=product-card]").first.wait_for()
    page.wait_for_function(
        "id => !document.querySelector(`[data-testid=${id}]`).hasAttribute('aria-busy')", arg=testid
    )
    cards = section.locator("[data-testid=product-card]")
    return [str(i) for i in cards.evaluate_all("cards => cards.map(c => c.dataset.itemId)")]


def shelf_after(page: Page, testid: str, request_id: str | None) -> list[str]:
    """The shelf's item ids once it shows an answer other than ``request_id`` (a refresh)."""
    page.wait_for_function(
        "([id, old]) => { const s = document.querySelector(`[data-testid=${id}]`);"
        " return s.dataset.requestId && s.dataset.requestId !== old && !s.hasAttribute('aria-busy'); }",
        arg=[testid, request_id or ""],
    )
    return shelf(page, testid)


def request_id(page: Page, testid: str) -> str | None:
    return page.get_by_test_id(testid).get_attribute("data-request-id")


def switch_to(page: Page, value: str) -> None:
    """Choose ``value`` in the user switcher (``__new__``: a new anonymous shopper)."""
    before = request_id(page, "shelf-recommended")
    page.get_by_test_id("user-switcher").select_option(value)
    shelf_after(page, "shelf-recommended", before)


def is_event(response: Any, event_type: str) -> bool:
    if not (response.url.endswith("/v1/events") and response.request.method == "POST"):
        return False
    return bool(json.loads(response.request.post_data or "{}")["events"][0]["type"] == event_type)


def posted_event(response: Any) -> dict[str, Any]:
    """The one event the page posted in the request ``response`` answers."""
    (event,) = json.loads(response.request.post_data)["events"]
    assert isinstance(event, dict)
    return event


def arm_of(user_id: str) -> str:
    """The variant of ``EXPERIMENT`` that serves ``user_id``."""
    return Assigner(parse_experiment(json.dumps(EXPERIMENT))).variant_of(user_id)


def serving_context(record: dict[str, Any]) -> dict[str, Any]:
    """The serving context fields of an event or log record ("absent" for a field it lacks)."""
    return {key: record.get(key, "absent") for key in ("request_id", "variant", "position")}


def rates(report: dict[str, Any], variant: str) -> dict[str, int]:
    """Exposures and the converted exposures of each rate of ``variant`` in an A/B report."""
    (row,) = [v for v in report["variants"] if v["name"] == variant]
    return {"exposures": row["exposures"], **{m: r["successes"] for m, r in row["rates"].items()}}


# ------------------------------------------------------------------------------------------- the tests
def test_the_shelves_show_real_catalogue_items_with_brand_channels_and_reason(page: Page, shop: Shop) -> None:
    recommended = shelf(page, "shelf-recommended")
    popular = shelf(page, "shelf-popular")
    assert recommended == shop.recommended("0")  # the first dataset user, as the API answers for them
    api_popular = shop.client.get("/v1/popular", params={"k": 10}).json()["items"]
    assert popular == [item["item_id"] for item in api_popular]
    card = page.get_by_test_id("shelf-popular").get_by_test_id("product-card").first
    first = api_popular[0]
    assert card.locator("h3").inner_text() == shop.titles[first["item_id"]]
    assert card.get_by_test_id("card-brand").inner_text() == shop.brands[first["item_id"]]
    assert card.get_by_test_id("card-channels").inner_text().split() == first["channels"]
    assert card.get_by_test_id("card-reason").inner_text() == first["reason"]
    assert card.get_by_test_id("card-price").count() == 0  # the Scientific catalogue has no prices
    footer = page.get_by_test_id("footer")
    model_version = shop.client.get("/v1/health").json()["model_version"]
    page.wait_for_function(
        "v => document.querySelector('[data-testid=model-version]').textContent === v", arg=model_version
    )
    assert "recommendations" in footer.get_by_test_id("latencies").inner_text()
    assert footer.get_by_test_id("degraded-badge").is_hidden()


def test_search_finds_items_despite_a_typo_and_a_brand_facet_narrows_them(page: Page, shop: Shop) -> None:
    page.get_by_test_id("search-input").fill("digtal calipr")
    page.get_by_test_id("search-input").press("Enter")
    found = shelf(page, "search-results")
    assert sum("caliper" in shop.titles[i].lower() for i in found) >= len(found) // 2 > 0
    brand_facet = page.get_by_test_id("facet-brand").locator("button").first
    brand = brand_facet.get_attribute("data-value")
    assert brand
    before = request_id(page, "search-results")
    brand_facet.click()
    narrowed = shelf_after(page, "search-results", before)
    assert narrowed
    assert {shop.brands[i] for i in narrowed} == {brand}
    cards = page.get_by_test_id("search-results").get_by_test_id("card-brand").all_inner_texts()
    assert set(cards) == {brand}
    # A result's own button sends the search's serving context: its user's arm, the card's place.
    with page.expect_response(lambda r: is_event(r, "cart")) as cart:
        page.get_by_test_id("search-results").get_by_test_id("add-to-cart").first.click()
    assert cart.value.status == 200
    assert posted_event(cart.value)["item_id"] == narrowed[0]
    assert serving_context(posted_event(cart.value)) == {
        "request_id": request_id(page, "search-results"),
        "variant": arm_of("0"),
        "position": 0,
    }


def test_clicking_a_card_posts_an_event_and_the_recommended_shelf_changes(page: Page, shop: Shop) -> None:
    from playwright.sync_api import expect

    switch_to(page, "__new__")
    user = page.get_by_test_id("user-switcher").input_value()
    assert user.startswith("anon-")
    assert shop.stored(user) == []
    before = shelf(page, "shelf-recommended")
    assert before == shelf(page, "shelf-popular")  # a new shopper is recommended the popular items
    clicked = before[0]
    shown = request_id(page, "shelf-recommended")
    popular_request = request_id(page, "shelf-popular")
    with page.expect_response(lambda r: is_event(r, "click")) as posted:
        page.get_by_test_id("shelf-popular").get_by_test_id("product-card").first.click()
    assert posted.value.status == 200
    # The popular shelf is the same for everyone, served under no experiment arm.
    assert serving_context(posted_event(posted.value)) == {
        "request_id": popular_request,
        "variant": None,
        "position": 0,
    }
    assert posted.value.json()["applied"] == 1
    after = shelf_after(page, "shelf-recommended", shown)
    assert after != before
    assert clicked not in after  # seen items are left out
    assert after == shop.recommended(user)
    assert shop.stored(user) == [clicked]

    product = page.get_by_test_id("product-view")
    assert product.get_attribute("data-item-id") == clicked
    # The product view fills in when its own fetches resolve, which may be after the shelves refreshed.
    expect(page.locator("#product-title")).to_have_text(shop.titles[clicked], timeout=WAIT_MS)
    similar = shelf(page, "shelf-similar")
    api_similar = shop.client.get(f"/v1/items/{clicked}/similar", params={"k": 10}).json()["items"]
    assert similar == [item["item_id"] for item in api_similar]

    shown = request_id(page, "shelf-recommended")
    with page.expect_response(lambda r: is_event(r, "cart")) as carted:
        page.get_by_test_id("product-add-to-cart").click()
    assert carted.value.status == 200
    # The page counts the item once its fetch resolves, which can be after Playwright sees the response.
    expect(page.get_by_test_id("cart-count")).to_have_text("Cart 1", timeout=WAIT_MS)
    shelf_after(page, "shelf-recommended", shown)
    with page.expect_response(lambda r: is_event(r, "purchase")) as bought:
        page.get_by_test_id("product-buy").click()
    assert bought.value.status == 200
    assert shop.stored(user)[0] == clicked
    _save_screenshot(page)


def test_events_from_a_list_carry_its_serving_context_and_the_ab_report_attributes_them(
    page: Page, shop: Shop
) -> None:
    shown = shelf(page, "shelf-recommended")  # the first dataset user's
    served = request_id(page, "shelf-recommended")
    (exposure,) = [r for r in shop.logged() if r.get("record") == "exposure" and r["request_id"] == served]
    arm = arm_of("0")
    assert (exposure["user_id"], exposure["variant"], exposure["surface"]) == ("0", arm, "recommendations")
    assert exposure["item_ids"] == shown
    before = shop.ab_report()

    position = 2  # not the first card: the position sent must be the card's own
    context = {"request_id": served, "variant": arm, "position": position}
    with page.expect_response(lambda r: is_event(r, "click")) as click:
        page.get_by_test_id("shelf-recommended").get_by_test_id("product-card").nth(position).click()
    assert click.value.status == 200
    assert posted_event(click.value)["item_id"] == shown[position]
    assert serving_context(posted_event(click.value)) == context
    # The product view's own buttons carry the context of the card that opened it.
    similar = shelf(page, "shelf-similar")
    with page.expect_response(lambda r: is_event(r, "cart")) as cart:
        page.get_by_test_id("product-add-to-cart").click()
    assert cart.value.status == 200
    assert serving_context(posted_event(cart.value)) == context
    with page.expect_response(lambda r: is_event(r, "purchase")) as purchase:
        page.get_by_test_id("product-buy").click()
    assert purchase.value.status == 200
    assert serving_context(posted_event(purchase.value)) == context
    # A card of the similar items: that list's context; it has no user, so it is the default arm's.
    similar_request = request_id(page, "shelf-similar")
    with page.expect_response(lambda r: is_event(r, "cart")) as similar_cart:
        page.get_by_test_id("shelf-similar").get_by_test_id("add-to-cart").nth(1).click()
    assert similar_cart.value.status == 200
    assert posted_event(similar_cart.value)["item_id"] == similar[1]
    assert serving_context(posted_event(similar_cart.value)) == {
        "request_id": similar_request,
        "variant": "control",
        "position": 1,
    }

    sent = {
        posted_event(r.value)["event_id"]: posted_event(r.value)
        for r in (click, cart, purchase, similar_cart)
    }
    logged = {r["event_id"]: r for r in shop.logged() if r.get("event_id") in sent}
    assert {i: serving_context(r) for i, r in logged.items()} == {
        i: serving_context(e) for i, e in sent.items()
    }

    after = shop.ab_report()
    gained = {m: rates(after, arm)[m] - rates(before, arm)[m] for m in ("ctr", "cart_rate", "purchase_rate")}
    assert gained == {"ctr": 1, "cart_rate": 1, "purchase_rate": 1}
    # The similar items were served to no user: not an exposure, so that cart is the one unattributed event.
    assert after["unattributed_events"] == before["unattributed_events"] + 1


def test_the_user_switcher_shows_each_users_own_recommendations(page: Page, shop: Shop) -> None:
    assert page.get_by_test_id("user-switcher").input_value() == "0"
    first = shelf(page, "shelf-recommended")
    switch_to(page, "1")
    second = shelf(page, "shelf-recommended")
    assert second == shop.recommended("1")
    assert second != first
    assert page.locator("#recommended-for").inner_text() == "for user 1"
    switch_to(page, "__new__")
    anonymous = page.get_by_test_id("user-switcher").input_value()
    assert anonymous.startswith("anon-")
    assert shelf(page, "shelf-recommended") == shop.recommended(anonymous)
    page.reload()  # the tab remembers its shopper
    shelf(page, "shelf-recommended")
    assert page.get_by_test_id("user-switcher").input_value() == anonymous


def _save_screenshot(page: Page) -> None:
    target = os.environ.get("SHOPREC_STOREFRONT_SCREENSHOT")
    if target:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=target, full_page=True)
