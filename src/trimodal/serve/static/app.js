// trimodal's web page: chat (image, audio file or microphone; streamed replies) and search.
// Plain JavaScript, no build step, nothing loaded from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, history: [], image: null, audio: null };

function headers(json = true) {
  const out = json ? { "Content-Type": "application/json" } : {};
  const key = $("api-key").value.trim();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

function say(text) { $("status").textContent = text || ""; }

async function failure(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// 16 kHz mono 16-bit WAV from any audio the browser can decode (a recording, an mp3, ...).
async function toWavBase64(blob) {
  const context = new AudioContext();
  const decoded = await context.decodeAudioData(await blob.arrayBuffer());
  await context.close();
  const rate = 16000;
  const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((v, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 0x7fff, true));
  let binary = "";
  const bytes = new Uint8Array(view.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

// Microphone: press to start, press again to stop; calls done(blob).
function recorder(button, done) {
  let media = null;
  button.addEventListener("click", async () => {
    if (media) { media.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      media = new MediaRecorder(stream);
      media.ondataavailable = (e) => chunks.push(e.data);
      media.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        button.classList.remove("recording");
        media = null;
        done(new Blob(chunks, { type: chunks[0] ? chunks[0].type : "audio/webm" }));
      };
      media.start();
      button.classList.add("recording");
    } catch (error) {
      say(`microphone unavailable: ${error.message}`);
    }
  });
}

function showAttached() {
  const parts = [];
  if (state.image) parts.push("image attached");
  if (state.audio) parts.push("audio attached");
  $("attached").textContent = parts.join(", ");
}

function bubble(role, text, imageUrl) {
  const node = document.createElement("div");
  node.className = `message ${role}`;
  if (imageUrl) {
    const img = document.createElement("img");
    img.src = imageUrl;
    img.alt = "attached image";
    node.appendChild(img);
  }
  const span = document.createElement("span");
  span.textContent = text;
  node.appendChild(span);
  $("conversation").appendChild(node);
  node.scrollIntoView({ block: "end" });
  return span;
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text && !state.image && !state.audio) return;
  const content = [];
  if (text) content.push({ type: "text", text });
  if (state.image) content.push({ type: "image_url", image_url: { url: state.image } });
  if (state.audio) content.push({ type: "input_audio", input_audio: { data: state.audio, format: "wav" } });
  bubble("user", text || (state.audio ? "(spoken question)" : ""), state.image);
  const message = { role: "user", content };
  const messages = [...state.history, message];
  $("message").value = "";
  state.image = null;
  state.audio = null;
  showAttached();
  const reply = bubble("assistant", "");
  say("");
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ model: state.model, messages, stream: true, temperature: 0 }),
  });
  if (!response.ok) {
    reply.textContent = "";
    say(await failure(response));
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let answer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split("\n\n");
    buffer = events.pop();
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) { say(chunk.error.message); continue; }
      for (const choice of chunk.choices) {
        if (choice.index === 0 && choice.delta.content) {
          answer += choice.delta.content;
          reply.textContent = answer;
        }
      }
    }
  }
  reply.parentNode.dataset.done = "true";
  state.history = [...messages, { role: "assistant", content: answer }];
}

async function contentUrl(path) {
  const response = await fetch(path, { headers: headers(false) });
  if (!response.ok) return null;
  return URL.createObjectURL(await response.blob());
}

async function search(query) {
  const body = { model: state.model, query, top_k: 12 };
  const modality = $("search-modality").value;
  if (modality) body.modalities = [modality];
  say("");
  const response = await fetch("/v1/search", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const results = $("results");
  results.innerHTML = "";
  if (!response.ok) { say(await failure(response)); return; }
  const found = await response.json();
  for (const hit of found.data) {
    const card = document.createElement("figure");
    card.className = "result";
    const url = hit.content_url ? await contentUrl(hit.content_url) : null;
    if (url && hit.modality === "audio") {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = url;
      card.appendChild(audio);
    } else if (url) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = hit.item.text || hit.item.id;
      card.appendChild(img);
    }
    const caption = document.createElement("figcaption");
    caption.innerHTML = `<span class="score">${hit.score.toFixed(3)} · ${hit.modality}</span><br>`;
    caption.appendChild(document.createTextNode(hit.item.text || hit.item.id));
    card.appendChild(caption);
    results.appendChild(card);
  }
  results.dataset.count = String(found.data.length);
}

async function start() {
  $("api-key").value = localStorage.getItem("trimodal-key") || "";
  $("api-key").addEventListener("change", () => localStorage.setItem("trimodal-key", $("api-key").value));
  const health = await (await fetch("/health")).json();
  state.model = health.model;
  $("model-name").textContent = `${health.model} · ${health.modalities.join(", ")}`;
  $("image-file").addEventListener("change", async (e) => {
    if (e.target.files[0]) state.image = await readAsDataURL(e.target.files[0]);
    e.target.value = "";
    showAttached();
  });
  $("audio-file").addEventListener("change", async (e) => {
    if (e.target.files[0]) state.audio = await toWavBase64(e.target.files[0]);
    e.target.value = "";
    showAttached();
  });
  recorder($("record"), async (blob) => { state.audio = await toWavBase64(blob); showAttached(); });
  $("chat-form").addEventListener("submit", (e) => sendChat(e).catch((error) => say(error.message)));
  $("reset").addEventListener("click", () => { state.history = []; $("conversation").innerHTML = ""; });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const query = $("query").value.trim();
    if (query) search(query).catch((error) => say(error.message));
  });
  const audioQuery = async (blob) => search({ type: "input_audio", input_audio: { data: await toWavBase64(blob), format: "wav" } });
  $("query-audio").addEventListener("change", (e) => {
    if (e.target.files[0]) audioQuery(e.target.files[0]).catch((error) => say(error.message));
    e.target.value = "";
  });
  recorder($("record-query"), (blob) => audioQuery(blob).catch((error) => say(error.message)));
}

start().catch((error) => say(error.message));
