// kubenova dashboard: live updates over server-sent events, no framework, no build step.
"use strict";

function setPhase(cell, phase) {
  const span = document.createElement("span");
  span.className = "phase " + phase.toLowerCase();
  span.textContent = phase;
  cell.replaceChildren(span);
}

function liveList(el) {
  const tbody = document.getElementById("instances");
  const state = document.getElementById("live-state");
  const project = el.dataset.project;
  const source = new EventSource(el.dataset.src);
  source.onopen = () => { state.textContent = "live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.addEventListener("failed", (ev) => { state.textContent = "stopped: " + JSON.parse(ev.data); source.close(); });
  source.onmessage = (ev) => {
    const d = JSON.parse(ev.data);
    let row = tbody.querySelector(`tr[data-name="${CSS.escape(d.name)}"]`);
    const count = document.querySelector(".count");
    const bump = (by) => { if (count) count.textContent = `${parseInt(count.textContent, 10) + by} instances`; };
    if (d.type === "DELETED") { if (row) { row.remove(); bump(-1); } return; }
    if (!row && d.type === "ADDED") bump(1);
    if (!row) {
      if (el.dataset.append !== "1") return;  // a later page holds it
      row = document.createElement("tr");
      row.dataset.name = d.name;
      const link = document.createElement("a");
      link.href = `/p/${encodeURIComponent(project)}/instances/${encodeURIComponent(d.name)}`;
      link.textContent = d.name;
      const first = document.createElement("td");
      first.append(link);
      row.append(first);
      for (const col of ["phase", "host", "ip", "flavor", "age"]) {
        const td = document.createElement("td");
        td.dataset.col = col;
        row.append(td);
      }
      row.append(document.createElement("td"));
      tbody.append(row);
    }
    setPhase(row.querySelector('[data-col="phase"]'), d.phase);
    for (const col of ["host", "ip", "flavor", "age"]) row.querySelector(`[data-col="${col}"]`).textContent = d[col];
  };
}

// A fragment replaces the elements of its key (a row, a group of rows, a card) with the
// server-rendered (escaped) HTML it carries; empty HTML removes them; a new key is appended.
function applyFragment(container, d) {
  const old = [...container.querySelectorAll(`[data-key="${CSS.escape(d.key)}"]`)];
  const tpl = document.createElement("template");
  tpl.innerHTML = d.html;
  if (old.length) old[0].before(tpl.content); else container.append(tpl.content);
  for (const el of old) el.remove();
  container.dataset.updatedAt = String(Date.now());  // when the last change arrived
}

function liveFragments(container) {
  const source = new EventSource(container.dataset.liveSrc);
  source.addEventListener("open", () => { container.dataset.live = "live"; });
  source.addEventListener("error", () => { container.dataset.live = "reconnecting"; });
  source.addEventListener("failed", () => { container.dataset.live = "stopped"; source.close(); });
  source.addEventListener("fragment", (ev) => applyFragment(container, JSON.parse(ev.data)));
}

function liveInstance(el) {
  const source = new EventSource(el.dataset.src);
  const events = document.getElementById("events");
  source.addEventListener("open", () => { el.dataset.live = "live"; });
  source.addEventListener("fragment", (ev) => {
    const d = JSON.parse(ev.data);
    applyFragment(d.target ? document.getElementById(d.target) : events, d);
  });
  source.onmessage = (ev) => {
    const d = JSON.parse(ev.data);
    if (d.type === "DELETED") { setPhase(el.querySelector('[data-live="phase"]'), "Deleted"); return; }
    setPhase(el.querySelector('[data-live="phase"]'), d.phase);
    el.querySelector('[data-live="host"]').textContent = d.host;
    el.querySelector('[data-live="power"]').textContent = d.power;
    const pre = document.getElementById("console");
    if (pre.textContent !== d.console) { pre.textContent = d.console; pre.scrollTop = pre.scrollHeight; }
    const tbody = document.getElementById("conditions");
    tbody.replaceChildren(...d.conditions.map((c) => {
      const tr = document.createElement("tr");
      for (const k of ["type", "status", "reason", "message", "since"]) {
        const td = document.createElement("td"); td.textContent = c[k]; tr.append(td);
      }
      return tr;
    }));
  };
}

// Image upload: the raw file as the body of one XHR (fetch cannot report upload progress);
// the server streams it into the object store and answers with the checksum or refusals.
function imageUpload(form) {
  const bar = document.getElementById("upload-progress");
  const percent = document.getElementById("upload-percent");
  const result = document.getElementById("upload-result");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const old of form.querySelectorAll(".refusal")) old.remove();
    const file = form.elements.file.files[0];
    const params = new URLSearchParams({ filename: file ? file.name : "" });
    for (const k of ["name", "format", "sha256", "minDisk", "minMemory"]) params.set(k, form.elements[k].value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action + "?" + params.toString());
    xhr.setRequestHeader("X-CSRF-Token", form.elements._csrf.value);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (p) => {
      if (!p.lengthComputable) return;
      bar.value = Math.floor((100 * p.loaded) / p.total);
      percent.textContent = bar.value + " %";
    };
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (_) { answer = { errors: { "": [xhr.responseText] } }; }
      if (xhr.status === 200) {
        result.textContent = `Image ${answer.image} uploaded: ${answer.size} bytes, ${answer.format}, sha256 ${answer.sha256}. ${answer.warning}`;
        return;
      }
      result.textContent = "";
      for (const [field, messages] of Object.entries(answer.errors || {})) {
        const input = document.getElementById("f-" + field);
        for (const m of messages) {
          const p = document.createElement("p");
          p.className = "refusal"; p.setAttribute("role", "alert"); p.id = "err-" + (field || "upload");
          p.textContent = m;
          if (input) input.after(p); else result.before(p);
        }
      }
    };
    xhr.onerror = () => { result.textContent = "The upload was cut off; try again."; };
    bar.value = 0; percent.textContent = "0 %";
    xhr.send(file || new Blob());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const a of document.querySelectorAll("nav a")) {
    if (a.pathname === location.pathname) a.setAttribute("aria-current", "page");
  }
  const upload = document.getElementById("upload");
  if (upload) imageUpload(upload);
  const list = document.getElementById("live");
  if (list) liveList(list);
  for (const container of document.querySelectorAll("[data-live-src]")) liveFragments(container);
  const one = document.getElementById("summary");
  if (one && one.dataset.src) liveInstance(one);
  for (const sel of document.querySelectorAll("select[data-autosubmit]")) {
    sel.addEventListener("change", () => sel.form.submit());
  }
});
