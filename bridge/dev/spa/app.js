// Reference single-page app for the bridge: OAuth 2.0 authorization code + PKCE, the access token
// in memory only, the refresh token in the bridge's HttpOnly cookie, and every token bound to a
// DPoP key (RFC 9449) that script cannot read out: a non-extractable WebCrypto key kept in
// IndexedDB. Plain JavaScript, no build.
"use strict";

const config = window.BRIDGE_SPA_CONFIG;
let accessToken = null; // never written to localStorage or sessionStorage
let refreshes = 0;
let dpopKey = null; // {privateKey, publicKey, jwk}
let dpopNonce = null; // the newest DPoP-Nonce the bridge handed out

const $ = (id) => document.getElementById(id);

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// --- DPoP ---------------------------------------------------------------------------------------

function openKeyStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("bridge-spa", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("keys");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function keyStore(mode, action) {
  return openKeyStore().then((db) => new Promise((resolve, reject) => {
    const request = action(db.transaction("keys", mode).objectStore("keys"));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  }));
}

async function loadDpopKey() {
  // A CryptoKey is stored as it is: IndexedDB keeps the key object, never its bytes, so the
  // private key stays non-extractable across reloads.
  let pair = await keyStore("readonly", (store) => store.get("dpop"));
  if (!pair) {
    pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false,
                                           ["sign", "verify"]);
    await keyStore("readwrite", (store) => store.put(pair, "dpop"));
  }
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  dpopKey = { privateKey: pair.privateKey, publicKey: pair.publicKey, jwk: { kty, crv, x, y } };
}

// RFC 7638: the key's required members in lexicographic order, without whitespace, hashed.
async function dpopThumbprint() {
  const { crv, kty, x, y } = dpopKey.jwk;
  const digest = await crypto.subtle.digest(
    "SHA-256", new TextEncoder().encode(JSON.stringify({ crv, kty, x, y })));
  return base64url(new Uint8Array(digest));
}

function base64urlText(text) {
  return base64url(new TextEncoder().encode(text));
}

async function dpopProof(method, url, token) {
  const header = { typ: "dpop+jwt", alg: "ES256", jwk: dpopKey.jwk };
  const claims = {
    jti: base64url(crypto.getRandomValues(new Uint8Array(16))),
    htm: method,
    htu: url.split("?")[0].split("#")[0],
    iat: Math.floor(Date.now() / 1000),
  };
  if (dpopNonce) claims.nonce = dpopNonce;
  if (token) {
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
    claims.ath = base64url(new Uint8Array(hash));
  }
  const input = `${base64urlText(JSON.stringify(header))}.${base64urlText(JSON.stringify(claims))}`;
  // WebCrypto's ECDSA signature is r || s, the form JWS wants (RFC 7518 §3.4).
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, dpopKey.privateKey,
                                             new TextEncoder().encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

// A request with a fresh proof; asked for a nonce (RFC 9449 §8), once more with it.
async function dpopFetch(url, options, token) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = { ...options.headers, DPoP: await dpopProof(options.method || "GET", url, token) };
    const response = await fetch(url, { ...options, headers });
    dpopNonce = response.headers.get("DPoP-Nonce") || dpopNonce;
    if (attempt > 0 || ![400, 401].includes(response.status)) return response;
    const challenge = response.headers.get("WWW-Authenticate") || "";
    const body = response.status === 400 ? await response.clone().json() : {};
    if (body.error !== "use_dpop_nonce" && !challenge.includes("use_dpop_nonce")) return response;
  }
}

function form(fields) {
  return { "Content-Type": "application/x-www-form-urlencoded", ...fields };
}

// `stepUp`: what a resource server's challenge asked for (acr_values, max_age), and the action
// to run again once the new login is in (`then`).
async function signIn(stepUp = {}) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(48)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  // The verifier is this one login's secret, not a credential: it is useless without the code.
  sessionStorage.setItem("bridge-login", JSON.stringify({ verifier, state, then: stepUp.then }));
  const params = {
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    scope: config.scope,
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
    dpop_jkt: await dpopThumbprint(), // the code is exchanged only with a proof of this key
  };
  if (stepUp.acr_values) params.acr_values = stepUp.acr_values;
  if (stepUp.max_age) params.max_age = stepUp.max_age;
  location.assign(`${config.bridge}/authorize?` + new URLSearchParams(params));
}

