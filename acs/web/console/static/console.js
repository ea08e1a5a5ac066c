// The acs console's own script: live parts of pages, confirmations, bulk selection, uploads.
// Pages work without it; it only saves reloads.
"use strict";

function csrf() { return document.querySelector("main").dataset.csrf || ""; }

// Elements with data-live="URL" are re-fetched from URL (an HTML fragment) when one of the
// events in data-live-types arrives on the console's event stream (for data-live-device
// only), and every data-live-poll ms while their content says data-pending="1" (some moves,
// such as a task waiting for its device's boot, are no event).
function liveRegions() {
  const regions = Array.from(document.querySelectorAll("[data-live]"));
  if (!regions.length) return;
  const refresh = (el) => {
    if (el._busy) { el._again = true; return; }
    el._busy = true;
    fetch(el.dataset.live, { headers: { accept: "text/html" }, credentials: "same-origin" })
      .then((r) => {
        if (r.redirected) { window.location.reload(); return Promise.reject(401); } // signed out
        return r.ok ? r.text() : Promise.reject(r.status);
      })
      .then((html) => { el.innerHTML = html; schedule(el); })
      .catch(() => {})
      .finally(() => { el._busy = false; if (el._again) { el._again = false; refresh(el); } });
  };
  const schedule = (el) => {
    clearTimeout(el._timer);
    const every = parseInt(el.dataset.liveEvery || el.dataset.livePoll || "0", 10);
    const pending = el.querySelector("[data-pending='1']") !== null || el.dataset.liveEvery;
    if (every > 0 && pending) el._timer = setTimeout(() => refresh(el), every);
  };
  const types = new Set();
  let device = null;
  for (const el of regions) {
    schedule(el);
    for (const t of (el.dataset.liveTypes || "").split(",")) if (t) types.add(t);
    if (el.dataset.liveDevice) device = el.dataset.liveDevice;
  }
  if (!types.size || !window.EventSource) return;
  const params = new URLSearchParams();
  for (const t of types) params.append("type", t);
  if (device) params.set("device_id", device);
  const source = new EventSource("/live?" + params.toString());
  const onEvent = (e) => {
    for (const el of regions) {
      if ((el.dataset.liveTypes || "").split(",").includes(e.type)) refresh(el);
    }
  };
  for (const t of types) source.addEventListener(t, onEvent);
}

function confirmations() {
  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) e.preventDefault();
  });
}

function bulkSelection() {
  const all = document.getElementById("select-page");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll("input[name=selected]")) box.checked = all.checked;
  });
}

// Uploads go as the raw body (the server streams it to disk), with the CSRF header and a
// progress bar; XMLHttpRequest because fetch() reports no upload progress.
function uploads() {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("[name]")) if (input.value) params.set(input.name, input.value);
    if (!params.get("name")) params.set("name", file.name);
    const bar = document.getElementById("u-progress");
    const status = document.getElementById("u-status");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.upload + "?" + params.toString());
    xhr.setRequestHeader("x-csrf-token", csrf());
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (p) => { if (p.lengthComputable) bar.value = Math.round((100 * p.loaded) / p.total); };
    xhr.onload = () => {
      if (xhr.status < 300) {
        bar.value = 100;
        status.textContent = "uploaded " + params.get("name");
        window.location.assign("/files?done=" + encodeURIComponent("uploaded " + params.get("name")));
      } else {
        let message = xhr.statusText;
        const found = /<p class="error"[^>]*>([^<]*)<\/p>/.exec(xhr.responseText);
        if (found) message = found[1];
        status.textContent = "upload refused (" + xhr.status + "): " + message;
      }
    };
    xhr.onerror = () => { status.textContent = "upload failed: the connection broke"; };
    status.textContent = "uploading…";
    xhr.send(file);
  });
}

// A search's URL names only the fields filled in: short enough to bookmark and share.
function tidySearches() {
  for (const form of document.querySelectorAll("form[method=get]")) {
    form.addEventListener("submit", () => {
      for (const field of form.querySelectorAll("[name]")) if (!field.value) field.disabled = true;
      setTimeout(() => { for (const field of form.querySelectorAll("[name]")) field.disabled = false; }, 0);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tidySearches();
  liveRegions();
  confirmations();
  bulkSelection();
  uploads();
});
