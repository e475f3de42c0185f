"use strict";
// The page of GET / (chalice_app/web/__init__.py inlines this script and embeds the
// API's upload limits as JSON). Every API URL is relative to the page's own path, so
// the page works at / locally and under API Gateway's stage prefix (/api or /api/).
// Images go straight to S3 through the presigned POSTs of POST /jobs; results come
// from polling GET /jobs/{id}; the fleet panel polls GET /fleet.

const config = JSON.parse(document.getElementById("skyclass-config").textContent);
const apiBase = new URL(location.pathname.replace(/\/?$/, "/"), location.href);

const UPLOADS_AT_ONCE = 4;
// Jobs are created just before their images upload, and kept small, so no presigned
// upload (valid for minutes) expires while earlier images are still on the wire.
const JOB_IMAGES = Math.min(100, config.max_images_per_job);
const JOB_BYTES = 200 * 1024 * 1024;
const JOB_POLL_MS = 1000;
const FLEET_POLL_MS = 2000;
const CHART_WINDOW_MS = 10 * 60 * 1000;
const CHART_KEY = "skyclass.runtime.fleet-history";

const $ = (id) => document.getElementById(id);
const form = $("form");
const fileInput = $("files");
const goButton = $("go");
const clearButton = $("clear");
const grid = $("results");

// ---- talking to the API ----------------------------------------------------------

// A deployed stage wants its API key in x-api-key (chalice_app/auth.py); the person
// types it once, and it stays in this tab's session storage only.
const KEY_STORE = "skyclass.api-key";
const keyBox = $("key-box");
const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
keyBox.hidden = !config.api_key_required;
keyInput.addEventListener("change", () => sessionStorage.setItem(KEY_STORE, keyInput.value.trim()));