// RFC 9470: `Bearer error="insufficient_user_authentication", acr_values="mfa", max_age="300"`
// -> { acr_values: "mfa", max_age: "300" }, or null for any other challenge.
function stepUpChallenge(response) {
  const header = response.headers.get("WWW-Authenticate") || "";
  const params = {};
  for (const [, name, value] of header.matchAll(/([a-z_]+)="([^"]*)"/g)) params[name] = value;
  if (params.error !== "insufficient_user_authentication") return null;
  return { acr_values: params.acr_values, max_age: params.max_age };
}

async function completeSignIn(params) {
  const saved = JSON.parse(sessionStorage.getItem("bridge-login") || "null");
  sessionStorage.removeItem("bridge-login");
  history.replaceState(null, "", location.pathname); // the code must not linger in the URL
  if (!saved || saved.state !== params.get("state")) throw new Error("state mismatch");
  const response = await dpopFetch(`${config.bridge}/token`, {
    method: "POST",
    credentials: "include", // lets the bridge set its refresh cookie
    headers: form({}),
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: config.redirectUri,
      client_id: config.clientId,
      code_verifier: saved.verifier,
    }),
  });
  if (!response.ok) throw new Error(`token endpoint: ${response.status}`);
  const tokens = await response.json();
  accessToken = tokens.access_token;
  $("token-type").textContent = tokens.token_type;
  return saved.then;
}

async function refresh() {
  const response = await dpopFetch(`${config.bridge}/token`, {
    method: "POST",
    credentials: "include", // the refresh token travels in the cookie, never through this code
    headers: form({ "X-Bridge-Refresh": "1" }),
    body: new URLSearchParams({ grant_type: "refresh_token", client_id: config.clientId }),
  });
  if (!response.ok) {
    accessToken = null;
    return false;
  }
  const tokens = await response.json();
  accessToken = tokens.access_token;
  $("token-type").textContent = tokens.token_type;
  refreshes += 1;
  $("refreshes").textContent = String(refreshes);
  return true;
}

async function callApi() {
  // The access token is bound to the key: each call carries a proof made for it (ath).
  const request = () => dpopFetch(config.api, { headers: { Authorization: `DPoP ${accessToken}` } },
                                  accessToken);
  let response = await request();
  if (response.status === 401 && (await refresh())) {
    response = await request(); // once: a second 401 is an answer, not an expired token
  }
  const result = $("api-result");
  result.hidden = false;
  result.textContent = `${response.status}\n` + JSON.stringify(await response.json(), null, 2);
  render();
}

async function runPayroll() {
  const request = () => dpopFetch(config.payroll, {
    method: "POST", headers: { Authorization: `DPoP ${accessToken}` },
  }, accessToken);
  let response = await request();
  const challenge = stepUpChallenge(response);
  if (challenge) {
    // A refresh never upgrades a login: only a new one, asking for what the API named, can.
    await signIn({ ...challenge, then: "payroll" });
    return;
  }
  if (response.status === 401 && (await refresh())) response = await request();
  const result = $("api-result");
  result.hidden = false;
  result.textContent = `${response.status}\n` + JSON.stringify(await response.json(), null, 2);
  render();
}

async function signOut() {
  // The login is bound to the key: ending it takes a proof too, so a copied cookie cannot.
  await dpopFetch(`${config.bridge}/logout`, {
    method: "POST",
    credentials: "include",
    headers: form({ "X-Bridge-Refresh": "1" }),
    body: new URLSearchParams({ client_id: config.clientId }),
  });
  accessToken = null;
  $("api-result").hidden = true;
  render();
}

function render() {
  const signedIn = accessToken !== null;
  $("status").textContent = signedIn ? "Signed in." : "Signed out.";
  $("status").dataset.state = signedIn ? "signed-in" : "signed-out";
  $("sign-in").hidden = signedIn;
  $("call-api").hidden = !signedIn;
  $("run-payroll").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

async function start() {
  $("sign-in").addEventListener("click", () => signIn());
  $("call-api").addEventListener("click", callApi);
  $("run-payroll").addEventListener("click", runPayroll);
  $("sign-out").addEventListener("click", signOut);
  const params = new URLSearchParams(location.search);
  try {
    await loadDpopKey();
    if (params.has("code")) {
      const then = await completeSignIn(params);
      if (then === "payroll") {
        render();
        await runPayroll(); // the action the step-up was for
        return;
      }
    } else if (params.has("error")) {
      history.replaceState(null, "", location.pathname);
      sessionStorage.removeItem("bridge-login");
      await refresh(); // the earlier login, if any, still stands
      render();
      $("status").textContent += ` Sign-in refused: ${params.get("error")}.`;
      return;
    } else {
      await refresh(); // after a reload: silently back in if the cookie's login still lives
    }
  } catch (error) {
    $("status").textContent = `Sign-in failed: ${error.message}`;
  }
  render();
}

start();
