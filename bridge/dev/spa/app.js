// Reference single-page app for the bridge: OAuth 2.0 authorization code + PKCE, the access token
// in memory only, the refresh token in the bridge's HttpOnly cookie. Plain JavaScript, no build.
"use strict";

const config = window.BRIDGE_SPA_CONFIG;
let accessToken = null; // never written to localStorage or sessionStorage
let refreshes = 0;

const $ = (id) => document.getElementById(id);

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
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
  const response = await fetch(`${config.bridge}/token`, {
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
  accessToken = (await response.json()).access_token;
  return saved.then;
}

async function refresh() {
  const response = await fetch(`${config.bridge}/token`, {
    method: "POST",
    credentials: "include", // the refresh token travels in the cookie, never through this code
    headers: form({ "X-Bridge-Refresh": "1" }),
    body: new URLSearchParams({ grant_type: "refresh_token", client_id: config.clientId }),
  });
  if (!response.ok) {
    accessToken = null;
    return false;
  }
  accessToken = (await response.json()).access_token;
  refreshes += 1;
  $("refreshes").textContent = String(refreshes);
  return true;
}

async function callApi() {
  const request = () => fetch(config.api, { headers: { Authorization: `Bearer ${accessToken}` } });
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
  const request = () => fetch(config.payroll, {
    method: "POST", headers: { Authorization: `Bearer ${accessToken}` },
  });
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
  await fetch(`${config.bridge}/logout`, {
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
