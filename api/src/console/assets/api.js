// The console's only way to the server: the public GraphQL API, over HTTP for queries and
// mutations and over WebSocket (graphql-transport-ws) for live activity, exactly as an
// integrator's frontend would use it.

const KEY = "invitations.console.apiKey";

// The key lives in sessionStorage: it survives a reload but not the tab, and it is never put
// in a URL (links and history would keep it) or written to the console log.
export const session = {
  key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

// A GraphQL error with the API's stable code and, for bad input, the field it concerns.
export class ApiError extends Error {
  constructor(message, extensions) {
    super(message);
    const ext = extensions || {};
    this.code = ext.code || "INTERNAL_SERVER_ERROR";
    this.field = ext.field || null;
    this.reason = ext.reason || null;
  }
}

// Called when the server refuses the key, so the app can return to the sign-in form.
let onUnauthenticated = () => {};
export function whenUnauthenticated(callback) { onUnauthenticated = callback; }

export async function gql(query, variables, key) {
  const apiKey = key || session.key() || "";
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", "x-api-key": apiKey },
      body: JSON.stringify({ query, variables: variables || {} }),
    });
  } catch (e) {
    throw new ApiError("The server could not be reached. Check that it is running.", { code: "NETWORK_ERROR" });
  }
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw new ApiError(`The server answered ${response.status} without a GraphQL result.`, { code: "INTERNAL_SERVER_ERROR" });
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const error = new ApiError(first.message, first.extensions);
    if (error.code === "UNAUTHENTICATED" && !key) onUnauthenticated();
    throw error;
  }
  return body.data;
}

// Every page of a paged list (`fetchPage(after)` answers a Relay connection), up to `limit`
// items: the timeline shows a whole log, which is short.
export async function allPages(fetchPage, limit) {
  const items = [];
  let after = null;
  for (;;) {
    const page = await fetchPage(after);
    items.push(...page.nodes);
    if (!page.pageInfo.hasNextPage || items.length >= limit) return items;
    after = page.pageInfo.endCursor;
  }
}

const RETRY_MS = [500, 1000, 2000, 5000, 10000];

// One graphql-transport-ws connection for the whole console. Subscriptions survive a dropped
// connection: it reconnects with backoff and subscribes again, and each subscription can say
// how to resume (`companyActivity` passes the cursor of the last event it got as `since`).
// `onState` hears "connecting", "live" and "offline" for the connection indicator.
export class Live {
  constructor(onState) {
    this.onState = onState;
    this.subscriptions = new Map();
    this.nextId = 1;
    this.socket = null;
    this.ready = false;
    this.failures = 0;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.subscriptions.clear();
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.ready = false;
  }

  connect() {
    this.onState("connecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    const socket = new WebSocket(url, "graphql-transport-ws");
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: { apiKey: session.key() || "" } }));
    });
    socket.addEventListener("message", (event) => this.receive(socket, event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.ready = false;
      this.socket = null;
      if (this.stopped) return;
      this.onState("offline");
      if (event.code === 4403) { onUnauthenticated(); return; }
      const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }

  receive(socket, data) {
    let message;
    try { message = JSON.parse(data); } catch (e) { return; }
    switch (message.type) {
      case "connection_ack":
        this.ready = true;
        this.failures = 0;
        this.onState("live");
        this.subscriptions.forEach((sub, id) => this.send(id, sub));
        break;
      case "ping":
        socket.send(JSON.stringify({ type: "pong" }));
        break;
      case "next": {
        const sub = this.subscriptions.get(message.id);
        const payload = message.payload || {};
        if (!sub) break;
        if (payload.data) sub.onData(payload.data);
        const first = (payload.errors || [])[0];
        if (first) {
          const error = new ApiError(first.message, first.extensions);
          // A stream that fell behind ends; it is started again, from where it stopped.
          sub.resume = error.code === "SUBSCRIBER_LAGGED";
          if (!sub.resume && sub.onError) sub.onError(error);
        }
        break;
      }
      case "error": {
        const sub = this.subscriptions.get(message.id);
        const first = (message.payload || [])[0] || {};
        if (sub && sub.onError) sub.onError(new ApiError(first.message || "subscription failed", first.extensions));
        break;
      }
      case "complete": {
        const sub = this.subscriptions.get(message.id);
        if (sub && sub.resume && this.ready) {
          sub.resume = false;
          this.send(message.id, sub);
        }
        break;
      }
      default:
        break;
    }
  }

  send(id, sub) {
    this.socket.send(JSON.stringify({
      id, type: "subscribe", payload: { query: sub.query, variables: sub.variables() },
    }));
  }

  // Subscribes; `variables()` is asked again on every (re)subscription. Returns the function
  // that ends the subscription.
  subscribe(query, variables, onData, onError) {
    const id = String(this.nextId++);
    const sub = { query, variables, onData, onError };
    this.subscriptions.set(id, sub);
    if (this.ready) this.send(id, sub);
    return () => {
      if (!this.subscriptions.delete(id)) return;
      if (this.ready) this.socket.send(JSON.stringify({ id, type: "complete" }));
    };
  }
}
