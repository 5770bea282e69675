// The demo storefront: plain JavaScript over the public REST API v1 (docs/api.md, docs/storefront.md).
"use strict";

const params = new URLSearchParams(window.location.search);
// "" is the page's own origin (shoprec serve); a page hosted elsewhere names the API in its meta tag.
const API = (params.get("api") ?? document.querySelector('meta[name="shoprec-api"]').content).replace(/\/+$/, "");
// Users of the Amazon Scientific catalogue, whose histories `make run` imports; ?users=a,b,c names others.
const DATASET_USERS = (params.get("users") ?? "0,1,2,3,4").split(",").map((u) => u.trim()).filter(Boolean);
const NEW_SHOPPER = "__new__";
const SHELF_K = 10;
const SEARCH_K = 24;
const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;

const state = {
  user: null,
  query: "",
  brand: null,
  category: null,
  item: null,
  served: null, // serving context of the product view's item: the list it was opened from
  cart: 0,
  calls: new Map(), // operation -> {ms, status}
  degraded: new Map(), // operation -> degraded flag of its last answer
  details: new Map(), // item id -> catalogue entry (brand, price, categories)
  generation: new Map(), // element id -> counter, so that a slow, older answer never overwrites a newer one
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// ------------------------------------------------------------------------------------------- the API
async function call(operation, path, init = {}) {
  const started = performance.now();
  let response;
  try {
    response = await fetch(API + path, {
      ...init,
      headers: { accept: "application/json", ...(init.body ? { "content-type": "application/json" } : {}) },
    });
  } catch (error) {
    state.calls.set(operation, { ms: performance.now() - started, status: "network error" });
    renderFooter();
    throw error;
  }
  const body = await response.json().catch(() => null);
  state.calls.set(operation, { ms: performance.now() - started, status: response.status });
  if (body && typeof body.degraded === "boolean") state.degraded.set(operation, body.degraded);
  if (body && body.model_version) $("model-version").textContent = body.model_version;
  renderFooter();
  if (!response.ok) {
    throw new Error(`${operation}: ${response.status} ${(body && body.detail) || response.statusText}`);
  }
  return body;
}

const query = (values) => {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    for (const v of [].concat(value)) if (v !== null && v !== undefined && v !== "") q.append(key, v);
  }
  return q.toString();
};

async function withDetails(items) {
  const missing = [...new Set(items.map((i) => i.item_id))].filter((id) => !state.details.has(id));
  for (let start = 0; start < missing.length; start += 100) {
    const body = await call("items", `/v1/items?${query({ ids: missing.slice(start, start + 100) })}`);
    for (const item of body.items) state.details.set(item.item_id, item);
  }
  return items;
}

// The serving context of the item at `position` of a list answer: sent back with the events the list leads
// to, so that the event log ties each event to the list that caused it and A/B reports attribute it.
const servedAt = (list, position) => ({ request_id: list.request_id, variant: list.variant ?? null, position });

let eventCounter = 0;
async function sendEvent(type, itemId, served) {
  eventCounter += 1;
  const eventId = `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${eventCounter}`;
  const event = { event_id: eventId, user_id: state.user, item_id: itemId, type };
  if (served) Object.assign(event, served);
  const body = await call("events", "/v1/events", {
    method: "POST",
    body: JSON.stringify({ events: [event] }),
  });
  notify(`${type} on item ${itemId} sent for ${describeUser(state.user)}; shelves updated`);
  return body;
}

// ------------------------------------------------------------------------------------------ rendering
function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function thumb(node, details, title) {
  const label = (details && (details.categories.at(-1) || details.brand)) || title || "?";
  node.style.background = `linear-gradient(135deg, hsl(${hue(label)} 55% 48%), hsl(${(hue(label) + 40) % 360} 60% 36%))`;
  node.textContent = label.replace(/[^A-Za-z0-9 ]/g, " ").split(/\s+/).filter(Boolean).slice(0, 2)
    .map((w) => w[0].toUpperCase()).join("");
  node.title = label;
}