async function api(method, path, body) {
  const headers = body ? {"Content-Type": "application/json"} : {};
  if (keyInput.value.trim()) headers["x-api-key"] = keyInput.value.trim();
  const response = await fetch(new URL(path, apiBase), {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  // A 403 for the key (not for, say, a bucket the stage may not read) asks for the key.
  if (response.status === 403 && /x-api-key/.test(data.Message || "")) keyBox.hidden = false;
  if (!response.ok) throw new Error(data.Message || `${method} ${path}: HTTP ${response.status}`);
  return data;
}

async function uploadToS3(upload, file) {
  const body = new FormData();
  for (const [key, value] of Object.entries(upload.fields)) body.append(key, value);
  body.append("file", file);  // S3 reads the fields first: the file must come last
  const response = await fetch(upload.url, {method: upload.method, body});
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    const reason = /<Message>([^<]*)<\/Message>/.exec(text);
    throw new Error(`upload failed: ${reason ? reason[1] : "HTTP " + response.status}`);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- limits and the selection ----------------------------------------------------

const formats = config.types.map((t) => t.replace("image/", "").toUpperCase());

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value >= 10 || Number.isInteger(value) ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Why the API would refuse ``file``, or null: the same rules as POST /jobs. */
function refusal(file) {
  if (!config.types.includes(file.type)) {
    return `${file.type || "this file type"} is not accepted (send ${formats.join(", ")})`;
  }
  if (file.size === 0) return "the file is empty";
  const nameChars = [...file.name].length;  // code points, as the API counts them
  if (nameChars > config.max_name_chars) {
    return `the name is ${nameChars} characters; the limit is ${config.max_name_chars}`;
  }
  if (file.size > config.max_image_bytes) {
    return `${formatBytes(file.size)} is over the ${formatBytes(config.max_image_bytes)} limit`;
  }
  return null;
}

let selected = [];  // the accepted files of the current selection
let busy = false;   // a batch is uploading

function select(files) {
  selected = [];
  const refused = [];
  for (const file of files) {
    const reason = refusal(file);
    if (reason) refused.push([file.name, reason]); else selected.push(file);
  }
  const bytes = selected.reduce((sum, f) => sum + f.size, 0);
  $("selection").textContent = selected.length
    ? `${selected.length} image${selected.length === 1 ? "" : "s"} ready (${formatBytes(bytes)})` +
      (refused.length ? `; ${refused.length} file${refused.length === 1 ? "" : "s"} will be skipped:` : ".")
    : (refused.length ? "None of these files can be classified:" : "");
  $("refused").replaceChildren(...refused.map(([name, reason]) => {
    const item = document.createElement("li");
    item.textContent = `${name}: ${reason}`;
    return item;
  }));
  goButton.textContent = selected.length ? `Classify ${selected.length} image${selected.length === 1 ? "" : "s"}` : "Classify";
  goButton.disabled = busy || !selected.length;
}

/** The files of a drop, folders walked (the items must be read during the event). */
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  async function walk(entry) {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  }
  for (const entry of entries) await walk(entry);
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

// ---- the grid of results ---------------------------------------------------------

const cards = new Map();  // image_id -> card element
let objectUrls = [];

const STATUS_TEXT = {queued: "waiting to upload", uploading: "uploading…", pending: "classifying…"};

function newCard(name, file) {
  const card = document.createElement("li");
  card.className = "card";
  card.dataset.name = name;
  const main = document.createElement("button");
  main.type = "button";
  main.className = "card-main";
  main.setAttribute("aria-expanded", "false");
  const thumb = file ? thumbnail(file, name) : placeholder(name);
  const caption = document.createElement("span");
  caption.className = "caption";
  const nameLine = document.createElement("span");
  nameLine.className = "name";
  nameLine.textContent = name;
  nameLine.title = name;
  const label = document.createElement("span");
  label.className = "label";
  caption.append(nameLine, label);
  main.append(thumb, caption);
  const top = document.createElement("ol");
  top.className = "top5";
  card.append(main, top);
  main.addEventListener("click", () => {
    if (card.dataset.status !== "done") return;
    const open = card.classList.toggle("open");
    main.setAttribute("aria-expanded", String(open));
  });
  setStatus(card, "queued");
  grid.append(card);
  $("results-empty").hidden = true;
  return card;
}

function thumbnail(file, name) {
  const image = document.createElement("img");
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  image.className = "thumb";
  image.alt = "";
  image.loading = "lazy";
  image.decoding = "async";
  // What the browser cannot draw (a TIFF, a broken file) gets the placeholder instead.
  image.addEventListener("error", () => image.replaceWith(placeholder(name)), {once: true});
  image.src = url;
  return image;
}

/** Where there is no picture: a reopened job has results, not the images themselves. */
function placeholder(name) {
  const box = document.createElement("span");
  box.className = "thumb placeholder";
  box.textContent = (name.includes(".") ? name.split(".").pop() : "?").slice(0, 4).toUpperCase();
  box.setAttribute("aria-hidden", "true");
  return box;
}

function setStatus(card, status, text) {
  card.dataset.status = status;
  card.querySelector(".label").textContent = text || STATUS_TEXT[status] || status;
}

function showResult(card, result) {
  if (result.status === "done") {
    const label = card.querySelector(".label");
    setStatus(card, "done", result.label);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = ` ${percent(result.score)}`;
    label.append(score);
    card.querySelector(".top5").replaceChildren(...(result.top || []).slice(0, 5).map((t) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = t.label;
      const value = document.createElement("span");
      value.textContent = percent(t.score);
      item.append(name, value);
      return item;
    }));
    card.querySelector(".card-main").setAttribute(
      "aria-label", `${card.dataset.name}: ${result.label}, ${percent(result.score)}. Show top 5`);
  } else if (result.status === "failed") {
    setStatus(card, "failed", `failed: ${result.error}`);
  }
}

const percent = (score) => `${(100 * score).toFixed(score >= 0.995 || score < 0.1 ? 1 : 0)}%`;

function clearResults() {
  grid.replaceChildren();
  cards.clear();
  objectUrls.forEach((url) => URL.revokeObjectURL(url));
  objectUrls = [];
  $("results-empty").hidden = false;
}

// ---- progress and the job's URL --------------------------------------------------

const progress = {total: 0, uploaded: 0, done: 0, failed: 0, jobs: []};

function showProgress() {
  const {total, uploaded, done, failed} = progress;
  $("progress-box").hidden = false;
  // Upload and classification each count for half of an image's way.
  const bar = $("progress");
  bar.max = Math.max(1, 2 * total);
  bar.value = uploaded + done + failed;
  const finished = done + failed;
  const parts = [];
  if (uploaded < total && busy) parts.push(`Uploaded ${uploaded} of ${total}`);
  parts.push(`classified ${done} of ${total}`);
  if (failed) parts.push(`${failed} failed`);
  let text = parts.join(" · ");
  text = text[0].toUpperCase() + text.slice(1);
  if (total && finished === total) {
    text = `Done: ${total} image${total === 1 ? "" : "s"}, ${done} classified, ${failed} failed.`;
  }
  $("progress-text").textContent = text;
}

function jobUrl(jobIds) {
  const url = new URL(location.href);
  url.search = "";
  url.hash = "";
  for (const id of jobIds) url.searchParams.append("job", id);
  return url;
}

function publishJobs() {
  const url = jobUrl(progress.jobs);
  if (url.href !== location.href) history.replaceState(null, "", url);
  const link = $("share-link");
  link.href = url.href;
  link.textContent = url.href;
  $("share").hidden = !progress.jobs.length;
}

// ---- a batch: create jobs, upload, poll ------------------------------------------

function jobChunks(files) {
  const chunks = [];
  let chunk = [];
  let bytes = 0;
  for (const file of files) {
    if (chunk.length && (chunk.length >= JOB_IMAGES || bytes + file.size > JOB_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(file);
    bytes += file.size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

async function runPool(items, limit, work) {
  let next = 0;
  const runner = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, runner));
}

const unfinished = new Map();  // job_id -> Set of image_ids without a final state
let batch = 0;  // which batch the page shows; a poll loop of an older one stops

async function classify(files) {
  busy = true;
  batch += 1;
  goButton.disabled = true;
  clearResults();
  Object.assign(progress, {total: files.length, uploaded: 0, done: 0, failed: 0, jobs: []});
  unfinished.clear();
  publishJobs();
  showProgress();
  const waiting = files.map((file) => ({file, card: newCard(file.name, file)}));
  let polling = null;
  try {
    let offset = 0;
    for (const chunk of jobChunks(files)) {
      const entries = waiting.slice(offset, offset + chunk.length);
      offset += chunk.length;
      const job = await api("POST", "jobs", {
        images: chunk.map((f) => ({name: f.name, content_type: f.type, size: f.size})),
      });
      progress.jobs.push(job.job_id);
      unfinished.set(job.job_id, new Set(job.uploads.map((u) => u.image_id)));
      job.uploads.forEach((upload, i) => cards.set(upload.image_id, entries[i].card));
      publishJobs();
      polling = polling || pollJobs();
      await runPool(job.uploads.map((upload, i) => [upload, entries[i]]), UPLOADS_AT_ONCE,
        async ([upload, entry]) => {
          setStatus(entry.card, "uploading");
          try {
            await uploadToS3(upload, entry.file);
            setStatus(entry.card, "pending");
            progress.uploaded += 1;
          } catch (error) {
            setStatus(entry.card, "failed", error.message);
            unfinished.get(job.job_id).delete(upload.image_id);
            progress.uploaded += 1;
            progress.failed += 1;
          }
          showProgress();
        });
    }
  } catch (error) {
    // POST /jobs refused the chunk: its images, and any after it, were never sent.
    for (const {card} of waiting.filter(({card}) => card.dataset.status === "queued")) {
      setStatus(card, "failed", `not sent: ${error.message}`);
      progress.uploaded += 1;
      progress.failed += 1;
    }
  } finally {
    busy = false;
    selected = [];
    select([]);
    clearButton.hidden = false;
  }
  showProgress();
  await polling;
}

/** Poll every job with unfinished images until each image has its result. */
async function pollJobs() {
  const mine = batch;
  for (;;) {
    await sleep(JOB_POLL_MS);
    const open = [...unfinished].filter(([, ids]) => ids.size);
    if (mine !== batch) return;
    if (!open.length && !busy) {
      await offerExports(progress.jobs, mine);
      return;
    }
    for (const [jobId] of open) {
      let job;
      try {
        job = await api("GET", `jobs/${encodeURIComponent(jobId)}`);
      } catch (error) {
        $("progress-text").textContent = `Could not read job ${jobId}: ${error.message}`;
        continue;
      }
      if (mine !== batch) return;
      applyJob(job);
    }
    showProgress();
  }
}

function applyJob(job) {
  const ids = unfinished.get(job.job_id);
  for (const result of job.results) {
    const card = cards.get(result.image_id);
    if (!card || !ids || !ids.has(result.image_id) || result.status === "pending") continue;
    showResult(card, result);
    ids.delete(result.image_id);
    progress[result.status === "done" ? "done" : "failed"] += 1;
  }
}

/** ``?job=…`` on load: show that job's results (names and labels; the images stay
 * with whoever uploaded them) and keep polling while some are pending. */
async function reopen(jobIds) {
  Object.assign(progress, {total: 0, uploaded: 0, done: 0, failed: 0, jobs: jobIds});
  publishJobs();
  $("progress-text").textContent = "Loading the job…";
  $("progress-box").hidden = false;
  for (const jobId of jobIds) {
    let job;
    try {
      job = await api("GET", `jobs/${encodeURIComponent(jobId)}`);
    } catch (error) {
      $("progress-text").textContent = `Could not open job ${jobId}: ${error.message}`;
      return;
    }
    if (job.kind === "source") {
      $("progress-box").hidden = true;
      await watchSourceJob(job.job_id, batch);
      return;
    }
    unfinished.set(job.job_id, new Set(job.results.map((r) => r.image_id)));
    for (const result of job.results) {
      const card = newCard(result.name || result.image_id, null);
      setStatus(card, "pending");
      cards.set(result.image_id, card);
    }
    progress.total += job.total;
    progress.uploaded += job.total;
    applyJob(job);
  }
  showProgress();
  await pollJobs();
}

// ---- bulk jobs: a bucket prefix classified in place, finished jobs' exports --------
// POST /jobs {"source": "s3://…"} lists and classifies the prefix in the service; the
// page polls GET /jobs/{id} for its counts and first page of results, can cancel it, and
// links the export (CSV, JSON Lines) once the job has ended (docs/bulk.md).

const SOURCE_PAGE = 60;  // cards shown for a source job: its first page of results

/** Links to each job's export, once the service has written it. */
async function offerExports(jobIds, mine) {
  const list = $("exports");
  list.replaceChildren();
  list.hidden = true;
  for (const jobId of jobIds) {
    for (;;) {
      if (mine !== batch) return;
      let job;
      try {
        job = await api("GET", `jobs/${encodeURIComponent(jobId)}?limit=1`);
      } catch {
        return;
      }
      if (!("state" in job)) return;  // an old-style job has no export
      if (job.export) {
        list.append(await exportItem(job));
        list.hidden = false;
        break;
      }
      await sleep(JOB_POLL_MS);
    }
  }
}

async function exportItem(job) {
  const item = document.createElement("li");
  item.append(`Results of job ${job.job_id} (${job.export.rows} image${job.export.rows === 1 ? "" : "s"}): `);
  const formats = [["csv", "CSV"], ["jsonl", "JSON Lines"]];
  for (const [index, [format, label]] of formats.entries()) {
    const link = document.createElement("a");
    link.className = `export-${format}`;
    link.textContent = label;
    link.href = (await api("GET", `jobs/${encodeURIComponent(job.job_id)}/export?format=${format}`)).url;
    link.download = `${job.job_id}.${format}`;
    if (index) item.append(" · ");
    item.append(link);
  }
  return item;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function showJob(job) {
  const running = job.state === "running";
  $("job-box").hidden = false;
  $("job-title").textContent = job.source ? `${job.source}` : `Job ${job.job_id}`;
  const counts = [["Listed", job.listed], ["Queued", job.queued], ["Done", job.done],
    ["Failed", job.failed], ["Skipped", job.skipped ? job.skipped.total : 0]];
  if (job.cancelled) counts.push(["Cancelled", job.cancelled]);
  $("job-counts").replaceChildren(...counts.filter(([, n]) => n !== undefined).map(([name, n]) => {
    const box = document.createElement("div");
    const term = document.createElement("dt");
    term.textContent = name;
    const value = document.createElement("dd");
    value.textContent = n;
    box.append(term, value);
    return box;
  }));
  let text;
  if (running && job.listing) {
    text = `Listing the bucket: ${plural(job.listed, "object")} so far; classifying as it goes.`;
  } else if (running) {
    text = `Classifying: ${job.done + job.failed} of ${job.total} answered.`;
  } else if (job.state === "complete") {
    const skipped = job.skipped ? job.skipped.total : 0;
    text = `Done: ${plural(job.total, "image")}, ${job.done} classified, ${job.failed} failed` +
      (skipped ? `; ${skipped} skipped (not images, empty or too large).` : ".");
  } else if (job.state === "cancelled") {
    text = `Cancelled: ${job.done} classified, ${job.failed} failed, ${job.cancelled} not classified.`;
  } else {
    text = `Failed: ${job.error || "the job could not run"}`;
  }
  if (!running && !job.export) text += " Writing its export…";
  $("job-state").textContent = text;
  const cancel = $("job-cancel");
  cancel.hidden = !running;
  cancel.dataset.job = job.job_id;
}

/** Cards for the results of a source job's first page (names and labels). */
function showPage(results) {
  for (const result of results) {
    if (cards.has(result.image_id) || result.status === "pending") continue;
    const card = newCard(result.name || result.image_id, null);
    cards.set(result.image_id, card);
    showResult(card, result);
  }
}

async function watchSourceJob(jobId, mine) {
  for (;;) {
    let job;
    try {
      job = await api("GET", `jobs/${encodeURIComponent(jobId)}?limit=${SOURCE_PAGE}`);
    } catch (error) {
      $("job-state").textContent = `Could not read job ${jobId}: ${error.message}`;
      await sleep(JOB_POLL_MS);
      continue;
    }
    if (mine !== batch) return;
    showJob(job);
    showPage(job.results);
    if (job.state !== "running" && job.export) {
      await offerExports([jobId], mine);
      return;
    }
    await sleep(JOB_POLL_MS);
  }
}

$("source-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const source = $("source").value.trim();
  $("source-error").textContent = "";
  if (!source) return;
  $("source-go").disabled = true;
  try {
    const job = await api("POST", "jobs", {source});
    batch += 1;
    clearResults();
    unfinished.clear();
    $("progress-box").hidden = true;
    $("exports").hidden = true;
    Object.assign(progress, {total: 0, uploaded: 0, done: 0, failed: 0, jobs: [job.job_id]});
    publishJobs();
    clearButton.hidden = false;
    showJob(job);
    watchSourceJob(job.job_id, batch);
  } catch (error) {
    $("source-error").textContent = error.message;
  } finally {
    $("source-go").disabled = false;
  }
});

$("job-cancel").addEventListener("click", async (event) => {
  const jobId = event.currentTarget.dataset.job;
  try {
    showJob(await api("POST", `jobs/${encodeURIComponent(jobId)}/cancel`));
  } catch (error) {
    $("job-state").textContent = `Could not cancel: ${error.message}`;
  }
});

// ---- the fleet panel --------------------------------------------------------------

let samples = [];
try {
  samples = JSON.parse(sessionStorage.getItem(CHART_KEY) || "[]");
} catch {
  samples = [];
}

function showFleet(fleet) {
  const queue = fleet.queue || {};
  const backlog = (queue.visible || 0) + (queue.in_flight || 0) + (queue.delayed || 0);
  const instances = fleet.instances || [];
  const byState = {};
  for (const instance of instances) {
    // A running instance whose worker is still starting is shown as "booting".
    const state = instance.state === "running" && instance.booting ? "booting" : instance.state;
    byState[state] = (byState[state] || 0) + 1;
  }
  const running = (byState.running || 0) + (byState.booting || 0);
  $("stat-backlog").textContent = backlog;
  $("stat-in-flight").textContent = queue.in_flight || 0;
  $("stat-dead").textContent = queue.dead_letter || 0;
  $("stat-running").textContent = running;
  const order = ["running", "booting", "pending", "stopping", "stopped"];
  const states = Object.keys(byState).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  $("instances").replaceChildren(...(instances.length ? states.map((state) => {
    const chip = document.createElement("span");
    chip.className = `chip ${state}`;
    chip.textContent = `${byState[state]} ${state}`;
    chip.title = instances.filter((i) => (i.state === "running" && i.booting ? "booting" : i.state) === state)
      .map((i) => (i.uptime_s == null ? i.id : `${i.id} up ${i.uptime_s}s`)).join("\n");
    return chip;
  }) : [Object.assign(document.createElement("span"), {className: "chip", textContent: "no worker instances"})]));
  const throughput = fleet.throughput;
  $("throughput").textContent = throughput && typeof throughput.per_worker === "number"
    ? `${throughput.per_worker} images/s per worker (${throughput.source || "estimated"})` +
      (throughput.finished_per_s ? ` · the fleet finished ${throughput.finished_per_s}/s lately` : "")
    : "";
  const decision = fleet.last_decision;
  $("decision").textContent = decision && decision.reason
    ? `Scaler: ${decision.reason}${decision.at ? ` (${decision.at.replace("T", " ")})` : ""}`
    : "The scaler has not decided anything yet.";
  const now = Date.now();
  samples.push({t: now, backlog, running});
  samples = samples.filter((s) => now - s.t <= CHART_WINDOW_MS);
  try {
    sessionStorage.setItem(CHART_KEY, JSON.stringify(samples));
  } catch {
    // A full or disabled storage only costs the chart its past after a reload.
  }
  drawChart(now);
}

function drawChart(now) {
  const span = Math.max(60 * 1000, now - (samples.length ? samples[0].t : now));
  const x = (t) => (4 + 292 * (t - (now - span)) / span).toFixed(1);
  const line = (key) => {
    const max = Math.max(1, ...samples.map((s) => s[key]));
    // Each series fills the chart's height on its own scale; the caption names the max.
    return [max, samples.map((s) => `${x(s.t)},${(95 - 90 * s[key] / max).toFixed(1)}`).join(" ")];
  };
  const [maxBacklog, backlogPoints] = line("backlog");
  const [maxRunning, runningPoints] = line("running");
  $("line-backlog").setAttribute("points", backlogPoints);
  $("line-running").setAttribute("points", runningPoints);
  $("max-backlog").textContent = maxBacklog;
  $("max-running").textContent = maxRunning;
  $("chart-minutes").textContent = Math.ceil(span / 60000);
}

async function watchFleet() {
  for (;;) {
    try {
      if (config.api_key_required && !keyInput.value.trim()) {
        $("decision").textContent = "The fleet shows once the API key is given.";
        await sleep(FLEET_POLL_MS);
        continue;
      }
      showFleet(await api("GET", "fleet"));
    } catch (error) {
      $("decision").textContent = `The fleet cannot be read: ${error.message}`;
    }
    await sleep(FLEET_POLL_MS);
  }
}

// ---- wiring ----------------------------------------------------------------------

$("limits").textContent =
  `${formats.join(", ")} · up to ${formatBytes(config.max_image_bytes)} per image · ` +
  "any number of images; each goes straight to storage, a few at a time.";
fileInput.accept = config.types.join(",");
fileInput.addEventListener("change", () => select([...fileInput.files]));

const dropZone = $("drop");
// Dropping anywhere on the page selects the files (instead of the browser leaving the
// page to show one image).
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("over");
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) dropZone.classList.remove("over");
});
document.addEventListener("drop", async (event) => {
  event.preventDefault();
  dropZone.classList.remove("over");
  if (!busy) select(await droppedFiles(event.dataTransfer));
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (busy || !selected.length) return;
  const files = selected;
  fileInput.value = "";
  classify(files).catch((error) => {
    $("progress-text").textContent = error.message;
  });
});

clearButton.addEventListener("click", () => {
  batch += 1;
  clearResults();
  $("job-box").hidden = true;
  $("exports").hidden = true;
  unfinished.clear();
  Object.assign(progress, {total: 0, uploaded: 0, done: 0, failed: 0, jobs: []});
  publishJobs();
  $("progress-box").hidden = true;
  clearButton.hidden = true;
  fileInput.focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const card of grid.querySelectorAll(".card.open")) {
    card.classList.remove("open");
    card.querySelector(".card-main").setAttribute("aria-expanded", "false");
  }
});

const jobsInUrl = new URLSearchParams(location.search).getAll("job").filter(Boolean);
if (jobsInUrl.length) {
  clearButton.hidden = false;
  reopen(jobsInUrl).catch((error) => {
    $("progress-text").textContent = error.message;
  });
}
watchFleet();
