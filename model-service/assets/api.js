// What both dashboard pages share: reading the API with the reader's key.
//
// With auth.required on, every data request needs a key with scope `read`.
// A browser cannot send one when it opens a page, so the pages themselves
// are static and public, and this code asks for a key once, keeps it in
// this browser's localStorage, and sends it as `Authorization: Bearer` on
// every request it makes: JSON with fetch, plots fetched as blobs (an
// <img src> would send no key), and the live feed read from a fetch
// stream (an EventSource cannot send one either; a key in the URL would
// end up in logs). With keys off, no key is stored and none is sent.
"use strict";
const KEY_ITEM = "bayes.key";
let keyEntered = null;

function authHeaders() {
  const key = localStorage.getItem(KEY_ITEM);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Shows the key form and resolves once a key is entered.
function askForKey(message) {
  const form = document.getElementById("key-form");
  document.getElementById("key-message").textContent = message;
  form.hidden = false;
  if (!keyEntered) {
    keyEntered = new Promise((resolve) => {
      form.onsubmit = (e) => {
        e.preventDefault();
        const input = document.getElementById("key-input");
        localStorage.setItem(KEY_ITEM, input.value.trim());
        input.value = "";
        form.hidden = true;
        keyEntered = null;
        resolve();
      };
    });
  }
  return keyEntered;
}

// fetch with the key; a 401 asks for a (new) key and tries again.
async function api(url) {
  for (;;) {
    const response = await fetch(url, { cache: "no-store", headers: authHeaders() });
    if (response.status !== 401) return response;
    const body = await response.json().catch(() => ({}));
    const reason = body.error ? body.error.message : "an API key is needed";
    await askForKey(`${reason}: enter a key with scope read.`);
  }
}

async function getJson(url) {
  const response = await api(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

// Loads a plot into `img`; `img.dataset.src` keeps the URL it shows. As
// with setting `src`, the last call wins: a slower answer to an earlier
// call is dropped.
async function loadImage(img, url) {
  img.dataset.wanted = url;
  const response = await api(url);
  if (!response.ok) return;
  const blob = await response.blob();
  if (img.dataset.wanted !== url) return;
  const old = img.src;
  img.dataset.src = url;
  img.src = URL.createObjectURL(blob);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

// Reads /events (server-sent events) and calls onEvent(name, data) for
// each, reconnecting with a growing pause; onDown() while it is down.
async function follow(onEvent, onDown) {
  let pause = 500;
  for (;;) {
    try {
      const response = await api("/events");
      if (!response.ok) throw new Error(`status ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon === 0) continue;  // a comment: the keep-alive
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") name = value;
            if (field === "data") data.push(value);
          }
          pause = 500;
          onEvent(name, data.join("\n"));
        }
      }
    } catch (err) {
      // Down or refused: say so, wait, try again.
    }
    onDown();
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10000);
  }
}