const priceText = (price) =>
  price === null || price === undefined
    ? null
    : price.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function card(item, served) {
  const details = state.details.get(item.item_id);
  const title = item.title || (details && details.title) || `Item ${item.item_id}`;
  const image = el("div", { class: "thumb", "aria-hidden": "true" });
  thumb(image, details, title);
  const price = details ? priceText(details.price) : null;
  return el(
    "article",
    {
      class: "card",
      "data-testid": "product-card",
      "data-item-id": item.item_id,
      tabindex: "0",
      "data-position": String(served.position),
      onclick: () => openItem(item.item_id, "click", served),
      onkeydown: (e) => {
        if (e.key === "Enter" && e.target === e.currentTarget) openItem(item.item_id, "click", served);
      },
    },
    image,
    el("h3", { text: title, title }),
    details && details.brand ? el("p", { class: "brand", "data-testid": "card-brand", text: details.brand }) : null,
    price ? el("p", { class: "price", "data-testid": "card-price", text: price }) : null,
    el("div", { class: "chips", "data-testid": "card-channels" },
      ...item.channels.map((ch) => el("span", { class: "chip", text: ch }))),
    el("p", { class: "reason", "data-testid": "card-reason", text: item.reason }),
    el("button", {
      type: "button",
      class: "add",
      "data-testid": "add-to-cart",
      text: "Add to cart",
      onclick: (e) => { e.stopPropagation(); addToCart(item.item_id, served); },
    }),
  );
}

// Cards for the items of a list answer, each knowing where that answer showed it.
function fill(container, list, emptyText) {
  const cards = list.items.map((item, position) => card(item, servedAt(list, position)));
  container.replaceChildren(...(cards.length ? cards : [el("p", { class: "empty", text: emptyText })]));
}

// A load of the element `id`: returns a function telling whether this load is still the newest one.
function begin(id) {
  const n = (state.generation.get(id) || 0) + 1;
  state.generation.set(id, n);
  return () => state.generation.get(id) === n;
}

async function loadShelf(id, operation, path, emptyText) {
  const current = begin(id);
  const shelf = $(id);
  shelf.setAttribute("aria-busy", "true");
  try {
    const body = await call(operation, path);
    await withDetails(body.items);
    if (!current()) return;
    fill(shelf.querySelector(".row"), body, emptyText);
    shelf.dataset.requestId = body.request_id;
    shelf.dataset.userId = state.user;
  } catch (error) {
    if (current()) showError(error);
  } finally {
    if (current()) shelf.removeAttribute("aria-busy");
  }
}

function refreshShelves() {
  $("recommended-for").textContent = `for ${describeUser(state.user)}`;
  return Promise.all([
    loadShelf(
      "shelf-recommended",
      "recommendations",
      `/v1/recommendations/${encodeURIComponent(state.user)}?${query({ k: SHELF_K })}`,
      "Nothing to recommend yet.",
    ),
    loadShelf("shelf-popular", "popular", `/v1/popular?${query({ k: SHELF_K })}`, "No popular items."),
  ]);
}

async function search() {
  const current = begin("results");
  const section = $("results");
  section.hidden = false;
  section.setAttribute("aria-busy", "true");
  try {
    const body = await call(
      "search",
      `/v1/search?${query({ q: state.query, user_id: state.user, k: SEARCH_K, brand: state.brand, category: state.category })}`,
    );
    await withDetails(body.items);
    if (!current()) return;
    const filters = [state.brand, state.category].filter(Boolean);
    $("results-title").textContent =
      `Results for “${state.query}”` + (filters.length ? ` in ${filters.join(", ")}` : "");
    fill($("results-grid"), body, "No matches: try other words.");
    renderFacets(body.facets);
    section.dataset.requestId = body.request_id;
  } catch (error) {
    if (current()) showError(error);
  } finally {
    if (current()) section.removeAttribute("aria-busy");
  }
}

function renderFacets(facets) {
  const group = (title, key, counts) => {
    const names = Object.keys(counts);
    if (!names.length) return null;
    return el("div", { "data-testid": `facet-${key}` },
      el("h3", { text: title }),
      el("ul", {}, ...names.map((name) => el("li", {},
        el("button", {
          type: "button",
          class: state[key] === name ? "on" : "",
          "data-facet": key,
          "data-value": name,
          onclick: () => { state[key] = state[key] === name ? null : name; search(); },
        }, el("span", { text: name }), el("span", { class: "count", text: String(counts[name]) }))))));
  };
  $("facets").replaceChildren(
    ...[group("Brand", "brand", facets.brand), group("Category", "category", facets.category)].filter(Boolean),
  );
}

// The product view of `itemId`; `served` is the serving context of the card it was opened from, which the
// view's own cart and purchase events carry too.
async function openItem(itemId, eventType, served = null) {
  const current = begin("product");
  state.item = itemId;
  state.served = served;
  const section = $("product");
  section.hidden = false;
  section.setAttribute("aria-busy", "true");
  section.dataset.itemId = itemId;
  section.scrollIntoView({ block: "start" });
  try {
    if (eventType) {
      await sendEvent(eventType, itemId, served);
      refreshShelves();
    }
    const [item] = await Promise.all([
      call("item", `/v1/items/${encodeURIComponent(itemId)}`),
      loadShelf("product-similar", "similar",
        `/v1/items/${encodeURIComponent(itemId)}/similar?${query({ k: SHELF_K })}`, "No similar items."),
    ]);
    if (!current()) return;
    state.details.set(item.item_id, item);
    $("product-title").textContent = item.title || `Item ${item.item_id}`;
    $("product-brand").textContent = item.brand ? `by ${item.brand}` : "";
    $("product-price").textContent = [priceText(item.price), item.available ? null : "out of stock"]
      .filter(Boolean).join(" · ");
    $("product-cart").disabled = !item.available;
    $("product-buy").disabled = !item.available;
    $("product-categories").textContent = item.categories.join(" › ");
    $("product-description").textContent = item.description;
    thumb($("product-thumb"), item, item.title);
  } catch (error) {
    if (current()) showError(error);
  } finally {
    if (current()) section.removeAttribute("aria-busy");
  }
}

async function addToCart(itemId, served) {
  try {
    await sendEvent("cart", itemId, served);
    state.cart += 1;
    $("cart").textContent = `Cart ${state.cart}`;
    await refreshShelves();
  } catch (error) {
    showError(error);
  }
}

async function buy(itemId, served) {
  try {
    await sendEvent("purchase", itemId, served);
    notify(`Thank you, ${describeUser(state.user)}: item ${itemId} is on its way. Shelves updated.`);
    await refreshShelves();
  } catch (error) {
    showError(error);
  }
}

function renderFooter() {
  const names = ["recommendations", "popular", "search", "similar", "item", "items", "events"];
  $("latencies").replaceChildren(
    ...names.filter((n) => state.calls.has(n)).map((n) => {
      const { ms, status } = state.calls.get(n);
      return el("span", { class: "latency", "data-operation": n, title: `last answer: ${status}` },
        `${n} `, el("b", { text: `${ms.toFixed(0)} ms` }));
    }),
  );
  $("degraded").hidden = ![...state.degraded.values()].some(Boolean);
}

let noticeTimer = null;
function notify(text, isError = false) {
  const notice = $("notice");
  notice.textContent = text;
  notice.classList.toggle("error", isError);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, isError ? 12000 : 5000);
}

function showError(error) {
  console.error(error);
  notify(String(error.message || error), true);
}

// ---------------------------------------------------------------------------------------- shoppers
function describeUser(user) {
  return DATASET_USERS.includes(user) ? `user ${user}` : `anonymous shopper ${user}`;
}

function newShopperId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `anon-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function renderSwitcher() {
  const switcher = $("user-switcher");
  const anonymous = state.user && !DATASET_USERS.includes(state.user) ? [state.user] : [];
  switcher.replaceChildren(
    el("optgroup", { label: "Dataset users" },
      ...DATASET_USERS.map((u) => el("option", { value: u, text: `User ${u}` }))),
    el("optgroup", { label: "Anonymous" },
      ...anonymous.map((u) => el("option", { value: u, text: u })),
      el("option", { value: NEW_SHOPPER, text: "New anonymous shopper" })),
  );
  switcher.value = state.user;
}

function switchUser(user) {
  state.user = user;
  state.served = null; // a list served to the previous shopper is not this one's
  state.cart = 0;
  $("cart").textContent = "Cart 0";
  try { localStorage.setItem("shoprec.user", user); } catch { /* private mode: not remembered */ }
  renderSwitcher();
  refreshShelves();
  if (state.query) search();
}

// ------------------------------------------------------------------------------------------- start
function start() {
  let remembered = null;
  try { remembered = localStorage.getItem("shoprec.user"); } catch { /* private mode */ }
  state.user = remembered && ID_PATTERN.test(remembered) ? remembered : (DATASET_USERS[0] || newShopperId());

  $("user-switcher").addEventListener("change", (e) => {
    switchUser(e.target.value === NEW_SHOPPER ? newShopperId() : e.target.value);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search-input").value.trim();
    if (!q) return;
    state.query = q;
    state.brand = null;
    state.category = null;
    search();
  });
  $("product-cart").addEventListener("click", () => state.item && addToCart(state.item, state.served));
  $("product-buy").addEventListener("click", () => state.item && buy(state.item, state.served));

  renderSwitcher();
  refreshShelves();
  call("health", "/v1/health").catch(showError);
}

start();
